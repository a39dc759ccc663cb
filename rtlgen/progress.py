"""What long runs say while they run: phase messages with elapsed time, a frame progress bar, a closing summary.

:class:`Reporter` is what :func:`rtlgen.verify.sim.run_sim` and :func:`rtlgen.verify.harness.run_regression` talk to. Its two
knobs are the ``log`` and ``progress`` arguments of those functions:

* ``log``: ``None`` prints each message as one line on stderr (``rtlgen: compiling the harness ...``), ``False``
  prints nothing, a callable receives each message (a one-line ``str``, no trailing newline);
* ``progress``: ``None`` shows a tqdm bar with ETA on stderr (only when stderr is a terminal), ``False`` shows
  nothing, a callable receives the number of frames finished since its previous call.

A CLI with ``--json`` passes ``log=False, progress=False`` (or its own callables).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from .figures import fmt_fps


def _stderr_line(msg: str) -> None:
    print(f"rtlgen: {msg}", file=sys.stderr, flush=True)


def fmt_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{int(s // 60)} min {s % 60:02.0f} s"


class Reporter:
    def __init__(self, log=None, progress=None):
        self.log = _stderr_line if log is None else (log if callable(log) else None)
        self._progress = progress
        self.t0 = time.perf_counter()

    def say(self, msg: str) -> None:
        if self.log is not None:
            self.log(msg)

    @contextmanager
    def phase(self, what: str):
        """``with rep.phase("compiling the harness"):`` -> "compiling the harness ..." then "... done in N s"
        (or "... failed after N s"). The body may set ``box["note"]`` to say more in the closing line."""
        box: dict = {}
        self.say(f"{what} ...")
        t = time.perf_counter()
        try:
            yield box
        except BaseException:
            self.say(f"{what}: failed after {fmt_seconds(time.perf_counter() - t)}")
            raise
        note = f" ({box['note']})" if box.get("note") else ""
        box["seconds"] = time.perf_counter() - t
        self.say(f"{what}: done in {fmt_seconds(box['seconds'])}{note}")

    @contextmanager
    def frames(self, total: int, desc: str):
        """Yields ``update(k)`` for k newly finished frames: the caller's callable, a tqdm bar, or a no-op."""
        if callable(self._progress):
            yield self._progress
            return
        if self._progress is False:
            yield lambda k: None
            return
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=desc, disable=None, file=sys.stderr, dynamic_ncols=True)
        try:
            yield bar.update
        finally:
            bar.close()


def summary_line(res: dict, clock_mhz: float | None = None) -> str:
    """The closing line of a simulation: frames, mismatches, cycles/frame, FPS at clock, wall time."""
    cpf = res.get("cycles_per_frame")
    parts = [f"{res['images']:,} frames", f"{res['mismatches']} mismatches"]
    if cpf is not None:
        parts.append(f"{cpf:,} cycles/frame (predicted {res['predicted_cycles_per_frame']:,})")
    if res.get("fps_at_clock") is not None:
        parts.append(f"{fmt_fps(res['fps_at_clock'])} FPS" + (f" at {clock_mhz} MHz" if clock_mhz else " at clock"))
    if res.get("top1") is not None:
        parts.append(f"top-1 {100 * res['top1']:.2f} %")
    wall = res.get("seconds", {}).get("wall")
    if wall is not None:
        parts.append(f"wall {fmt_seconds(wall)}")
    eng = res.get("engine")
    if eng:
        parts.append(f"engine {eng}" + (f" x{res['shards']}" if res.get("shards") else ""))
    return "; ".join(parts)
