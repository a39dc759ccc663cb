"""Lane-width converters (e.g. 3 lanes -> 1 lane, 1 -> N, M -> N) that preserve ``last``.

Stream contract (:class:`LaneConverter`)
----------------------------------------
* ``i``: frames of ``H x W x C`` at ``lanes_in`` lanes; ``o``: the same values at ``lanes_out`` lanes
  (:mod:`rtlgen.cores.stream` convention, ``width``-bit lanes, tail lanes zero).
* ``c_out`` (default ``c_in``) is the channel count of an output "pixel": the converter may regroup pixels, e.g.
  ``c_in=C, c_out=H*W*C`` turns a frame into one long vector (the dense core uses it to flatten its input). The
  number of values per frame is the same on both sides; their order never changes.
* ``last`` rides on the final value of the frame and comes out on the output beat holding it.
* Latency: 1 cycle from a full output beat's last value to the beat; throughput: ``max(beats in, beats out)``
  cycles per frame (one beat per cycle on the busier side). ``i.ready`` does not depend on ``o.ready``
  combinationally.

Implementation: when neither side has tail beats and one lane count divides the other, a beat splitter or
gatherer (no value buffer). Otherwise, with ``slots=True`` and pixels kept (``c_out == c_in``), two pixel slots
(``slots``: each channel register written from one fixed input lane, an output lane an AND-OR over its channels of
the two slots picked by a one-hot position; latency 1 cycle from a pixel's final input beat to its first output
beat); else a value buffer of ``2 * lanes_in + lanes_out - 1`` entries with a fill count (``pack``). Each cycle it may append the valid values of
one input beat and pop the values of one output beat (``lanes_out`` values, or the pixel's tail). The pack muxes grow
with ``buffer size x lanes``, the slots with the channels (yosys: 8 -> 3 lanes of 16 channels 1,204 LUT as a buffer,
144 as slots; 16 -> 6: 3,419 and 144; 1 -> 3 of 5: 50 as slots). The composition picks the cheaper
(:func:`rtlgen.plan.cost.lane_converter_slots`).
"""

from __future__ import annotations

import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.plan.geometry import converter_mode

from .arith import count_beats, tree_reduce
from .stream import act_signature, beats_per_pixel

__all__ = ["LaneConverter", "Packer", "packer_cycles", "value_counts"]


def value_counts(total: int, lanes: int) -> list[int]:
    """Valid values per beat when ``total`` values go out ``lanes`` per beat (the last beat may be partial)."""
    n = -(-total // lanes)
    return [lanes] * (n - 1) + [total - (n - 1) * lanes] if n else []


def packer_cycles(items_per_frame: list[int], m_lanes: int, n_lanes: int, c_out: int, out_beats_per_frame: int,
                  frames: int = 3) -> int:
    """Steady-state cycles per frame of a :class:`Packer` fed without stalls and drained without backpressure.

    ``items_per_frame``: one entry per producer cycle: ``k > 0`` pushes ``k`` values (waits while the packer is
    full), ``0`` is a cycle the producer spends without pushing (e.g. a dropped input beat). Beat-level model of
    the hardware below (same buffer size and ready rule).
    """
    B = 2 * m_lanes + n_lanes - 1
    k_outs = value_counts(c_out, n_lanes)
    items = items_per_frame * frames
    cnt = oc = nout = cyc = i = 0
    ends = []
    while len(ends) < frames:
        cyc += 1
        k_out = k_outs[oc]
        pop = k_out if cnt >= k_out else 0
        push = 0
        if i < len(items):
            if items[i] == 0:
                i += 1
            elif cnt <= B - m_lanes:
                push = items[i]
                i += 1
        if pop:
            oc = (oc + 1) % len(k_outs)
            nout += 1
            if nout % out_beats_per_frame == 0:
                ends.append(cyc)
        cnt += push - pop
    return ends[-1] - ends[-2] if frames > 1 else ends[-1]


class Packer(wiring.Component):
    """Core of the converters: input beats of up to ``m_lanes`` values with an explicit count ``k`` -> output beats
    of ``n_lanes`` values grouped in pixels of ``c_out`` values (:mod:`~rtlgen.cores.stream` layout).

    Parameters
    ----------
    m_lanes, n_lanes : lanes in / out; ``c_out``: values per output pixel; ``width``: bits per value.
    k_values : the counts ``k`` the producer sends (default every count ``1 .. m_lanes``); fewer values mean fewer
        candidates for the fill count (see Timing).

    Members
    -------
    i : ``In(stream.Signature({data: m_lanes x width, k: 0 .. m_lanes, last}))`` -- the first ``k`` lanes are
        values; ``last``: the ``k``-th value ends the frame.
    o : ``Out(act_signature(n_lanes, width))`` -- output beats, tail lanes zero, ``last`` on the beat holding the
        frame's final value.

    Timing (issue 19): a shifting value buffer of ``2*m + n - 1`` entries and its fill count, kept one-hot (``oh``).
    Every per-cycle decision is an AND-OR of registers and of the one-hot choices "how many values leave" (0, ``n``
    or the pixel's tail) and "how many arrive" (0 or a ``k``): which buffer entry takes which input lane is the
    one-hot count bit ANDed with the lane (no subtractor, no comparator, no mux tree), the next count is one of the
    shifts of ``oh`` by ``k - pop`` (wiring) picked by the choices, and ``o.valid`` / ``i.ready`` are flags registered
    a cycle ahead (each next flag an OR over the choices of "choice and the count shifted by it lies in the set").
    Earlier forms: ``cnt - pop`` then ``p - rem`` and ``idx < k`` per entry, 7 LUT levels and 2 carry chains (199 MHz
    estimated, ResNet8 @ Ultra96-V2's 2 -> 13 lane converter); a binary count with one adder per choice and tables of
    it, 4 LUT + 4 MUXF + 1 carry (281 MHz in that design).
    """

    def __init__(self, m_lanes: int, n_lanes: int, c_out: int, width: int = 8, k_values=None):
        self.M, self.N, self.c_out, self.width = m_lanes, n_lanes, c_out, width
        self.k_values = sorted({int(k) for k in k_values}) if k_values else list(range(1, m_lanes + 1))
        if not all(1 <= k <= m_lanes for k in self.k_values):
            raise ValueError(f"Packer: k values {self.k_values} outside 1..{m_lanes}")
        from amaranth.hdl import unsigned
        from amaranth.lib import data

        in_layout = data.StructLayout({"data": unsigned(m_lanes * width), "k": range(m_lanes + 1), "last": unsigned(1)})
        super().__init__({"i": In(stream.Signature(in_layout)), "o": Out(act_signature(n_lanes, width))})

    def elaborate(self, platform):
        m = Module()
        M, N, w = self.M, self.N, self.width
        B = 2 * M + N - 1  # room for one more input beat whenever the output can pop: no input stall
        bpp = beats_per_pixel(self.c_out, N)
        tail = self.c_out - (bpp - 1) * N
        buf = [Signal(w + 1, name=f"buf{p}") for p in range(B)]  # value | last flag << w
        # the fill count, one-hot: oh[v] <=> v values buffered (adding a constant is a shift of the bits)
        oh = Signal(B + 1, init=1, name="cnt_oh")
        oc = Signal(range(max(bpp, 2)))

        def among(vals, delta: int = 0) -> Value:
            """The fill count plus ``delta`` is one of ``vals``: an OR of one-hot register bits."""
            bits = [oh[v - delta] for v in sorted(set(vals)) if 0 <= v - delta <= B]
            return Cat(*bits).any() if bits else Const(0)

        # flags of the fill count, registered: computed a cycle ahead from the next count's choices (below)
        flag_sets = {"valid_tail": range(tail, B + 1), "valid_n": range(N, B + 1), "ready": range(0, B - M + 1)}
        flags = {k: Signal(init=int(0 in v), name=k) for k, v in flag_sets.items()}

        # output side: the first k_out buffered values (k_out = n, or the pixel's tail on its final beat)
        kol = (oc == bpp - 1) if bpp > 1 else Const(1)
        valid = Mux(kol, flags["valid_tail"], flags["valid_n"])
        lanes, last_bits = [], []
        for j in range(N):
            use = Const(1) if j < tail else ~kol
            lanes.append(Mux(use, buf[j][:w], 0))
            last_bits.append(use & buf[j][w])
        m.d.comb += [
            self.o.valid.eq(valid),
            self.o.payload.data.eq(Cat(*lanes)),
            self.o.payload.last.eq(Cat(*last_bits).any()),
        ]
        ofire = Signal()
        m.d.comb += ofire.eq(valid & self.o.ready)
        count_beats(m, oc, ofire, self.o.payload.last, bpp)
        pop = {0: ~ofire}  # values leaving -> its one-hot condition
        if bpp == 1 or tail == N:
            pop[tail if bpp == 1 else N] = ofire
        else:
            pop[N] = ofire & ~kol
            pop[tail] = ofire & kol

        # input side
        ready = flags["ready"]
        m.d.comb += self.i.ready.eq(ready)
        push = Signal()
        m.d.comb += push.eq(self.i.valid & ready)
        k = self.i.payload.k
        ins = []  # lane j: value | last flag | "arrives now"
        for j in range(M):
            flag = self.i.payload.last & (k == j + 1)
            ins.append(Cat(self.i.payload.data[j * w : (j + 1) * w], flag, push & (k > j)))
        arrive = {0: ~push, **{kv: push & (k == kv) for kv in self.k_values}}

        # buffer entry p after this cycle: input lane d = p + P - cnt when it arrives, else entry p + P
        # (a one-hot AND-OR over the fill count: no adder, no comparator)
        for p in range(B):
            cands = {}
            for P in pop:
                shifted = buf[p + P] if p + P < B else Const(0, w + 1)
                lane_of = {v: p + P - v for v in range(B + 1) if 0 <= p + P - v < M}
                if not lane_of:
                    cands[P] = shifted
                    continue
                sel = [oh[v] & ins[d][w + 1] for v, d in lane_of.items()]
                x = Const(0, w + 1)
                for (v, d), s_ in zip(lane_of.items(), sel):
                    x = x | Mux(s_, ins[d][: w + 1], 0)
                cands[P] = Mux(Cat(*sel).any(), x, shifted)
            nxt = cands[0]
            for P in sorted(P for P in cands if P):
                nxt = Mux(pop[P], cands[P], nxt)
            m.d.sync += buf[p].eq(nxt)

        # next fill count: one of the shifts of ``oh`` by k - pop, picked by the one-hot choices; the flags from
        # the same choices (each an OR of register bits, ANDed with its choice)
        choices = [(pc & kc, kv - P) for P, pc in pop.items() for kv, kc in arrive.items() if -B <= kv - P <= B]
        nxt_oh = Const(0, B + 1)
        for c, dlt in choices:
            sh = Cat(Const(0, dlt), oh)[: B + 1] if dlt >= 0 else (oh >> -dlt)
            nxt_oh = nxt_oh | Mux(c, sh, 0)
        m.d.sync += oh.eq(nxt_oh)
        for name, vals in flag_sets.items():
            m.d.sync += flags[name].eq(Cat(*(c & among(vals, dlt) for c, dlt in choices)).any())
        return m


class LaneConverter(wiring.Component):
    """``lanes_in`` -> ``lanes_out`` lanes for pixels of ``c_in`` channels (output pixels of ``c_out`` values).

    Parameters
    ----------
    c_in : int
        Values per input pixel.
    lanes_in, lanes_out : int
        Values per input / output beat.
    c_out : int or None
        Values per output pixel (default ``c_in``).
    width : int
        Bits per value.

    Members
    -------
    i : ``In(act_signature(lanes_in, width))``
        Input beats (a pixel's tail beat zero-padded).
    o : ``Out(act_signature(lanes_out, width))``
        Output beats, ``last`` preserved.
    """

    def __init__(self, c_in: int, lanes_in: int, lanes_out: int, c_out: int | None = None, width: int = 8,
                 slots: bool = False):
        self.c_in, self.lanes_in, self.lanes_out = c_in, lanes_in, lanes_out
        self.c_out = c_in if c_out is None else c_out
        self.width, self.slots = width, slots
        super().__init__({"i": In(act_signature(lanes_in, width)), "o": Out(act_signature(lanes_out, width))})

    @property
    def mode(self) -> str:
        """``pass``, ``split`` (M = k*N, no tail beats: a beat is sent as k slices), ``gather`` (N = k*M, no tail
        beats: k beats are concatenated), ``slots`` (two pixel registers; ``slots=True`` and ``c_out == c_in``) or
        ``pack`` (the general value buffer)."""
        return converter_mode(self.c_in, self.lanes_in, self.lanes_out, self.c_out, self.slots)

    def cycles_for(self, pixels_in: int) -> int:
        """Cycles per frame of ``pixels_in`` input pixels, no stalls."""
        vals = pixels_in * self.c_in
        in_beats = pixels_in * beats_per_pixel(self.c_in, self.lanes_in)
        out_beats = (vals // self.c_out) * beats_per_pixel(self.c_out, self.lanes_out)
        if self.mode != "pack":
            return max(in_beats, out_beats)
        return packer_cycles(value_counts(self.c_in, self.lanes_in) * pixels_in, self.lanes_in, self.lanes_out,
                             self.c_out, out_beats)

    latency = 1

    def elaborate(self, platform):
        m = Module()
        mode = self.mode
        if mode == "pass":
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        if mode == "split":
            return self._split(m)
        if mode == "gather":
            return self._gather(m)
        if mode == "slots":
            return self._slots(m)
        M = self.lanes_in
        bpp = beats_per_pixel(self.c_in, M)
        tail = self.c_in - (bpp - 1) * M
        m.submodules.packer = pk = Packer(M, self.lanes_out, self.c_out, self.width, k_values=(M, tail))
        ib = Signal(range(max(bpp, 2)))
        m.d.comb += [
            pk.i.valid.eq(self.i.valid),
            self.i.ready.eq(pk.i.ready),
            pk.i.payload.data.eq(self.i.payload.data),
            pk.i.payload.k.eq(Mux(ib == bpp - 1, tail, M) if bpp > 1 else tail),
            pk.i.payload.last.eq(self.i.payload.last),
        ]
        count_beats(m, ib, self.i.valid & self.i.ready, self.i.payload.last, bpp)
        wiring.connect(m, pk.o, wiring.flipped(self.o))
        return m

    def _split(self, m):
        """M = k*N lanes, all beats full: send each input beat as k output beats (no storage, latency 0)."""
        k, w = self.lanes_in // self.lanes_out, self.lanes_out * self.width
        sel = Signal(range(max(k, 2)))
        endb = sel == k - 1
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.o.payload.data.eq(Array(self.i.payload.data[j * w : (j + 1) * w] for j in range(k))[sel]),
            self.o.payload.last.eq(self.i.payload.last & endb),
            self.i.ready.eq(self.o.ready & endb),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += sel.eq(Mux(endb, 0, sel + 1))
        return m

    def _gather(self, m):
        """N = k*M lanes, all beats full: hold k-1 input beats, send them with the k-th (latency 0 after it)."""
        k, w = self.lanes_out // self.lanes_in, self.lanes_in * self.width
        sel = Signal(range(max(k, 2)))
        bufs = [Signal(w, name=f"hold{j}") for j in range(k - 1)]
        endb = sel == k - 1
        m.d.comb += [
            self.o.valid.eq(self.i.valid & endb),
            self.o.payload.data.eq(Cat(*bufs, self.i.payload.data)),
            self.o.payload.last.eq(self.i.payload.last),
            self.i.ready.eq(~endb | self.o.ready),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += sel.eq(Mux(endb | self.i.payload.last, 0, sel + 1))
            for j, b in enumerate(bufs):
                with m.If(sel == j):
                    m.d.sync += b.eq(self.i.payload.data)
        return m

    def _slots(self, m):
        """Two pixel slots: the input fills one (channel ``c`` from lane ``c % M`` of the pixel's beat ``c // M``)
        while the output sends the other (lane ``l`` of beat ``b``: channel ``b*N + l``, zero past the pixel). A slot's
        ``full`` flag is set by its final input beat and cleared by its final output beat, so each side runs at one
        beat per cycle whenever the other keeps up (no bubble at a slot change): ``max(beats in, beats out)``."""
        C, M, N, w = self.c_in, self.lanes_in, self.lanes_out, self.width
        bin_, bout = beats_per_pixel(C, M), beats_per_pixel(C, N)
        slot = [[Signal(w, name=f"s{s}_c{c}") for c in range(C)] for s in range(2)]
        full = [Signal(name=f"full{s}") for s in range(2)]
        lastf = [Signal(name=f"last{s}") for s in range(2)]
        ws, rs = Signal(name="ws"), Signal(name="rs")
        ib = Signal(range(max(bin_, 2)), name="ib")
        # the output position (slot, beat) one-hot, rotated by each output beat: lane j is an AND-OR of the
        # channels it can carry (no decoder, no mux tree; yosys maps wide muxes over flip-flops poorly), and a
        # slot's final beat is one of two of its bits (no beat counter)
        pos = Signal(2 * bout, init=1, name="opos")
        ifire, ofire = Signal(), Signal()
        iend = (ib == bin_ - 1) | self.i.payload.last
        oend = Const(1) if bout == 1 else pos[bout - 1] | pos[2 * bout - 1]
        m.d.comb += [
            self.i.ready.eq(~Mux(ws, full[1], full[0])),
            self.o.valid.eq(Mux(rs, full[1], full[0])),
            ifire.eq(self.i.valid & self.i.ready),
            ofire.eq(self.o.valid & self.o.ready),
            self.o.payload.last.eq(Mux(rs, lastf[1], lastf[0]) & oend),
        ]
        for s in range(2):
            for b in range(bin_):
                with m.If(ifire & (ws == s) & (ib == b)):
                    m.d.sync += [slot[s][c].eq(self.i.payload.data[(c - b * M) * w:(c - b * M + 1) * w])
                                 for c in range(b * M, min(C, (b + 1) * M))]
            with m.If(ifire & iend & (ws == s)):
                m.d.sync += [full[s].eq(1), lastf[s].eq(self.i.payload.last)]
            with m.If(ofire & oend & (rs == s)):
                m.d.sync += full[s].eq(0)
        count_beats(m, ib, ifire, self.i.payload.last, bin_)
        with m.If(ifire & iend):
            m.d.sync += ws.eq(~ws)
        with m.If(ofire):
            m.d.sync += [pos.eq(pos.rotate_left(1)), rs.eq(rs ^ oend)]
        lanes = []
        for j in range(N):
            terms = [Mux(pos[s * bout + b], slot[s][b * N + j], 0) for s in range(2) for b in range(bout)
                     if b * N + j < C]
            lanes.append(tree_reduce(terms, operator.or_))
        m.d.comb += self.o.payload.data.eq(Cat(*lanes))
        return m
