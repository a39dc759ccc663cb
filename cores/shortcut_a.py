# amaranth: UnusedElaboratable=no
"""Option-A shortcut: stride-``s`` spatial subsampling plus channel padding with the zero point (parameter-free
ResNet shortcut). Bit-exact to ``rtlgen.golden.run_shortcut_a``.

Stream contract (:class:`ShortcutACore`)
----------------------------------------
* ``i``: ``H x W x C`` frames (:mod:`rtlgen.cores.stream`, ``lanes_in`` 8-bit lanes).
* ``o``: ``ceil(H/s) x ceil(W/s) x (pad_before + C + pad_after)`` frames, ``lanes_out`` lanes: pixels ``(y, x)`` with
  ``y % s == 0 and x % s == 0`` are kept (others are consumed and dropped); each kept pixel is preceded by
  ``pad_before`` and followed by ``pad_after`` channels of ``pad_value``.
* A sequencer emits, per kept pixel, pad beats, the pixel's input beats and pad beats (each with its count of valid
  values) into a value packer that regroups them into ``lanes_out``-lane beats of the padded pixel.
* Latency 1-2 cycles; cycles per frame: :meth:`ShortcutACore.cycles_per_frame` (a beat-level model of the input
  side -- input beats plus generated pad beats -- and the output side).
* Frame boundary: ``i.last`` (positions are counted, ``last`` realigns). A short frame (``last`` before beat
  ``H*W*ceil(C/lanes_in) - 1``) is completed as if its missing input beats carried ``pad_value`` (one beat per
  cycle, ``i.ready`` low meanwhile); a long frame's excess beats are taken and dropped up to and including its
  ``last``. Either way exactly one full output frame, ``last`` on its final beat, leaves per input frame;
  well-formed frames take no extra cycle.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .adapters import Packer, packer_cycles, value_counts
from .interface import LayerCore
from .stream import act_signature, beats_per_pixel

__all__ = ["ShortcutACore"]


class ShortcutACore(LayerCore, wiring.Component):
    """Option-A shortcut: stride-``s`` spatial subsample plus zero-point channel padding.

    Parameters
    ----------
    in_shape : (H, W, C)
        Input frame.
    stride : int
        Subsampling stride (rows and columns).
    pad_before, pad_after, pad_value : int
        Channels added before / after the input's, filled with ``pad_value`` (the zero point).
    lanes_in, lanes_out : int
        Channels per input / output beat.

    Members
    -------
    i : ``In(act_signature(lanes_in))``
        The block input.
    o : ``Out(act_signature(lanes_out))``
        The subsampled, padded frame.
    """

    def __init__(self, in_shape, stride: int = 2, pad_before: int = 0, pad_after: int = 0, pad_value: int = 0,
                 lanes_in: int = 1, lanes_out: int = 1):
        self.in_shape = tuple(int(x) for x in in_shape)
        H, W, C = self.in_shape
        self.s, self.pb, self.pa, self.pad_value = stride, pad_before, pad_after, int(pad_value)
        self.lanes_in, self.lanes_out = lanes_in, lanes_out
        self.out_shape = (math.ceil(H / stride), math.ceil(W / stride), C + pad_before + pad_after)
        super().__init__({"i": In(act_signature(lanes_in)), "o": Out(act_signature(lanes_out))})

    @classmethod
    def from_layer(cls, layer, lanes_in: int = 1, lanes_out: int = 1):
        return cls(layer.in_shape, layer.stride, layer.pad_before, layer.pad_after, layer.pad_value, lanes_in,
                   lanes_out)

    @classmethod
    def plan_knobs(cls, layer, lp, ctx=None) -> dict:
        return {"lanes_in": lp.lanes_out, "lanes_out": lp.lanes_out}

    def cycles_per_frame(self) -> int:
        """Steady-state cycles per frame without stalls: a beat-level model of the sequencer and the value packer
        (kept rows are often output-bound and drain into the following dropped rows, so neither a sum of per-row
        maxima nor the max of the totals is exact)."""
        return self._simulate(frames=3)

    def _simulate(self, frames: int) -> int:
        H, W, C = self.in_shape
        Ho, Wo, Co = self.out_shape
        M = self.lanes_in
        kept = value_counts(self.pb, M) + value_counts(C, M) + value_counts(self.pa, M)
        dropped = [0] * beats_per_pixel(C, M)
        items = []  # per sequencer cycle: k values pushed into the packer, or 0 for a dropped input beat
        for y in range(H):
            for x in range(W):
                items += kept if (y % self.s == 0 and x % self.s == 0) else dropped
        return packer_cycles(items, M, self.lanes_out, Co, Ho * Wo * beats_per_pixel(Co, self.lanes_out), frames)

    latency = 2

    def elaborate(self, platform):
        m = Module()
        H, W, C = self.in_shape
        Ho, Wo, Co = self.out_shape
        M, s = self.lanes_in, self.s
        ks = value_counts(self.pb, M) + value_counts(C, M) + value_counts(self.pa, M)  # what the sequencer pushes
        m.submodules.packer = pk = Packer(M, self.lanes_out, Co, k_values=ks)
        wiring.connect(m, pk.o, wiring.flipped(self.o))

        bpp = beats_per_pixel(C, M)
        n_pre, n_post = math.ceil(self.pb / M), math.ceil(self.pa / M)
        x = Signal(range(max(W, 2)))
        y = Signal(range(max(H, 2)))
        xs = Signal(range(max(s, 2)))  # x % s
        ys = Signal(range(max(s, 2)))
        ib = Signal(range(max(bpp, 2)))
        pc = Signal(range(max(n_pre, n_post, 2)))
        keep = (xs == 0) & (ys == 0)
        final_px = (y == (Ho - 1) * s) & (x == (Wo - 1) * s)
        pad_word = Cat(*(Const(self.pad_value & 0xFF, 8) for _ in range(M)))
        in_k = Mux(ib == bpp - 1, C - (bpp - 1) * M, M) if bpp > 1 else C

        # frame boundary from 'last': a short frame is completed by ``fill`` (pad_value beats, no input taken), a
        # long one's excess beats are dropped (``drop``) up to and including its 'last'
        fill = Signal()
        drop = Signal()
        src_valid = fill | (self.i.valid & ~drop)
        src_data = Mux(fill, pad_word, self.i.payload.data)
        src_ready = Signal()
        m.d.comb += self.i.ready.eq(drop | (src_ready & ~fill))
        fire = src_valid & src_ready
        final_in = (y == H - 1) & (x == W - 1) & (ib == bpp - 1)
        with m.If(fire):
            with m.If(final_in):
                m.d.sync += [fill.eq(0), drop.eq(~fill & ~self.i.payload.last)]
            with m.Elif(~fill & self.i.payload.last):
                m.d.sync += fill.eq(1)
        with m.If(drop & self.i.valid & self.i.payload.last):
            m.d.sync += drop.eq(0)
        # coordinates of the next pixel
        row_end = x == W - 1
        frame_end = row_end & (y == H - 1)
        nxs = Mux(row_end, 0, Mux(xs == s - 1, 0, xs + 1))
        nys = Mux(frame_end, 0, Mux(row_end, Mux(ys == s - 1, 0, ys + 1), ys))
        keep_next = (nxs == 0) & (nys == 0)
        first = "PRE" if n_pre else "DATA"

        def next_pixel():
            m.d.sync += [xs.eq(nxs), ys.eq(nys), x.eq(Mux(row_end, 0, x + 1)),
                         y.eq(Mux(frame_end, 0, Mux(row_end, y + 1, y)))]
            if n_pre:
                with m.If(keep_next):
                    m.next = "PRE"
                with m.Else():
                    m.next = "DATA"
            else:
                m.next = "DATA"

        def pad_beats(n, total, gate):
            tail = total - (n - 1) * M
            m.d.comb += [pk.i.valid.eq(gate), pk.i.payload.data.eq(pad_word),
                         pk.i.payload.k.eq(Mux(pc == n - 1, tail, M) if n > 1 else tail)]

        with m.FSM(init=first, name="seq"):
            if n_pre:
                with m.State("PRE"):
                    # leading pads wait for the pixel's first input beat: no output runs ahead of its frame
                    pad_beats(n_pre, self.pb, src_valid)
                    with m.If(pk.i.ready & src_valid):
                        with m.If(pc == n_pre - 1):
                            m.d.sync += pc.eq(0)
                            m.next = "DATA"
                        with m.Else():
                            m.d.sync += pc.eq(pc + 1)
            with m.State("DATA"):
                with m.If(keep):
                    m.d.comb += [pk.i.valid.eq(src_valid), src_ready.eq(pk.i.ready),
                                 pk.i.payload.data.eq(src_data), pk.i.payload.k.eq(in_k),
                                 pk.i.payload.last.eq(final_px & (ib == bpp - 1) & (n_post == 0))]
                with m.Else():
                    m.d.comb += src_ready.eq(1)
                with m.If(fire):
                    with m.If(ib == bpp - 1):
                        m.d.sync += ib.eq(0)
                        if n_post:
                            with m.If(keep):
                                m.next = "POST"
                            with m.Else():
                                next_pixel()
                        else:
                            next_pixel()
                    with m.Else():
                        m.d.sync += ib.eq(ib + 1)
            if n_post:
                with m.State("POST"):
                    pad_beats(n_post, self.pa, 1)
                    m.d.comb += pk.i.payload.last.eq(final_px & (pc == n_post - 1))
                    with m.If(pk.i.ready):
                        with m.If(pc == n_post - 1):
                            m.d.sync += pc.eq(0)
                            next_pixel()
                        with m.Else():
                            m.d.sync += pc.eq(pc + 1)
        return m
