"""Line buffer / window generator: turns an activation stream into the K x K windows of a convolution.

Stream contract
---------------
* ``i`` (input): activation stream of :mod:`rtlgen.cores.stream`, ``lanes`` x 8 bits, a ``H x W x C`` frame in
  raster order, ``G = ceil(C / lanes)`` beats per pixel. One beat per cycle. The frame boundary is ``i.last``
  (authoritative, so the pipeline realigns at every frame):

  - well-formed frame (``H*W*G`` beats, ``last`` on the final one): nothing special, no extra cycles;
  - short frame (``last`` on beat ``k < H*W*G - 1``): the writer completes the frame by itself, writing
    ``pad_value`` for the missing beats at one beat per cycle while ``i.ready`` stays low; the output (windows and
    ``centre``) is one full, correctly flagged frame as if the missing input had been the zero point
    (``pad_fill=False`` saves the ``lanes*8``-bit write-data multiplexer, about one LUT per bit: the framing is the
    same but the filled beats' values are unspecified; meant for window generators whose input comes from a core
    that already realigned the stream);
  - long frame (beat ``H*W*G - 1`` has ``last = 0``): the excess beats are accepted and dropped up to and including
    the next beat with ``last = 1``; the beat after it starts the next frame.

  A reset realigns too (the next beat is the first of a frame).
* ``o`` (windows): payload :func:`window_layout` = ``{data, first, wlast, pfirst, plast, flast, p1}``. Output pixels
  are processed in raster order in groups of ``pix`` (1 or 2) consecutive pixels (a "pixel group"; with ``pix=2`` the
  pair may span two rows, and the last group of a frame with an odd pixel count has a dummy second pixel, ``p1=0``).
  For every group the window is emitted ``repeats`` times (once per output-channel group of the conv engine); one
  emission is ``ceil(K*K/tap)*G`` beats in the order ``tap group, g`` (channel group innermost). Tap parallelism
  ``tap = T`` (default 1): the ``K*K`` taps (raster order ``n = ky*K + kx``) are read ``T`` at a time, tap group ``t``
  holding taps ``t*T .. t*T+T-1`` in its slots ``j = 0..T-1`` (with ``T = 1``: the order ``ky, kx, g``); slots past
  the last tap (``n >= K*K``) are dummies carrying ``pad_value``. ``data`` carries ``pix`` x ``T`` x ``lanes`` bytes:
  pixel ``q``, slot ``j``, lane ``l`` at byte ``(q*T + j)*lanes + l``; positions in the padding carry the input zero
  point ``pad_value`` in every lane. Flags: ``first``/``wlast`` mark the first/last beat of one emission,
  ``pfirst``/``plast`` of a pixel group (all emissions), ``flast`` the last beat of the frame, ``p1`` that the
  second pixel of the group is real.
* ``centre`` (optional, ``centre=True``): an activation stream (``lanes`` x 8 bits, ``last`` on the frame's final
  beat) carrying, for every output pixel in raster order, the G beats of its window's centre pixel
  (input ``(y*s - pt + K//2, x*s - pl + K//2)``, or ``pad_value`` if that is padding). With 'same' padding and stride
  1 this is the input frame itself, with stride 2 the stride-2 subsampled input: the skip stream of a residual block
  (temporal reuse) and the input of a 1x1 stride-2 projection shortcut (loop merging).
* Storage: one circular buffer of ``depth`` pixels (``depth*G`` words of ``lanes*8`` bits, an
  ``amaranth.lib.memory.Memory``), default ``(K-1 + s-1) * W + K + 2*pix*s + 2`` pixels: K-1 rows plus a few pixels
  (stride 2 keeps one more row so that the row change does not stall). The memory has ``pix*T`` read ports (one per
  pixel and tap slot: ``pix*T`` memory copies in BRAM), each with its own address counter that steps through its
  slot's taps (constant offsets from the window origin).
* Latency: the first window beat leaves one cycle after the input holds the window's last pixel.
  Throughput: one window beat per cycle; the input is accepted at one beat per cycle while the buffer has room.
  Cycles per frame (steady state, back-to-back frames, no stalls): see :meth:`WindowGen.cycles_per_frame`.
* Frames may follow back to back: the writer runs up to one frame ahead of the reader. Every output frame
  (windows and ``centre``) is complete and has its final flags, whatever the input framing.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .stream import act_signature

__all__ = ["WindowGen", "window_layout", "conv_out_size", "default_depth"]


def window_layout(lanes: int, pix: int = 1) -> data.StructLayout:
    return data.StructLayout({
        "data": unsigned(pix * lanes * 8),
        "first": unsigned(1),
        "wlast": unsigned(1),
        "pfirst": unsigned(1),
        "plast": unsigned(1),
        "flast": unsigned(1),
        "p1": unsigned(1),
    })


def conv_out_size(n: int, k: int, s: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - k) // s + 1


def default_depth(W: int, K: int, stride: int, pix: int) -> int:
    """Buffer depth in pixels: K-1 rows (+1 row at stride 2) plus a few pixels."""
    return (K - 1 + stride - 1) * W + K + 2 * pix * stride + 2


def _select(sel, values, shape):
    """``values[sel]`` for a list of constants as a chain of multiplexers (no ``case`` with uncovered values when
    ``sel`` can exceed the list: the last value is the default)."""
    out = Const(values[-1], shape)
    for t in reversed(range(len(values) - 1)):
        out = Mux(sel == t, Const(values[t], shape), out)
    return out


def _sbits(lo: int, hi: int) -> int:
    b = 1
    while not (-(1 << (b - 1)) <= lo and hi < (1 << (b - 1))):
        b += 1
    return b


class WindowGen(wiring.Component):
    """K x K window generator over a circular line buffer (see module docstring for the stream contract)."""

    def __init__(self, *, H: int, W: int, C: int, lanes: int, K: int, stride: int = 1, pads=None,
                 pad_value: int = 0, repeats: int = 1, pix: int = 1, centre: bool = False,
                 depth: int | None = None, ram_style: str | None = None, pad_fill: bool = True, tap: int = 1):
        if K % 2 != 1 or K < 1:
            raise ValueError("K must be odd")
        if stride not in (1, 2):
            raise ValueError("stride must be 1 or 2")
        if pix not in (1, 2):
            raise ValueError("pix must be 1 or 2")
        if pads is None:
            pads = (K // 2,) * 4
        pt, pl, pb, pr = (int(p) for p in pads)
        if min(pads) < 0 or max(pads) >= K:
            raise ValueError("pads must be in [0, K)")
        self.H, self.W, self.C, self.lanes, self.K, self.s = H, W, C, lanes, K, stride
        self.pads = (pt, pl, pb, pr)
        self.pad_value = int(pad_value) & 0xFF
        self.R = int(repeats)
        self.pix = pix
        self.centre_out = centre
        if not 1 <= int(tap) <= K * K:
            raise ValueError(f"tap must be in [1, {K * K}]")
        self.T = int(tap)  # taps per window beat (tap parallelism)
        self.NTG = math.ceil(K * K / self.T)  # tap groups per window emission
        self.G = math.ceil(C / lanes)
        self.Ho = conv_out_size(H, K, stride, pt, pb)
        self.Wo = conv_out_size(W, K, stride, pl, pr)
        if self.Ho < 1 or self.Wo < 1:
            raise ValueError("empty output")
        self.NP = math.ceil(self.Ho * self.Wo / pix)
        self.depth = depth if depth is not None else default_depth(W, K, stride, pix)
        self.DG = self.depth * self.G
        span = self._max_span()
        if self.depth < span:
            raise ValueError(f"line buffer depth {self.depth} < window span {span} pixels")
        self.ram_style = ram_style
        self.pad_fill = bool(pad_fill)
        sig = {"i": In(act_signature(lanes)), "o": Out(stream.Signature(window_layout(lanes * self.T, pix)))}
        if centre:
            sig["centre"] = Out(act_signature(lanes))
        super().__init__(sig)
        self._MustUse__silence = True  # also built as a pure cycle/shape model by the planner

    # -- pure-Python models ------------------------------------------------------------------------------------
    def _positions(self):
        """(row_org, col_org) of every output pixel, raster order."""
        pt, pl = self.pads[0], self.pads[1]
        return [(y * self.s - pt, x * self.s - pl) for y in range(self.Ho) for x in range(self.Wo)]

    def _need(self, ro, co):
        return (min(ro + self.K - 1, self.H - 1) * self.W + min(co + self.K - 1, self.W - 1) + 1)

    def _oldest(self, ro, co):
        """First input pixel still needed by this window or any later one (top padding rows clamp to row 0,
        so while ``ro + s <= 0`` the next output row still needs row 0 from column 0)."""
        return max(ro, 0) * self.W + (0 if ro + self.s <= 0 else max(co, 0))

    def _groups(self):
        pos = self._positions()
        return [pos[j * self.pix:(j + 1) * self.pix] for j in range(self.NP)]

    def _max_span(self) -> int:
        return max(self._need(*g[-1]) - self._oldest(*g[0]) for g in self._groups())

    @property
    def beats_per_group(self) -> int:
        return self.R * self.NTG * self.G

    def tap_slots(self):
        """``[(tg, j, n, ky, kx)]``: tap ``n = tg*T + j`` of slot ``j`` in tap group ``tg``; ``n >= K*K`` (the tail
        of the last group) is a dummy slot (``ky = kx = None``) that always carries ``pad_value``."""
        out = []
        for tg in range(self.NTG):
            for j in range(self.T):
                n = tg * self.T + j
                ky, kx = divmod(n, self.K) if n < self.K * self.K else (None, None)
                out.append((tg, j, n, ky, kx))
        return out

    def window_beats_per_frame(self) -> int:
        return self.NP * self.beats_per_group

    def frame_stall(self) -> int:
        """Cycles the reader waits at a frame change (back-to-back frames, input at one beat per cycle)."""
        groups = self._groups()
        HW = self.H * self.W
        last_oldest = self._oldest(*groups[-1][0])
        can_write_ahead = max(0, last_oldest + self.depth - HW)  # pixels of the next frame written early
        need_first = self._need(*groups[0][-1])
        return max(0, need_first - can_write_ahead) * self.G

    def cycles_per_frame(self) -> int:
        """Steady-state cycles per frame with back-to-back frames and no external stalls."""
        window = self.window_beats_per_frame() + self.frame_stall() + 1
        inp = self.H * self.W * self.G
        cen = self.Ho * self.Wo * self.G if self.centre_out else 0
        return max(window, inp, cen)

    def latency(self) -> int:
        """Cycles from the first input beat to the first window beat (input at one beat per cycle)."""
        return self._need(*self._groups()[0][-1]) * self.G + 1

    def reference(self, frame: np.ndarray) -> list[dict]:
        """Expected window beats for one ``[H, W, C]`` frame (list of payload dicts, ``data`` as lane lists)."""
        H, W, C = frame.shape
        G, P, K = self.G, self.lanes, self.K
        padded = np.zeros((H, W, G * P), dtype=np.int64)
        padded[..., :C] = np.asarray(frame) & 0xFF
        out = []
        groups = self._groups()
        T, NTG = self.T, self.NTG
        slots = self.tap_slots()
        for j, grp in enumerate(groups):
            p1 = len(grp) == 2 or self.pix == 1
            for r in range(self.R):
                for tg in range(NTG):
                    for g in range(G):
                        lanes = []
                        for q in range(self.pix):
                            for (_, _, _, ky, kx) in slots[tg * T:(tg + 1) * T]:
                                if q >= len(grp):
                                    lanes += [None] * P
                                    continue
                                ro, co = grp[q]
                                if ky is not None and 0 <= ro + ky < H and 0 <= co + kx < W:
                                    lanes += [int(v) for v in padded[ro + ky, co + kx, g * P:(g + 1) * P]]
                                else:
                                    lanes += [self.pad_value] * P
                        first = tg == 0 and g == 0
                        wlast = tg == NTG - 1 and g == G - 1
                        out.append({
                            "data": lanes, "first": int(first), "wlast": int(wlast),
                            "pfirst": int(first and r == 0), "plast": int(wlast and r == self.R - 1),
                            "flast": int(wlast and r == self.R - 1 and j == len(groups) - 1),
                            "p1": int(p1 and (self.pix == 2)),
                        })
        return out

    def reference_centre(self, frame: np.ndarray) -> np.ndarray:
        """Expected ``centre`` stream as a ``[Ho, Wo, C]`` frame."""
        H, W, C = frame.shape
        out = np.full((self.Ho, self.Wo, C), self.pad_value, dtype=np.int64)
        for k, (ro, co) in enumerate(self._positions()):
            y, x = ro + self.K // 2, co + self.K // 2
            if 0 <= y < H and 0 <= x < W:
                out[k // self.Wo, k % self.Wo] = np.asarray(frame)[y, x] & 0xFF
        return out

    # -- hardware ----------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        H, W, K, s, G, P, R = self.H, self.W, self.K, self.s, self.G, self.lanes, self.R
        pt, pl, pb, pr = self.pads
        Ho, Wo, NP, DG, pix = self.Ho, self.Wo, self.NP, self.DG, self.pix
        HWG = H * W * G
        attrs = {"ram_style": self.ram_style} if self.ram_style else None
        m.submodules.lines = mem = Memory(shape=unsigned(P * 8), depth=DG, init=[], attrs=attrs)
        wp = mem.write_port()
        T, NTG = self.T, self.NTG
        # one read port per pixel and tap slot (tap parallelism reads T taps of every pixel in one cycle)
        rps = [[mem.read_port(transparent_for=()) for _ in range(T)] for _ in range(pix)]
        slots = self.tap_slots()
        # buffer offset (words) of each slot's tap from the window origin; dummy slots reuse the last tap's address
        off = [((ky if ky is not None else K - 1) * W + (kx if kx is not None else K - 1)) * G
               for (_, _, _, ky, kx) in slots]

        def modadd(a, d):
            """(a + d) mod DG for a in [0, DG) and a constant d, or a signal d in [0, DG)."""
            if isinstance(d, int):
                d %= DG
            t = a + d
            return Mux(t >= DG, t - DG, t)

        # ---- writer ----
        wcount = Signal(range(HWG + 1))
        waddr = Signal(range(DG))
        ahead = Signal()  # writer finished the reader's frame and writes the next one
        oldest = Signal(range(HWG + 1))  # frame-relative beat index of the oldest beat the reader still needs
        w_abs = Signal(range(2 * HWG + 1))
        can_write = Signal()
        clear_ahead = Signal()
        # frame boundary from ``last``: a short frame (``last`` before beat HWG-1) is completed by ``fill`` writing
        # pad words without taking input; a long one (no ``last`` on beat HWG-1) has its excess beats dropped
        fill = Signal()
        drop = Signal()
        wfire = Signal()
        wp_end = wcount == HWG - 1
        padword_w = Const(int.from_bytes(bytes([self.pad_value] * P), "little"), unsigned(P * 8))
        m.d.comb += [
            w_abs.eq(Mux(ahead, wcount + HWG, wcount)),
            can_write.eq((w_abs < oldest + DG) & ~(ahead & wp_end)),
            wfire.eq((fill | (self.i.valid & ~drop)) & can_write),
            self.i.ready.eq(drop | (can_write & ~fill)),
            wp.addr.eq(waddr),
            wp.data.eq(Mux(fill, padword_w, self.i.payload.data) if self.pad_fill else self.i.payload.data),
            wp.en.eq(wfire),
        ]
        with m.If(wfire):
            m.d.sync += waddr.eq(Mux(waddr == DG - 1, 0, waddr + 1))
            with m.If(wp_end):
                m.d.sync += [wcount.eq(0), ahead.eq(1), fill.eq(0),
                             drop.eq(~fill & ~self.i.payload.last)]
            with m.Else():
                m.d.sync += wcount.eq(wcount + 1)
                with m.If(~fill & self.i.payload.last):
                    m.d.sync += fill.eq(1)
        with m.If(drop & self.i.valid & self.i.payload.last):
            m.d.sync += drop.eq(0)
        with m.If(clear_ahead):
            m.d.sync += ahead.eq(0)

        # ---- reader ----
        running = Signal(init=1)
        base = Signal(range(DG))  # buffer address of the reader frame's first beat
        pc = Signal(range(max(NP, 2)))
        g = Signal(range(max(G, 2)))
        kx = Signal(range(max(K, 2)))
        ky = Signal(range(max(K, 2)))
        tg = Signal(range(max(NTG, 2)))  # tap group (T > 1)
        r = Signal(range(max(R, 2)))
        ro_b = _sbits(-pt - 2 * s, H + 4 * s + K)
        co_b = _sbits(-pl - 2 * Wo * s - 2 * s, W + 4 * s + K)
        # initial positions of a frame (raster pixel q)
        init_pos = []
        for q in range(pix):
            y0, x0 = divmod(q, Wo)
            init_pos.append((y0 * s - pt, x0 * s - pl, x0))
        a_init = [((init_pos[q][0] * W + init_pos[q][1]) * G) % DG for q in range(pix)]
        ro = [Signal(signed(ro_b), name=f"ro{q}", init=init_pos[q][0]) for q in range(pix)]
        co = [Signal(signed(co_b), name=f"co{q}", init=init_pos[q][1]) for q in range(pix)]
        xq = [Signal(range(Wo + 3), name=f"x{q}", init=init_pos[q][2]) for q in range(pix)]
        aorg = [Signal(range(DG), name=f"aorg{q}", init=a_init[q]) for q in range(pix)]
        acur = [[Signal(range(DG), name=f"acur{q}" if T == 1 else f"acur{q}_{j}", init=(a_init[q] + off[j]) % DG)
                 for j in range(T)] for q in range(pix)]

        p1v = Const(1) if pix == 1 or (Ho * Wo) % 2 == 0 else (pc != NP - 1)

        def need_of(q):
            rr = ro[q] + (K - 1)
            cc = co[q] + (K - 1)
            rr = Mux(rr > H - 1, H - 1, rr)
            cc = Mux(cc > W - 1, W - 1, cc)
            return (rr * W + cc + 1) * G

        need = Signal(range(HWG + 1))
        if pix == 1:
            m.d.comb += need.eq(need_of(0))
        else:
            m.d.comb += need.eq(Mux(p1v, need_of(1), need_of(0)))
        r0 = Mux(ro[0] < 0, 0, ro[0])
        c0 = Mux((co[0] < 0) | (ro[0] + s <= 0), 0, co[0])
        m.d.comb += oldest.eq(Mux(running, (r0 * W + c0) * G, HWG))

        have = Signal()
        m.d.comb += have.eq(running & (ahead | (wcount >= need)))

        # output register stage (the memory read register)
        ov = Signal()
        c_ok = Signal()
        adv = Signal()
        m.d.comb += adv.eq(~ov | (self.o.ready & c_ok))
        issue = Signal()
        m.d.comb += issue.eq(have & adv)
        for q in range(pix):
            for j in range(T):
                m.d.comb += [rps[q][j].addr.eq(acur[q][j]), rps[q][j].en.eq(adv)]

        g_last = g == G - 1
        kx_last = kx == K - 1
        ky_last = ky == K - 1
        r_last = r == R - 1
        n_c = (K * K) // 2  # centre tap
        tg_c, j_c = divmod(n_c, T)
        if T == 1:
            win_end = g_last & kx_last & ky_last
            is_first = (g == 0) & (kx == 0) & (ky == 0)
            is_centre = (r == 0) & (ky == K // 2) & (kx == K // 2)
        else:
            tg_last = tg == NTG - 1
            win_end = g_last & tg_last
            is_first = (g == 0) & (tg == 0)
            is_centre = (r == 0) & (tg == tg_c)
        grp_end = win_end & r_last
        frame_end = grp_end & (pc == NP - 1)

        pad_r = [[Signal(name=f"pad{q}" if T == 1 else f"pad{q}_{j}") for j in range(T)] for q in range(pix)]
        f_first, f_wlast, f_pfirst, f_plast, f_flast, f_p1, f_centre = (
            Signal(name=n) for n in ("f_first", "f_wlast", "f_pfirst", "f_plast", "f_flast", "f_p1", "f_centre"))
        with m.If(adv):
            m.d.sync += [
                ov.eq(issue),
                f_first.eq(is_first), f_wlast.eq(win_end), f_pfirst.eq(is_first & (r == 0)),
                f_plast.eq(grp_end), f_flast.eq(frame_end), f_p1.eq(p1v if pix == 2 else 0),
                f_centre.eq(is_centre),
            ]
            for q in range(pix):
                if T == 1:
                    yy = ro[q] + ky
                    xx = co[q] + kx
                    m.d.sync += pad_r[q][0].eq((yy < 0) | (yy >= H) | (xx < 0) | (xx >= W))
                    continue
                for j in range(T):
                    sl = [slots[t * T + j] for t in range(NTG)]
                    if all(e[3] is None for e in sl):
                        m.d.sync += pad_r[q][j].eq(1)
                        continue
                    dy = _select(tg, [e[3] if e[3] is not None else 0 for e in sl], range(K))
                    dx = _select(tg, [e[4] if e[4] is not None else 0 for e in sl], range(K))
                    dummy = _select(tg, [int(e[3] is None) for e in sl], 1)
                    yy = ro[q] + dy
                    xx = co[q] + dx
                    m.d.sync += pad_r[q][j].eq(dummy | (yy < 0) | (yy >= H) | (xx < 0) | (xx >= W))

        padword = Const(int.from_bytes(bytes([self.pad_value] * P), "little"), unsigned(P * 8))
        dqs = [[Mux(pad_r[q][j], padword, rps[q][j].data) for j in range(T)] for q in range(pix)]
        dq = [dqs[q][j_c] for q in range(pix)]  # the centre tap's slot (centre forwarding)
        m.d.comb += [
            self.o.valid.eq(ov & c_ok),
            self.o.payload.data.eq(Cat(*[d for row in dqs for d in row])),
            self.o.payload.first.eq(f_first),
            self.o.payload.wlast.eq(f_wlast),
            self.o.payload.pfirst.eq(f_pfirst),
            self.o.payload.plast.eq(f_plast),
            self.o.payload.flast.eq(f_flast),
            self.o.payload.p1.eq(f_p1),
        ]

        self._dbg = dict(need=need, wcount=wcount, ahead=ahead, oldest=oldest, running=running, pc=pc,
                         acur0=acur[0][0], aorg0=aorg[0], ro0=ro[0], co0=co[0], x0=xq[0], waddr=waddr,
                         acur1=acur[-1][0], aorg1=aorg[-1], ro1=ro[-1], co1=co[-1], x1=xq[-1])
        # reader counters
        rowstep = 1 + (W - K) * G
        with m.If(issue):
            m.d.sync += g.eq(Mux(g_last, 0, g + 1))
            with m.If(g_last):
                if T == 1:
                    m.d.sync += kx.eq(Mux(kx_last, 0, kx + 1))
                    with m.If(kx_last):
                        m.d.sync += ky.eq(Mux(ky_last, 0, ky + 1))
                else:
                    m.d.sync += tg.eq(Mux(tg_last, 0, tg + 1))
            with m.If(win_end):
                m.d.sync += r.eq(Mux(r_last, 0, r + 1))
            for q in range(pix):
                if T == 1:
                    with m.If(~win_end):
                        m.d.sync += acur[q][0].eq(modadd(acur[q][0], rowstep))
                        with m.If(~(g_last & kx_last)):
                            m.d.sync += acur[q][0].eq(modadd(acur[q][0], 1))
                    with m.Elif(~r_last):
                        m.d.sync += acur[q][0].eq(aorg[q])
                    continue
                for j in range(T):
                    # from the last channel group of tap group t to the first of t+1 (mod DG, always >= 0)
                    deltas = [(off[(t + 1) * T + j] - off[t * T + j] - (G - 1)) % DG for t in range(NTG - 1)] or [0]
                    delta = _select(tg, deltas, range(DG))
                    with m.If(~win_end):
                        with m.If(g_last):
                            m.d.sync += acur[q][j].eq(modadd(acur[q][j], delta))
                        with m.Else():
                            m.d.sync += acur[q][j].eq(modadd(acur[q][j], 1))
                    with m.Elif(~r_last):
                        m.d.sync += acur[q][j].eq(modadd(aorg[q], off[j]))
            with m.If(grp_end):
                m.d.sync += pc.eq(Mux(pc == NP - 1, 0, pc + 1))
                # advance every pixel generator by ``pix`` raster positions
                for q in range(pix):
                    xn = xq[q] + pix
                    w1 = xn >= Wo
                    w2 = xn >= 2 * Wo
                    d = [((pix * s - w * Wo * s) + w * s * W) * G for w in range(3)]
                    an = [modadd(aorg[q], d[w]) for w in range(3)]
                    anew = Mux(w2, an[2], Mux(w1, an[1], an[0]))
                    m.d.sync += [
                        xq[q].eq(Mux(w2, xn - 2 * Wo, Mux(w1, xn - Wo, xn))),
                        ro[q].eq(ro[q] + Mux(w2, 2 * s, Mux(w1, s, 0))),
                        co[q].eq(co[q] + pix * s - Mux(w2, 2 * Wo * s, Mux(w1, Wo * s, 0))),
                        aorg[q].eq(anew),
                    ]
                    if T == 1:
                        m.d.sync += acur[q][0].eq(anew)
                    else:  # the slots' first taps, from the new origin (one constant offset each)
                        for j in range(T):
                            m.d.sync += acur[q][j].eq(Mux(w2, modadd(an[2], off[j]), Mux(w1, modadd(an[1], off[j]),
                                                                                       modadd(an[0], off[j]))))
                with m.If(pc == NP - 1):
                    m.d.sync += running.eq(0)

        # frame change: wait until the writer has finished this frame, then restart at the next frame's base
        with m.If(~running & ahead):
            m.d.comb += clear_ahead.eq(1)
            nb = modadd(base, HWG)
            m.d.sync += [running.eq(1), base.eq(nb)]
            for q in range(pix):
                a0 = Signal(range(DG), name=f"a0_{q}")
                m.d.comb += a0.eq(modadd(nb, (init_pos[q][0] * W + init_pos[q][1]) * G))
                m.d.sync += [ro[q].eq(init_pos[q][0]), co[q].eq(init_pos[q][1]), xq[q].eq(init_pos[q][2]),
                             aorg[q].eq(a0)]
                for j in range(T):
                    m.d.sync += acur[q][j].eq(a0 if T == 1 else modadd(a0, off[j]))

        # ---- centre forwarding ----
        if self.centre_out:
            cdepth = max(3, 2 * G)  # SyncFIFOBuffered(2) would hold a 1-entry inner FIFO (zero-width address)
            m.submodules.cfifo0 = cf0 = fifo.SyncFIFOBuffered(width=P * 8 + 1, depth=cdepth)
            fifos = [cf0]
            if pix == 2:
                m.submodules.cfifo1 = cf1 = fifo.SyncFIFOBuffered(width=P * 8, depth=cdepth)
                fifos.append(cf1)
                m.d.comb += c_ok.eq(~f_centre | (cf0.w_rdy & (cf1.w_rdy | ~f_p1)))
            else:
                m.d.comb += c_ok.eq(~f_centre | cf0.w_rdy)
            push = ov & c_ok & self.o.ready & f_centre
            m.d.comb += [cf0.w_data.eq(Cat(dq[0], f_p1)), cf0.w_en.eq(push)]
            if pix == 2:
                m.d.comb += [cf1.w_data.eq(dq[1]), cf1.w_en.eq(push & f_p1)]
            # sequencer: G beats of pixel 0, then G beats of pixel 1 (if real)
            sel = Signal()
            cg = Signal(range(max(G, 2)))
            cb = Signal(range(max(Ho * Wo * G, 2)))
            src_valid = Mux(sel, fifos[-1].r_rdy, cf0.r_rdy)
            src_data = Mux(sel, fifos[-1].r_data[:P * 8], cf0.r_data[:P * 8])
            take = src_valid & self.centre.ready
            clast = cb == Ho * Wo * G - 1
            m.d.comb += [
                self.centre.valid.eq(src_valid),
                self.centre.payload.data.eq(src_data),
                self.centre.payload.last.eq(clast),
                cf0.r_en.eq(take & ~sel),
            ]
            if pix == 2:
                m.d.comb += cf1.r_en.eq(take & sel)
            with m.If(take):
                m.d.sync += [cg.eq(Mux(cg == G - 1, 0, cg + 1)), cb.eq(Mux(clast, 0, cb + 1))]
                if pix == 2:
                    with m.If(cg == G - 1):
                        m.d.sync += sel.eq(~sel & cf0.r_data[P * 8])
        else:
            m.d.comb += c_ok.eq(1)
        return m
