# amaranth: UnusedElaboratable=no
"""Verilator ``--lint-only -Wall`` over the Verilog of every core of this library built by ``rtlgen core`` (pooling,
dense, argmax, input stage, add, option-A shortcut, FIFO, skid buffer, lane converters; conv, depthwise conv and line
buffer too when present), in several configurations. Clean except for the documented waivers below.

Waivers (artifacts of Amaranth's Verilog style, not of the designs; the same list as ``sim_tests/test_conv.py``):

* ``WIDTHEXPAND``  Amaranth operands are extended implicitly; the Verilog relies on context-determined widths.
* ``UNUSEDSIGNAL`` unused bits of struct payloads and intermediate wires (e.g. the ``last`` of a consumed beat,
  the high bits of a wide product that are clamped away).
* ``PROCASSINIT``  registers carry their reset value as an initializer as well as in the ``always`` block.
* ``DECLFILENAME`` one file holds the top module and all its submodules.
* ``CASEINCOMPLETE`` Amaranth lowers ``Array`` indexing, ``Switch`` and ``FSM`` to ``casez`` statements preceded by a
  default assignment; values not listed keep that default (no latch is inferred). Only the cores of this file
  need it (the conv/line-buffer list in ``test_conv.py`` does not).
* ``WIDTHTRUNC``   only on the ``!x`` (LOGNOT) Amaranth emits for ``x == 0`` on a multi-bit ``x`` -- every other
  truncation is reported.
"""

import os
import subprocess

import pytest

from rtlgen.cli.core import build_core
from rtlgen.cores.registry import CORES
from rtlgen.emit.verilog import write_verilog

LINT_WAIVERS = ("WIDTHEXPAND", "UNUSEDSIGNAL", "PROCASSINIT", "DECLFILENAME", "CASEINCOMPLETE")

CONFIGS = {
    "fifo": ("fifo", ["--depth", "8", "--lanes", "3"],),
    "skid": ("skid", ["--lanes", "2"],),
    "lanes_3to1": ("lanes", ["--c", "3", "--lanes-in", "3", "--lanes-out", "1"],),
    "lanes_2to3": ("lanes", ["--c", "5", "--lanes-in", "2", "--lanes-out", "3", "--c-out", "20"],),
    "pool_max": ("pool", ["--h", "7", "--w", "6", "--c", "5", "--lanes", "2", "--k", "3", "--stride", "2", "--pad", "1"],),
    "pool_avg": ("pool", ["--h", "5", "--w", "4", "--c", "3", "--mode", "avg", "--k", "3", "--stride", "1", "--pad", "1",
                 "--no-signed", "--zp-in", "7"],),
    "pool_gavg": ("pool", ["--h", "8", "--w", "8", "--c", "64", "--lanes", "4", "--mode", "avg", "--global"],),
    "pool_gmax": ("pool", ["--h", "4", "--w", "4", "--c", "8", "--global"],),
    "dense": ("dense", ["--c", "64", "--cout", "10", "--och-par", "3", "--ich-par", "5", "--lanes-in", "4"],),
    "dense_raw": ("dense", ["--c", "12", "--cout", "4", "--raw", "--och-par", "4", "--ich-par", "12", "--lanes-out", "2"],),
    "argmax": ("argmax", ["--classes", "10", "--lanes", "3"],),
    "argmax32": ("argmax", ["--classes", "7", "--lanes", "2", "--width", "32"],),
    "input": ("input", ["--c", "3", "--lanes", "3"],),
    "input1": ("input", ["--c", "3", "--lanes", "1"],),
    "add": ("add", ["--c", "5", "--lanes", "2", "--ma", "1048576", "--mb", "1572864", "--sh", "21", "--relu"],),
    "shortcut_a": ("shortcut_a", ["--h", "5", "--w", "5", "--c", "4", "--pad-before", "2", "--pad-after", "2", "--lanes-in", "2",
                   "--lanes-out", "3"],),
    "conv": ("conv", ["--k", "3", "--cin", "16", "--cout", "16", "--och-par", "8", "--pix-par", "2", "--packing"],),
    "linebuffer": ("linebuffer", ["--h", "6", "--w", "5", "--c", "3", "--lanes", "2"],),
    "dwconv": ("dwconv", ["--h", "6", "--w", "6", "--c", "6", "--ch-par", "3", "--pix-par", "2", "--tap-par", "3",
                          "--relu"],),
}


def verilator_lint(path) -> list[str]:
    """Remaining ``-Wall`` warnings after :data:`LINT_WAIVERS` (LOGNOT width truncations removed)."""
    from rtlgen import toolchain

    env = toolchain.setup_env(dict(os.environ))
    exe = toolchain.verilator_root() / "bin" / "verilator"
    args = [str(exe), "--lint-only", "-Wall", "-Wno-fatal"] + [f"-Wno-{w}" for w in LINT_WAIVERS] + [str(path)]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    bad = [ln for ln in r.stderr.splitlines() if ln.startswith("%")]
    return [ln for ln in bad if not (ln.startswith("%Warning-WIDTHTRUNC") and "LOGNOT" in ln)]


def test_every_core_is_configured():
    assert {core for core, _ in CONFIGS.values()} == set(CORES)


@pytest.mark.parametrize("cfg", list(CONFIGS))
def test_verilator_lint(tmp_path, cfg):
    core, args = CONFIGS[cfg]
    if core in ("conv", "linebuffer", "dwconv"):
        pytest.importorskip(f"rtlgen.cores.{core}")
    comp = build_core(core, args)
    v = write_verilog(comp, f"rtlgen_{cfg}", tmp_path / f"{cfg}.v")
    bad = verilator_lint(v)
    assert not bad, "\n".join(bad[:8])
