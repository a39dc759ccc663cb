"""Stream plumbing: a FIFO (``amaranth.lib.fifo.SyncFIFOBuffered`` behind stream ports) and a skid buffer.

Stream contract
---------------
* :class:`StreamFIFO`: ``i`` -> ``o``, any payload (default the activation layout of :mod:`rtlgen.cores.stream`,
  ``lanes`` x ``width`` bits + ``last``). Order preserved, nothing dropped or duplicated; ``i.ready`` is low when
  ``depth`` beats are stored. Latency 1 cycle (buffered read port), one beat per cycle in and out; cycles per frame =
  the number of beats. ``i.ready`` does not depend on ``o.ready`` combinationally.
* :class:`SkidBuffer`: a full-throughput register slice (two entries): ``o.valid``/``o.payload`` come from a register
  and ``i.ready`` is a register output, so it cuts every combinational path between the two sides. Latency 1 cycle,
  one beat per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .stream import act_layout

__all__ = ["StreamFIFO", "SkidBuffer"]


class _Plumbing(wiring.Component):
    """A stream stage ``i`` -> ``o`` of one payload layout (default the activation layout), one beat per cycle,
    latency 1 cycle; ``extra`` ports beside them."""

    latency = 1

    def __init__(self, lanes: int, width: int, layout, **extra):
        self.layout = layout if layout is not None else act_layout(lanes, width)
        sig = stream.Signature(self.layout)
        super().__init__({"i": In(sig), "o": Out(sig), **extra})

    def cycles_for(self, beats: int) -> int:
        return beats


class StreamFIFO(_Plumbing):
    """``depth``-entry stream FIFO (``SyncFIFOBuffered``: the read side is a register, BRAM/LUTRAM inside).

    Parameters
    ----------
    depth : int
        Entries.
    lanes, width : int
        Lanes per beat and bits per lane (or ``layout``).
    layout :
        Payload layout (default: :func:`rtlgen.cores.stream.act_layout`).

    Members
    -------
    i : ``In(stream.Signature(layout))``
        Beats in.
    o : ``Out(stream.Signature(layout))``
        The same beats, in order.
    level : ``Out(range(depth + 1))``
        Entries held.
    """

    def __init__(self, depth: int, lanes: int = 1, width: int = 8, layout=None):
        if depth < 1:
            raise ValueError("FIFO depth must be >= 1")
        self.depth = depth
        super().__init__(lanes, width, layout, level=Out(range((3 if depth == 2 else depth) + 1)))

    def elaborate(self, platform):
        m = Module()
        width = data.Layout.cast(self.layout).size
        # depth 2 is built as 3: amaranth's buffered FIFO of depth 2 has a zero-width inner address
        depth = 3 if self.depth == 2 else self.depth
        m.submodules.fifo = f = fifo.SyncFIFOBuffered(width=width, depth=depth)
        m.d.comb += [
            f.w_data.eq(self.i.payload.as_value()),
            f.w_en.eq(self.i.valid),
            self.i.ready.eq(f.w_rdy),
            self.o.valid.eq(f.r_rdy),
            self.o.payload.eq(f.r_data),
            f.r_en.eq(self.o.ready),
            self.level.eq(f.level),
        ]
        return m


class SkidBuffer(_Plumbing):
    """Register slice with a skid entry: full throughput, registered ``valid``/``payload`` and ``ready``.

    Parameters
    ----------
    lanes, width : int
        Lanes per beat and bits per lane (or ``layout``).
    layout :
        Payload layout.

    Members
    -------
    i : ``In(stream.Signature(layout))``
        Beats in.
    o : ``Out(stream.Signature(layout))``
        The same beats, one register later.
    """

    def __init__(self, lanes: int = 1, width: int = 8, layout=None):
        super().__init__(lanes, width, layout)

    def elaborate(self, platform):
        m = Module()
        width = data.Layout.cast(self.layout).size
        o_valid = Signal()
        o_data = Signal(width)
        s_valid = Signal()
        s_data = Signal(width)
        m.d.comb += [
            self.i.ready.eq(~s_valid),
            self.o.valid.eq(o_valid),
            self.o.payload.eq(o_data),
        ]
        with m.If(self.o.ready | ~o_valid):
            with m.If(s_valid):
                m.d.sync += [o_valid.eq(1), o_data.eq(s_data), s_valid.eq(0)]
            with m.Else():
                m.d.sync += [o_valid.eq(self.i.valid), o_data.eq(self.i.payload.as_value())]
        with m.Elif(self.i.valid & ~s_valid):
            m.d.sync += [s_valid.eq(1), s_data.eq(self.i.payload.as_value())]
        return m
