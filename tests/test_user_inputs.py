"""Users' own inputs: ``rtlgen run MODEL --inputs X.npy --out Y.npy`` (golden model on the graph input's own form)
against ONNX Runtime where ORT is exact, and the mapping of ``rtlgen sim --inputs`` arrays onto pixels.

The models are tiny QDQ graphs (tests/badmodels.py) with power-of-two scales and a dynamic batch axis: every ORT
float32 operation on them is exact (products and sums of dyadic numbers far below 2**24 ulps, divisions by powers of
two), so ORT's int8 codes must equal ``rtlgen run``'s bit for bit, exact rounding ties included.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto

import badmodels
from rtlgen import golden, userdata
from rtlgen.cli import main
from rtlgen.frontend import load_model


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _head_softmax(g, x):
    """GAP -> q -> Gemm -> q_fc (the logits) -> Softmax (dropped by the importer: run writes q_fc's codes)."""
    p = g.q(g.gap(x), 1 / 32, 0, name="q_gap")
    lg = g.q(g.gemm(g.flatten(p), 4, 10, name="fc"), 1 / 16, 0, name="q_fc")
    return g.output(g.node("Softmax", [lg], axis=1), ["N", 10])


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    """float32 NCHW graph input, QuantizeLinear (1/32) first, trailing Softmax."""
    g = badmodels.G(shape=("N", 3, 8, 8), seed=3)
    _head_softmax(g, g.block(g.stem()))
    return _save(g, tmp_path_factory.mktemp("uin") / "float_nchw.onnx")


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    """TFLite style: int8 NHWC graph input -> DequantizeLinear (1/32, zp 3) -> Transpose -> convs ... -> Softmax."""
    g = badmodels.G(shape=("N", 8, 8, 3), in_dtype=TensorProto.INT8, seed=4)
    s = g.init("in_s", np.float32(1 / 32))
    z = g.init("in_zp", np.int8(3))
    x = g.node("Transpose", [g.node("DequantizeLinear", [g.x, s, z])], perm=[0, 3, 1, 2])
    h = g.q(g.relu(g.conv(x, 3, 4, name="conv_stem")), 1 / 32, 0, name="q_stem")
    _head_softmax(g, g.block(h))
    return _save(g, tmp_path_factory.mktemp("uin") / "int8_nhwc.onnx")


def _save(g, path):
    """The model, with the bias DequantizeLinears' zero points as scalars (ONNX Runtime refuses a per-channel zero
    point beside a per-tensor scale; the values are zeros either way)."""
    import onnx
    from onnx import numpy_helper

    m = g.model()
    for k, t in enumerate(m.graph.initializer):
        if t.name.startswith("bzp"):
            m.graph.initializer[k].CopyFrom(numpy_helper.from_array(np.int32(0), t.name))
    onnx.save(m, str(path))
    return path


def _float_inputs(n, seed=0):
    """Values on the quantizer's grid, exact ties (k + 1/2 steps) and out-of-range values (clamped)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-300, 300, size=(n, 3, 8, 8)).astype(np.float32) / 64  # half steps of 1/32: ties
    x[0, 0, 0, :4] = [100.0, -100.0, 0.5 / 32, 1.5 / 32]
    return x


def _ort_codes(path, x, tensor="q_fc_out"):
    import reference as R

    return R.run_ort(path, x, outputs=[tensor])[tensor]


def test_run_float_model_equals_onnxruntime(float_model, tmp_path):
    pytest.importorskip("onnxruntime")
    x = _float_inputs(64)
    np.save(tmp_path / "x.npy", x)
    r = cli("run", float_model, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy", "--json")
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    ref = _ort_codes(float_model, x)
    assert y.dtype == np.int8 and ref.dtype == np.int8
    np.testing.assert_array_equal(y, ref)
    d = json.loads(r.stdout)
    assert d["output"]["softmax_dropped"] and d["output"]["shape"] == [64, 10]
    assert d["input"]["quantizer"] == {"scale": 1 / 32, "zero_point": 0, "range": [-128, 127], "rounding": "half_even"}
    assert d["argmax"] == np.argmax(ref, axis=1).tolist()


def test_run_int8_nhwc_model_equals_onnxruntime(int8_model, tmp_path):
    pytest.importorskip("onnxruntime")
    x = np.random.default_rng(1).integers(-128, 128, size=(32, 8, 8, 3)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    r = cli("run", int8_model, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), _ort_codes(int8_model, x))


def test_run_single_sample_without_batch_axis(float_model, tmp_path):
    x = _float_inputs(3)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "x1.npy", x[1])
    assert cli("run", float_model, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy").exit_code == 0
    r = cli("run", float_model, "--inputs", tmp_path / "x1.npy", "--out", tmp_path / "y1.npy")
    assert r.exit_code == 0, r.output
    y, y1 = np.load(tmp_path / "y.npy"), np.load(tmp_path / "y1.npy")
    assert y1.shape == (10,)
    np.testing.assert_array_equal(y1, y[1])


def test_run_bundled_model_raw_accumulators(tmp_path):
    """The bundled ResNet8 ends in a dense layer without output quantization: run writes its int32 accumulators,
    the same integers as the golden model on pixels whose table codes equal the quantized floats."""
    net = load_model(str(__import__("rtlgen.models", fromlist=["resolve"]).resolve("resnet8")))
    px = np.random.default_rng(2).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    pre = net.input.preprocess
    x = ((px.astype(np.float32) * np.float32(pre["input_scale"]) - np.float32(128)) / np.float32(128))
    np.save(tmp_path / "x.npy", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    r = cli("run", "resnet8", "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int32 and y.shape == (4, 10)
    np.testing.assert_array_equal(y, golden.run(net, px))


@pytest.mark.parametrize("case,needle", [
    ("missing", "does not exist"),
    ("not_npy", "not a NumPy .npy file"),
    ("float64", "dtype float64"),
    ("shape", "does not match the graph input"),
    ("nan", "NaN"),
])
def test_run_bad_inputs_one_line_exit_2_nothing_written(float_model, tmp_path, case, needle):
    f = tmp_path / "x.npy"
    if case == "not_npy":
        f.write_text("1,2,3\n")
    elif case == "float64":
        np.save(f, _float_inputs(2).astype(np.float64))
    elif case == "shape":
        np.save(f, _float_inputs(2)[:, :, :4])
    elif case == "nan":
        x = _float_inputs(2)
        x[1, 2, 3, 4] = np.nan
        np.save(f, x)
    out = tmp_path / "y.npy"
    r = cli("run", float_model, "--inputs", f, "--out", out)
    assert r.exit_code == 2, r.output
    assert "--inputs" in r.stderr and needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not out.exists() and not list(tmp_path.glob(".y.npy*"))


# --- rtlgen sim --inputs: what reaches the hardware --------------------------------------------------------------


def test_sim_pixels_nhwc_nchw_and_single_frame(float_model):
    net = load_model(str(float_model))
    gi = userdata.graph_input(net, float_model)
    px = np.random.default_rng(5).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(userdata.pixels(net, gi, px), px)
    np.testing.assert_array_equal(userdata.pixels(net, gi, np.ascontiguousarray(px.transpose(0, 3, 1, 2))), px)
    np.testing.assert_array_equal(userdata.pixels(net, gi, px[0]), px[:1])
    with pytest.raises(userdata.InputsError, match="uint8 pixels must be N x 8 x 8 x 3"):
        userdata.pixels(net, gi, px[:, :4])


def test_sim_graph_form_floats_map_exactly_onto_pixels(float_model):
    """Floats made from pixels by the preprocessing map back onto pixels, and the golden model on those pixels is the
    golden model on the floats (what rtlgen run computes)."""
    net = load_model(str(float_model), input_scale=1 / 8, mean=[4.0, 2.0, 0.0], std=[1.0, 2.0, 0.5])
    gi = userdata.graph_input(net, float_model)
    px = np.random.default_rng(6).integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    pre = net.input.preprocess
    x = (px.astype(np.float32) * np.float32(pre["input_scale"]) - np.float32(pre["mean"])) / np.float32(pre["std"])
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    got = userdata.pixels(net, gi, x)
    codes, _ = userdata.graph_codes(gi, x)
    np.testing.assert_array_equal(golden.run(net, got), golden.run_codes(net, codes))
    np.testing.assert_array_equal(golden.run(net, got), golden.run(net, px))


def test_sim_graph_form_unmappable_is_refused(float_model):
    net = load_model(str(float_model))  # default preprocessing: pixel/255 -> codes 0..32 only
    gi = userdata.graph_input(net, float_model)
    x = np.full((1, 3, 8, 8), -1.0, dtype=np.float32)  # code -32: no pixel gives it
    with pytest.raises(userdata.InputsError, match="do not map exactly onto uint8 pixels: channel 0 needs code -32"):
        userdata.pixels(net, gi, x)


def test_sim_int8_graph_form_maps_onto_pixels(int8_model):
    """int8 NHWC codes -> pixels through the inverted input table. Without preprocessing the integer graph input is
    fed as it is (the identity table: every int8 code is its two's-complement byte); with ``--input-scale`` (here
    pixel/255 at scale 1/32, zp 3: codes 3..35) the pixel table applies and other codes are refused."""
    net = load_model(str(int8_model))
    gi = userdata.graph_input(net, int8_model)
    assert gi.layout == "NHWC" and gi.is_int
    assert net.input.passthrough and net.input.preprocess == {"codes": "int8"}
    codes = np.random.default_rng(7).integers(-128, 128, size=(4, 8, 8, 3)).astype(np.int8)
    px = userdata.pixels(net, gi, codes)
    np.testing.assert_array_equal(px, codes.view(np.uint8))
    np.testing.assert_array_equal(golden.run(net, px), golden.run_codes(net, codes.astype(np.int64)))
    net = load_model(str(int8_model), input_scale=1 / 255)
    assert not net.input.passthrough
    codes = np.random.default_rng(7).integers(3, 36, size=(4, 8, 8, 3)).astype(np.int8)
    px = userdata.pixels(net, gi, codes)
    np.testing.assert_array_equal(golden.run(net, px), golden.run_codes(net, codes.astype(np.int64)))
    with pytest.raises(userdata.InputsError, match="needs code 40"):
        userdata.pixels(net, gi, np.full((1, 8, 8, 3), 40, np.int8))


def test_sim_inputs_option_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8, 3), np.uint8))
    r = cli("sim", tmp_path / "nobuild", "--inputs", tmp_path / "x.npy", "--random", 3)
    assert r.exit_code == 2 and "--inputs excludes" in r.stderr
    r = cli("sim", tmp_path / "nobuild", "--inputs", tmp_path / "missing.npy")
    assert r.exit_code == 2 and "--inputs: file" in r.stderr and "does not exist" in r.stderr


def test_feature_vector_model_run_and_pixels(tmp_path):
    """A 2-D graph input [N, F]: run takes float32 N x F (or F); sim takes uint8 N x F pixels (a 1 x 1 x F frame)."""
    g = badmodels.G(shape=("N", 16), seed=8)
    x = g.q(g.x, 1 / 32, 0, name="q_in")
    g.output(g.q(g.gemm(x, 16, 10, name="fc"), 1 / 16, 0, name="q_fc"), ["N", 10])
    src = _save(g, tmp_path / "mlp.onnx")
    xs = (np.random.default_rng(9).integers(-200, 200, size=(6, 16)) / 64).astype(np.float32)
    np.save(tmp_path / "x.npy", xs)
    r = cli("run", src, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (6, 10)
    if __import__("importlib").util.find_spec("onnxruntime"):
        np.testing.assert_array_equal(y, _ort_codes(src, xs))
    net = load_model(str(src))
    gi = userdata.graph_input(net, src)
    assert gi.layout == "NF"
    px = np.random.default_rng(10).integers(0, 256, size=(3, 16), dtype=np.uint8)
    np.testing.assert_array_equal(userdata.pixels(net, gi, px), px.reshape(3, 1, 1, 16))


def test_run_uses_the_input_quants_own_rounding(tmp_path):
    """A QONNX input Quant with rounding_mode FLOOR: run quantizes the floats with floor (the graph's own first
    quantizer), not half-to-even; the other Quants' modes do not matter."""
    import onnx

    m = badmodels.qonnx_model()
    node = next(n for n in m.graph.node if n.name == "quant_in")
    for a in node.attribute:
        if a.name == "rounding_mode":
            a.s = b"FLOOR"
    src = tmp_path / "floor.onnx"
    onnx.save(m, str(src))
    net = load_model(str(src))
    gi = userdata.graph_input(net, src)
    assert gi.rounding == "floor"
    x = np.full((1, *gi.shape), 1.75 / 32, np.float32)  # 1.75 LSB: floor 1, half-to-even 2
    codes, _ = userdata.graph_codes(gi, x)
    assert (codes == 1).all()
    np.save(tmp_path / "x.npy", x)
    r = cli("run", src, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), golden.run_codes(net, codes))
