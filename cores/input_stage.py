# amaranth: UnusedElaboratable=no
"""Input stage: raw uint8 pixels -> per-channel 256-entry table (ROM) -> the first layer's 8-bit input.
Bit-exact to ``rtlgen.golden.run_input``.

Stream contract (:class:`InputStageCore`)
-----------------------------------------
* ``i``: ``H x W x C`` frames of uint8 pixel channels (e.g. RGB, C = 3), :mod:`rtlgen.cores.stream` layout with
  ``lanes`` lanes (3 lanes = one RGB pixel per beat; 1 lane = one channel per beat).
* ``o``: the same frame, same lanes, each value replaced by ``table[c][pixel]`` (8 bits, int8 or uint8 per the
  first layer's input type). Tail lanes stay zero.
* The identity table (every byte onto itself: an integer graph input fed as it is, ``rtlgen.ir.table_is_identity``)
  builds no ROM: the bytes pass through the output register.
* Otherwise one ROM per lane holding the tables of the channels that lane carries (``ceil(C / lanes) * 256`` entries), read
  synchronously (block/distributed RAM). Latency 1 cycle, one beat per cycle: cycles per frame
  ``H * W * ceil(C / lanes)``.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.ir import table_is_identity

from .arith import count_beats
from .interface import LayerCore
from .stream import act_signature, beats_per_pixel

__all__ = ["InputStageCore"]


class InputStageCore(LayerCore, wiring.Component):
    """Input stage: raw uint8 pixels through a 256-entry table per channel (the quantized preprocessing).

    Parameters
    ----------
    table : int array ``[C, 256]``
        Output code per channel and pixel value (int8 or uint8 range).
    lanes : int
        Channels per beat (one pixel per beat).
    shape : (H, W, C) or None
        Frame shape (the cycle model only).

    Members
    -------
    i : ``In(act_signature(lanes))``
        Raw pixels, raster order.
    o : ``Out(act_signature(lanes))``
        Their table codes.
    """

    def __init__(self, table, lanes: int = 3, shape=None):
        """``table``: int [C, 256], values in int8 or uint8 range. ``shape`` (H, W, C) only feeds the cycle model."""
        self.table = np.asarray(table, dtype=np.int64)
        if self.table.ndim != 2 or self.table.shape[1] != 256:
            raise ValueError("input table must be [C, 256]")
        if self.table.min() < -128 or self.table.max() > 255:
            raise ValueError("input table values must fit 8 bits")
        self.C = self.table.shape[0]
        #: the table is the identity on the bus (an integer graph input fed as it is): no ROM, a register
        self.passthrough = table_is_identity(self.table)
        self.lanes = lanes
        self.shape = tuple(shape) if shape is not None else None
        super().__init__({"i": In(act_signature(lanes)), "o": Out(act_signature(lanes))})

    @classmethod
    def from_layer(cls, layer, lanes: int = 3):
        return cls(layer.table, lanes, layer.in_shape)

    @classmethod
    def plan_knobs(cls, layer, lp, ctx=None) -> dict:
        return {"lanes": layer.in_shape[2]}  # one pixel per beat: the top's input port (all C channels per beat)

    @classmethod
    def plan_cycles(cls, layer, lp, ctx=None) -> int:
        H, W, C = layer.in_shape
        return H * W

    def cycles_per_frame(self) -> int:
        H, W, C = self.shape
        return H * W * beats_per_pixel(C, self.lanes)

    latency = 1

    def rom(self, i: int) -> list[int]:
        """Contents of lane ``i``'s ROM: beat ``b`` of a pixel uses entries ``b*256 .. b*256+255``."""
        words = []
        for b in range(beats_per_pixel(self.C, self.lanes)):
            c = b * self.lanes + i
            words += [int(v) & 0xFF for v in self.table[c]] if c < self.C else [0] * 256
        return words

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        bpp = beats_per_pixel(self.C, L)
        b = Signal(range(max(bpp, 2)))
        en = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(en)
        fire = self.i.valid & en
        count_beats(m, b, fire, self.i.payload.last, bpp)
        if self.passthrough:  # the identity table: the bytes pass through the output register, no ROM
            with m.If(en):
                m.d.sync += self.o.payload.data.eq(self.i.payload.data)
        else:
            outs = []
            for i in range(L):
                mem = memory.Memory(shape=8, depth=256 * bpp, init=self.rom(i))
                m.submodules[f"table{i}"] = mem
                rp = mem.read_port()
                px = self.i.payload.data[i * 8 : (i + 1) * 8]
                m.d.comb += [rp.addr.eq(Cat(px, b) if bpp > 1 else px), rp.en.eq(en)]
                outs.append(rp.data)
            m.d.comb += self.o.payload.data.eq(Cat(*outs))
        with m.If(en):
            m.d.sync += [self.o.valid.eq(self.i.valid), self.o.payload.last.eq(self.i.payload.last)]
        return m
