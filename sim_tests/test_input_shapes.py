"""Any input shape and type in RTL, end to end (issue 22 item 3): the networks of tests/zoo_shapes.py built
(``rtlgen build`` / ``Design.load -> plan -> build``) and simulated with the compiled Verilator harness, every output
bit-exact against the golden model under random input pauses and output back-pressure (30 %), and without stalls
the measured steady-state cycles per frame equal the plan's prediction (within 1).

Default run (five small Verilator builds, about two and a half minutes):

* a dense-only autoencoder 64 -> 32 -> 8 -> 32 -> 64 on a 2-D ``[1, 64]`` float input: ``rtlgen build --input-codes``
  (the hardware takes the codes of the graph's first QuantizeLinear), ``rtlgen sim --inputs`` on float32 ``N x 64``
  features and ``rtlgen run`` on the same floats = the golden model the RTL matched;
* the same autoencoder on an int8 ``[1, 64]`` graph input fed as it is (identity input table, no ROM):
  ``rtlgen sim --inputs`` / ``rtlgen run`` on int8 codes;
* a keyword-spotting-like net on a non-square one-channel uint8 NHWC input (12 x 6 x 1: conv 4x2 -> max pool -> conv
  3x3 -> dense head) as planned, and with its 4x2 conv (embedded in a 5x5 window, a row of 5 taps per beat of which
  3 slots carry no multiplier, packed pixel pairs) edited into the bottleneck, so the measured cycles check the
  conv core's embedded-kernel cycle model.

* an input-bound image network (stride-2 stem on 3 x 12 x 32): two pixels per input beat (the input fold), and a
  conv of unequal strides (1, 2).

Opt-in (``--runslow``): 2x2 stride 2 and 3x1 first kernels (planned and as the bottleneck), DS-CNN's 10x4 stride-2
first kernel (an 11x11 window) on a 20 x 10 x 1 int8 input, a small DS-CNN on the real 49 x 10 x 1 input (10x4
stride-2 conv, depthwise-separable blocks, average pool, dense), a float NCHW input, and a deeper 128 -> 64 -> 16 -> 64 ->
128 autoencoder on a uint8 input.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from rtlgen import golden, ir, userdata  # noqa: E402
from rtlgen.cli import main  # noqa: E402
from rtlgen.flow import Design  # noqa: E402
from rtlgen.verify.sim import load_design, run_sim  # noqa: E402

import zoo_shapes as Z  # noqa: E402

BUDGET = "dsp=64,lut=40000,bram36=100,uram=0"
STALL = 0.3


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _varied(expect, n):
    assert len({e.tobytes() for e in expect}) == n, "golden outputs constant across frames (dead network)"


def _no_stall_cycles(out, pixels, pred):
    res0 = run_sim(out, pixels, stall=0.0, progress=False, log=False, shards=1)
    assert res0["mismatches"] == 0, res0["summary"]
    assert abs(res0["cycles_per_frame"] - pred) <= 1, (res0["summary"], pred)
    return res0


def _sim_cli(out, x_path):
    r = cli("sim", out, "--inputs", x_path, "--stall", STALL, "--seed", 5, "--shards", 1, "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_mlp_float_features_in_rtl(tmp_path):
    """Float32 N x 64 features, quantized by the graph's first QuantizeLinear (1/32): built with --input-codes the
    hardware takes those int8 codes (identity input stage), so every float maps onto the bytes it is fed."""
    src = tmp_path / "mlp.onnx"
    onnx.save(Z.mlp(), str(src))
    out = tmp_path / "b"
    r = cli("build", src, "--board", "generic", "--budget", BUDGET, "--out", out, "--input-codes")
    assert r.exit_code == 0, r.output
    net, rep, man = load_design(out)
    assert net.input.passthrough and rep["preprocess"] == {"codes": "int8"}
    assert man["input"]["lanes"] == 64 and man["input"]["beats_per_frame"] == 1 and man["output"]["values"] == 64
    rng = np.random.default_rng(3)
    x = (rng.integers(-300, 300, size=(8, 64)) / 64).astype(np.float32)  # half steps of 1/32 (ties), clamped values
    np.save(tmp_path / "x.npy", x)
    res = _sim_cli(out, tmp_path / "x.npy")
    assert res["images"] == 8 and res["mismatches"] == 0
    gi = userdata.graph_input(net, src)
    px = userdata.pixels(net, gi, x)
    _varied(golden.run(net, px), 8)
    r = cli("run", src, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), golden.run(net, px).reshape(8, 64))
    res0 = _no_stall_cycles(out, px[:6], rep["cycles_per_frame"])
    print(f"mlp float: stalls {res['cycles_per_frame']} cycles/frame; no stalls {res0['summary']}")


def test_mlp_int8_codes_fed_as_they_are(tmp_path):
    """An int8 [1, 64] graph input (DequantizeLinear first): the hardware takes the codes themselves (identity input
    stage, no table ROM); rtlgen sim/run take int8 N x 64 arrays."""
    src = tmp_path / "mlp_i8.onnx"
    onnx.save(Z.mlp(in_type="int8", seed=1), str(src))
    out = tmp_path / "b"
    r = cli("build", src, "--board", "generic", "--budget", BUDGET, "--out", out)
    assert r.exit_code == 0, r.output
    net, rep, _ = load_design(out)
    assert net.input.passthrough and rep["preprocess"] == {"codes": "int8"}
    assert "table0" not in (out / "rtl" / "rtlgen_top.v").read_text()
    codes = np.random.default_rng(4).integers(-128, 128, size=(8, 64)).astype(np.int8)
    np.save(tmp_path / "x.npy", codes)
    res = _sim_cli(out, tmp_path / "x.npy")
    assert res["images"] == 8 and res["mismatches"] == 0
    r = cli("run", src, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    px = codes.view(np.uint8).reshape(8, 1, 1, 64)
    np.testing.assert_array_equal(y, golden.run(net, px).reshape(8, 64))
    _varied(y, 8)
    res0 = _no_stall_cycles(out, px[:6], rep["cycles_per_frame"])
    print(f"mlp int8: stalls {res['cycles_per_frame']} cycles/frame; no stalls {res0['summary']}")


#: the first conv edited into the bottleneck: one channel in/out per beat, a whole window row of taps per beat
#: (dead slots of the embedded kernel get no multiplier), two packed pixels per multiplier
FORCED = dict(och_par=1, ich_par=1, pix_par=2, packing=True, tap_par=0, mult="dsp", storage="bram")


def _build_and_sim(d, tmp_path, px):
    """Build the planned design ``d``, simulate ``px`` under stalls (bit-exact against the golden model, whose outputs
    must vary), and without stalls check the measured cycles per frame against the plan. Returns (report, stalled
    result, unstalled result)."""
    out = tmp_path / "build"
    rep = d.build(out)
    _varied(golden.run(d.net, px), len(px))
    res = run_sim(out, px, stall=STALL, seed=5, progress=False, log=False, shards=1)
    assert res["mismatches"] == 0, res["summary"]
    return rep, res, _no_stall_cycles(out, px[:6], rep["cycles_per_frame"])


def _kws(tmp_path, k1, stride1=1, in_type="uint8", edit=False, frames=8):
    d = Design.load(Z.kws_tiny(k1=k1, stride1=stride1, in_type=in_type), board="generic", budget=BUDGET)
    d.plan()
    conv1 = next(lay for lay in d.net.layers if isinstance(lay, ir.Conv))
    if edit:
        from rtlgen.plan.geometry import conv_window

        d.set_layer(conv1.name, **(FORCED | {"tap_par": conv_window(conv1)[0]}))
    px = np.random.default_rng(1).integers(0, 256, size=(frames, 12, 6, 1), dtype=np.uint8)
    rep, res, res0 = _build_and_sim(d, tmp_path, px)
    if edit:
        assert rep["bottleneck"] == conv1.name
    print(f"kws {k1} s{stride1} {in_type} {'bottleneck' if edit else 'planned'}: {res['summary']} | no stalls: "
          f"{res0['summary']}")
    return d


@pytest.mark.parametrize("edit", [False, True], ids=["planned", "conv_bottleneck"])
def test_kws_tiny_12x6x1_k4x2_in_rtl(edit, tmp_path):
    d = _kws(tmp_path, (4, 2), edit=edit)
    assert d.net.input.passthrough  # uint8 NHWC codes fed as they are
    if edit:
        conv1 = next(lay for lay in d.net.layers if isinstance(lay, ir.Conv))
        assert d.plan_.layer(conv1.name).dsp == 2  # 2 live tap slots of 5, one packed pixel pair each


def test_input_fold_two_pixels_per_beat_in_rtl(tmp_path):
    """An input-bound image network (3 x 12 x 32 float input, stride-2 stem): the planner folds pixel pairs into the
    stem's channels (two pixels per 6-lane input beat, the stem a 3x2 kernel of strides (2, 1)), and a second conv
    has unequal strides (1, 2). ``rtlgen sim --random`` (image-shaped frames, streamed as the same bytes in wider
    beats) bit-exact under stalls; without stalls the measured cycles equal the plan's, half the unfolded frame."""
    src = tmp_path / "stem.onnx"
    onnx.save(Z.stem_s2(), str(src))
    out = tmp_path / "b"
    budget = "dsp=200,lut=60000,bram36=100,uram=0"
    r = cli("build", src, "--board", "generic", "--budget", budget, "--out", out)
    assert r.exit_code == 0, r.output
    net, rep, man = load_design(out)
    assert rep["input_fold"] == 2 and man["input"]["pixels_per_beat"] == 2
    assert man["input"]["shape"] == [12, 16, 6] and man["input"]["pixel_shape"] == [12, 32, 3]
    assert net.input.out_shape == (12, 32, 3)  # the golden model runs the network as imported
    unfolded = Design.load(src, board="generic", budget=budget, input_fold=False).plan().cycles_per_frame
    assert rep["cycles_per_frame"] < unfolded and rep["cycles_per_frame"] <= 12 * 16 + 1
    r = cli("sim", out, "--random", 8, "--stall", STALL, "--seed", 5, "--shards", 1, "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["images"] == 8 and res["mismatches"] == 0, res
    px = np.random.default_rng(6).integers(0, 256, size=(6, 12, 32, 3), dtype=np.uint8)
    assert len({e.tobytes() for e in golden.run(net, px)}) > 1, "golden outputs constant across frames"
    res0 = _no_stall_cycles(out, px, rep["cycles_per_frame"])
    print(f"input fold: {res0['summary']} (unfolded plan: {unfolded} cycles/frame)")


@pytest.mark.slow
@pytest.mark.parametrize("edit", [False, True], ids=["planned", "conv_bottleneck"])
@pytest.mark.parametrize("k1,stride1", [(2, 2), ((3, 1), 1)], ids=["k2s2", "k3x1"])
def test_kws_tiny_other_kernels_in_rtl(k1, stride1, edit, tmp_path):
    _kws(tmp_path, k1, stride1, edit=edit)


@pytest.mark.slow
def test_ds_cnn_first_kernel_in_rtl(tmp_path):
    """DS-CNN's 10x4 stride-2 first kernel (pads 4, 1, 5, 2; an 11x11 window) on a 20 x 10 x 1 int8 input, as the
    bottleneck (2 output channels and a window row of 11 taps per beat: 4 live slots)."""
    d = Design.load(Z.kws_tiny(H=20, W=10, k1=(10, 4), stride1=2, pads1=(4, 1, 5, 2), in_type="int8"), board="generic",
                    budget=BUDGET, input_fold=False)  # the 10x4 kernel itself (folded: 10x3 on 2 channels)
    d.plan()
    conv1 = next(lay for lay in d.net.layers if isinstance(lay, ir.Conv))
    d.set_layer(conv1.name, och_par=2, ich_par=1, pix_par=1, packing=False, tap_par=11, mult="dsp", storage="bram")
    assert d.plan_.layer(conv1.name).dsp == 2 * 4
    px = np.random.default_rng(1).integers(0, 256, size=(6, 20, 10, 1), dtype=np.uint8)
    rep, res, res0 = _build_and_sim(d, tmp_path, px)
    assert rep["bottleneck"] == conv1.name
    print(f"ds-cnn 10x4 s2: {res['summary']} | no stalls: {res0['summary']}")


@pytest.mark.slow
def test_small_ds_cnn_49x10x1_in_rtl(tmp_path):
    """The DS-CNN shape on the real 49 x 10 x 1 int8 input (8 channels, 2 depthwise-separable blocks) as planned."""
    d = Design.load(Z.ds_cnn(c=8, blocks=2), board="generic", budget=BUDGET)
    d.plan()
    px = np.random.default_rng(1).integers(0, 256, size=(6, 49, 10, 1), dtype=np.uint8)
    _, res, res0 = _build_and_sim(d, tmp_path, px)
    print(f"ds-cnn 49x10x1: {res['summary']} | no stalls: {res0['summary']}")


@pytest.mark.slow
def test_kws_tiny_float_nchw_in_rtl(tmp_path):
    _kws(tmp_path, 3, in_type="float")


@pytest.mark.slow
def test_deeper_mlp_uint8_in_rtl(tmp_path):
    d = Design.load(Z.mlp(dims=(128, 64, 16, 64, 128), in_type="uint8", seed=2), board="generic", budget=BUDGET)
    d.plan()
    px = np.random.default_rng(6).integers(0, 256, size=(8, 1, 1, 128), dtype=np.uint8)
    _build_and_sim(d, tmp_path, px)
