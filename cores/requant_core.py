"""Elementwise requantization core: ``clamp(rshift_round((x - zp_in) * m, sh) + zp_out, lo, hi)`` per value.

Implements :class:`rtlgen.ir.Requantize` (a QONNX Quant chain that changes scale or range, or a clamp such as a ReLU
on an already-quantized activation), bit-exact to ``golden.run_requant``.

Stream contract
---------------
* ``i``/``o``: activation streams (:mod:`rtlgen.cores.stream`), ``lanes`` x 8 bits, same frame shape in and out;
  ``last`` passes through. Tail lanes past ``C`` come out zero.
* Latency 2 cycles (one register for the product, one for the rounded, clamped value); one beat per cycle;
  cycles per frame ``H*W*ceil(C/lanes)``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .add import lane, requant_value
from .stream import act_signature, beats_per_pixel

__all__ = ["RequantCore"]


class RequantCore(wiring.Component):
    def __init__(self, shape, lanes: int, zp_in: int, m: int, sh: int, zp_out: int, lo: int, hi: int,
                 in_signed: bool = True, rounding: str = "half_even"):
        self.shape = tuple(int(v) for v in shape)
        self.lanes = lanes
        self.zp_in, self.m, self.sh, self.zp_out, self.lo, self.hi = int(zp_in), int(m), int(sh), int(zp_out), int(lo), int(hi)
        self.in_signed = in_signed
        self.rounding = rounding
        super().__init__({"i": In(act_signature(lanes)), "o": Out(act_signature(lanes))})

    @classmethod
    def from_layer(cls, layer, lanes: int = 1):
        q = layer.out_q
        return cls(layer.in_shape, lanes, layer.in_q.zero_point, layer.m, layer.sh, q.zero_point, q.lo, q.hi,
                   layer.in_q.signed, layer.rounding)

    def cycles_per_frame(self) -> int:
        H, W, C = self.shape
        return H * W * beats_per_pixel(C, self.lanes)

    latency = 2

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        C = self.shape[2]
        bpp = beats_per_pixel(C, L)
        en = Signal()
        v1, v2, last1, last2, tail1 = Signal(), Signal(), Signal(), Signal(), Signal()
        bb = Signal(range(max(bpp, 2)))
        m.d.comb += [en.eq(~v2 | self.o.ready), self.i.ready.eq(en)]
        fire = self.i.valid & en
        with m.If(fire):
            with m.If((bb == bpp - 1) | self.i.payload.last):
                m.d.sync += bb.eq(0)
            with m.Else():
                m.d.sync += bb.eq(bb + 1)
        prods, outs = [], []
        for k in range(L):
            x = lane(self.i.payload.data, k, 8, self.in_signed)
            p = Signal(signed(len(x) + 2 + max(self.m, 1).bit_length()), name=f"prod{k}")
            with m.If(en):
                m.d.sync += p.eq((x - self.zp_in) * self.m)
            prods.append(p)
        for k, p in enumerate(prods):
            r = requant_value(p, 1, self.sh, self.zp_out, self.lo, self.hi, self.rounding)
            o = Signal(8, name=f"out{k}")
            with m.If(en):
                m.d.sync += o.eq(Mux(tail1, 0, r[:8]) if (bpp - 1) * L + k >= C else r[:8])
            outs.append(o)
        with m.If(en):
            m.d.sync += [v1.eq(fire), last1.eq(self.i.payload.last), tail1.eq(bb == bpp - 1), v2.eq(v1), last2.eq(last1)]
        m.d.comb += [self.o.valid.eq(v2), self.o.payload.data.eq(Cat(*outs)), self.o.payload.last.eq(last2)]
        return m
