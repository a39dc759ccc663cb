# amaranth: UnusedElaboratable=no
"""Standalone residual add core (its arithmetic: :mod:`rtlgen.cores.arith`).

Stream contract (:class:`AddCore`)
---------------------------------
* Ports: ``a`` and ``b`` (inputs), ``o`` (output); all follow :mod:`rtlgen.cores.stream` with the same ``lanes``,
  8-bit lanes (int8 or uint8 per the quantized types), the same frame shape ``H x W x C`` (NHWC raster order).
* Function, per channel value (golden ``run_add``):
  ``o = clamp(rshift_round((a - za) * ma + (b - zb) * mb, sh) + zo, lo, hi)`` with the rounding mode of the layer
  (half-to-even by default); a fused ReLU is ``lo = zo``; an ``out_shift`` shifts that left (zero point 0).
* Join: a beat is consumed from ``a`` and ``b`` in the same cycle (both valid); ``last`` of the output is ``a``'s.
* Latency :attr:`AddCore.latency` (8 or 9 cycles: every adder, the multipliers' M/P registers, the rounding and the
  clamp in their own register stage, then a 2-cycle output FIFO), one beat per cycle: cycles per frame
  ``H * W * ceil(C / lanes)``. ``a.ready``/``b.ready`` come from a registered credit flag (and the other input's
  ``valid``), never from ``o.ready`` in the same cycle.
"""

from __future__ import annotations


from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import (REQUANT_PIPE_STAGES, check_out_shift, const_mul, count_beats, credit_fifo, delay, lane, requant_pipe,
                    shift_out)
from .interface import FrameStreamCore
from .stream import act_signature, beats_per_pixel

__all__ = ["AddCore"]


class AddCore(FrameStreamCore, wiring.Component):
    """Elementwise ``clamp(rshift_round((a-za)*ma + (b-zb)*mb, sh) + zo, lo, hi)`` of two aligned streams.

    Parameters
    ----------
    shape : (H, W, C)
        Frame shape of both inputs and the output.
    lanes : int
        Channels per beat on every port.
    za, zb, ma, mb : int
        Zero points and (non-negative) multipliers of ``a`` and ``b``.
    sh, zo, lo, hi : int
        Rounding right shift, output zero point and clamp range (a fused ReLU is ``lo = zo``).
    a_signed, b_signed : bool
        int8 (else uint8) inputs.
    rounding : str
        A mode of :data:`rtlgen.quant.ROUNDING_MODES`.
    out_shift, out_hi :
        Exact left shift of the clamped result (zero point 0): wiring; ``out_hi`` saturates the shifted value.

    Members
    -------
    a : ``In(act_signature(lanes))``
        First addend (its ``last`` is the output's).
    b : ``In(act_signature(lanes))``
        Second addend, taken in the same cycle as ``a``.
    o : ``Out(act_signature(lanes))``
        The requantized sum.
    """

    def __init__(self, shape, lanes: int, za: int, zb: int, ma: int, mb: int, sh: int, zo: int, lo: int, hi: int,
                 a_signed: bool = True, b_signed: bool = True, rounding: str = "half_even", out_shift: int = 0,
                 out_hi=None):
        self.shape = tuple(shape)
        self.lanes = lanes
        self.za, self.zb, self.ma, self.mb, self.sh, self.zo = int(za), int(zb), int(ma), int(mb), int(sh), int(zo)
        self.lo, self.hi = int(lo), int(hi)
        self.a_signed, self.b_signed = a_signed, b_signed
        self.rounding = rounding
        self.out_shift, self.out_hi = int(out_shift), out_hi
        check_out_shift(self.out_shift, self.out_hi, self.zo, self.lo, self.hi)
        if self.ma < 0 or self.mb < 0:
            raise ValueError("add multipliers must be non-negative")
        super().__init__({"a": In(act_signature(lanes)), "b": In(act_signature(lanes)), "o": Out(act_signature(lanes))})

    @classmethod
    def from_layer(cls, layer, lanes: int = 1):
        lo, hi = layer.bounds
        return cls(layer.in_shape, lanes, layer.a_q.zero_point, layer.b_q.zero_point, layer.ma, layer.mb, layer.sh,
                   layer.zp_out, lo, hi, layer.a_q.signed, layer.b_q.signed, layer.rounding, layer.out_shift, layer.out_hi)

    @property
    def has_mult(self) -> bool:
        return any(k & (k - 1) for k in (self.ma, self.mb))

    @property
    def pipe_depth(self) -> int:
        """Input register, zero points, products (M [+ P] register), sum, rounding, clamp."""
        return 4 + int(self.has_mult) + REQUANT_PIPE_STAGES

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        C = self.shape[2]
        bpp = beats_per_pixel(C, L)
        v1, last1, tail1 = Signal(name="v1"), Signal(name="last1"), Signal(name="tail1")
        ok = Signal()
        fire = self.a.valid & self.b.valid & ok
        m.d.comb += [self.a.ready.eq(self.b.valid & ok), self.b.ready.eq(self.a.valid & ok)]
        bb = Signal(range(max(bpp, 2)))
        count_beats(m, bb, fire, self.a.payload.last, bpp)
        # free-running pipeline: stage 1 inputs, 2 zero points, 3 (+4) products, then sum, rounding, clamp
        m.d.sync += [v1.eq(fire), last1.eq(self.a.payload.last), tail1.eq(bb == bpp - 1)]
        outs = []
        for i in range(L):
            a1 = Signal(signed(9), name=f"a1_{i}")
            b1 = Signal(signed(9), name=f"b1_{i}")
            m.d.sync += [a1.eq(lane(self.a.payload.data, i, 8, self.a_signed)),
                         b1.eq(lane(self.b.payload.data, i, 8, self.b_signed))]
            da = Signal(signed(10), name=f"da_{i}")
            db = Signal(signed(10), name=f"db_{i}")
            m.d.sync += [da.eq(a1 - self.za), db.eq(b1 - self.zb)]
            pa, pb = const_mul(da, self.ma), const_mul(db, self.mb)
            pa3 = Signal(pa.shape(), name=f"pa_{i}")
            pb3 = Signal(pb.shape(), name=f"pb_{i}")
            m.d.sync += [pa3.eq(pa), pb3.eq(pb)]
            if self.has_mult:
                pa3, pb3 = delay(m, pa3, 1, pa3.name), delay(m, pb3, 1, pb3.name)
            s = Signal(signed(max(len(pa3), len(pb3)) + 1), name=f"sum{i}")
            m.d.sync += s.eq(pa3 + pb3)
            outs.append(requant_pipe(m, s, self.sh, self.zo, self.lo, self.hi, self.rounding, f"rq{i}"))
        D = self.pipe_depth
        vD, lastD, tailD = (delay(m, x, D - 1, x.name) for x in (v1, last1, tail1))
        outs = [shift_out(o, self.out_shift, self.out_hi) for o in outs]
        outs = [Mux(tailD, 0, o) if (bpp - 1) * L + i >= C else o for i, o in enumerate(outs)]
        m.d.comb += ok.eq(credit_fifo(m, "out", fire, self.o, vD, Cat(*outs), lastD, D))
        return m
