"""Any input shape and type (issue 22 item 3), planning side: dense-only networks (a [1, F] graph input streamed as a
1 x 1 x F frame), non-square one-channel inputs, even and non-square ordinary conv kernels (embedded in the smallest
odd square window, :func:`rtlgen.plan.geometry.conv_window`, as depthwise ones), integer graph inputs fed as they
are (the identity input table: no ROM). The models: tests/zoo_shapes.py; the RTL runs: sim_tests/test_input_shapes.py.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import zoo_shapes as Z
from rtlgen import golden, ir
from rtlgen.cores.conv import Conv, embedded_weights
from rtlgen.cores.input_stage import InputStageCore
from rtlgen.cores.registry import core_cycles
from rtlgen.flow import Design
from rtlgen.frontend import load_model
from rtlgen.plan import cost, geometry

BUDGET = "dsp=64,lut=40000,bram36=100,uram=0"


def _planned(model, board="generic"):
    d = Design.load(model, board=board, budget=BUDGET if board == "generic" else None)
    plan = d.plan()
    exact = core_cycles(d.net, plan)
    for lp in plan.layers:  # every layer's report cycles are its core's own model
        assert lp.cycles == exact[lp.name], lp.name
    assert plan.cycles_per_frame == max(exact.values())
    return d, plan


@pytest.mark.parametrize("in_type", ["float", "int8", "uint8"])
def test_mlp_autoencoder_plans(in_type):
    d, plan = _planned(Z.mlp(in_type=in_type))
    kinds = [lay.kind for lay in d.net.layers]
    assert kinds == ["input"] + ["dense"] * 4
    assert d.net.input.out_shape == (1, 1, 64) and d.net[d.net.output].out_shape == (1, 1, 64)
    assert d.net.input.passthrough == (in_type != "float")
    inp = plan.layer("input")
    assert inp.cycles == 1  # one beat of all 64 features
    core = InputStageCore.from_plan(d.net.input, inp)
    assert core.lanes == 64 and core.cycles_per_frame() == 1


def test_mlp_plans_on_boards():
    for board in ("kv260", "ultra96v2"):
        _planned(Z.mlp(), board)


@pytest.mark.parametrize("in_type", ["float", "int8", "uint8"])
@pytest.mark.parametrize("k1,stride1", [(3, 1), ((4, 2), 1), (2, 2), ((3, 1), 1), ((1, 3), 2)],
                         ids=["k3", "k4x2", "k2s2", "k3x1", "k1x3s2"])
def test_kws_tiny_plans(k1, stride1, in_type):
    d, plan = _planned(Z.kws_tiny(k1=k1, stride1=stride1, in_type=in_type))
    net = d.source_net  # as imported (a stride-2 stem bounded by the input is planned folded: rtlgen.plan.fold)
    conv1 = next(lay for lay in net.layers if lay.kind == "conv")
    assert net.input.out_shape == (12, 6, 1) and conv1.in_shape == (12, 6, 1)
    kh, kw = (k1, k1) if isinstance(k1, int) else k1
    assert conv1.kernel == (kh, kw) and conv1.stride == (stride1, stride1)
    assert net.input.passthrough == (in_type != "float")
    assert [lay.kind for lay in d.net.layers] == ["input", "conv", "maxpool", "conv", "dense"]
    assert (getattr(d.net, "input_fold", 1) == 2) == (plan.options.get("input_fold") == 2)
    if stride1 == 1:
        assert d.net is net


def test_integer_input_with_preprocessing_keeps_the_pixel_table():
    """An integer graph input with --input-scale (or metadata) keeps the pixel table (TFLite image models)."""
    net = load_model(Z.mlp(in_type="uint8"), input_scale=1 / 255)
    assert not net.input.passthrough and "input_scale" in net.input.preprocess
    net = load_model(Z.mlp(in_type="int8"))
    assert net.input.preprocess == {"codes": "int8"}
    assert net.input.table[0, 255] == -1 and net.input.table[0, 127] == 127


def test_float_input_codes_option(tmp_path):
    """--input-codes: a float graph input's first quantizer's codes go to the hardware as they are (identity table);
    it excludes pixel preprocessing (one-line error)."""
    from click.testing import CliRunner

    from rtlgen.cli import main
    from rtlgen.errors import ModelError

    net = load_model(Z.mlp(), input_codes=True)
    assert net.input.passthrough and net.input.preprocess == {"codes": "int8"}
    assert not load_model(Z.mlp()).input.passthrough
    with pytest.raises(ModelError, match="--input-codes excludes"):
        load_model(Z.mlp(), input_codes=True, input_scale=0.5)
    import onnx

    onnx.save(Z.mlp(), str(tmp_path / "mlp.onnx"))
    r = CliRunner().invoke(main, ["build", str(tmp_path / "mlp.onnx"), "--board", "kv260", "--out", str(tmp_path / "o"),
                                  "--no-rtl", "--input-codes", "--json"])
    assert r.exit_code == 0, r.output
    assert '"codes": "int8"' in (tmp_path / "o" / "report.json").read_text()
    r = CliRunner().invoke(main, ["inspect", str(tmp_path / "mlp.onnx"), "--input-codes", "--mean", "1"])
    assert r.exit_code == 2 and "--input-codes excludes" in r.output


def _conv_layer(H=7, W=6, C=3, O=5, kh=3, kw=3, stride=1, pads=None, seed=0):
    rng = np.random.default_rng(seed)
    pads = pads if pads is not None else Z.same_pads(kh, kw)
    Ho = (H + pads[0] + pads[2] - kh) // stride + 1
    Wo = (W + pads[1] + pads[3] - kw) // stride + 1
    q = ir.QType(1.0, 0, True, 8, -128, 127)
    rq = ir.Requant(m=np.full(O, 1, dtype=np.int64), sh=np.full(O, 7, dtype=np.int64), zp_out=0, lo=-128, hi=127)
    return ir.Conv(name="conv", inputs=["x"], in_shape=(H, W, C), out_shape=(Ho, Wo, O), out_q=q,
                   weights=rng.integers(-128, 128, (O, kh, kw, C)), bias=rng.integers(-99, 99, O),
                   stride=(stride,) * 2, pads=tuple(pads), pad_value=3, requant=rq, in_q=q, w_scale=np.ones(O))


KERNELS = [dict(kh=4, kw=2), dict(kh=2, kw=2, stride=2, pads=(0, 0, 0, 0)), dict(kh=3, kw=1),
           dict(kh=1, kw=3, stride=2), dict(kh=2, kw=2), dict(kh=5, kw=2, pads=(2, 0, 2, 1)), dict(kh=3, kw=3)]


@pytest.mark.parametrize("shape", KERNELS, ids=lambda s: "x".join(str(s[k]) for k in ("kh", "kw")) + f"s{s.get('stride', 1)}")
def test_embedded_kernel_is_the_same_convolution(shape):
    """The kernel inside its odd square window (grown pads, zero added taps) computes exactly the layer."""
    lay = _conv_layer(**shape)
    K, oy, ox, wpads = geometry.conv_window(lay)
    assert K % 2 == 1 and K >= max(lay.kernel) and max(wpads) < K
    emb = replace(lay, weights=embedded_weights(lay), pads=wpads)
    x = np.random.default_rng(1).integers(-128, 128, (2,) + lay.in_shape)
    y = golden.run_conv(lay, x)
    assert y.shape[1:] == lay.out_shape
    np.testing.assert_array_equal(golden.run_conv(emb, x), y)
    if (K, K) == lay.kernel:
        assert embedded_weights(lay) is lay.weights


@pytest.mark.parametrize("shape", KERNELS, ids=lambda s: "x".join(str(s[k]) for k in ("kh", "kw")) + f"s{s.get('stride', 1)}")
def test_conv_cost_follows_the_core(shape):
    """The planner's closed form for an embedded kernel is what cores/conv.py builds: cycles (window beats of the
    K' x K' window), multipliers (only the tap slots that ever carry a real tap), weight ROM, line buffer."""
    lay = _conv_layer(**shape)
    K, oy, ox, _ = geometry.conv_window(lay)
    C, O = lay.in_shape[2], lay.out_shape[2]
    checked = pruned = 0
    for pi, po in ((1, 1), (2, 3), (C, O)):
        for tp in sorted({1, 2, K, K * K}):
            for pp, packing in ((1, False), (2, True)):
                for mult, st in (("dsp", "bram"), ("lut", "lut")):
                    cyc, res = cost.layer_config_cost(lay, po, pi, pp, packing, mult, st, lanes_in=pi, tp=tp)
                    core = Conv(lay, ich_par=pi, och_par=po, pix_par=pp, tap_par=tp, packing=packing, storage=st,
                                mult=mult)
                    r = core.resources()
                    assert res["dsp"] == r["dsp"], (pi, po, tp, pp, mult)
                    e, wg = core.engine, core.window
                    assert (wg.K, wg.pads) == (K, geometry.conv_window(lay)[3])
                    assert cyc <= core.cycles_per_frame() <= cyc + wg.frame_stall() + 1
                    assert r["weight_bits"] == geometry.weight_word_bits(po, pi, tp) * e.rom_depth
                    assert e.slots == geometry.conv_live_slots(lay, tp)
                    pruned += len(e.slots) < tp
                    lb, _ = cost.line_buffer_cost(lay.in_shape[1], C, K, lay.stride[0], pi, pp, tp)
                    wrom = cost.rom_blocks(e.rom_width, e.rom_depth, "bram") if st == "bram" else 0
                    assert res["bram36"] == lb + wrom
                    checked += 1
    assert checked >= 24
    if lay.kernel == (K, K):
        assert pruned == 0  # a square odd kernel: every slot is live


def test_some_tap_slots_get_no_multiplier():
    """4x2 in a 5x5 window at 5 taps per beat (a window row): 3 of the 5 slots never meet a real tap."""
    lay = _conv_layer(kh=4, kw=2)
    assert geometry.conv_window(lay)[0] == 5
    core = Conv(lay, ich_par=1, och_par=1, tap_par=5, packing=False)
    assert len(core.engine.slots) == 2 and core.dsp == 2


def test_ds_cnn_first_kernel_plans():
    """DS-CNN's 10x4 stride-2 first kernel (pads 4, 1, 5, 2) embeds in an 11x11 window and plans."""
    d, plan = _planned(Z.kws_tiny(H=20, W=10, k1=(10, 4), stride1=2, pads1=(4, 1, 5, 2), in_type="int8"))
    conv1 = next(lay for lay in d.source_net.layers if lay.kind == "conv")
    assert geometry.conv_window(conv1)[:3] == (11, 1, 7) and conv1.out_shape == (10, 5, 4)


@pytest.mark.parametrize("board", ["kv260", "ultra96v2"])
def test_mlperf_tiny_ds_cnn_plans(board):
    """The MLPerf-Tiny keyword-spotting DS-CNN shape at full size (49 x 10 x 1 int8 MFCCs, 64 channels, 4 depthwise-
    separable blocks, average pool, 12 classes) plans on the boards with the cores' cycles."""
    d, plan = _planned(Z.ds_cnn(), board)
    kinds = [lay.kind for lay in d.net.layers]
    assert kinds[:2] == ["input", "conv"] and kinds.count("conv") == 9 and kinds[-1] == "dense"
    conv1 = d.net.layers[1]
    assert conv1.kernel == (10, 4) and conv1.stride == (2, 2) and conv1.out_shape == (25, 5, 64)
    tot = plan.totals()
    for k in ("dsp", "lut", "bram36"):
        assert tot[k] <= getattr(d.budget, k), k


def test_conv_window_limit_is_refused():
    from rtlgen.errors import ModelError
    from rtlgen.flow import check_hardware

    net = load_model(Z.kws_tiny(H=16, W=8, k1=(13, 3)))
    with pytest.raises(ModelError, match="13x3 kernel .* needs a 13x13 window"):
        check_hardware(net)
