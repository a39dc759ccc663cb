"""rtlgen.quant primitives against exact rational arithmetic (fractions.Fraction) and ONNX's reference."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from rtlgen import quant


def _ref_round(f: Fraction, mode: str) -> int:
    if mode == "half_even":
        return round(f)  # Fraction.__round__ rounds half to even
    if mode == "half_up":
        return math.floor(f + Fraction(1, 2))
    if mode == "half_down":
        return math.ceil(f - Fraction(1, 2))
    if mode == "floor":
        return math.floor(f)
    if mode == "ceil":
        return math.ceil(f)
    if mode == "to_zero":
        return math.trunc(f)
    raise AssertionError(mode)


def _ref_rshift(v, sh, mode):
    v = np.asarray(v, np.int64)
    sh = np.broadcast_to(np.asarray(sh, np.int64), v.shape)
    out = np.empty(v.shape, np.int64)
    for idx in np.ndindex(v.shape):
        out[idx] = _ref_round(Fraction(int(v[idx])) / Fraction(2) ** int(sh[idx]), mode)
    return out


MODES = list(quant.ROUNDING_MODES)


@pytest.mark.parametrize("mode", MODES)
def test_rshift_round_random(mode):
    rng = np.random.default_rng(1)
    v = rng.integers(-(2**40), 2**40, size=2000, dtype=np.int64)
    v[:200] = rng.integers(-64, 64, size=200)  # small values: many exact ties / zeros
    for sh in (0, 1, 2, 3, 7, 16, 31):
        np.testing.assert_array_equal(quant.rshift_round(v, sh, mode), _ref_rshift(v, sh, mode), err_msg=f"sh={sh}")


@pytest.mark.parametrize("mode", MODES)
def test_rshift_round_ties(mode):
    for sh in (1, 2, 5, 12):
        k = np.arange(-40, 40, dtype=np.int64)
        v = (2 * k + 1) << (sh - 1)  # exactly k + 1/2 after the shift
        np.testing.assert_array_equal(quant.rshift_round(v, sh, mode), _ref_rshift(v, sh, mode), err_msg=f"sh={sh}")
        # neighbours of the ties
        for d in (-1, 1):
            np.testing.assert_array_equal(quant.rshift_round(v + d, sh, mode), _ref_rshift(v + d, sh, mode))


def test_rshift_round_ties_values():
    v = np.array([-7, -5, -3, -1, 1, 3, 5, 7], np.int64)  # /2 -> -3.5 ... 3.5
    assert quant.rshift_round(v, 1, "half_even").tolist() == [-4, -2, -2, 0, 0, 2, 2, 4]
    assert quant.rshift_round(v, 1, "half_up").tolist() == [-3, -2, -1, 0, 1, 2, 3, 4]
    assert quant.rshift_round(v, 1, "half_down").tolist() == [-4, -3, -2, -1, 0, 1, 2, 3]
    assert quant.rshift_round(v, 1, "floor").tolist() == [-4, -3, -2, -1, 0, 1, 2, 3]
    assert quant.rshift_round(v, 1, "ceil").tolist() == [-3, -2, -1, 0, 1, 2, 3, 4]
    assert quant.rshift_round(v, 1, "to_zero").tolist() == [-3, -2, -1, 0, 0, 1, 2, 3]
    # half-even agrees with numpy's np.round (the QONNX ROUND / ONNX QuantizeLinear rule)
    w = np.arange(-1000, 1000, dtype=np.int64)
    for sh in (1, 2, 3, 4):
        np.testing.assert_array_equal(quant.rshift_round(w, sh), np.round(w / 2.0**sh).astype(np.int64))


@pytest.mark.parametrize("mode", MODES)
def test_rshift_round_per_channel(mode):
    rng = np.random.default_rng(2)
    sh = np.array([0, 1, 3, 8, 15, 20, -2, -5], np.int64)  # <= 0: left shift
    v = rng.integers(-(2**30), 2**30, size=(5, 4, 4, sh.size), dtype=np.int64)
    v[0, 0, 0] = 1 << np.maximum(sh - 1, 0)  # exact ties per channel
    v[0, 0, 1] = -(1 << np.maximum(sh - 1, 0))
    v[0, 0, 2] = 3 << np.maximum(sh - 1, 0)
    got = quant.rshift_round(v, sh, mode)
    np.testing.assert_array_equal(got, _ref_rshift(v, sh, mode))


def test_rshift_round_left_shift_only():
    v = np.array([-3, 0, 5], np.int64)
    np.testing.assert_array_equal(quant.rshift_round(v, -3), v * 8)
    np.testing.assert_array_equal(quant.rshift_round(v, np.array([0, -1, -2])), v * np.array([1, 2, 4]))


def test_rshift_round_bad_mode():
    with pytest.raises(ValueError):
        quant.rshift_round(np.array([1, 2]), 1, "stochastic")


def test_fixed_point_multiplier_pow2_exact():
    for k in range(-40, 20):
        r = 2.0**k
        m, sh = quant.fixed_point_multiplier(r)
        assert quant.is_pow2_multiplier(m), (k, m)
        assert int(sh) >= 0
        assert Fraction(int(m)) / Fraction(2) ** int(sh) == Fraction(r), k
    # per-channel arrays of powers of two give a pure shift requant
    m, sh = quant.fixed_point_multiplier(np.array([2.0**-7, 2.0**-9, 0.5, 4.0]))
    assert quant.is_pow2_multiplier(m)
    assert [Fraction(int(a)) / 2 ** int(b) for a, b in zip(m, sh)] == [Fraction(1, 128), Fraction(1, 512), Fraction(1, 2), 4]


def test_fixed_point_multiplier_relative_error():
    rng = np.random.default_rng(3)
    ratios = np.concatenate(
        [
            np.exp(rng.uniform(np.log(1e-9), np.log(1e3), size=3000)),
            np.nextafter(2.0 ** np.arange(-30, 10, dtype=np.float64), 0),  # just below powers of two
            np.nextafter(2.0 ** np.arange(-30, 10, dtype=np.float64), 1e9),  # just above
            np.array([1 - 2.0**-30, 3.0, 0.75, 2**25 + 1.0, 1e7 + 0.3]),
        ]
    )
    m, sh = quant.fixed_point_multiplier(ratios)
    assert m.shape == ratios.shape and sh.shape == ratios.shape
    assert np.all(m >= 1) and np.all(sh >= 0)
    for r, mi, si in zip(ratios, m, sh):
        approx = Fraction(int(mi)) / Fraction(2) ** int(si)
        err = abs(approx - Fraction(float(r))) / Fraction(float(r))
        assert err < Fraction(1, 2**quant.MULT_BITS), (r, mi, si, float(err))
        if si > 0 and not quant.is_pow2_multiplier(mi):
            assert int(mi).bit_length() == quant.MULT_BITS, (r, mi, si)  # full 24-bit significand used


def test_fixed_point_multiplier_rejects_bad_ratio():
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            quant.fixed_point_multiplier(bad)


def test_requantize_matches_exact_rational():
    rng = np.random.default_rng(4)
    ratios = np.array([0.0123, 0.5, 2.0**-8, 0.3333333, 1.7], np.float64)
    m, sh = quant.fixed_point_multiplier(ratios)
    acc = rng.integers(-(2**20), 2**20, size=(300, ratios.size), dtype=np.int64)
    got = quant.requantize(acc, m, sh, -3, -128, 127)
    ref = np.empty_like(acc)
    for idx in np.ndindex(acc.shape):
        c = idx[-1]
        v = Fraction(int(acc[idx]) * int(m[c])) / Fraction(2) ** int(sh[c])
        ref[idx] = min(max(round(v) - 3, -128), 127)
    np.testing.assert_array_equal(got, ref)


def test_quantize_matches_onnx_reference():
    """quant.quantize == ONNX QuantizeLinear (reference evaluator), ties included, int8 and uint8."""
    import onnx
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(5)
    scale = np.float32(0.037)
    x = (rng.normal(size=4000) * 3).astype(np.float32)
    ties = ((np.arange(-300, 300) + 0.5) * np.float64(scale)).astype(np.float32)
    x = np.concatenate([x, ties, np.array([0.0, -0.0, 1e6, -1e6], np.float32)])
    for zp_type, zp in ((TensorProto.INT8, np.int8(-5)), (TensorProto.UINT8, np.uint8(128))):
        node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
        g = helper.make_graph(
            [node],
            "q",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
            [helper.make_tensor_value_info("y", zp_type, [None])],
            [helper.make_tensor("s", TensorProto.FLOAT, [], [float(scale)]), helper.make_tensor("z", zp_type, [], [int(zp)])],
        )
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        onnx.checker.check_model(model)
        (expected,) = ReferenceEvaluator(model).run(None, {"x": x})
        info = np.iinfo(expected.dtype)
        got = quant.quantize(x, scale, int(zp), int(info.min), int(info.max))
        np.testing.assert_array_equal(got, expected.astype(np.int64))


def test_dtype_range_and_bits():
    assert quant.dtype_range(True) == (-128, 127)
    assert quant.dtype_range(True, narrow=True) == (-127, 127)
    assert quant.dtype_range(False) == (0, 255)
    assert quant.dtype_range(True, 16) == (-32768, 32767)
    assert quant.bits_signed(-128, 127) == 8
    assert quant.bits_signed(0, 255) == 9
    assert quant.bits_signed(-(2**31), 2**31 - 1) == 32
