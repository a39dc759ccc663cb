"""Integer quantization primitives shared by the importer, the golden model and the cores.

Rounding rule
-------------
The source models round half-to-even: ONNX ``QuantizeLinear`` (and ONNX Runtime's QLinear* kernels, which
use ``nearbyintf``) and QONNX ``Quant`` with ``rounding_mode="ROUND"`` (``np.round``). rtlgen therefore
requantizes with :func:`rshift_round` in mode ``"half_even"`` by default: ``round_half_even(v / 2**sh)``.
In hardware this is an arithmetic right shift plus a rounding increment computed from the dropped bits and
the result's LSB (see ``cores/requant.py``). Other QONNX rounding modes are supported where they are cheap.

Requantization
--------------
Every requantization in the IR has the form ``out = clamp(rshift_round(v * m, sh) + zp_out, lo, hi)`` with
integer ``m >= 1`` and ``sh >= 0``. Where all scales are powers of two, ``m`` is itself a power of two
(a left shift) and the requant is a pure shift; otherwise ``m`` is a fixed-point multiplier with
``MULT_BITS`` significant bits derived by :func:`fixed_point_multiplier`.
"""

from __future__ import annotations

import math

import numpy as np

#: significant bits of a fixed-point requant multiplier for non-power-of-two scale ratios
MULT_BITS = 24

ROUNDING_MODES = ("half_even", "half_up", "half_down", "floor", "ceil", "to_zero")

#: QONNX ``rounding_mode`` attribute -> rtlgen rounding mode
QONNX_ROUNDING = {
    "ROUND": "half_even",
    "HALF_EVEN": "half_even",
    "ROUND_HALF_EVEN": "half_even",
    "HALF_UP": "half_up",
    "HALF_DOWN": "half_down",
    "FLOOR": "floor",
    "DOWN": "to_zero",
    "ROUND_TO_ZERO": "to_zero",
    "CEIL": "ceil",
}


def dtype_range(signed: bool, bits: int = 8, narrow: bool = False) -> tuple[int, int]:
    """Inclusive integer range of a ``bits``-wide (un)signed type, optionally narrow (symmetric)."""
    if signed:
        return -(1 << (bits - 1)) + int(narrow), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1 - int(narrow)


def round_array(x: np.ndarray, mode: str = "half_even", out=None) -> np.ndarray:
    """Round a float array to integers (float result) with the given mode (``out`` may alias ``x``)."""
    if mode == "half_even":
        return np.round(x, out=out)
    if mode == "half_up":
        return np.floor(np.add(x, 0.5, out=out), out=out)
    if mode == "half_down":
        return np.ceil(np.subtract(x, 0.5, out=out), out=out)
    if mode == "floor":
        return np.floor(x, out=out)
    if mode == "ceil":
        return np.ceil(x, out=out)
    if mode == "to_zero":
        return np.trunc(x, out=out)
    raise ValueError(f"unknown rounding mode {mode!r}; supported: {', '.join(ROUNDING_MODES)}")


def rshift_round(v, sh, mode: str = "half_even") -> np.ndarray:
    """``round(v / 2**sh)`` on int64 arrays, exactly, with the given rounding mode.

    ``sh`` may be a scalar or an array broadcastable against ``v`` (per-channel shifts); ``sh <= 0`` is a
    left shift by ``-sh`` (no rounding needed). An object array of Python integers (``np.asarray(x, dtype=object)``)
    is computed in Python integers, without a width limit (wide datapaths: :func:`rtlgen.cores.arith.round_threshold`).

    Every mode is one add and one arithmetic shift, the same circuit the cores build:
    ``(v + offset) >> sh`` with ``offset`` = ``2**(sh-1) - 1 + lsb`` for half-even (``lsb`` = bit ``sh`` of ``v``,
    i.e. the LSB of the truncated result), ``2**(sh-1)`` for half-up, ``2**(sh-1) - 1`` for half-down,
    ``2**sh - 1`` for ceil, that or 0 by sign for round-to-zero, and 0 for floor.
    """
    big = isinstance(v, np.ndarray) and v.dtype == object
    dt = object if big else np.int64
    v = np.asarray(v, dtype=dt)
    sh = np.asarray(sh, dtype=np.int64)
    shape = np.broadcast(v, sh).shape
    if big:  # 1-D throughout: numpy turns 0-d object results into Python scalars, and np.where those into int64
        v, sh = (np.broadcast_to(x, shape).reshape(-1) for x in (v, sh))
    one = 1 if big else np.int64(1)

    def p2(k):  # 2**k (k: small non-negative int64) in v's arithmetic
        return np.asarray(one << np.asarray(k).astype(dt), dtype=dt)

    if np.all(sh <= 0):
        return (v << (-sh).astype(dt)).reshape(shape) if big else v << (-sh)
    shp_i = np.maximum(sh, 0)
    shp = shp_i.astype(dt)
    half = np.where(shp_i > 0, p2(np.maximum(shp_i - 1, 0)), 0)
    if mode == "half_even":
        off = np.where(shp_i > 0, half - 1, 0) + ((v >> shp) & one) * (shp_i > 0)
    elif mode == "half_up":
        off = half
    elif mode == "half_down":
        off = np.where(shp_i > 0, half - 1, 0)
    elif mode == "floor":
        off = 0 * one
    elif mode == "ceil":
        off = p2(shp_i) - 1
    elif mode == "to_zero":
        off = np.where(v < 0, p2(shp_i) - 1, 0)
    else:
        raise ValueError(f"unknown rounding mode {mode!r}; supported: {', '.join(ROUNDING_MODES)}")
    out = (v + off) >> shp
    if np.any(sh < 0):
        out = np.where(sh < 0, v << np.maximum(-sh, 0).astype(dt), out)
    return out.reshape(shape) if big else out


def fixed_point_multiplier(ratio, bits: int = MULT_BITS) -> tuple[np.ndarray, np.ndarray]:
    """Express positive real ``ratio`` (scalar or array) as ``m * 2**-sh`` with integers ``m``, ``sh``.

    Powers of two are represented exactly as ``m = 2**k`` (k >= 0), so a pure shift results. Other ratios get a
    ``bits``-bit multiplier ``2**(bits-1) <= m < 2**bits``; the relative error is below ``2**-bits``.
    Returns int64 arrays shaped like ``ratio``.
    """
    ratio = np.asarray(ratio, dtype=np.float64)
    if np.any(~np.isfinite(ratio)) or np.any(ratio <= 0):
        raise ValueError("requantization scale ratio must be positive and finite")
    m = np.empty(ratio.shape, dtype=np.int64)
    sh = np.empty(ratio.shape, dtype=np.int64)
    for idx, r in np.ndenumerate(ratio):
        mant, exp = math.frexp(float(r))  # r = mant * 2**exp, 0.5 <= mant < 1
        if mant == 0.5:  # exact power of two: r = 2**(exp-1)
            k = exp - 1
            m[idx], sh[idx] = (1 << k, 0) if k >= 0 else (1, -k)
            continue
        s = bits - exp
        mi = int(round(r * 2.0**s))
        if mi >= (1 << bits):
            mi >>= 1
            s -= 1
        if s < 0:
            m[idx], sh[idx] = mi << (-s), 0
        else:
            m[idx], sh[idx] = mi, s
    return m, sh


def is_pow2_multiplier(m) -> bool:
    m = np.asarray(m, dtype=np.int64)
    return bool(np.all((m > 0) & ((m & (m - 1)) == 0)))


def quantize(x, scale, zero_point, lo: int, hi: int, mode: str = "half_even") -> np.ndarray:
    """ONNX QuantizeLinear / QONNX Quant integer part: ``clamp(round(x / scale) + zp, lo, hi)`` (float32 math)."""
    x = np.asarray(x, dtype=np.float32)
    q = round_array(x / np.asarray(scale, dtype=np.float32), mode) + np.asarray(zero_point, dtype=np.float32)
    return np.clip(q, lo, hi).astype(np.int64)


def requantize(v, m, sh, zp_out, lo: int, hi: int, mode: str = "half_even") -> np.ndarray:
    """``clamp(rshift_round(v * m, sh) + zp_out, lo, hi)`` on int64, the IR's single requant form."""
    v = np.asarray(v, dtype=np.int64) * np.asarray(m, dtype=np.int64)
    return np.clip(rshift_round(v, sh, mode) + np.int64(zp_out), lo, hi)


def bits_signed(lo: int, hi: int) -> int:
    """Smallest two's complement width holding every integer of ``[lo, hi]``."""
    b = 1
    while not (-(1 << (b - 1)) <= lo and hi <= (1 << (b - 1)) - 1):
        b += 1
    return b
