# amaranth: UnusedElaboratable=no
"""Pooling cores: max / average K x K pooling with stride and padding (line-buffered, separable), global average and
global max pooling. Bit-exact to ``rtlgen.golden.run_pool``.

Stream contract (:class:`PoolCore`)
-----------------------------------
* ``i``: one ``H x W x C`` frame per ``last`` (NHWC raster, ``lanes`` channels per beat, 8-bit int8/uint8 lanes,
  :mod:`rtlgen.cores.stream`). ``o``: the ``Ho x Wo x C`` result frame, same lanes and element type
  (``1 x 1 x C`` for global pooling).
* Max pooling: ``max`` over the window; padding is ignored (golden pads with -inf). Average pooling: the window sum
  of ``(q - zp_in)`` (padding contributes 0, i.e. the divisor is in the requant constants), then
  ``clamp(rshift_round(sum * m[c], sh[c]) + zp_out, lo, hi)`` (per-channel ``m``/``sh`` allowed, half-to-even by
  default).
* Separable reduction: a horizontal reducer turns each row into ``Wo`` partial results (one per output column), a
  vertical reducer combines ``kh`` of those rows. Each keeps ``ceil(k / stride)`` open windows per channel beat in
  delay lines (memories of ``ceil(C / lanes)`` entries for the horizontal one, ``Wo * ceil(C / lanes)`` for the vertical
  one): storage ``ceil(kh / sh) * Wo * C`` partial sums, never whole input rows.
* Windows that end in the right / bottom padding are closed by "virtual" padding columns / rows the reducers step
  through by themselves (no input consumed).
* Latency: :attr:`PoolCore.latency` from the beat that completes a window (the reducers, then an output skid
  buffer for max pooling, or the pipelined requant -- product, rounding, clamp in their own register stages -- and
  its output FIFO for average pooling); throughput: one input beat per cycle. ``o.ready`` reaches the reducers only
  through a register (the skid buffer's ``i.ready`` or the requant's credit flag). Cycles per frame: :meth:`PoolCore.cycles_per_frame`.
* Frame boundary: ``i.last`` (the first reducer counts positions and realigns on it). A short frame (``last`` before
  beat ``H*W*ceil(C/lanes) - 1``) is completed as if its missing beats held the input zero point ``zp_in`` in every
  lane (one beat per cycle, ``i.ready`` low meanwhile); a long frame's excess beats are taken and dropped up to and
  including its ``last``. Either way exactly one full ``Ho x Wo x C`` output frame, ``last`` on its final beat,
  leaves per input frame; well-formed frames take no extra cycle.
"""

from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .arith import (REQUANT_PIPE_STAGES, clog2, const_mul, count_beats, credit_fifo, delay, lane, normalize_requant,
                    requant_pipe)
from .fifo import SkidBuffer
from .interface import LayerCore
from .stream import act_signature, beats_per_pixel

__all__ = ["PoolCore", "Reducer"]


def _out_len(n, k, s, pad_lo, pad_hi):
    return (n + pad_lo + pad_hi - k) // s + 1


class Reducer(wiring.Component):
    """1-D sliding-window reduction (max or sum) over a sequence of ``n`` positions of ``inner`` beats each.

    Window ``o`` covers padded positions ``o*s .. o*s+k-1`` (real position ``p`` is padded ``p + pad_lo``); one
    frame is ``seqs`` independent sequences. Per output window, ``inner`` beats leave (the reduction of each beat
    index over the window), in window order. ``is_global``: one window over the whole sequence.

    Positions are counted; ``last`` is the frame boundary: a ``last`` before the frame's final real beat starts a
    fill (the remaining real beats are stepped through without input, with every lane ``fill_value``; ``None``:
    the lanes keep whatever the input carries), and a final real beat without ``last`` starts a drop (input beats
    are taken and discarded up to and including the next ``last``). Output frames are always complete.

    Parameters
    ----------
    n, seqs, inner : int
        Real positions per sequence, sequences per frame, beats per position.
    k, s, pad_lo, n_out : int
        Window length, stride, padding before the first position, windows per sequence.
    lanes, w_in, w_acc : int
        Lanes per beat, input and accumulator bits per lane.
    op : ``"max"`` | ``"sum"``
        The reduction.
    is_global : bool
        One window over the whole sequence (``k``, ``s``, ``pad_lo``, ``n_out`` unused).
    fill_value : int or None
        The lanes of the beats stepped through after an early ``last`` (None: whatever the input carries).

    Members
    -------
    i : ``In(act_signature(lanes, w_in))``
        Input beats, ``last`` at the frame's final beat.
    o : ``Out(act_signature(lanes, w_acc))``
        Reduced beats, ``inner`` per output window, ``last`` on the frame's final one.
    """

    def __init__(self, *, n, seqs, inner, k, s, pad_lo, n_out, lanes, w_in, w_acc, op, is_global=False,
                 fill_value=None):
        self.n, self.seqs, self.inner, self.k, self.s, self.pad_lo, self.n_out = n, seqs, inner, k, s, pad_lo, n_out
        self.fill_value = fill_value
        self.lanes, self.w_in, self.w_acc, self.op, self.is_global = lanes, w_in, w_acc, op, is_global
        if is_global:
            self.n_slots, self.nv = 1, 0
        else:
            if not (0 <= pad_lo < k):
                raise ValueError(f"padding {pad_lo} must be smaller than the kernel {k}")
            for o in range(n_out):
                if o * s > pad_lo + n - 1 or o * s + k - 1 < pad_lo:
                    raise ValueError(f"pooling window {o} covers no real position (padding too large)")
            self.n_slots = math.ceil(k / s)
            self.nv = max(0, (n_out - 1) * s + k - (pad_lo + n))
        self.T = n + self.nv
        super().__init__({"i": In(act_signature(lanes, w_in)), "o": Out(act_signature(lanes, w_acc))})

    def steps_per_frame(self) -> int:
        return self.seqs * self.T * self.inner

    def table(self) -> list[tuple[int, int, int, int, int]]:
        """Per position t: (contrib mask, init mask, emit valid, emit slot, emit is last window)."""
        rows = []
        k, s, S = self.k, self.s, self.n_slots
        for t in range(self.T):
            pp = t + self.pad_lo
            contrib = init = 0
            emit = slot = lastw = 0
            for o in range(max(0, -(-(pp - k + 1) // s)), min(self.n_out - 1, pp // s) + 1):
                j = o % S
                if t < self.n:
                    contrib |= 1 << j
                    if pp == max(o * s, self.pad_lo):
                        init |= 1 << j
                if o * s + k - 1 == pp:
                    emit, slot, lastw = 1, j, int(o == self.n_out - 1)
            rows.append((contrib, init, emit, slot, lastw))
        return rows

    def elaborate(self, platform):
        m = Module()
        L, S, wa = self.lanes, self.n_slots, self.w_acc
        inner, T, n = self.inner, self.T, self.n
        b = Signal(range(max(inner, 2)))
        t = Signal(range(max(T, 2)))
        seq = Signal(range(max(self.seqs, 2)))
        b_new, t_new, seq_new = (Signal.like(x, name=x.name + "_new") for x in (b, t, seq))
        fill = Signal()  # short frame: step through the remaining real beats without input
        drop = Signal()  # long frame: discard input beats up to the next 'last'

        virt = Signal()
        m.d.comb += virt.eq(t >= n)
        out_free = ~self.o.valid | self.o.ready
        step = Signal()
        m.d.comb += [step.eq(out_free & (virt | fill | (self.i.valid & ~drop))),
                     self.i.ready.eq(drop | (out_free & ~virt & ~fill))]
        real = step & ~virt
        final_real = (t == n - 1) & (b == inner - 1)
        if self.seqs > 1:
            final_real = final_real & (seq == self.seqs - 1)
        in_last = self.i.payload.last
        with m.If(real):
            with m.If(final_real):
                m.d.sync += [fill.eq(0), drop.eq(~fill & ~in_last)]
            with m.Elif(~fill & in_last):
                m.d.sync += fill.eq(1)
        with m.If(drop & self.i.valid & in_last):
            m.d.sync += drop.eq(0)

        # position tables
        contrib = Signal(S)
        init = Signal(S)
        emit = Signal()
        eslot = Signal(range(max(S, 2)))
        elast = Signal()
        if self.is_global:
            m.d.comb += [contrib.eq(~virt), init.eq(t == 0), emit.eq(t == n - 1), eslot.eq(0), elast.eq(1)]
        else:
            sw = max(1, (S - 1).bit_length())
            rows = [c | (i << S) | (e << 2 * S) | (lw << 2 * S + 1) | (sl << 2 * S + 2) for c, i, e, sl, lw in self.table()]
            width = 2 * S + 2 + sw
            ent = Signal(width)
            if T == 1:
                m.d.comb += ent.eq(rows[0])
            else:
                m.submodules.table = rom = memory.Memory(shape=unsigned(width), depth=T, init=rows)
                rd = rom.read_port(domain="comb")
                m.d.comb += [rd.addr.eq(t), ent.eq(rd.data)]
            m.d.comb += [contrib.eq(ent[:S]), init.eq(ent[S : 2 * S]), emit.eq(ent[2 * S]), elast.eq(ent[2 * S + 1]),
                         eslot.eq(ent[2 * S + 2 :])]

        # counters
        m.d.comb += [b_new.eq(b), t_new.eq(t), seq_new.eq(seq)]
        with m.If(step):
            with m.If(b == inner - 1):
                m.d.comb += b_new.eq(0)
                with m.If(t == T - 1):
                    m.d.comb += t_new.eq(0)
                    if self.seqs > 1:
                        m.d.comb += seq_new.eq(Mux(seq == self.seqs - 1, 0, seq + 1))
                with m.Else():
                    m.d.comb += t_new.eq(t + 1)
            with m.Else():
                m.d.comb += b_new.eq(b + 1)
        m.d.sync += [b.eq(b_new), t.eq(t_new), seq.eq(seq_new)]
        if inner > 1:
            b_pre = Signal(range(inner), init=1)  # (b + 1) mod inner: the delay lines' read-ahead address
            with m.If(step):
                m.d.sync += b_pre.eq(Mux(b_pre == inner - 1, 0, b_pre + 1))

        # delay lines of open windows (one per slot), read-modify-write at beat index b
        xs = [lane(self.i.payload.data, i, self.w_in, True) for i in range(L)]
        if self.fill_value is not None:
            xs = [Mux(fill, Const(self.fill_value, signed(self.w_in)), x) for x in xs]
        partial = []
        for j in range(S):
            word = Signal(L * wa, name=f"partial{j}")
            wdata = Signal(L * wa, name=f"update{j}")
            we = real & contrib[j]
            if inner == 1:
                m.d.comb += word.eq(self._reg(m, f"acc{j}", wdata, we))
            else:
                # the next beat's entry is read one step ahead into the port's output register (address b_pre,
                # a register): the read-max-write cycle starts at a flip-flop, not at a RAM read. No forwarding:
                # entry b_pre was last written inner >= 2 steps earlier.
                mem = memory.Memory(shape=unsigned(L * wa), depth=inner, init=[])
                m.submodules[f"line{j}"] = mem
                wp = mem.write_port()
                rp = mem.read_port()
                m.d.comb += [wp.addr.eq(b), wp.data.eq(wdata), wp.en.eq(we), rp.addr.eq(b_pre), rp.en.eq(step),
                             word.eq(rp.data)]
            news = []
            for i in range(L):
                p = word[i * wa : (i + 1) * wa].as_signed()
                x = xs[i]
                if self.op == "max":
                    upd = Mux(x > p, x, p)
                else:
                    upd = p + x
                nv = Signal(signed(wa), name=f"new{j}_{i}")
                m.d.comb += nv.eq(Mux(init[j], x, upd))
                news.append(nv)
            m.d.comb += wdata.eq(Cat(*news))
            partial.append((word, wdata))

        result = Signal(L * wa)
        if S == 1:
            m.d.comb += result.eq(Mux(contrib[0], partial[0][1], partial[0][0]))
        else:
            m.d.comb += result.eq(Mux(Array(contrib[j] for j in range(S))[eslot], Array(p[1] for p in partial)[eslot],
                                      Array(p[0] for p in partial)[eslot]))
        with m.If(step):
            frame_end = seq == self.seqs - 1
            m.d.sync += [
                self.o.valid.eq(emit),
                self.o.payload.data.eq(result),
                self.o.payload.last.eq(emit & elast & (b == inner - 1) & frame_end),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m

    @staticmethod
    def _reg(m, name, data, we):
        r = Signal(len(data), name=name)
        with m.If(we):
            m.d.sync += r.eq(data)
        return r


class PoolCore(LayerCore, wiring.Component):
    """Max / average pooling (windowed or global) of one ``H x W x C`` stream; see the module docstring.

    Parameters
    ----------
    shape : (H, W, C)
        Input frame.
    lanes : int
        Channels per beat.
    mode : str
        ``max`` or ``avg``.
    kernel, stride, pads :
        Window, stride and padding ``(top, left, bottom, right)``.
    is_global : bool
        One window over the whole frame.
    in_signed, zp_in :
        int8 (else uint8) input and its zero point (the padding value).
    requant : tuple or None
        ``(m, sh, zp_out, lo, hi[, rounding])`` of an average (sum times ``1/n``); None for max.
    pad_fill : bool
        Build the padding multiplexer.

    Members
    -------
    i : ``In(act_signature(lanes))``
        Input activations.
    o : ``Out(act_signature(lanes))``
        Pooled activations.
    """

    def __init__(self, shape, lanes: int, mode: str = "max", kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0),
                 is_global: bool = False, in_signed: bool = True, zp_in: int = 0, requant=None, pad_fill: bool = True):
        """``requant``: ``(m, sh, zp_out, lo, hi, rounding)`` for average pooling (``m``/``sh`` scalars or per channel).
        ``pad_fill=False``: a short frame's missing values are unspecified instead of ``zp_in`` (same framing, saves
        the ``lanes*9``-bit fill multiplexer; for a pool whose input comes from a core that already realigned)."""
        self.pad_fill = bool(pad_fill)
        self.shape = tuple(int(x) for x in shape)
        H, W, C = self.shape
        if mode not in ("max", "avg"):
            raise ValueError(f"pool mode must be max or avg, not {mode!r}")
        self.lanes, self.mode, self.is_global = lanes, mode, is_global
        self.kernel, self.stride, self.pads = tuple(kernel), tuple(stride), tuple(pads)
        self.in_signed, self.zp_in = in_signed, int(zp_in)
        if mode == "avg" and requant is None:
            raise ValueError("average pooling needs its requant (m, sh, zp_out, lo, hi[, rounding])")
        self.requant = requant
        self.bpp = beats_per_pixel(C, lanes)
        if is_global:
            self.out_shape = (1, 1, C)
        else:
            (kh, kw), (sh, sw), (pt, pl, pb, pr) = self.kernel, self.stride, self.pads
            self.out_shape = (_out_len(H, kh, sh, pt, pb), _out_len(W, kw, sw, pl, pr), C)
        self._build_reducers()
        super().__init__({"i": In(act_signature(lanes)), "o": Out(act_signature(lanes))})

    @classmethod
    def from_layer(cls, layer, lanes: int = 1, pad_fill: bool = True):
        rq = layer.requant
        req = None if rq is None else (rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding)
        q = layer.in_q
        return cls(layer.in_shape, lanes, layer.mode, layer.kernel, layer.stride, layer.pads, layer.is_global,
                   q.signed, q.zero_point, req, pad_fill)

    def _build_reducers(self):
        H, W, C = self.shape
        L, bpp, op = self.lanes, self.bpp, ("max" if self.mode == "max" else "sum")
        fv = self.zp_in if op == "max" else 0  # a short frame's missing values: the zero point (after - zp for avg)
        if not self.pad_fill:
            fv = None
        if self.is_global:
            w = 9 if op == "max" else 9 + clog2(H * W)
            self.reducers = [Reducer(n=H * W, seqs=1, inner=bpp, k=H * W, s=H * W, pad_lo=0, n_out=1, lanes=L,
                                     w_in=9, w_acc=w, op=op, is_global=True, fill_value=fv)]
            return
        (kh, kw), (sh, sw), (pt, pl, pb, pr) = self.kernel, self.stride, self.pads
        Ho, Wo, _ = self.out_shape
        wh = 9 if op == "max" else 9 + clog2(kw)
        wv = wh if op == "max" else wh + clog2(kh)
        self.reducers = [
            Reducer(n=W, seqs=H, inner=bpp, k=kw, s=sw, pad_lo=pl, n_out=Wo, lanes=L, w_in=9, w_acc=wh, op=op,
                    fill_value=fv),
            Reducer(n=H, seqs=1, inner=Wo * bpp, k=kh, s=sh, pad_lo=pt, n_out=Ho, lanes=L, w_in=wh, w_acc=wv, op=op),
        ]

    def cycles_per_frame(self) -> int:
        """Steady-state cycles per frame without stalls (input beats plus the reducers' virtual padding steps)."""
        if self.is_global:
            return self.reducers[0].steps_per_frame()
        h, v = self.reducers
        # the vertical reducer's virtual rows overlap with the next frame's first columns, up to the horizontal
        # reducer's first window end (it then waits with a full output register)
        t_emit = next(t for t, row in enumerate(h.table()) if row[2])
        return h.steps_per_frame() + max(0, v.nv * v.inner - t_emit * h.inner)

    @property
    def _avg_mult(self) -> bool:
        """The average's multipliers are real multipliers (not all the same power of two): a P register stage."""
        if self.mode != "avg":
            return False
        mm, _ = normalize_requant(self.requant[0], self.requant[1], self.shape[2])
        return len(set(mm)) > 1 or bool(mm[0] & (mm[0] - 1))

    @property
    def avg_pipe_depth(self) -> int:
        """Average pooling's requant pipeline: window sum (+ multiplier select), product [+ P], rounding, clamp."""
        return 2 + int(self._avg_mult) + REQUANT_PIPE_STAGES

    @property
    def latency(self) -> int:
        """Reducers, then the output skid buffer (max) or the requant pipeline and its output FIFO (avg)."""
        return len(self.reducers) + (self.avg_pipe_depth + 2 if self.mode == "avg" else 1)

    def elaborate(self, platform):
        m = Module()
        L, C = self.lanes, self.shape[2]
        for k, r in enumerate(self.reducers):
            m.submodules[f"reduce{k}"] = r
        first, lastr = self.reducers[0], self.reducers[-1]
        xs = []
        for i in range(L):
            x = lane(self.i.payload.data, i, 8, self.in_signed)
            v = Signal(signed(9), name=f"x{i}")
            m.d.comb += v.eq(x - self.zp_in if self.mode == "avg" else x)
            xs.append(v)
        m.d.comb += [
            first.i.valid.eq(self.i.valid),
            self.i.ready.eq(first.i.ready),
            first.i.payload.data.eq(Cat(*xs)),
            first.i.payload.last.eq(self.i.payload.last),
        ]
        for a, b in zip(self.reducers, self.reducers[1:]):
            wiring.connect(m, a.o, b.i)
        wa = lastr.w_acc
        if self.mode == "max":
            # output skid buffer: ``o.ready`` reaches the reducers only through its registered ``i.ready``
            m.submodules.out = sk = SkidBuffer(lanes=L, width=8)
            m.d.comb += [
                sk.i.valid.eq(lastr.o.valid),
                lastr.o.ready.eq(sk.i.ready),
                sk.i.payload.data.eq(Cat(*(lastr.o.payload.data[i * wa : i * wa + 8] for i in range(L)))),
                sk.i.payload.last.eq(lastr.o.payload.last),
            ]
            wiring.connect(m, sk.o, wiring.flipped(self.o))
            return m

        # average: requantize the window sums (per-channel multipliers via the beat index inside the pixel) in a
        # free-running pipeline; a credit counter and an output FIFO give the reducer a registered ready
        mq, shq, zp_out, lo, hi = self.requant[:5]
        rounding = self.requant[5] if len(self.requant) > 5 else "half_even"
        mm, S = normalize_requant(mq, shq, C)
        bpp = self.bpp
        pb = Signal(range(max(bpp, 2)))
        ok = Signal()
        m.d.comb += lastr.o.ready.eq(ok)
        fire = lastr.o.valid & ok
        count_beats(m, pb, fire, lastr.o.payload.last, bpp)
        v1, last1, tail1 = Signal(name="v1"), Signal(name="last1"), Signal(name="tail1")
        m.d.sync += [v1.eq(fire), last1.eq(lastr.o.payload.last), tail1.eq(pb == bpp - 1)]
        outs = []
        for i in range(L):
            ms = [mm[c] if c < C else 1 for c in (b * L + i for b in range(bpp))]
            x1 = Signal(signed(wa), name=f"sum1_{i}")
            m.d.sync += x1.eq(lastr.o.payload.data[i * wa : (i + 1) * wa].as_signed())
            if len(set(ms)) == 1:
                pe = const_mul(x1, ms[0])
            else:
                mw = max(x.bit_length() for x in ms)
                m1 = Signal(unsigned(mw), name=f"mult1_{i}")
                m.d.sync += m1.eq(Array(Const(x, unsigned(mw)) for x in ms)[pb])
                pe = x1 * m1
            p2 = Signal(pe.shape(), name=f"prod2_{i}")
            m.d.sync += p2.eq(pe)
            if self._avg_mult:
                p2 = delay(m, p2, 1, p2.name)
            o = requant_pipe(m, p2, S, zp_out, lo, hi, rounding, f"rq{i}")
            outs.append(o)
        D = self.avg_pipe_depth
        vD, lastD, tailD = (delay(m, x, D - 1, x.name) for x in (v1, last1, tail1))
        # lanes past C on the pixel's tail beat stay zero
        outs = [Mux(tailD, 0, o) if (bpp - 1) * L + i >= C else o for i, o in enumerate(outs)]
        m.d.comb += ok.eq(credit_fifo(m, "out", fire, self.o, vD, Cat(*outs), lastD, D))
        return m
