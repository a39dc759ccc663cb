"""Argmax core: the class index of a logits stream (ties: lowest index, like ``numpy.argmax``).

Stream contract (:class:`ArgmaxCore`)
-------------------------------------
* ``i``: one ``1 x 1 x n`` frame of logits per ``last`` (:mod:`rtlgen.cores.stream`, ``lanes`` lanes of ``width``
  bits, signed or unsigned; e.g. the dense core's int8 or raw int32 output).
* ``o``: one beat per frame, ``last = 1``, one lane of ``index_width`` bits: the index of the largest value; on
  ties the lowest index wins (a later value replaces the running best only when strictly greater).
* Latency 1 cycle after the frame's final beat; cycles per frame ``ceil(n / lanes)``.
* Frame boundary: ``i.last``. A short frame (``last`` before beat ``ceil(n / lanes) - 1``) gives its one result
  beat at its ``last`` (the index of the largest value received); a long frame gives its result at beat
  ``ceil(n / lanes) - 1`` and its excess beats are taken and dropped up to and including its ``last``. Exactly one
  output beat per input frame either way. (In an rtlgen network its input comes from the dense core, whose frames
  are already well formed.)
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .arith import lane, tree_reduce
from .stream import act_signature, beats_per_pixel

__all__ = ["ArgmaxCore"]


class ArgmaxCore(wiring.Component):
    """Class index of a logits stream (lowest index on ties).

    Parameters
    ----------
    n : int
        Logits per frame (classes).
    lanes, width : int
        Logits per beat and bits per logit.
    is_signed : bool
        Signed logits.
    index_width : int or None
        Bits of the index (default: enough for ``n``).

    Members
    -------
    i : ``In(act_signature(lanes, width))``
        Logits, ``ceil(n / lanes)`` beats per frame.
    o : ``Out(act_signature(1, index_width))``
        One beat per frame: the index of the largest logit.
    """

    def __init__(self, n: int, lanes: int = 1, width: int = 8, is_signed: bool = True, index_width: int | None = None):
        if n < 1:
            raise ValueError("argmax needs at least one class")
        self.n, self.lanes, self.width, self.is_signed = n, lanes, width, is_signed
        self.index_width = index_width or max(1, (n - 1).bit_length())
        if (n - 1).bit_length() > self.index_width:
            raise ValueError(f"index width {self.index_width} cannot hold class {n - 1}")
        super().__init__({"i": In(act_signature(lanes, width)), "o": Out(act_signature(1, self.index_width))})

    def cycles_per_frame(self) -> int:
        return beats_per_pixel(self.n, self.lanes)

    latency = 1

    def elaborate(self, platform):
        m = Module()
        L, n = self.lanes, self.n
        nb = beats_per_pixel(n, L)
        iw = self.index_width
        b = Signal(range(max(nb, 2)))
        vshape = signed(self.width) if self.is_signed else unsigned(self.width)
        best_v = Signal(vshape)
        best_i = Signal(iw)
        out_free = ~self.o.valid | self.o.ready
        drop = Signal()  # long frame: excess beats up to the next 'last' are discarded
        m.d.comb += self.i.ready.eq(out_free | drop)
        step = self.i.valid & out_free & ~drop
        with m.If(drop & self.i.valid & self.i.payload.last):
            m.d.sync += drop.eq(0)

        cands = []
        for i in range(L):
            valid = Const(1, 1) if (nb - 1) * L + i < n else (b != nb - 1)
            idx = Signal(iw, name=f"idx{i}")
            m.d.comb += idx.eq(b * L + i)
            cands.append((valid, lane(self.i.payload.data, i, self.width, self.is_signed), idx))

        def pick(a, c):
            take = c[0] & (~a[0] | (c[1] > a[1]))
            return (a[0] | c[0], Mux(take, c[1], a[1]), Mux(take, c[2], a[2]))

        _, bv, bi = tree_reduce(cands, pick)
        first = b == 0
        upd = first | (bv > best_v)
        new_v = Mux(upd, bv, best_v)
        new_i = Mux(upd, bi, best_i)
        end = (b == nb - 1) | self.i.payload.last
        with m.If(step):
            m.d.sync += [best_v.eq(new_v), best_i.eq(new_i)]
            with m.If(end):
                m.d.sync += [b.eq(0), self.o.valid.eq(1), self.o.payload.data.eq(new_i), self.o.payload.last.eq(1),
                             drop.eq(~self.i.payload.last)]
            with m.Else():
                m.d.sync += b.eq(b + 1)
        with m.If(self.o.ready & ~(step & end)):
            m.d.sync += self.o.valid.eq(0)
        return m
