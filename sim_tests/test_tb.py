"""The reusable cocotb testbench (rtlgen/verify/tb.py): its runnable example (rtlgen/verify/tb_example.py) on a small network built
with ``rtlgen build``: frames back to back scored against the golden model, then input idle cycles and output
backpressure; the cycles per frame it measures equal the compiled harness's (the same sampling of the handshakes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    from netbundle import small_resnet_build

    return small_resnet_build(tmp_path_factory, "tb")


def test_tb_example_on_a_small_network(small_build, tmp_path):
    from rtlgen.verify import tb_example
    from rtlgen.verify.harness import run_regression

    res_file = tmp_path / "tb.json"
    n, fails = tb_example.run(small_build, frames=5, results=res_file)
    assert (n, fails) == (1, 0)
    r = json.loads(res_file.read_text())
    assert r["stalled_frames_ok"] == 2
    px = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)  # the example's frames
    h = run_regression(small_build, px, shards=1, log=False, progress=False)
    assert h["mismatches"] == 0
    assert r["cycles_per_frame"] == h["cycles_per_frame"] and r["latency_cycles"] == h["latency_cycles"], (r, h)


def test_tb_scoreboard_catches_a_wrong_model(small_build, tmp_path):
    """The example's assertion fails when the golden model differs from the RTL (a tampered copy of the build)."""
    from rtlgen.verify import tb_example
    from rtlgen.errors import SimulationError

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_regress import _tamper_conv1

    out = tmp_path / "tampered"
    _tamper_conv1(small_build, out)
    import shutil

    shutil.rmtree(out / "sim_build", ignore_errors=True)  # a fresh cocotb build of the same RTL
    with pytest.raises(SimulationError, match="1 of 1 cocotb tests failed"):
        tb_example.run(small_build, frames=2, golden_dir=out)  # the same compiled RTL, the tampered model


def test_tb_example_model_exposes_only_the_ports(small_build, tmp_path):
    """tb_example builds with rtlgen.verify.tb.verilator_args: cocotb's VPI symbol table holds the top's ports, not the
    network's internal signals (which --public-flat-rw alone would register, and which make the model ~4x slower)."""
    import re

    from rtlgen.verify import tb, tb_example

    args = tb.verilator_args(tmp_path)
    assert args[0] == "--no-public-flat-rw" and Path(args[1]).read_text().startswith("`verilator_config")
    mdir = small_build / "sim_build" / "tb_example"
    if not (mdir / "rtlgen_top").exists():
        tb_example.run(small_build, frames=2)
    syms = "".join(p.read_text() for p in mdir.glob("Vtop__Syms*.cpp"))
    names = set(re.findall(r'varInsert\("([^"]+)"', syms))
    ports = {"clk", "rst", "i__valid", "i__ready", "i__payload", "o__valid", "o__ready", "o__payload"}
    assert ports <= names, names
    assert names == ports, sorted(names ^ ports)[:10]  # no URAM weights in this network: no wload port
