"""ONNX's own backend node test cases, reproduced exactly with rtlgen's golden integer primitives.

The onnx wheel ships no ``.pb`` data for the node tests, only the case generators; ``collect_testcases`` runs the
generators and gives us each case's model plus (inputs, expected outputs). We recompute every expected output with
``rtlgen.quant`` / ``rtlgen.golden`` integer arithmetic:

* QuantizeLinear  -> ``quant.quantize`` (float32 ``x / scale``, half-to-even, + zero point, clamp)
* DequantizeLinear -> ``(q - zp) * scale`` in float32
* QLinearConv     -> ``golden.conv_acc`` on NHWC ``(x - zp_x)`` / ``(w - zp_w)``, then a 24-bit
                     ``quant.fixed_point_multiplier`` of ``s_x * s_w / s_y`` and ``quant.requantize`` (half-even)
* QLinearMatMul   -> plain int64 matmul of ``(a - zp_a) @ (b - zp_b)``, then the same requantization.
"""

from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import pytest

from rtlgen import golden, ir, quant

CASES = [
    "test_quantizelinear",
    "test_quantizelinear_axis",
    "test_dequantizelinear",
    "test_dequantizelinear_axis",
    "test_qlinearconv",
    "test_qlinearmatmul_2D_uint8_float32",
    "test_qlinearmatmul_3D_uint8_float32",
    "test_qlinearmatmul_2D_uint8_float16",
    "test_qlinearmatmul_3D_uint8_float16",
    "test_qlinearmatmul_2D_int8_float32",
    "test_qlinearmatmul_3D_int8_float32",
    "test_qlinearmatmul_2D_int8_float16",
    "test_qlinearmatmul_3D_int8_float16",
]


@functools.lru_cache(maxsize=1)
def _node_cases() -> dict:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # many unrelated generators warn (overflow in casts etc.)
        with np.errstate(all="ignore"):
            cases = node.collect_testcases("")
    return {c.name: c for c in cases if re.match(r"test_(de)?quantizelinear|test_qlinear(conv|matmul)", c.name)}


def _case(name):
    cases = _node_cases()
    if name not in cases:
        pytest.fail(f"ONNX node case {name} not found in onnx.backend.test.case.node (onnx version changed?)")
    c = cases[name]
    assert len(c.data_sets) >= 1
    node = c.model.graph.node
    assert len(node) == 1
    return c, node[0]


def _attr(node, name, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _per_axis(param: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Broadcast a scalar or 1-D per-axis parameter against an ``ndim`` tensor along ``axis``."""
    param = np.asarray(param)
    if param.ndim == 0 or param.size == 1:
        return param.reshape(())
    shape = [1] * ndim
    shape[axis % ndim] = param.size
    return param.reshape(shape)


def test_all_requested_cases_present():
    cases = _node_cases()
    missing = [n for n in CASES if n not in cases]
    assert not missing, f"missing ONNX node cases: {missing}"


def _qdq_sets(name, op):
    """(x, scale, zp, expected, axis) of every data set of the ONNX node case ``name`` (an ``op`` node)."""
    c, node = _case(name)
    assert node.op_type == op
    axis = _attr(node, "axis", 1)
    for (x, scale, zp), outputs in c.data_sets:
        yield x, scale, zp, outputs[0], axis


@pytest.mark.parametrize("name", ["test_quantizelinear", "test_quantizelinear_axis"])
def test_quantizelinear(name):
    for x, scale, zp, expected, axis in _qdq_sets(name, "QuantizeLinear"):
        info = np.iinfo(expected.dtype)
        got = quant.quantize(
            x,
            _per_axis(scale, x.ndim, axis),
            _per_axis(zp, x.ndim, axis).astype(np.int64),
            int(info.min),
            int(info.max),
        )
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected.astype(np.int64))


@pytest.mark.parametrize("name", ["test_dequantizelinear", "test_dequantizelinear_axis"])
def test_dequantizelinear(name):
    for x, scale, zp, expected, axis in _qdq_sets(name, "DequantizeLinear"):
        q = x.astype(np.int64) - _per_axis(zp, x.ndim, axis).astype(np.int64)
        got = q.astype(np.float32) * _per_axis(scale, x.ndim, axis).astype(np.float32)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def _requant_ratio(s_in, s_w, s_out) -> np.ndarray:
    """Requant ratio ``s_in * s_w / s_out`` from the model's own (float32/float16) scale values, in float64."""
    return np.asarray(s_in, np.float64).ravel() * np.asarray(s_w, np.float64).ravel() / np.asarray(s_out, np.float64).ravel()


def _tie_margin(acc: np.ndarray, ratio) -> float:
    """Smallest distance of ``acc * ratio`` (exact real) from a rounding tie, in output LSBs."""
    v = acc.astype(np.float64) * ratio
    return float(np.min(np.abs(v - np.floor(v) - 0.5)))


def test_qlinearconv():
    c, node = _case("test_qlinearconv")
    assert node.op_type == "QLinearConv"
    assert _attr(node, "group", 1) == 1
    strides = tuple(_attr(node, "strides", [1, 1]))
    pads_onnx = list(_attr(node, "pads", [0, 0, 0, 0]))  # t, l, b, r
    dil = tuple(_attr(node, "dilations", [1, 1]))
    assert dil == (1, 1)
    for inputs, outputs in c.data_sets:
        x, xs, xz, w, ws, wz, ys, yz = inputs[:8]
        bias = inputs[8] if len(inputs) > 8 else np.zeros(w.shape[0], np.int32)
        expected = outputs[0]
        info = np.iinfo(expected.dtype)
        # NCHW -> NHWC, zero points subtracted (weights may be uint8 with a zero point: any int range works)
        xi = (x.astype(np.int64) - int(np.asarray(xz).ravel()[0])).transpose(0, 2, 3, 1)
        wz_o = np.broadcast_to(np.asarray(wz, np.int64).ravel(), (w.shape[0],)).reshape(-1, 1, 1, 1)
        wi = (w.astype(np.int64) - wz_o).transpose(0, 2, 3, 1)  # O, Kh, Kw, C
        in_q = ir.QType(scale=float(np.asarray(xs).ravel()[0]), zero_point=0, signed=True, bits=9, lo=-255, hi=255)
        acc = golden.conv_acc(xi, wi, bias.astype(np.int64), strides, tuple(pads_onnx), 0, in_q)
        ratio = np.broadcast_to(_requant_ratio(xs, ws, ys), (w.shape[0],))
        m, sh = quant.fixed_point_multiplier(ratio)
        got = quant.requantize(acc, m, sh, int(np.asarray(yz).ravel()[0]), int(info.min), int(info.max))
        got = got.transpose(0, 3, 1, 2)
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected.astype(np.int64))
        # the case is not decided by the multiplier's last bit: no accumulator lies within 2**-20 LSB of a tie
        assert _tie_margin(acc, ratio) > 2.0**-20


QLINEARMATMUL = [n for n in CASES if n.startswith("test_qlinearmatmul")]


@pytest.mark.parametrize("name", QLINEARMATMUL)
def test_qlinearmatmul(name):
    c, node = _case(name)
    assert node.op_type == "QLinearMatMul"
    for inputs, outputs in c.data_sets:
        a, a_s, a_z, b, b_s, b_z, y_s, y_z = inputs
        expected = outputs[0]
        info = np.iinfo(expected.dtype)
        assert expected.dtype in (np.int8, np.uint8)
        acc = np.matmul(a.astype(np.int64) - np.asarray(a_z, np.int64).ravel()[0], b.astype(np.int64) - np.asarray(b_z, np.int64).ravel()[0])
        ratio = _requant_ratio(a_s, b_s, y_s)
        m, sh = quant.fixed_point_multiplier(ratio)
        assert not quant.is_pow2_multiplier(m) and int(m[0]).bit_length() == quant.MULT_BITS
        got = quant.requantize(acc, m, sh, int(np.asarray(y_z).ravel()[0]), int(info.min), int(info.max))
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected.astype(np.int64))
        assert _tie_margin(acc, ratio[0]) > 2.0**-20
