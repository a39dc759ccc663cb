"""Planner: budgets respected, balance, no divisor rule, clear errors, plan.json round trip."""

import json

import pytest

import zoo
from rtlgen import flow
from rtlgen import ir
from rtlgen.plan import cost, data, geometry, search
from rtlgen.errors import OptionError
from rtlgen.frontend import load_model


@pytest.fixture(scope="module")
def net(zoo_dir):
    m = zoo.brevitas_resnet(zoo_dir, "qonnx", seed=3)
    return load_model(m.path, input_scale=m.input_scale, mean=list(m.mean), std=list(m.std))


@pytest.mark.parametrize("board", ["kv260", "ultra96v2"])
def test_budget_respected_and_balanced(net, board):
    p = search.plan_network(net, board)
    b = data.BOARDS[board]
    tot = p.totals()
    for k in data.RESOURCES:
        assert tot[k] <= getattr(b, k), (k, tot[k])
    # the slowest stage defines throughput; every MAC stage gets within 2x of it or sits at minimum parallelism
    T = p.cycles_per_frame
    assert p.fps == pytest.approx(b.clock_mhz * 1e6 / T)
    for lp in p.layers:
        assert lp.cycles <= T


def test_more_budget_never_slower(net):
    small = search.plan_network(net, "generic", data.parse_budget("dsp=40,lut=20000,bram36=40,uram=0"))
    big = search.plan_network(net, "generic", data.parse_budget("dsp=400,lut=60000,bram36=100,uram=0"))
    assert big.cycles_per_frame <= small.cycles_per_frame
    assert small.totals()["dsp"] <= 40


def test_no_divisor_rule():
    cands = search._par_candidates(24)
    assert 5 in cands and 24 % 5  # a non-divisor of 24 is a legal parallelism (tail handled by the cores)
    assert cands == sorted(set(cands))


def test_impossible_budget_names_the_need(net):
    with pytest.raises(OptionError, match=r"needs at least \d+ DSP"):
        search.plan_network(net, "generic", data.parse_budget("dsp=1,lut=100000,bram36=100,uram=0"), allow_lut_mult=False)
    with pytest.raises(OptionError, match=r"needs at least .*\d+ LUT"):
        search.plan_network(net, "generic", data.parse_budget("dsp=1000,lut=100,bram36=100,uram=0"))


@pytest.mark.parametrize("text,msg", [
    ("dsp=abc", "not an integer"), ("foo=3", "unknown resource"), ("dsp", "key=value"), ("dsp=-1", ">= 0"),
])
def test_bad_budget_text(text, msg):
    with pytest.raises(OptionError, match=msg):
        data.parse_budget(text)


def test_unknown_board():
    with pytest.raises(OptionError, match="unknown board 'nope'"):
        data.board_budget("nope")


def test_lut_mult_switch(net):
    p = search.plan_network(net, "ultra96v2", allow_lut_mult=False)
    assert all(lp.mult == "dsp" for lp in p.layers)


def test_skip_fifo_rule():
    # paper: (fh-1)*W*C + (fw-1)*C + och + 1 ; temporal reuse: about half
    paper = geometry.skip_fifo_entries(32, 16, 3, 3, 16, temporal_reuse=False)
    assert paper == 2 * 32 * 16 + 2 * 16 + 16 + 1
    ours = geometry.skip_fifo_entries(32, 16, 3, 3, 16)
    assert ours == 32 * 16 + (1 + 2 + geometry.SKIP_SLACK_PIXELS) * 16 + 17 and ours < 0.7 * paper


def test_plan_round_trip(net, tmp_path):
    d = flow.Design(net, board="kv260")
    p = d.plan()
    rep = d.build(tmp_path / "out", steps=("import", "plan", "report"))
    plan_file = tmp_path / "out" / "plan.json"
    assert json.loads(plan_file.read_text())["layers"][1]["name"] == p.layers[1].name
    # edit one layer, feed it back
    data = json.loads(plan_file.read_text())
    conv = next(L for L in data["layers"] if L["kind"] == "conv")
    conv["och_par"] = 1
    conv["ich_par"] = 1
    conv["pix_par"] = 1
    conv["packing"] = False
    plan_file.write_text(json.dumps(data))
    d2 = flow.Design(net, board="kv260")
    p2 = d2.plan(plan_file)
    lp = p2.layer(conv["name"])
    assert (lp.och_par, lp.ich_par, lp.pix_par) == (1, 1, 1)
    assert p2.cycles_per_frame >= p.cycles_per_frame
    rep2 = d2.build(tmp_path / "out2", steps=("import", "plan", "report"))
    assert rep2["cycles_per_frame"] == p2.cycles_per_frame
    assert rep["model"] == rep2["model"]


@pytest.mark.parametrize("mutate,msg", [
    (lambda d: d["layers"].pop(), "no entry for layer"),
    (lambda d: d["layers"][1].update(och_par=0), "och_par must be a positive integer"),
    (lambda d: d["layers"][1].update(storage="flash"), "storage must be"),
    (lambda d: d["layers"][1].update(bogus=1), "unknown field"),
    (lambda d: d["layers"][1].update(name="nope"), "not in model"),
    (lambda d: d["layers"][1].update(tap_par=10), "tap_par 10 exceeds the kernel's 9 taps"),
    (lambda d: d["layers"][1].update(tap_par=0), "tap_par must be a positive integer"),
])
def test_bad_plan_file(net, tmp_path, mutate, msg):
    d = flow.Design(net, board="kv260")
    d.plan()
    d.build(tmp_path / "o", steps=("import", "plan", "report"))
    data = json.loads((tmp_path / "o" / "plan.json").read_text())
    mutate(data)
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(OptionError, match=msg):
        flow.Design(net, board="kv260").plan(tmp_path / "bad.json")


def test_plan_file_not_json(net, tmp_path):
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(OptionError, match="not valid JSON"):
        flow.Design(net, board="kv260").plan(tmp_path / "x.json")


@pytest.fixture(scope="module")
def r8_u96():
    d = flow.Design.load("resnet8", board="ultra96v2")
    return d.net, d.plan()


def test_merged_projection_planned_as_built(r8_u96):
    """A loop-merged 1x1 projection runs on its host's window centres: host ich_par lanes, one pixel per cycle, no
    packing -- the plan must say so (and cost it so), since that is the engine compose builds."""
    from rtlgen.plan.topology import projection_merges

    net, plan = r8_u96
    merges = projection_merges(net)
    assert merges, "ResNet8 has projection shortcuts"
    for host, proj in merges.items():
        h, p = plan.layer(host), plan.layer(proj)
        assert (p.ich_par, p.pix_par, p.packing) == (h.ich_par, 1, False), (host, proj)
        lay = net[proj]
        cyc, res = cost.conv_config_cost(lay, p.och_par, p.ich_par, 1, False, p.mult, p.storage, p.ich_par)
        assert cyc <= plan.cycles_per_frame and p.dsp == res["dsp"] and p.lut >= res["lut"]


def test_lut_multipliers_never_packed(r8_u96):
    _, plan = r8_u96
    assert all(not (L.mult == "lut" and L.packing) for L in plan.layers)


def test_stream_adapters_are_costed(r8_u96):
    """The lane converters and FIFOs between cores count against the budget, inside the layer they feed."""
    net, plan = r8_u96
    extra = cost.edge_costs(net, plan)
    assert sum(e["lut"] for e in extra.values()) > 500  # ResNet8 has several lane conversions
    for name, e in extra.items():
        assert plan.layer(name).lut >= e["lut"]
    t = plan.totals()
    cap = data.board_budget("ultra96v2")
    assert t["lut"] <= cap.lut * data.UTILIZATION["lut"] and t["dsp"] <= cap.dsp


def test_greedy_plan_walks_below_the_binary_search(r8_u96):
    """The greedy's feasibility is not monotone in the target (ResNet8 @ Ultra96-V2: it meets 15,360 cycles but not
    15,994, so a binary search alone stops at 16,129): the planner walks down the layers' cycle counts below the
    target found. The plan is no slower than the 15,361 cycles per frame landed before the walk, nor than the 14,977
    measured in RTL since (the Lagrangian weights' damped steps keep it there with the recalibrated fixed stages)."""
    _, plan = r8_u96
    assert plan.cycles_per_frame <= 14977


def test_adapter_cost_model():
    assert cost.lane_converter_cost(8, 8, 32) == {"lut": 0, "ff": 0}
    simple = cost.lane_converter_cost(4, 8, 32)["lut"]
    buffered = cost.lane_converter_cost(6, 16, 16)["lut"]
    assert 0 < simple < buffered
    # fitted to yosys (rtlgen core lanes [--slots]): 6 -> 16 lanes of 16 channels (ResNet8 conv1 input) as two pixel
    # slots measured 147 LUTs (1,237 as the value buffer), 16 -> 6: 144 (3,419); 1 -> 3 of 64 channels stays a value
    # buffer (the slots would hold 128 values)
    assert 100 < buffered < 200 and 100 < cost.lane_converter_cost(16, 6, 16)["lut"] < 200
    assert cost.lane_converter_slots(6, 16, 16) and cost.lane_converter_slots(16, 6, 16)
    assert not cost.lane_converter_slots(1, 3, 64) and cost.lane_converter_cost(1, 3, 64)["lut"] < 150
    assert cost.fifo_cost(64, 129)["lut"] > cost.fifo_cost(2, 129)["lut"] > 0


def test_knapsack_search_faster_within_budget():
    """``--search knapsack``: where the greedy choice overflows, a dynamic programme over the DSP count spends the
    DSPs where they save the most fabric. ResNet8 @ KV260 binds on DSPs and LUTs at once: the knapsack plan is faster
    (with tap parallelism 5,632 against 6,144 cycles per frame when written; 6,336 against 6,913 without), inside
    the same utilization caps, with the loop-merged
    projections still on their host's lanes."""
    from rtlgen.plan.topology import projection_merges

    d = flow.Design.load("resnet8", board="kv260")
    greedy = search.plan_network(d.net, "kv260")
    knap = search.plan_network(d.net, "kv260", search="knapsack")
    assert knap.cycles_per_frame < 0.95 * greedy.cycles_per_frame
    assert knap.options["search"] == "knapsack" and greedy.options["search"] == "greedy"
    cap = data.board_budget("kv260")
    t = knap.totals()
    for k in data.RESOURCES:
        assert t[k] <= getattr(cap, k) * data.UTILIZATION[k] + 1e-6, k
    for lp in knap.layers:
        assert lp.cycles <= knap.cycles_per_frame
    for host, proj in projection_merges(d.net).items():
        h, p = knap.layer(host), knap.layer(proj)
        assert (p.ich_par, p.pix_par, p.packing) == (h.ich_par, 1, False)
    with pytest.raises(OptionError, match="--search"):
        search.plan_network(d.net, "kv260", search="anneal")


def test_tap_parallelism_fills_the_channel_steps():
    """ResNet8 @ Ultra96-V2: without tap parallelism its 16-channel 3x3 layers only have the channel steps
    ceil(16/p) in {1, 2, 3, 4, 6, 8, 16} (at 2 pixels per cycle: 13,824 or 18,432 cycles, nothing between), so the plan
    stops at 18,432 cycles per frame (11,626 FPS at 214.29 MHz, below the seed paper's 12,971); with taps the
    planner reaches below 16,483 cycles (13,000 FPS) within the same caps, and uses tap_par > 1 where it pays."""
    d = flow.Design.load("resnet8", board="ultra96v2")
    off = search.plan_network(d.net, "ultra96v2", taps=False)
    on = search.plan_network(d.net, "ultra96v2", taps=True)
    assert off.cycles_per_frame >= 18_432
    assert on.cycles_per_frame < 16_483 and on.fps > 13_000
    assert any(lp.tap_par > 1 for lp in on.layers) and all(lp.tap_par == 1 for lp in off.layers)
    assert on.options["taps"] is True and off.options["taps"] is False
    cap = data.board_budget("ultra96v2")
    t = on.totals()
    for k in data.RESOURCES:
        assert t[k] <= getattr(cap, k) * data.UTILIZATION[k] + 1e-6, k


def test_tap_parallelism_cost_model():
    """The closed-form model of a tap-parallel conv: ceil(K*K/tap_par) tap groups per window, tap_par x the MACs and
    weight-word width, and one line-buffer copy per pixel and tap slot."""
    from rtlgen.cores.conv import Conv

    layer = flow.Design.load("resnet8", board="ultra96v2").net["conv1"]  # 16 -> 16 channels, 3x3, 32x32
    assert layer.in_shape == (32, 32, 16) and layer.kernel == (3, 3)
    c1, r1 = cost.conv_config_cost(layer, 8, 1, 2, True, "dsp", "bram", lanes_in=1, tp=1)
    c9, r9 = cost.conv_config_cost(layer, 8, 1, 2, True, "dsp", "bram", lanes_in=1, tp=9)
    assert c1 == 512 * 2 * 9 * 16 and c9 == 512 * 2 * 1 * 16
    assert r9["dsp"] == 9 * r1["dsp"] == 72
    assert r9["bram36"] > r1["bram36"]
    core = Conv(layer, ich_par=1, och_par=8, pix_par=2, tap_par=9)
    assert core.cycles_per_frame() == c9 + 1  # the cores' own model (one cycle at the frame change)
    assert core.engine.rom_width == geometry.weight_word_bits(8, 1, 9) == 8 * 9 * 8
    assert core.engine.rom_depth == 2 * 1 * 16


@pytest.mark.parametrize("name,pi,pp,tp", [("conv1", 16, 2, 3), ("conv3", 4, 1, 3), ("conv8", 13, 2, 3),
                                           ("conv0", 3, 1, 9), ("conv5", 7, 2, 5)])
def test_tap_line_buffer_bram_follows_the_core(name, pi, pp, tp):
    """With tap_par > 1 the line buffer is costed as pix_par*tap_par width-bound copies of the window generator's
    actual memory (lanes*8 bits x depth*groups words), so the model follows the core's geometry."""
    from rtlgen.cores.conv import Conv

    lay = flow.Design.load("resnet8", board="ultra96v2").net[name]
    core = Conv(lay, ich_par=pi, och_par=4, pix_par=pp, tap_par=tp)
    wg = core.window
    assert wg.depth == geometry.line_buffer_depth(lay.in_shape[1], lay.kernel[0], lay.stride[0], pp)
    _, r_tap = cost.conv_config_cost(lay, 4, pi, pp, False, "dsp", "lut", lanes_in=pi, tp=tp)
    block = geometry.line_copy_style(wg.DG, wg.lanes * 8) == "block"
    expect = wg.pix * wg.T * cost.rom_blocks(wg.lanes * 8, wg.DG, "bram") if block else 0
    assert r_tap["bram36"] == expect  # weights in LUTs: the BRAM is the line buffer's alone
    assert block == (name != "conv0")  # the stem's 3-lane copies (71 x 24 bits) are small enough for LUTRAM
    assert core.resources()["line_buffer_bits"] == wg.DG * wg.lanes * 8 * pp * tp


@pytest.mark.parametrize("words,width,prims,style", [(100, 8, 4, "distributed"), (256, 8, 8, "distributed"),
                                                     (71, 24, 6, "distributed"), (257, 8, 9, "block"),
                                                     (73, 48, 12, "block"), (284, 64, 45, "block")])
def test_line_copy_style(words, width, prims, style):
    """A line-buffer copy goes to LUTRAM up to 8 primitives (RAM64M8 64 x 7 or RAM32M16 32 x 14, whichever tiles
    it in fewer), else to block RAM; the planner costs it that way (8 LUTs per primitive, no BRAM)."""
    assert geometry.lutram_primitives(words, width) == prims
    assert geometry.line_copy_style(words, width) == style


def test_window_copies_carry_the_planned_style():
    """The window generator builds pix*T copies, each with the ``ram_style`` the planner costs it by: DS-CNN's stem
    shape (10 pixels a row, one lane, an 11x11 window, 11 taps a beat) in LUTRAM, ResNet8's conv1 shape in block RAM (two RAMB36 a copy: 128 bits wide)."""
    from amaranth.back import rtlil

    from rtlgen.cores.linebuffer import WindowGen

    for kw, style, bram, lut in ((dict(H=49, W=10, C=1, lanes=1, K=11, stride=2, pix=1, tap=11), "distributed", 0,
                                  11 * (8 * 4 + cost.LUT_PER_TAP_PORT)),
                                 (dict(H=32, W=32, C=16, lanes=16, K=3, stride=1, pix=2, tap=3), "block", 6 * 2,
                                  6 * cost.LUT_PER_TAP_PORT)):
        wg = WindowGen(**kw)
        assert geometry.line_copy_style(wg.DG, wg.lanes * 8) == style
        text = rtlil.convert(wg)
        assert text.count(f'attribute \\ram_style "{style}"') == wg.pix * wg.T
        assert cost.line_buffer_cost(kw["W"], kw["C"], kw["K"], kw["stride"], kw["lanes"], kw["pix"], kw["tap"]) == (
            bram, lut)


def test_skip_fifo_one_formula():
    """One formula (rtlgen.plan.geometry), which the cores do not define again: a 3x3 block at W=32, C=16, och=16."""
    from rtlgen.cores import conv, linebuffer

    assert not hasattr(conv, "skip_fifo_entries") and linebuffer.line_buffer_depth is geometry.line_buffer_depth
    assert geometry.skip_fifo_entries(32, 16, 3, 3, 16) == 32 * 16 + (1 + 2 + geometry.SKIP_SLACK_PIXELS) * 16 + 17


def test_report_skip_bits_equal_the_composed_rtl(net):
    """report.json's skip FIFO depth and bits per layer are what the composed design instantiates: the depth of every
    ``<layer>_skip_fifo`` (merged residual) / ``<add>_<port>_fifo`` StreamFIFO in the elaborated top, times its
    lanes x 8 activation bits."""
    from rtlgen.emit.compose import RtlgenTop
    from rtlgen.cores.fifo import StreamFIFO

    plan = search.plan_network(net, "kv260")
    top = RtlgenTop(net, plan)
    subs = top.elaborate(None)._named_submodules
    fifos = {n: f[0] for n, f in subs.items() if isinstance(f[0], StreamFIFO)}
    checked = 0
    for lp in plan.layers:
        lay = net[lp.name]
        if isinstance(lay, ir.Conv) and lay.residual is not None:
            f = fifos[f"{lp.name}_skip_fifo"]
            lanes = len(f.i.payload.data) // 8
            assert (lp.skip_fifo_depth, lp.skip_buffer_bits) == (f.depth, f.depth * lanes * 8), lp.name
            checked += 1
        elif isinstance(lay, ir.Add):
            fs = [fifos[f"{lp.name}_{p}_fifo"] for p in ("a", "b")]
            deepest = max(fs, key=lambda f: f.depth)
            assert lp.skip_fifo_depth == deepest.depth, lp.name
            assert lp.skip_buffer_bits == deepest.depth * len(deepest.i.payload.data), lp.name
            checked += 1
        else:
            assert lp.skip_buffer_bits == 0 and lp.skip_fifo_depth == 0, lp.name
    assert checked >= 2
    assert plan.skip_buffer_bits == sum(lp.skip_buffer_bits for lp in plan.layers)


@pytest.mark.parametrize("pp,packing", [(1, False), (2, False), (2, True)])
def test_conv_dsp_model_equals_the_core_with_a_multiplier_requant(zoo_dir, pp, packing):
    """Float scales give multiplier requants (2 DSP48E2 per requant lane) and non-power-of-two residual multipliers
    (1 DSP per lane): the closed form counts them per output-channel lane, as the conv core builds them (packed
    pixel pairs leave the engine one after the other through the same requant lanes)."""
    from rtlgen.cores.conv import Conv

    zm = zoo.ort_resnet(zoo_dir, "qdq_channel_s8", seed=0)
    net = load_model(zm.path, **zm.preprocess)
    convs = [lay for lay in net.layers if isinstance(lay, ir.Conv) and lay.group == 1]
    assert any(lay.requant.kind == "multiplier" for lay in convs)
    for lay in convs:
        po, pi = min(4, lay.out_shape[2]), min(2, lay.in_shape[2])
        _, r = cost.conv_config_cost(lay, po, pi, pp, packing, "dsp", "lut", lanes_in=pi)
        core = Conv(lay, ich_par=pi, och_par=po, pix_par=pp, packing=packing, storage="lut")
        assert r["dsp"] == core.resources()["dsp"], (lay.name, r["dsp"], core.resources())


@pytest.mark.parametrize("storage", ["lut", "bram", "uram"])
def test_dense_weight_register_costed_as_built(storage):
    """The planner charges a dense layer's weight-word and input registers exactly where the core builds them
    (``DenseCore.weight_reg``: block RAM / UltraRAM weights, more than one ROM word)."""
    import numpy as np
    from rtlgen.cores.dense import DenseCore

    rng = np.random.default_rng(0)
    C, O, pi, po = 64, 16, 8, 2
    q = ir.QType(scale=1.0, zero_point=0, signed=True)
    layer = ir.Dense("fc", ["x"], (1, 1, C), (1, 1, O), q, weights=rng.integers(-128, 128, (O, C)),
                     bias=np.zeros(O, dtype=np.int64), requant=None, in_q=q)
    plan_storage = {"lut": "logic", "uram": "uram"}.get(storage, "auto")  # how DenseCore.plan_knobs passes it
    core = DenseCore.from_layer(layer, lanes_in=pi, och_par=po, ich_par=pi, storage=plan_storage)
    regs = geometry.dense_weight_register(storage, core.rom_depth)
    assert core.weight_reg == regs == (storage != "lut")
    _, with_reg = cost.layer_config_cost(layer, po, pi, 1, False, "dsp", storage, pi)
    _, lut_rom = cost.layer_config_cost(layer, po, pi, 1, False, "dsp", "lut", pi)
    load = cost.FF_PER_URAM_LOAD if storage == "uram" else 0  # the URAM weight loader
    assert with_reg["ff"] - lut_rom["ff"] - load == (po * pi * 8 + pi * 8 if regs else 0)


def test_input_stage_cost_follows_the_table():
    """The input stage's ROM is priced by its contents (yosys, 3 lanes: a random table 96 LUT, the bundled models'
    ``p - 128`` -- one inverted bit per channel -- 4 LUT), not as a full 256 x 8 ROM per lane."""
    import numpy as np

    p = np.arange(256)
    rnd = np.random.default_rng(1).integers(-128, 128, (3, 256))
    flip, _ = cost.input_stage_cost(np.stack([p - 128] * 3), 3)
    ident, _ = cost.input_stage_cost(np.stack([p] * 3), 3)
    full, ff = cost.input_stage_cost(rnd, 3)
    assert flip == ident == 4
    assert 90 <= full <= 110 and 20 <= ff <= 40
    # one channel per beat: each bit's ROM spans three channels' tables
    assert cost.input_stage_cost(rnd, 1)[0] > full // 3 and cost.input_stage_cost(np.stack([p - 128] * 3), 1)[0] == 4
    # a bit that is a different pixel bit per channel is a function of the beat too
    mixed = np.stack([p, (p << 1) & 0xFF, p])
    assert cost.input_stage_cost(mixed, 1)[0] > 4


def test_classifier_and_global_pool_costs_near_yosys(r8_u96):
    """Calibrated on yosys (ResNet8/ResNet20 @ ultra96v2): the dense classifier (64 -> 10, och 1 ich 1, LUT
    multiplier) 348-370 LUT / 228-252 FF, the 16-lane global average pool (shift requant) 1,001-1,033 LUT / 1,174 FF;
    the model stays within 30 % of both (their edges' FIFOs and converters excluded)."""
    net, _ = r8_u96
    d = next(lay for lay in net.layers if isinstance(lay, ir.Dense))
    _, res = cost.layer_config_cost(d, 1, 1, 1, False, "lut", "bram", 1)
    assert 0.7 * 348 <= res["lut"] <= 1.3 * 370 and 0.7 * 228 <= res["ff"] <= 1.3 * 252
    g = next(lay for lay in net.layers if isinstance(lay, ir.Pool) and lay.is_global)
    _, gres, lanes = cost.fixed_stage_costs(net)[g.name]
    assert lanes == 16
    assert 0.7 * 1001 <= gres["lut"] <= 1.3 * 1033 and 0.7 * 1174 <= gres["ff"] <= 1.3 * 1174
