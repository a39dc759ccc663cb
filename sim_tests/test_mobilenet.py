"""A network with depthwise convolutions in RTL, end to end (issue 22): the MobileNetV2-style network of
tests/zoo_dw.py (stem 3x3 -> expand 1x1 -> depthwise 3x3 stride 1 -> linear project 1x1 + identity add -> expand 1x1
-> depthwise 3x3 stride 2 -> project 1x1 -> global average pool -> dense; ReLU6; QDQ, power-of-two scales, 8x8x3
input, 8/16 channels) built by ``Design.load -> plan -> build`` and simulated with the compiled Verilator harness
(``rtlgen.verify.sim.run_sim``): every output bit-exact against the golden model under random input pauses and output
back-pressure, and without stalls the measured steady-state cycles per frame equal the plan's prediction (within 1).

Two builds: the planner's own plan, and one where the depthwise layers are edited into the bottleneck with the
core's other features (packed pixel pairs, a row of taps per beat, a channel parallelism that leaves a tail beat,
LUT multipliers and LUT weights, a non-power-of-two weight scale: a fixed-point requant multiplier), so the measured
cycles check the depthwise core's cycle model inside the network.
Default run: about a minute (two small Verilator builds). Opt-in (``--runslow``): the same with non-square and even
depthwise kernels (5x3, 2x2, 1x3).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from rtlgen import golden, ir  # noqa: E402
from rtlgen.flow import Design  # noqa: E402
from rtlgen.verify.sim import run_sim  # noqa: E402

import zoo_dw  # noqa: E402

BUDGET = "dsp=64,lut=40000,bram36=100,uram=0"
STALL = 0.3
#: the depthwise layers edited into the bottleneck (in layer order: the stride-1 one, then the stride-2 one)
FORCED = [dict(och_par=1, ich_par=1, pix_par=2, packing=True, tap_par=3, mult="dsp", storage="bram"),
          dict(och_par=3, ich_par=3, pix_par=1, packing=False, tap_par=9, mult="lut", storage="lut")]


def _pixels(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)


def _design(edit: bool, dw_k=3) -> Design:
    # the edited build's depthwise weights have scale 3/64: their requantization is a fixed-point multiplier (DSPs)
    m = zoo_dw.mobilenet_v2_tiny(dw_k=dw_k, dw_w_scale=3 / 64 if edit else 1 / 16)
    d = Design.load(m, board="generic", budget=BUDGET)
    d.plan()
    dws = [lay for lay in d.net.layers if isinstance(lay, ir.Conv) and lay.group != 1]
    assert len(dws) == 2 and all(lay.depthwise for lay in dws)
    if edit:
        for lay, knobs in zip(dws, FORCED):
            d.set_layer(lay.name, **knobs)
    return d


def _check(d: Design, edit: bool, tmp_path):
    rep = d.build(tmp_path / "build")
    pred = rep["cycles_per_frame"]
    dw = [L for L in rep["layers"] if d.net[L["name"]].kind == "conv" and d.net[L["name"]].group != 1]
    for L in dw:
        assert L["parallelism"]["och_par"] == L["parallelism"]["ich_par"]
    if edit:
        assert rep["bottleneck"] == dw[0]["name"]
        assert all(d.net[L["name"]].requant.kind == "multiplier" for L in dw)
    px = _pixels(8, 1)
    expect = golden.run(d.net, px)
    assert len({e.tobytes() for e in expect}) == len(px), "golden outputs constant across frames (dead network)"
    res = run_sim(tmp_path / "build", px, stall=STALL, seed=5, progress=False, log=False, shards=1)
    assert res["mismatches"] == 0, res["summary"]
    res0 = run_sim(tmp_path / "build", _pixels(6, 2), stall=0.0, progress=False, log=False, shards=1)
    assert res0["mismatches"] == 0, res0["summary"]
    assert abs(res0["cycles_per_frame"] - pred) <= 1, (res0["summary"], pred)
    print(f"{'dw_bottleneck' if edit else 'planned'}: {res['summary']} | no stalls: {res0['summary']}")


@pytest.mark.parametrize("edit", [False, True], ids=["planned", "dw_bottleneck"])
def test_mobilenet_v2_tiny_bit_exact_in_rtl(edit, tmp_path):
    _check(_design(edit), edit, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("dw_k", [(5, 3), 2, (1, 3)], ids=["k5x3", "k2", "k1x3"])
@pytest.mark.parametrize("edit", [False, True], ids=["planned", "dw_bottleneck"])
def test_other_depthwise_kernels_bit_exact_in_rtl(dw_k, edit, tmp_path):
    """Non-square and even depthwise kernels (embedded in the odd square window: dead tap slots, added pad rows)."""
    _check(_design(edit, dw_k), edit, tmp_path)
