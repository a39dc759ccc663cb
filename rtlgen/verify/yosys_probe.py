"""Small yosys probes of single cores: cell counts after a (partial) ``synth_xilinx`` run and the memories yosys
infers, with the sample conv layer they are run on. Shared by ``sim_tests/test_synth.py`` (which asserts on them)
and ``tools/bench.py``'s cores section (which reports them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np

from .. import ir
from ..errors import RtlgenError


def yosys() -> str:
    """The yosys on PATH (Debian's: the PyPI build dies in ABC)."""
    path = shutil.which("yosys")
    if path is None:
        raise RtlgenError("yosys not found on PATH (apt-get install yosys)")
    return path


def yosys_cells(verilog, top, script_tail="synth_xilinx -family xcup -top {top} -run :map_ffram") -> dict:
    """Cell counts of the whole design after ``script_tail`` (default: UltraScale+ mapping up to memories)."""
    out = verilog.parent / f"{top}_stat.txt"
    script = f"read_verilog {verilog}; {script_tail.format(top=top)}; flatten; tee -q -o {out} stat"
    r = subprocess.run([yosys(), "-q", "-p", script], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RtlgenError(f"yosys failed: {r.stderr[-2000:]}")
    cells = {}
    text = out.read_text()
    for name, n in re.findall(r"^\s+(\S+)\s+(\d+)\s*$", text, re.M):
        cells[name] = cells.get(name, 0) + int(n)
    return cells


def yosys_memories(verilog, top) -> list[tuple[int, int]]:
    """(width, depth) of every inferred memory before technology mapping."""
    out = verilog.parent / f"{top}_mem.json"
    script = f"read_verilog {verilog}; hierarchy -top {top}; proc; opt; memory -nomap; flatten; write_json {out}"
    r = subprocess.run([yosys(), "-q", "-p", script], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RtlgenError(f"yosys failed: {r.stderr[-2000:]}")
    mods = json.loads(out.read_text())["modules"]
    mems = []
    for cell in mods[top]["cells"].values():
        if cell["type"] == "$mem_v2":
            p = cell["parameters"]
            mems.append((int(p["WIDTH"], 2), int(p["SIZE"], 2)))
    return mems


def sample_conv_layer(C=9, O=8, H=8, W=8, K=3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (O, K, K, C))
    q = ir.QType(1.0, 0, False, 8, 0, 255)
    rq = ir.Requant(m=np.ones(O, dtype=np.int64), sh=np.full(O, 9, dtype=np.int64), zp_out=0, lo=0, hi=255)
    return ir.Conv(name="conv", inputs=["x"], in_shape=(H, W, C), out_shape=(H, W, O), out_q=q, weights=w,
                   bias=rng.integers(-1000, 1000, O), stride=(1, 1), pads=(1, 1, 1, 1), pad_value=0, requant=rq,
                   in_q=q, w_scale=np.ones(O), relu=True)
