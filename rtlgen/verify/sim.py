"""``rtlgen sim``: simulate a built design in RTL, stream frames, check bit-exactness against the golden model.

One simulator path: every run goes through the compiled Verilator harness (:mod:`rtlgen.verify.harness`; sharded over
local processes or a Dask cluster, :mod:`rtlgen.verify.shard`), with random stalls if asked, and with per-layer probes that
name the first differing layer on a mismatch. The cocotb bench (:mod:`rtlgen.verify.bench`) serves ``waves=True``
(an FST waveform in ``DIR/sim_build``) and ``engine="cocotb"`` (a cross-check of the harness); users' own cocotb
suites use :mod:`rtlgen.verify.tb`.

Measured figures: *steady-state cycles per frame* = mean spacing of the last output beats of consecutive frames after
the first two (back-to-back input, no stalls unless ``stall``), *latency* = cycles from the first frame's first
input beat to its last output beat.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .. import golden
from ..errors import OptionError, RtlgenError
from ..progress import Reporter, summary_line
from . import score
from .beats import as_input_frames, decode_outputs, frame_beats
from .harness import first_differing_layer, load_design, run_regression

__all__ = ["run_sim", "load_design", "first_differing_layer", "frame_beats", "decode_outputs", "simulate_cocotb"]


def simulate_cocotb(build_dir, rep, man, pixels, stall=0.0, seed=1, waves=False, probes=(), opt="auto") -> dict:
    """The cocotb bench (:mod:`rtlgen.verify.bench`) on ``pixels``: raw results (``outs``, ``first_in``,
    ``last_out``, ``cycles``, ``timeout``, ``probes``, ...). ``opt``: C++ optimisation of the model (``auto``:
    ``-O0`` for short runs)."""
    from ..errors import SimulationError
    from .runner import run_cocotb

    d = Path(build_dir)
    n = len(pixels)
    sim_dir = d / "sim_build"
    sim_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sim_dir) as tmp:
        tmp = Path(tmp)
        np.save(tmp / "frames.npy", frame_beats(as_input_frames(pixels, man)))
        results = tmp / "results.json"
        cfg = {"build_dir": str(d.resolve()), "frames": str(tmp / "frames.npy"),
               "out_beats": man["output"]["beats_per_frame"],
               "pause_in": stall, "pause_out": stall, "seed": seed, "results": str(results),
               "max_cycles": int(50 * rep["cycles_per_frame"] * (n + 4) + 200_000), "probes": list(probes)}
        if opt == "auto":  # a fast compile for a few frames, an optimised model for long runs
            opt = "O0" if n * rep["cycles_per_frame"] < 2_000_000 else "Os"
        try:
            run_cocotb([d / "rtl" / "rtlgen_top.v"], "rtlgen_top", "rtlgen.verify.bench", Path(__file__).parent,
                       sim_dir / f"verilator_{opt}", config=cfg, waves=waves, cxx_opt=f"-{opt}")
        except SimulationError:
            if not results.exists():
                raise
        import json

        return json.loads(results.read_text())


def run_sim(build_dir, pixels: np.ndarray, labels: np.ndarray | None = None, stall: float = 0.0, waves: bool = False,
            seed: int = 1, progress=None, opt: str = "auto", log=None, scheduler=None, shards: int | None = None,
            engine: str = "harness") -> dict:
    """Simulate ``pixels`` (uint8 NHWC) through the design built in ``build_dir``; every output checked against the
    golden model. Result: see :func:`rtlgen.verify.harness.run_regression` (``engine`` names the simulator).

    ``stall``: probability of an input pause and of output backpressure per cycle; ``waves``: the cocotb bench with
    an FST dump instead of the harness; ``log``/``progress``: phase messages and frame progress
    (:class:`rtlgen.progress.Reporter`: ``None`` = stderr, ``False`` = silent, or callables); ``scheduler``: Dask
    sharding (:mod:`rtlgen.verify.shard`: ``None`` = ``$RTLGEN_DASK_SCHEDULER`` or local processes, ``"local"``,
    ``"tcp://HOST:PORT"``, a ``distributed.Client``); ``shards``: harness processes (default: one per core, >= 4
    frames each); ``engine="cocotb"``: the cocotb bench without waves (a cross-check; slow); ``opt``: C++
    optimisation of the cocotb bench's model."""
    if len(pixels) < 1:
        raise OptionError("no frames to simulate")
    if engine not in ("harness", "cocotb"):
        raise OptionError(f"engine {engine!r}: expected 'harness' or 'cocotb'")
    if not waves and engine == "harness":
        return run_regression(build_dir, pixels, labels, shards=shards, stall=stall, seed=seed, progress=progress,
                              log=log, scheduler=scheduler)
    return _run_cocotb(build_dir, pixels, labels, stall, waves, seed, opt, Reporter(log, progress))


def _run_cocotb(build_dir, pixels, labels, stall, waves, seed, opt, rp: Reporter) -> dict:
    t_wall = time.perf_counter()
    d = Path(build_dir).resolve()
    net, rep, man = load_design(d)
    n = len(pixels)
    t0 = time.perf_counter()
    expect = golden.run(net, pixels)
    t_golden = time.perf_counter() - t0
    t1 = time.perf_counter()
    with rp.phase(f"cocotb: compiling and simulating {n} frames of {rep['model']}"
                  f"{' with an FST waveform' if waves else ''} (slow: Python runs every clock cycle)"):
        r = simulate_cocotb(d, rep, man, pixels, stall, seed, waves, opt=opt)
    t_sim = time.perf_counter() - t1
    if r["timeout"]:
        raise RtlgenError(f"simulation stalled: {len(r['outs'])} of {n * man['output']['beats_per_frame']} output beats "
                          f"after {r['cycles']} cycles (deadlock?)")
    got = decode_outputs(r["outs"], man, n)
    last = np.array(r["last_out"], dtype=np.float64)
    if n >= 4:
        cpf = (last[-1] - last[1]) / (n - 2)
    elif n >= 2:
        cpf = (last[-1] - last[0]) / (n - 1)
    else:
        cpf = float("nan")
    lat = int(r["last_out"][0] - r["first_in"][0] + 1)
    extra = {"engine": "cocotb"}
    if waves:
        extra["waves"] = str(next(iter(sorted((d / "sim_build").glob("verilator_*/*.fst"))), "")) or None
    out, mism = score.result(net, rep, got, expect, cpf, lat, stall,
                             {"golden": round(t_golden, 2), "simulation": round(t_sim, 2)}, labels, **extra)
    if len(mism):
        f = int(mism[0])
        # re-run the failing frame alone with every layer's output stream probed
        r2 = simulate_cocotb(d, rep, man, pixels[f : f + 1], 0.0, seed, False, probes=man.get("probes", []),
                             opt=opt if opt != "auto" else "O0")
        out["first_differing_layer"] = first_differing_layer(net, man, r2["probes"],
                                                             golden.run(net, pixels[f : f + 1], return_all=True))
    out["seconds"]["wall"] = round(time.perf_counter() - t_wall, 2)
    out["summary"] = summary_line(out, rep.get("clock_mhz"))
    rp.say(out["summary"])
    return out
