"""Stream fork (broadcast): one activation stream to N consumers.

Stream contract
---------------
* ``i``: any stream of the given payload layout; ``o0 ... o{N-1}``: the same beats, each consumer at its own pace.
* A beat leaves ``i`` once every output has taken it; an output that already took the current beat holds ``valid``
  low until the next one (a ``taken`` flag per output), so no beat is lost or duplicated whatever the ready pattern.
* Latency 0 (combinational valid/payload path), throughput one beat per cycle when all consumers are ready.
  Cycles per frame: the beats of the frame (plus consumer stalls).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Fork"]


class Fork(wiring.Component):
    """Broadcast of one stream to ``n`` consumers (a beat leaves when every output has taken it).

    Parameters
    ----------
    layout :
        Payload layout of every port.
    n : int
        Outputs.

    Members
    -------
    i : ``In(stream.Signature(layout))``
        The stream.
    o0 ... o{n-1} : ``Out(stream.Signature(layout))``
        Its copies (:meth:`out` returns output ``k``).
    """

    def __init__(self, layout, n: int):
        if n < 1:
            raise ValueError("a fork needs at least one output")
        self.n = n
        self.layout = layout
        super().__init__({"i": In(stream.Signature(layout)), **{f"o{k}": Out(stream.Signature(layout)) for k in range(n)}})

    def out(self, k: int):
        return getattr(self, f"o{k}")

    @staticmethod
    def cycles_for(beats: int) -> int:
        return beats

    def elaborate(self, platform):
        m = Module()
        taken = [Signal(name=f"taken{k}") for k in range(self.n)]
        done = [taken[k] | self.out(k).ready for k in range(self.n)]
        all_done = Signal()
        m.d.comb += all_done.eq(1)
        for k in range(self.n):
            o = self.out(k)
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~taken[k])]
        acc = done[0]
        for d in done[1:]:
            acc = acc & d
        m.d.comb += [all_done.eq(acc), self.i.ready.eq(all_done)]
        with m.If(self.i.valid):
            for k in range(self.n):
                o = self.out(k)
                with m.If(all_done):
                    m.d.sync += taken[k].eq(0)
                with m.Elif(o.ready):
                    m.d.sync += taken[k].eq(1)
        return m
