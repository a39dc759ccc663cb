"""Verilator ``--lint-only -Wall`` on generated Verilog, with the project's documented waiver list.

Every waiver is a pattern Amaranth's Verilog backend emits by construction, not a design defect:

* ``WIDTHEXPAND`` / ``WIDTHTRUNC``: Amaranth emits implicit zero/sign extension and truncation in assignments whose
  widths its own type system has already checked.
* ``UNUSEDSIGNAL``: unused bits of packed stream payloads and of wide intermediate results (e.g. the dropped low bits
  of a rounding shift) are left dangling.
* ``PROCASSINIT``: registers get their reset value through an ``initial`` assignment plus the synchronous reset.
* ``CASEINCOMPLETE``: ``case`` statements after a default assignment of the same signal (no latch is inferred).
* ``ASCRANGE``: memories are declared ``[0:N-1]``.
* ``DECLFILENAME``: many modules in one file (``rtlgen_top.v``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .. import toolchain

WAIVERS = ("WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "PROCASSINIT", "CASEINCOMPLETE", "ASCRANGE", "DECLFILENAME")


def lint(path, top: str | None = None, waivers=WAIVERS, timeout: float = 600) -> list[str]:
    """Warnings and errors (one string each) left after the waivers; an empty list means lint-clean.
    ``timeout`` (seconds) stops Verilator on very large files (raises :class:`subprocess.TimeoutExpired`)."""
    toolchain.setup_env()
    root = toolchain.verilator_root()
    cmd = [str(root / "bin" / "verilator"), "--lint-only", "-Wall", *[f"-Wno-{w}" for w in waivers], str(Path(path))]
    if top:
        cmd += ["--top-module", top]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    msgs = [ln for ln in r.stderr.splitlines() if ln.startswith("%")]
    if r.returncode != 0 and not msgs:
        msgs = [f"verilator exited with {r.returncode}: {r.stderr.strip()[:300]}"]
    return msgs
