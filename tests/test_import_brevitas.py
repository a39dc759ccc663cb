"""Brevitas models (power-of-two scales) exported as QONNX and QCDQ: golden model == reference, bit for bit.

References: QONNX -> ``qonnx.core.onnx_exec.execute_onnx``; QCDQ -> ONNX Runtime. With power-of-two scales every
float operation in the reference is exact (products and sums of dyadic numbers well inside float32's 24-bit
significand), so the golden integers must match exactly: final float logits equal ``golden.logits`` exactly, and
every quantized intermediate tensor is identical.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as R
import zoo
from rtlgen import golden, ir, quant
from rtlgen.frontend import load_model

FORMATS = ["qonnx", "qcdq"]


@pytest.fixture(scope="module", params=FORMATS)
def brevitas(request, zoo_dir):
    zm = zoo.brevitas_resnet(zoo_dir, request.param, seed=0)
    net = load_model(zm.path, **zm.preprocess)
    return request.param, zm, net


def _reference(fmt, zm, x, return_all=False, names=None):
    if fmt == "qonnx":
        out = R.run_qonnx(zm.path, x, return_all=return_all)
    else:
        out = R.run_ort(zm.path, x, outputs=names)
    return out


def _graph_output(zm):
    import onnx

    return onnx.load(str(zm.path)).graph.output[0].name


def test_logits_bit_exact(brevitas, sample_pixels):
    fmt, zm, net = brevitas
    x = zoo.float_input(sample_pixels, zm.input_scale, zm.mean, zm.std)
    ref = _reference(fmt, zm, x)[_graph_output(zm)]
    q = golden.run(net, sample_pixels)
    lg = golden.logits(net, q)
    assert lg.shape == ref.shape
    # the reference output is float32 logits; the golden raw accumulator times its power-of-two LSB is exact
    mism = np.argwhere(lg != ref.astype(np.float64))
    assert len(mism) == 0, (
        f"{fmt}: {len(mism)} of {ref.size} logits differ; first at {tuple(mism[0])}: "
        f"golden {lg[tuple(mism[0])]!r} reference {ref[tuple(mism[0])]!r}"
    )
    # and the integers recovered from the float logits are the golden ones
    scale = np.asarray(net.output_scale, np.float64)
    rec = np.round(ref.astype(np.float64) / scale) + net.output_zero_point
    np.testing.assert_array_equal(rec.astype(np.int64), q)
    assert (lg.argmax(1) == ref.argmax(1)).all()


def test_intermediate_layers_bit_exact(brevitas, sample_pixels):
    fmt, zm, net = brevitas
    px = sample_pixels[:128]
    x = zoo.float_input(px, zm.input_scale, zm.mean, zm.std)
    tensors = R.layer_tensors(net, zm.path)
    assert len(tensors) >= len([lay for lay in net.layers if lay.out_q is not None]) - 1, tensors
    ref_all = _reference(fmt, zm, x, return_all=True, names=[t for t, _ in tensors.values()])
    gold_all = golden.run(net, px, return_all=True)
    res = R.compare_layers(net, zm.path, gold_all, ref_all)
    assert set(res) == set(tensors), (set(tensors) - set(res))
    bad = {k: v for k, v in res.items() if v.get("equal") != 1.0}
    assert not bad, f"{fmt}: layers differing from the reference: {bad}"


def test_requants_are_pure_shifts(brevitas):
    fmt, zm, net = brevitas
    kinds = {}
    for lay in net.layers:
        rq = getattr(lay, "requant", None)
        if rq is not None:
            kinds[lay.name] = rq.kind
            assert rq.rounding == "half_even", (lay.name, rq.rounding)
        if isinstance(lay, ir.Conv) and lay.residual is not None:
            assert quant.is_pow2_multiplier(lay.res_m), (lay.name, lay.res_m)
        if isinstance(lay, (ir.Conv, ir.Dense)):
            assert lay.acc_bits <= 32, (lay.name, lay.acc_bits)
            assert lay.weights.min() >= -128 and lay.weights.max() <= 127
            assert lay.bias_bits == 16, (lay.name, lay.bias_bits)  # Int16Bias
    assert kinds and all(k == "shift" for k in kinds.values()), kinds


def test_structure(brevitas):
    fmt, zm, net = brevitas
    convs = [lay for lay in net.layers if isinstance(lay, ir.Conv)]
    assert len(convs) == 6
    # both residual adds are merged into the conv2 layers (the conv output is not quantized before the add)
    assert sum(c.residual is not None for c in convs) == 2
    assert [c.kernel for c in convs].count((1, 1)) == 1
    assert any(c.stride == (2, 2) for c in convs)
    assert isinstance(net[net.output], ir.Dense) and net[net.output].requant is None
    assert net.input.out_q.signed and net.input.table.shape == (3, 256)
    assert net.input.out_shape == (32, 32, 3)
    assert net.total_macs > 0


def test_input_table_is_documented_preprocessing(brevitas):
    """table[c][p] == QuantizeLinear((p * input_scale - mean[c]) / std[c]) in float32, for every pixel value."""
    fmt, zm, net = brevitas
    px = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1).reshape(256, 1, 1, 3)
    x = zoo.float_input(px, zm.input_scale, zm.mean, zm.std, layout="NHWC").reshape(256, 3)
    q = net.input.out_q
    expected = quant.quantize(x, q.scale, q.zero_point, q.lo, q.hi).T
    np.testing.assert_array_equal(net.input.table, expected)


def test_preprocessing_from_metadata(zoo_dir, sample_pixels):
    zm = zoo.brevitas_resnet(zoo_dir, "qonnx", seed=1, with_metadata=True)
    net_meta = load_model(zm.path)
    net_args = load_model(zm.path, **zm.preprocess)
    np.testing.assert_array_equal(net_meta.input.table, net_args.input.table)
    x = zoo.float_input(sample_pixels[:200], zm.input_scale, zm.mean, zm.std)
    ref = R.qonnx_output(zm.path, x)
    lg = golden.logits(net_meta, golden.run(net_meta, sample_pixels[:200]))
    np.testing.assert_array_equal(lg, ref.astype(np.float64))
