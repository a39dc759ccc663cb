"""Elementwise requantization core: ``clamp(rshift_round((x - zp_in) * m, sh) + zp_out, lo, hi)`` per value.

Implements :class:`rtlgen.ir.Requantize` (a QONNX Quant chain that changes scale or range, or a clamp such as a ReLU
on an already-quantized activation), bit-exact to ``golden.run_requant``.

Stream contract
---------------
* ``i``/``o``: activation streams (:mod:`rtlgen.cores.stream`), ``lanes`` x 8 bits, same frame shape in and out;
  ``last`` passes through. Tail lanes past ``C`` come out zero.
* Latency :attr:`RequantCore.latency` (7 or 8 cycles: input, zero point, product [+ P register], rounding, clamp,
  each in its own register stage, then a 2-cycle output FIFO); one beat per cycle; cycles per frame
  ``H*W*ceil(C/lanes)``. ``i.ready`` is a registered credit flag: it never depends on ``o.ready`` in the same
  cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import REQUANT_PIPE_STAGES, const_mul, count_beats, credit_fifo, delay, lane, requant_pipe
from .interface import FrameStreamCore
from .stream import act_signature, beats_per_pixel

__all__ = ["RequantCore"]


class RequantCore(FrameStreamCore, wiring.Component):
    """Standalone requantization ``clamp(rshift_round((x - zp_in) * m, sh) + zp_out, lo, hi)`` of one stream.

    Parameters
    ----------
    shape : (H, W, C)
        Frame shape.
    lanes : int
        Channels per beat.
    zp_in, m, sh, zp_out, lo, hi : int
        Input zero point, multiplier, rounding shift, output zero point, clamp range.
    in_signed : bool
        int8 (else uint8) input.
    rounding : str
        A mode of :data:`rtlgen.quant.ROUNDING_MODES`.

    Members
    -------
    i : ``In(act_signature(lanes))``
        Input codes.
    o : ``Out(act_signature(lanes))``
        Requantized codes.
    """

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

    @property
    def pipe_depth(self) -> int:
        """Input register, zero point, product (M [+ P] register), rounding, clamp."""
        return 3 + int(bool(self.m & (self.m - 1))) + REQUANT_PIPE_STAGES

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        C = self.shape[2]
        bpp = beats_per_pixel(C, L)
        ok = Signal()
        v1, last1, tail1 = Signal(name="v1"), Signal(name="last1"), Signal(name="tail1")
        bb = Signal(range(max(bpp, 2)))
        m.d.comb += self.i.ready.eq(ok)
        fire = self.i.valid & ok
        count_beats(m, bb, fire, self.i.payload.last, bpp)
        m.d.sync += [v1.eq(fire), last1.eq(self.i.payload.last), tail1.eq(bb == bpp - 1)]
        outs = []
        for k in range(L):
            x1 = Signal(signed(9), name=f"x1_{k}")
            m.d.sync += x1.eq(lane(self.i.payload.data, k, 8, self.in_signed))
            d = Signal(signed(10), name=f"d_{k}")
            m.d.sync += d.eq(x1 - self.zp_in)
            pe = const_mul(d, self.m)
            p = Signal(pe.shape(), name=f"prod{k}")
            m.d.sync += p.eq(pe)
            if self.m & (self.m - 1):
                p = delay(m, p, 1, p.name)
            outs.append(requant_pipe(m, p, self.sh, self.zp_out, self.lo, self.hi, self.rounding, f"rq{k}"))
        D = self.pipe_depth
        vD, lastD, tailD = (delay(m, x, D - 1, x.name) for x in (v1, last1, tail1))
        outs = [Mux(tailD, 0, o) if (bpp - 1) * L + k >= C else o for k, o in enumerate(outs)]
        m.d.comb += ok.eq(credit_fifo(m, "out", fire, self.o, vD, Cat(*outs), lastD, D))
        return m
