"""Planning depthwise convolutions (issue 22): a MobileNetV2-style network (tests/zoo_dw.py: expand 1x1 -> depthwise
3x3 stride 1 and 2 -> linear project 1x1, identity add, ReLU6) plans; every depthwise layer gets one channel
parallelism (``ich_par == och_par``) and its report cycles are the depthwise core's own cycle model; the closed-form
cost follows what :class:`rtlgen.cores.dwconv.DWConv` builds (DSPs, weight ROM, line buffer); plan files and edits
are validated. The RTL run of the same network: sim_tests/test_mobilenet.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

import zoo_dw
from rtlgen import ir
from rtlgen.cores.dwconv import DWConv
from rtlgen.cores.registry import core_class, core_cycles
from rtlgen.errors import OptionError, RtlgenError
from rtlgen.flow import Design
from rtlgen.plan import cost, geometry
from rtlgen.plan.topology import topology

BUDGET = "dsp=64,lut=40000,bram36=100,uram=0"


@pytest.fixture(scope="module")
def design():
    d = Design.load(zoo_dw.mobilenet_v2_tiny(), board="generic", budget=BUDGET)
    d.plan()
    return d


def _dw_layers(net):
    return [lay for lay in net.layers if isinstance(lay, ir.Conv) and lay.group != 1]


@pytest.mark.parametrize("board,budget", [("generic", BUDGET), ("kv260", None), ("ultra96v2", None)])
def test_mobilenet_plans_with_the_cores_cycles(board, budget):
    d = Design.load(zoo_dw.mobilenet_v2_tiny(), board=board, budget=budget)
    plan = d.plan()
    dws = _dw_layers(d.net)
    assert [lay.stride for lay in dws] == [(1, 1), (2, 2)] and all(lay.depthwise for lay in dws)
    assert any(lay.kind == "add" for lay in d.net.layers)
    exact = core_cycles(d.net, plan)
    rep = {L["name"]: L for L in d.report()["layers"]}
    for lay in dws:
        lp = plan.layer(lay.name)
        assert core_class(lay) is DWConv
        assert lp.ich_par == lp.och_par == lp.lanes_out and lp.storage in ("bram", "lut")
        core = DWConv.from_plan(lay, lp)
        assert lp.cycles == rep[lay.name]["cycles"] == exact[lay.name] == core.cycles_per_frame()
        assert lp.dsp == core.resources()["dsp"]
    for lp in plan.layers:  # every layer's report cycles are its core's model
        assert lp.cycles == exact[lp.name]
    assert plan.cycles_per_frame == max(exact.values())
    tot = plan.totals()
    for k in ("dsp", "lut", "bram36"):
        assert tot[k] <= getattr(d.budget, k), k


def _dw_layer(H=8, W=8, C=12, kh=3, kw=3, stride=1, pads=None, seed=0):
    rng = np.random.default_rng(seed)
    pads = pads if pads is not None else ((kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2)
    Ho = (H + pads[0] + pads[2] - kh) // stride + 1
    Wo = (W + pads[1] + pads[3] - kw) // stride + 1
    q = ir.QType(1.0, 0, True, 8, -128, 127)
    rq = ir.Requant(m=np.full(C, 3, dtype=np.int64), sh=np.full(C, 9, dtype=np.int64), zp_out=0, lo=-128, hi=127)
    return ir.Conv(name="dw", inputs=["x"], in_shape=(H, W, C), out_shape=(Ho, Wo, C), out_q=q,
                   weights=rng.integers(-128, 128, (C, kh, kw, 1)), bias=rng.integers(-99, 99, C), stride=(stride,) * 2,
                   pads=tuple(pads), pad_value=0, requant=rq, in_q=q, w_scale=np.ones(C), group=C)


@pytest.mark.parametrize("shape", [dict(), dict(stride=2), dict(kh=5, kw=2, pads=(2, 0, 2, 1)), dict(C=5, kh=1, kw=1)])
def test_dw_cost_follows_the_core(shape):
    """For every channel/pixel/tap parallelism: the closed-form cycles are the window beats (the core adds at most its
    frame change), DSPs (live lanes x live tap slots, one per packed pixel pair, plus 2 per requant lane with a
    multiplier), the weight ROM (tap_par*ch_par bytes x ceil(K'^2/tap_par)*G words) and the line buffer are the core's."""
    lay = _dw_layer(**shape)
    K = geometry.dw_window(lay)[0]
    C = lay.in_shape[2]
    checked = 0
    for cp in sorted({1, 2, 4, C}):
        for tp in sorted({1, K, K * K, 2}):
            if tp > K * K:
                continue
            for pp, packing in ((1, False), (2, False), (2, True)):
                for mult, st in (("dsp", "bram"), ("lut", "lut")):
                    cyc, res = cost.layer_config_cost(lay, cp, cp, pp, packing, mult, st, lanes_in=cp, tp=tp)
                    core = DWConv(lay, ch_par=cp, pix_par=pp, tap_par=tp, packing=packing, storage=st, mult=mult)
                    r = core.resources()
                    assert res["dsp"] == r["dsp"], (cp, tp, pp, packing, mult)
                    wg = core.window
                    assert cyc <= core.cycles_per_frame() <= cyc + wg.frame_stall() + 1
                    e = core.engine
                    assert geometry.dw_weight_word_bits(cp, tp) == e.rom_width and r["weight_bits"] == e.rom_width * e.rom_depth
                    assert len(geometry.dw_live_slots(K, *core.offset, *lay.kernel, tp)) == len(e.slots)
                    lb, _ = cost.line_buffer_cost(lay.in_shape[1], C, K, lay.stride[0], cp, pp, tp)
                    wrom = cost.rom_blocks(e.rom_width, e.rom_depth, "bram") if st == "bram" else 0
                    assert res["bram36"] == lb + wrom
                    if tp > 1 and K > 1:
                        block = geometry.line_copy_style(wg.DG, wg.lanes * 8) == "block"
                        assert lb == (wg.pix * wg.T * cost.rom_blocks(wg.lanes * 8, wg.DG, "bram") if block else 0)
                    checked += 1
    assert checked > 20


def test_dw_plan_edits_recost_with_the_core(design):
    """set_layer on a depthwise layer: the re-costed cycles are the core's (pixel pairs, taps, channel groups)."""
    d = design
    lay = _dw_layers(d.net)[0]
    try:
        lp = d.set_layer(lay.name, och_par=3, ich_par=3, pix_par=2, packing=True, tap_par=3, mult="dsp")
        core = DWConv.from_plan(lay, lp)
        G = math.ceil(lay.in_shape[2] / 3)
        assert lp.cycles == core.cycles_per_frame() >= math.ceil(lay.out_shape[0] * lay.out_shape[1] / 2) * 3 * G
        assert lp.dsp == core.resources()["dsp"] == 3 * 3  # 3 lanes x 3 taps, one DSP per packed pair
        for bad, msg in ((dict(och_par=2, ich_par=4), "ich_par .* must equal och_par"),
                         (dict(storage="uram"), "bram or lut"), (dict(tap_par=10), "exceeds the 9 taps")):
            with pytest.raises(OptionError, match=msg):
                d.set_layer(lay.name, **bad)
            d.set_layer(lay.name, och_par=3, ich_par=3, storage="bram", tap_par=3)
    finally:
        d.plan()


def test_depthwise_is_never_a_merge_host(design):
    """The depthwise core has no centre/proj port: the topology merges no residual through it, and the window delay
    of a 'same'-padded odd kernel is the conv's."""
    topo = topology(design.net, design.plan_)
    for lay in _dw_layers(design.net):
        assert lay.name not in topo.centre_of and lay.name not in topo.proj_of
        conv = ir.Conv(**{**lay.__dict__, "group": 1})
        assert geometry.window_delay_pixels(lay, 2) == geometry.window_delay_pixels(conv, 2)


def test_grouped_conv_has_no_core():
    lay = _dw_layer(C=8)
    g = ir.Conv(**{**lay.__dict__, "group": 2, "weights": np.zeros((8, 3, 3, 4), dtype=np.int64)})
    with pytest.raises(RtlgenError, match="grouped"):
        core_class(g)
    assert core_class(lay) is DWConv


@pytest.mark.parametrize("dw_k", [(5, 3), 2, (1, 3), 7])
def test_other_depthwise_kernels_plan(dw_k):
    """Non-square, even and large depthwise kernels (embedded in an odd square window) pass the hardware check and
    plan with the core's cycles; the golden outputs stay alive."""
    d = Design.load(zoo_dw.mobilenet_v2_tiny(dw_k=dw_k), board="generic", budget=BUDGET)
    plan = d.plan()
    exact = core_cycles(d.net, plan)
    dws = _dw_layers(d.net)
    kh, kw = (dw_k, dw_k) if isinstance(dw_k, int) else dw_k
    assert [lay.kernel for lay in dws] == [(kh, kw)] * 2
    for lay in dws:
        lp = plan.layer(lay.name)
        assert lp.cycles == exact[lay.name] == DWConv.from_plan(lay, lp).cycles_per_frame()
        assert lp.tap_par <= geometry.dw_window(lay)[0] ** 2
    from rtlgen import golden

    px = np.random.default_rng(3).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    assert len({o.tobytes() for o in golden.run(d.net, px)}) == 4


def test_old_unbuildable_depthwise_case_now_plans():
    """tests/test_bad_inputs.py's former ``depthwise_conv`` case (a depthwise 3x3 inside a residual block) plans."""
    import badmodels as B

    m = B.G().good(mid=lambda g, h: g.q(g.conv(h, 4, 4, group=4, name="conv_dw"), 1 / 32, 0))
    d = Design.load(m, board="kv260")
    plan = d.plan()
    lay = next(lay for lay in d.net.layers if "conv_dw" in lay.source_nodes)
    assert lay.depthwise and plan.layer(lay.name).cycles == core_cycles(d.net, plan)[lay.name]


@pytest.mark.parametrize("search", ["greedy", "knapsack"])
def test_tight_budget_plans_depthwise(search):
    """A tight budget (16 DSPs): both searches trade the depthwise layers' parallelism like the convs' and the plan
    fits with every layer at its core's cycles."""
    d = Design.load(zoo_dw.mobilenet_v2_tiny(), board="generic", budget="dsp=16,lut=12000,bram36=20,uram=0")
    plan = d.plan(search=search)
    assert core_cycles(d.net, plan) == {lp.name: lp.cycles for lp in plan.layers}
    tot = plan.totals()
    assert tot["dsp"] <= 16 and tot["lut"] <= 12000 and tot["bram36"] <= 20
    assert all(plan.layer(lay.name).och_par == plan.layer(lay.name).ich_par for lay in _dw_layers(d.net))
