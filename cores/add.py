# amaranth: UnusedElaboratable=no
"""Standalone residual add core, plus the small arithmetic helpers (requantization, balanced trees) shared by the
pooling, dense and add cores.

Stream contract (:class:`AddCore`)
---------------------------------
* Ports: ``a`` and ``b`` (inputs), ``o`` (output); all follow :mod:`rtlgen.cores.stream` with the same ``lanes``,
  8-bit lanes (int8 or uint8 per the quantized types), the same frame shape ``H x W x C`` (NHWC raster order).
* Function, per channel value (golden ``run_add``):
  ``o = clamp(rshift_round((a - za) * ma + (b - zb) * mb, sh) + zo, lo, hi)`` with the rounding mode of the layer
  (half-to-even by default); a fused ReLU is ``lo = zo``.
* Join: a beat is consumed from ``a`` and ``b`` in the same cycle (both valid); ``last`` of the output is ``a``'s.
* Latency 2 cycles (multiply, round/clamp), one beat per cycle: cycles per frame ``H * W * ceil(C / lanes)``.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .stream import act_signature, beats_per_pixel

__all__ = ["AddCore", "requant_value", "rshift_round_value", "tree_reduce", "normalize_requant", "lane", "clog2"]


def clog2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def lane(data, i: int, width: int, is_signed: bool = True):
    """Lane ``i`` of a packed data vector as a (signed) value."""
    v = data[i * width : (i + 1) * width]
    return v.as_signed() if is_signed else v


def tree_reduce(values: list, op):
    """Balanced binary reduction (keeps expression depth logarithmic: Amaranth lowers recursively)."""
    values = list(values)
    if not values:
        raise ValueError("tree_reduce of nothing")
    while len(values) > 1:
        nxt = [op(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


def rshift_round_value(v, sh: int, mode: str = "half_even"):
    """Hardware ``rshift_round(v, sh)`` for a signed value and a constant shift (see :func:`rtlgen.quant.rshift_round`).

    Arithmetic right shift plus a rounding increment computed from the dropped bits and the result's LSB.
    """
    v = v.as_signed() if not v.shape().signed else v
    if sh <= 0:
        return v << (-sh)
    w = len(v)
    if sh >= w:  # every bit is dropped: extend so the remainder logic below stays uniform
        v = Cat(v, v[-1].replicate(sh + 2 - w)).as_signed()
        w = sh + 2
    q = v >> sh
    r = v[:sh]
    half_bit = r[sh - 1]
    below = r[: sh - 1] != 0 if sh > 1 else Const(0, 1)
    nonzero = r != 0
    if mode == "half_even":
        inc = half_bit & (below | q[0])
    elif mode == "half_up":
        inc = half_bit
    elif mode == "half_down":
        inc = half_bit & below
    elif mode == "floor":
        inc = Const(0, 1)
    elif mode == "ceil":
        inc = nonzero
    elif mode == "to_zero":
        inc = nonzero & v[-1]
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    return q + inc


def clamp_value(v, lo: int, hi: int):
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


def normalize_requant(m, sh, channels: int) -> tuple[list[int], int]:
    """Per-channel ``(m, sh)`` -> per-channel multipliers ``m'`` and ONE constant shift ``S``.

    ``rshift_round(v * m, sh) == rshift_round(v * (m << (S - sh)), S)`` exactly (same rational value, same
    rounding), so the hardware needs a per-channel multiplier only. ``sh <= 0`` folds into ``m``.
    """
    m = np.broadcast_to(np.asarray(m, dtype=np.int64).reshape(-1), (channels,)) if np.size(m) == 1 else np.asarray(m).reshape(-1)
    sh = np.broadcast_to(np.asarray(sh, dtype=np.int64).reshape(-1), (channels,)) if np.size(sh) == 1 else np.asarray(sh).reshape(-1)
    if len(m) != channels or len(sh) != channels:
        raise ValueError(f"requant parameters have {len(m)}/{len(sh)} entries for {channels} channels")
    S = max(0, int(sh.max()))
    mm = [int(mi) << (S - int(si)) for mi, si in zip(m, sh)]
    if any(x <= 0 for x in mm):
        raise ValueError("requant multipliers must be positive")
    return mm, S


def requant_value(v, mult, sh: int, zp: int, lo: int, hi: int, mode: str = "half_even"):
    """``clamp(rshift_round(v * mult, sh) + zp, lo, hi)``; ``mult`` a Python int (constant) or an unsigned Value."""
    if isinstance(mult, int):
        if mult & (mult - 1) == 0:  # power of two: a shift
            p = v << (mult.bit_length() - 1)
        else:
            p = v * Const(mult, unsigned(mult.bit_length()))
    else:
        p = v * mult
    return clamp_value(rshift_round_value(p, sh, mode) + zp, lo, hi)


class AddCore(wiring.Component):
    """Elementwise ``clamp(rshift_round((a-za)*ma + (b-zb)*mb, sh) + zo, lo, hi)`` of two aligned streams."""

    def __init__(self, shape, lanes: int, za: int, zb: int, ma: int, mb: int, sh: int, zo: int, lo: int, hi: int,
                 a_signed: bool = True, b_signed: bool = True, rounding: str = "half_even"):
        self.shape = tuple(shape)
        self.lanes = lanes
        self.za, self.zb, self.ma, self.mb, self.sh, self.zo = int(za), int(zb), int(ma), int(mb), int(sh), int(zo)
        self.lo, self.hi = int(lo), int(hi)
        self.a_signed, self.b_signed = a_signed, b_signed
        self.rounding = rounding
        if self.ma < 0 or self.mb < 0:
            raise ValueError("add multipliers must be non-negative")
        super().__init__({"a": In(act_signature(lanes)), "b": In(act_signature(lanes)), "o": Out(act_signature(lanes))})

    @classmethod
    def from_layer(cls, layer, lanes: int = 1):
        q = layer.out_q
        return cls(layer.in_shape, lanes, layer.a_q.zero_point, layer.b_q.zero_point, layer.ma, layer.mb, layer.sh,
                   layer.zp_out, q.lo, q.hi, layer.a_q.signed, layer.b_q.signed, layer.rounding)

    def cycles_per_frame(self) -> int:
        H, W, C = self.shape
        return H * W * beats_per_pixel(C, self.lanes)

    latency = 2

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        en = Signal()
        v1 = Signal()
        last1 = Signal()
        v2 = Signal()
        last2 = Signal()
        m.d.comb += en.eq(~v2 | self.o.ready)
        fire = self.a.valid & self.b.valid & en
        C = self.shape[2]
        bpp = beats_per_pixel(C, L)
        bb = Signal(range(max(bpp, 2)))
        tail1 = Signal()  # stage 1 holds the pixel's tail beat (lanes past C must come out zero)
        with m.If(fire):
            with m.If((bb == bpp - 1) | self.a.payload.last):
                m.d.sync += bb.eq(0)
            with m.Else():
                m.d.sync += bb.eq(bb + 1)
        with m.If(en):
            m.d.sync += tail1.eq(bb == bpp - 1)
        m.d.comb += [self.a.ready.eq(self.b.valid & en), self.b.ready.eq(self.a.valid & en)]
        sums = []
        for i in range(L):
            a = lane(self.a.payload.data, i, 8, self.a_signed)
            b = lane(self.b.payload.data, i, 8, self.b_signed)
            pa = (a - self.za) * self.ma
            pb = (b - self.zb) * self.mb
            s = Signal(signed(max(len(pa), len(pb)) + 1), name=f"sum{i}")
            with m.If(en):
                m.d.sync += s.eq(pa + pb)
            sums.append(s)
        outs = []
        for i in range(L):
            r = requant_value(sums[i], 1, self.sh, self.zo, self.lo, self.hi, self.rounding)
            o = Signal(8, name=f"out{i}")
            with m.If(en):
                m.d.sync += o.eq(Mux(tail1, 0, r[:8]) if (bpp - 1) * L + i >= C else r[:8])
            outs.append(o)
        with m.If(en):
            m.d.sync += [v1.eq(fire), last1.eq(self.a.payload.last), v2.eq(v1), last2.eq(last1)]
        m.d.comb += [self.o.valid.eq(v2), self.o.payload.data.eq(Cat(*outs)), self.o.payload.last.eq(last2)]
        return m
