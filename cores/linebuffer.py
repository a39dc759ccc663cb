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
  (stride 2 keeps one more row so that the row change does not stall), in ``pix*T`` copies (one per pixel and tap
  slot, each with one read port and the shared write); a port's address is its pixel's window origin plus its slot's
  tap offset (one offset counter per slot, shared by the pixels).
* Timing (issue 19): every register-to-register path holds at most one adder (carry-select where a sum is taken mod
  the buffer size) and a few LUT levels; no multiplier and no division. The pixel group descriptors (buffer origins,
  ``need``/``oldest`` in beats, row/column padding masks) come from small per-row/per-column tables and a 5-stage
  generator that runs ahead of the reader and shifts once per pixel group; the next beat's read addresses, padding and
  flags are resolved in registers one issue ahead; the writer's permission (``room``/``can_write``) and the reader's
  ``have`` are registers computed from next-state values. ``i.ready`` is a function of registers only (it does not
  depend on ``o.ready``). The cycle behaviour is that of the combinational formulation (same cycles, same latency).
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

from rtlgen.plan.geometry import line_buffer_depth, line_copy_style

from .stream import act_signature

__all__ = ["WindowModel", "WindowGen", "window_layout", "conv_out_size", "line_buffer_depth"]


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


class WindowModel:
    """The window generator's geometry and cycle model in pure Python (no Amaranth): what :class:`WindowGen` builds,
    and what the planner's exact cycle counts read without building a core (:mod:`rtlgen.cores.registry`)."""

    def __init__(self, *, H: int, W: int, C: int, lanes: int, K: int, stride: int = 1, pads=None,
                 pad_value: int = 0, repeats: int = 1, pix: int = 1, centre: bool = False,
                 depth: int | None = None, tap: int = 1):
        if K % 2 != 1 or K < 1:
            raise ValueError("K must be odd")
        sy, sx = (stride, stride) if isinstance(stride, int) else (int(stride[0]), int(stride[1]))
        if sy not in (1, 2) or sx not in (1, 2):
            raise ValueError("stride must be 1 or 2 (on each axis)")
        if pix not in (1, 2):
            raise ValueError("pix must be 1 or 2")
        if pads is None:
            pads = (K // 2,) * 4
        pt, pl, pb, pr = (int(p) for p in pads)
        if min(pads) < 0 or max(pads) >= K:
            raise ValueError("pads must be in [0, K)")
        self.H, self.W, self.C, self.lanes, self.K = H, W, C, lanes, K
        self.sy, self.sx = sy, sx  # vertical, horizontal stride
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
        self.Ho = conv_out_size(H, K, sy, pt, pb)
        self.Wo = conv_out_size(W, K, sx, pl, pr)
        if self.Ho < 1 or self.Wo < 1:
            raise ValueError("empty output")
        self.NP = math.ceil(self.Ho * self.Wo / pix)
        self.depth = depth if depth is not None else line_buffer_depth(W, K, (sy, sx), pix)
        self.DG = self.depth * self.G
        span = self._max_span()
        if self.depth < span:
            raise ValueError(f"line buffer depth {self.depth} < window span {span} pixels")

    # -- pure-Python models ------------------------------------------------------------------------------------
    def _positions(self):
        """(row_org, col_org) of every output pixel, raster order."""
        pt, pl = self.pads[0], self.pads[1]
        return [(y * self.sy - pt, x * self.sx - pl) for y in range(self.Ho) for x in range(self.Wo)]

    def _need(self, ro, co):
        return (min(ro + self.K - 1, self.H - 1) * self.W + min(co + self.K - 1, self.W - 1) + 1)

    def _oldest(self, ro, co):
        """First input pixel still needed by this window or any later one (top padding rows clamp to row 0,
        so while ``ro + s <= 0`` the next output row still needs row 0 from column 0)."""
        return max(ro, 0) * self.W + (0 if ro + self.sy <= 0 else max(co, 0))

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

    @property
    def latency(self) -> int:
        """Cycles from the first input beat to the first window beat (input at one beat per cycle)."""
        return self._need(*self._groups()[0][-1]) * self.G + 1

    def reference(self, frame: np.ndarray) -> list[dict]:
        """Expected window beats for one ``[H, W, C]`` frame (list of payload dicts, ``data`` as lane lists)."""
        H, W, C = frame.shape
        G, P = self.G, self.lanes
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

    # -- descriptor pipeline model (mirrors the hardware stage by stage; reset values come from it) -------------
    def _tables(self):
        """Per output row ``y`` / column ``x`` constants of the group-descriptor generator (small ROMs)."""
        H, W, K, sy, sx, G, DG = self.H, self.W, self.K, self.sy, self.sx, self.G, self.DG
        pt, pl = self.pads[0], self.pads[1]
        ny, nx = self.Ho + 2, max(self.Wo, 2)

        def ro(y):
            return y * sy - pt

        def co(x):
            return x * sx - pl
        return {
            "ar": [(ro(y) * W * G) % DG for y in range(ny)],
            "ac": [(co(x) * G) % DG for x in range(nx)],
            "rv": [sum(1 << k for k in range(K) if 0 <= ro(y) + k < H) for y in range(ny)],
            "cv": [sum(1 << k for k in range(K) if 0 <= co(x) + k < W) for x in range(nx)],
            "nr": [min(ro(y) + K - 1, H - 1) * W * G for y in range(ny)],
            "nc1": [(min(co(x) + K - 1, W - 1) + 1) * G - 1 for x in range(nx)],
            "orow": [max(ro(y), 0) * W * G for y in range(ny)],
            "omask": [int(ro(y) + sy > 0) for y in range(ny)],
            "ocol": [max(co(x), 0) * G for x in range(nx)],
        }

    def _gdesc(self, k: int) -> dict:
        """Every field of absolute pixel group ``k`` (frame ``k // NP``) at every generator stage."""
        NP, pix, Wo, HWG, DG = self.NP, self.pix, self.Wo, self.H * self.W * self.G, self.DG
        tb = self._tables()
        f, j = divmod(k, NP)
        pos = [divmod(j * pix + q, Wo) for q in range(pix)]
        real1 = pix == 2 and not (j == NP - 1 and (self.Ho * Wo) % 2 == 1)
        gb = (f * HWG) % DG
        y = [p[0] for p in pos]
        x = [p[1] for p in pos]
        lq = 1 if real1 else 0
        d = dict(y=y, x=x, pc=j, gl=int(j == NP - 1), gb=gb, gbn=gb - DG,
                 ar=[tb["ar"][v] for v in y], ac=[tb["ac"][v] for v in x], acn=[tb["ac"][v] - DG for v in x],
                 rv=[tb["rv"][v] for v in y], cv=[tb["cv"][v] for v in x],
                 nr=tb["nr"][y[lq]], nc1=tb["nc1"][x[lq]], orow=tb["orow"][y[0]],
                 ocol=tb["ocol"][x[0]] * tb["omask"][y[0]], fend=int(j == NP - 1), p1=int(real1))
        d["arel"] = [(a + c) % DG for a, c in zip(d["ar"], d["ac"])]
        d["need1"] = d["nr"] + d["nc1"]
        d["oldest"] = d["orow"] + d["ocol"]
        d["aorg"] = [(a + gb) % DG for a in d["arel"]]
        d["aorgn"] = [a - DG for a in d["aorg"]]
        d["oldest1"] = d["oldest"] + 1
        return d

    def _dold(self, k: int) -> int:
        """Growth of the oldest still-needed beat when the reader leaves group ``k`` (to ``H*W*G`` at a frame end)."""
        d = self._gdesc(k)
        nxt = self.H * self.W * self.G if d["fend"] else self._gdesc(k + 1)["oldest"]
        return nxt - d["oldest"]

    def _beat(self, n: int) -> dict:
        """Counters of window beat ``n`` (absolute, in issue order) and its resolved read (addresses, padding)."""
        k, b = divmod(n, self.beats_per_group)
        r, rem = divmod(b, self.NTG * self.G)
        tg, g = divmod(rem, self.G)
        d = self._gdesc(k)
        K, T, G, DG = self.K, self.T, self.G, self.DG
        slots = self.tap_slots()[tg * T:(tg + 1) * T]
        offs = [o + g for o in self._offsets()[tg * T:(tg + 1) * T]]
        addr = [[(d["aorg"][q] + o) % DG for o in offs] for q in range(self.pix)]
        pad = [[int(sl[3] is None or not ((d["rv"][q] >> sl[3]) & 1 and (d["cv"][q] >> sl[4]) & 1)) for sl in slots]
               for q in range(self.pix)]
        ky, kx = divmod(tg, K)
        first = int(tg == 0 and g == 0)
        win_end = int(tg == self.NTG - 1 and g == G - 1)
        grp_end = int(win_end and r == self.R - 1)
        n_c = (K * K) // 2
        centre = int(r == 0 and (tg == n_c if T == 1 else tg == n_c // T))
        return dict(k=k, r=r, tg=tg, g=g, ky=ky, kx=kx, offc=offs, addr=addr, pad=pad, first=first,
                    wlast=win_end, pfirst=int(first and r == 0), plast=grp_end, flast=int(grp_end and d["fend"]),
                    p1=d["p1"] if self.pix == 2 else 0, centre=centre, need1=d["need1"], dold=self._dold(k))

    def _offsets(self):
        """Buffer offset (words) of every tap slot from the window origin; dummy slots reuse the last tap's."""
        K, W, G = self.K, self.W, self.G
        return [((ky if ky is not None else K - 1) * W + (kx if kx is not None else K - 1)) * G
                for (_, _, _, ky, kx) in self.tap_slots()]

    # -- hardware ----------------------------------------------------------------------------------------------


class WindowGen(WindowModel, wiring.Component):
    """K x K window generator over a circular line buffer (module docstring: the stream contract).

    Parameters
    ----------
    H, W, C : int
        Input frame height, width and channels.
    lanes : int
        Channels per input beat (``ich_par``).
    K, stride, pads, pad_value :
        Square odd window, stride 1 or 2 (an int, or ``(vertical, horizontal)``), padding ``(top, left, bottom, right)`` filled with ``pad_value``.
    repeats : int
        Emissions of every window (one per output-channel group of the engine).
    pix, tap : int
        Windows (output pixels) and kernel taps per beat.
    centre : bool
        Forward every window's centre pixel on ``centre``.
    depth, ram_style, pad_fill :
        Line-buffer pixels (default :func:`rtlgen.plan.geometry.line_buffer_depth`), the copies' ``ram_style``
        (default :func:`rtlgen.plan.geometry.line_copy_style`: LUTRAM for a copy of up to 8 LUTRAM primitives, else
        block RAM, as the planner costs them), padding multiplexer on/off.

    Members
    -------
    i : ``In(act_signature(lanes))``
        Activation beats, raster order.
    o : ``Out(stream.Signature(window_layout(lanes * tap, pix)))``
        Window beats (``tap`` taps of ``lanes`` channels for ``pix`` pixels).
    centre : ``Out(act_signature(lanes))``
        Only with ``centre``: the window centres.
    """

    def __init__(self, *, H: int, W: int, C: int, lanes: int, K: int, stride: int = 1, pads=None,
                 pad_value: int = 0, repeats: int = 1, pix: int = 1, centre: bool = False,
                 depth: int | None = None, ram_style: str | None = None, pad_fill: bool = True, tap: int = 1):
        WindowModel.__init__(self, H=H, W=W, C=C, lanes=lanes, K=K, stride=stride, pads=pads, pad_value=pad_value,
                             repeats=repeats, pix=pix, centre=centre, depth=depth, tap=tap)
        self.ram_style = ram_style
        self.pad_fill = bool(pad_fill)
        sig = {"i": In(act_signature(lanes)), "o": Out(stream.Signature(window_layout(lanes * self.T, pix)))}
        if centre:
            sig["centre"] = Out(act_signature(lanes))
        wiring.Component.__init__(self, sig)
        self._MustUse__silence = True

    def elaborate(self, platform):
        """Register stages (every path: a table lookup or at most one adder plus a few LUTs):

        * generator ``G0..G4``: the pixel group descriptors (buffer origins, ``need``, ``oldest``, padding masks) run
          ``GEN_AHEAD`` groups ahead of the reader and shift one stage per group (reset values from :meth:`_gdesc`);
        * ``C``: the counters of the beat after the next one, ``cur``: its group's descriptor;
        * ``P``: the next beat to issue, fully resolved (read addresses, padding, flags);
        * the memory read register with the output flags (issue = read, as the cycle model assumes).

        ``have`` (the writer holds the next beat's window) and ``room``/``can_write`` (the writer may write) are
        registers computed from next-state values, so they equal the combinational conditions exactly.
        """
        m = Module()
        H, W, K, G, P, R = self.H, self.W, self.K, self.G, self.lanes, self.R
        Ho, Wo, NP, DG, pix = self.Ho, self.Wo, self.NP, self.DG, self.pix
        HWG = H * W * G
        T, NTG = self.T, self.NTG
        attrs = {"ram_style": self.ram_style or line_copy_style(DG, P * 8)}
        # one copy of the buffer per pixel and tap slot (tap parallelism reads T taps of every pixel in one cycle),
        # each with the shared write port and ONE read port: the pix*T copies the planner costs, built explicitly
        # (one memory with many read ports is what yosys 0.23's memory_libmap cannot map: 16 ports took minutes and
        # >20 GiB, DS-CNN's 121 never finished; for a few ports the mapped netlist is the same)
        mems = [[Memory(shape=unsigned(P * 8), depth=DG, init=[], attrs=attrs) for _ in range(T)] for _ in range(pix)]
        for q, row in enumerate(mems):
            for j, mem in enumerate(row):
                m.submodules["lines" if pix * T == 1 else f"lines_{q}_{j}"] = mem
        wps = [mem.write_port() for row in mems for mem in row]
        rps = [[mem.read_port(transparent_for=()) for mem in row] for row in mems]
        slots = self.tap_slots()
        off = self._offsets()
        tb = self._tables()
        a_sh = signed(_sbits(-DG, 0))  # an address minus DG
        need_sh = range(HWG + 1)
        dold_sh = signed(_sbits(-1, HWG + 1))

        def sel_mod(t1, t2):
            """``t1 mod DG`` for ``t1 in [0, 2*DG)`` given ``t2 = t1 - DG`` computed by its own adder; the select is
            ``t2``'s sign bit itself (``t2 < 0`` became a second carry chain on ECP5: yosys' ``alumacc`` maps the
            comparison to a subtraction)."""
            return Mux(t2[-1], t1, t2) if t2.shape().signed else t2

        def rom(idx, values, shape, name):
            """``values[idx]`` (a small table of constants, or a multiplexer of signals), registered by the caller."""
            out = Signal(shape, name=name)
            if all(isinstance(v, int) for v in values):
                # constants: a multiplexer chain, which synthesis reduces to a function of the index bits (a few
                # LUT levels); a case statement of constants would become a ROM memory in yosys' proc_rom
                m.d.comb += out.eq(_select(idx, values, shape))
                return out
            with m.Switch(idx):
                for i, v in enumerate(values[:-1]):
                    with m.Case(i):
                        m.d.comb += out.eq(v)
                with m.Default():
                    m.d.comb += out.eq(values[-1])
            return out

        # ---- writer ----
        wcount = Signal(range(HWG + 1))
        waddr = Signal(range(DG))
        ahead = Signal()  # writer finished the reader's frame and writes the next one
        wp_end = Signal(init=int(HWG == 1))  # wcount == HWG - 1
        # room = oldest + DG - (wcount + ahead*HWG): words the writer may write before it overwrites a needed one
        room = Signal(range(DG + HWG + 2), init=DG)
        room_nz = Signal(init=1)  # room != 0
        fill = Signal()
        drop = Signal()
        wfire = Signal()
        can_write = Signal()
        padword_w = Const(int.from_bytes(bytes([self.pad_value] * P), "little"), unsigned(P * 8))
        m.d.comb += [
            can_write.eq(room_nz & ~(ahead & wp_end)),
            wfire.eq((fill | (self.i.valid & ~drop)) & can_write),
            self.i.ready.eq(drop | (can_write & ~fill)),
        ]
        wdata = Mux(fill, padword_w, self.i.payload.data) if self.pad_fill else self.i.payload.data
        m.d.comb += [x for wp in wps for x in (wp.addr.eq(waddr), wp.data.eq(wdata), wp.en.eq(wfire))]
        with m.If(wfire):
            m.d.sync += waddr.eq(Mux(waddr == DG - 1, 0, waddr + 1))
            with m.If(wp_end):
                m.d.sync += [wcount.eq(0), wp_end.eq(int(HWG == 1)), ahead.eq(1), fill.eq(0),
                             drop.eq(~fill & ~self.i.payload.last)]
            with m.Else():
                m.d.sync += [wcount.eq(wcount + 1), wp_end.eq(wcount == HWG - 2)]
                with m.If(~fill & self.i.payload.last):
                    m.d.sync += fill.eq(1)
        with m.If(drop & self.i.valid & self.i.payload.last):
            m.d.sync += drop.eq(0)

        # ---- group descriptor generator: G0 (positions) .. G4, then cur (the group of the C beat) ----
        AHEAD = 5
        b1 = self._beat(1)
        c0 = b1["k"]  # group of the C beat at reset
        dd = [self._gdesc(c0 + AHEAD - i) for i in range(AHEAD)]  # dd[i]: group held by stage Gi at reset
        dc = self._gdesc(c0)
        y_sh, x_sh = range(Ho + 2), range(max(Wo, 2))

        def sig(shape, name, init):
            return Signal(shape, name=name, init=init)

        def regs(stage, d, *fields):
            """Registers ``<stage>_<field>`` (a list of ``pix``, ``<stage>_<field><q>``, for a per-pixel field)
            initialised from descriptor ``d``; ``fields``: (field, shape, per_pixel[, name])."""
            out = []
            for f, shape, per_pix, *name in fields:
                n = f"{stage}_{name[0] if name else f}"
                out.append([sig(shape, f"{n}{q}", d[f][q]) for q in range(pix)] if per_pix else sig(shape, n, d[f]))
            return out

        PX = True  # a per-pixel field
        win = (("rv", K, PX), ("cv", K, PX))  # the window's valid rows / columns
        need = (("need1", need_sh, 0), ("oldest", need_sh, 0))
        ends = (("fend", 1, 0), ("p1", 1, 0))
        gbase = (("gb", range(DG), 0), ("gbn", a_sh, 0))
        g0y, g0x, g0pc, g0gl, g0gb = regs("g0", dd[0], ("y", y_sh, PX), ("x", x_sh, PX), ("pc", range(max(NP, 2)), 0),
                                          ("gl", 1, 0), ("gb", range(DG), 0))
        (g1ar, g1ac, g1acn, g1rv, g1cv, g1nr, g1nc1, g1orow, g1ocol, g1fend, g1p1, g1gb, g1gbn) = regs(
            "g1", dd[1], ("ar", range(DG), PX), ("ac", range(DG), PX), ("acn", a_sh, PX), *win, ("nr", need_sh, 0),
            ("nc1", need_sh, 0), ("orow", need_sh, 0), ("ocol", need_sh, 0), *ends, *gbase)
        g2arel, g2rv, g2cv, g2need1, g2old, g2fend, g2p1, g2gb, g2gbn = regs(
            "g2", dd[2], ("arel", range(DG), PX), *win, *need, *ends, *gbase)
        g3aorg, g3rv, g3cv, g3need1, g3old, g3fend, g3p1 = regs("g3", dd[3], ("aorg", range(DG), PX), *win, *need, *ends)
        g4aorg, g4aorgn, g4rv, g4cv, g4need1, g4old, g4old1, g4fend, g4p1 = regs(
            "g4", dd[4], ("aorg", range(DG), PX), ("aorgn", a_sh, PX), *win, *need,
            ("oldest1", range(HWG + 2), 0), *ends)
        caorg, caorgn, crv, ccv, cneed1, cfend, cp1 = regs(
            "c", dc, ("aorg", range(DG), PX), ("aorgn", a_sh, PX), *win, ("need1", need_sh, 0), *ends)
        cdold = sig(dold_sh, "c_dold", self._dold(c0))
        cdolm = sig(dold_sh, "c_dolm", self._dold(c0) - 1)

        # tables of G0's positions (combinational, registered in G1)
        real1 = ~g0gl if (pix == 2 and (Ho * Wo) % 2 == 1) else Const(int(pix == 2))
        t_ar = [rom(g0y[q], tb["ar"], range(DG), f"t_ar{q}") for q in range(pix)]
        t_ac = [rom(g0x[q], tb["ac"], range(DG), f"t_ac{q}") for q in range(pix)]
        t_acn = [rom(g0x[q], [v - DG for v in tb["ac"]], a_sh, f"t_acn{q}") for q in range(pix)]
        t_rv = [rom(g0y[q], tb["rv"], K, f"t_rv{q}") for q in range(pix)]
        t_cv = [rom(g0x[q], tb["cv"], K, f"t_cv{q}") for q in range(pix)]
        t_nr = [rom(g0y[q], tb["nr"], need_sh, f"t_nr{q}") for q in range(pix)]
        t_nc1 = [rom(g0x[q], tb["nc1"], need_sh, f"t_nc{q}") for q in range(pix)]
        t_orow = rom(g0y[0], tb["orow"], need_sh, "t_orow")
        t_ocol = rom(g0x[0], tb["ocol"], need_sh, "t_ocol")
        t_omask = rom(g0y[0], tb["omask"], 1, "t_omask")

        gpop = Signal()  # the C beat is the last of its group and moves on: every generator stage shifts
        with m.If(gpop):
            # G0: advance every pixel by ``pix`` raster positions, or restart the frame
            with m.If(g0gl):
                gbc = HWG % DG
                m.d.sync += [g0pc.eq(0), g0gl.eq(int(NP == 1)),
                             g0gb.eq(sel_mod(g0gb + gbc, g0gb + (gbc - DG)))]
                for q in range(pix):
                    y0, x0 = divmod(q, Wo)
                    m.d.sync += [g0y[q].eq(y0), g0x[q].eq(x0)]
            with m.Else():
                m.d.sync += [g0pc.eq(g0pc + 1), g0gl.eq(g0pc == NP - 2)]
                for q in range(pix):
                    # row wraps from comparisons of x itself (in parallel with the adders, not after one)
                    w1 = Const(1) if Wo - pix <= 0 else g0x[q] >= Wo - pix
                    w2 = Const(1) if 2 * Wo - pix <= 0 else Const(0) if 2 * Wo - pix >= Wo else g0x[q] >= 2 * Wo - pix
                    xq, yq = g0x[q], g0y[q]
                    m.d.sync += [xq.eq(Mux(w2, xq + (pix - 2 * Wo), Mux(w1, xq + (pix - Wo), xq + pix))),
                                 yq.eq(Mux(w2, yq + 2, Mux(w1, yq + 1, yq)))]
            # G1: table lookups
            for q in range(pix):
                m.d.sync += [g1ar[q].eq(t_ar[q]), g1ac[q].eq(t_ac[q]), g1acn[q].eq(t_acn[q]),
                             g1rv[q].eq(t_rv[q]), g1cv[q].eq(t_cv[q])]
            m.d.sync += [
                g1nr.eq(Mux(real1, t_nr[-1], t_nr[0])), g1nc1.eq(Mux(real1, t_nc1[-1], t_nc1[0])),
                g1orow.eq(t_orow), g1ocol.eq(Mux(t_omask, t_ocol, 0)),
                g1fend.eq(g0gl), g1p1.eq(real1), g1gb.eq(g0gb), g1gbn.eq(g0gb - DG),
            ]
            # G2: origin within the frame (mod DG), need, oldest
            for q in range(pix):
                m.d.sync += [g2arel[q].eq(sel_mod(g1ar[q] + g1ac[q], g1ar[q] + g1acn[q])),
                             g2rv[q].eq(g1rv[q]), g2cv[q].eq(g1cv[q])]
            m.d.sync += [g2need1.eq(g1nr + g1nc1), g2old.eq(g1orow + g1ocol), g2fend.eq(g1fend), g2p1.eq(g1p1),
                         g2gb.eq(g1gb), g2gbn.eq(g1gbn)]
            # G3: buffer origin (+ frame base, mod DG)
            for q in range(pix):
                m.d.sync += [g3aorg[q].eq(sel_mod(g2arel[q] + g2gb, g2arel[q] + g2gbn)),
                             g3rv[q].eq(g2rv[q]), g3cv[q].eq(g2cv[q])]
            m.d.sync += [g3need1.eq(g2need1), g3old.eq(g2old), g3fend.eq(g2fend), g3p1.eq(g2p1)]
            # G4: origin - DG (the read address adders' second operand), oldest + 1
            for q in range(pix):
                m.d.sync += [g4aorg[q].eq(g3aorg[q]), g4aorgn[q].eq(g3aorg[q] - DG),
                             g4rv[q].eq(g3rv[q]), g4cv[q].eq(g3cv[q])]
            m.d.sync += [g4need1.eq(g3need1), g4old.eq(g3old), g4old1.eq(g3old + 1), g4fend.eq(g3fend),
                         g4p1.eq(g3p1)]
            # cur
            nxt_old = Mux(g4fend, HWG, g3old)
            for q in range(pix):
                m.d.sync += [caorg[q].eq(g4aorg[q]), caorgn[q].eq(g4aorgn[q]), crv[q].eq(g4rv[q]),
                             ccv[q].eq(g4cv[q])]
            m.d.sync += [cneed1.eq(g4need1), cdold.eq(nxt_old - g4old), cdolm.eq(nxt_old - g4old1),
                         cfend.eq(g4fend), cp1.eq(g4p1)]

        # ---- C: counters of the beat after the next one ----
        g = sig(range(max(G, 2)), "c_g", b1["g"])
        r = sig(range(max(R, 2)), "c_r", b1["r"])
        gl = sig(1, "c_glast", int(b1["g"] == G - 1))
        rl = sig(1, "c_rlast", int(b1["r"] == R - 1))
        if T == 1:
            kx = sig(range(max(K, 2)), "c_kx", b1["kx"])
            ky = sig(range(max(K, 2)), "c_ky", b1["ky"])
            kxl = sig(1, "c_kxlast", int(b1["kx"] == K - 1))
            kyl = sig(1, "c_kylast", int(b1["ky"] == K - 1))
            win_end = gl & kxl & kyl
            is_first = (g == 0) & (kx == 0) & (ky == 0)
            is_centre = (r == 0) & (ky == K // 2) & (kx == K // 2)
        else:
            tg = sig(range(max(NTG, 2)), "c_tg", b1["tg"])
            tl = sig(1, "c_tlast", int(b1["tg"] == NTG - 1))
            win_end = gl & tl
            is_first = (g == 0) & (tg == 0)
            is_centre = (r == 0) & (tg == ((K * K) // 2) // T)
        grp_end = win_end & rl
        if T > 1:
            # offset step from the last channel group of tap group t to the first of t+1 (negative for dummies)
            t_delta = []
            for j in range(T):
                deltas = [off[(t + 1) * T + j] - off[t * T + j] - (G - 1) for t in range(NTG - 1)] or [0]
                dsh = signed(_sbits(min(deltas + [0]), max(deltas + [1])))
                t_delta.append(rom(tg, deltas, dsh, f"t_delta{j}"))
        offc = [sig(range(DG), f"c_off{j}", b1["offc"][j]) for j in range(T)]

        # ---- P: the next beat to issue (resolved) ----
        b0 = self._beat(0)
        paddr = [[sig(range(DG), f"p_addr{q}_{j}", b0["addr"][q][j]) for j in range(T)] for q in range(pix)]
        ppad = [[sig(1, f"p_pad{q}_{j}", b0["pad"][q][j]) for j in range(T)] for q in range(pix)]
        pf = {n: sig(1, f"p_{n}", b0[n]) for n in ("first", "wlast", "pfirst", "plast", "flast", "p1", "centre")}
        pneed1 = sig(need_sh, "p_need1", b0["need1"])
        pdold = sig(dold_sh, "p_dold", b0["dold"])
        pdolm = sig(dold_sh, "p_dolm", b0["dold"] - 1)

        # ---- issue, have, running, room ----
        running = Signal(init=1)
        have = Signal()  # registered: running & (ahead | wcount >= need of the P beat)
        ov = Signal()
        c_ok = Signal()
        adv = Signal()
        issue = Signal()
        m.d.comb += [adv.eq(~ov | (self.o.ready & c_ok)), issue.eq(have & adv), gpop.eq(issue & grp_end)]
        restart = ~running & ahead
        running_n = restart | (running & ~(issue & pf["flast"]))
        ahead_n = (ahead & ~restart) | (wfire & wp_end)
        cmp_n = Mux(issue, Mux(wfire, wcount >= cneed1, wcount > cneed1),
                    Mux(wfire, wcount >= pneed1, wcount > pneed1))
        m.d.sync += [have.eq(running_n & (ahead_n | cmp_n)), running.eq(running_n), ahead.eq(ahead_n)]
        rpop = issue & pf["plast"]  # the reader leaves a pixel group: its oldest needed beat moves on
        room_pd, room_pm = room + pdold, room + pdolm
        m.d.sync += [
            room.eq(Mux(rpop, Mux(wfire, room_pm, room_pd), Mux(wfire, room - 1, room))),
            room_nz.eq(Mux(rpop, Mux(wfire, room_pm != 0, room_pd != 0), Mux(wfire, room != 1, room_nz))),
        ]

        if T == 1:  # the C beat's row / column validity (K:1 multiplexers of the group's masks)
            rv_sel = [rom(ky, [crv[q][kk] for kk in range(K)], 1, f"rv_sel{q}") for q in range(pix)]
            cv_sel = [rom(kx, [ccv[q][kk] for kk in range(K)], 1, f"cv_sel{q}") for q in range(pix)]

        # ---- issue: P <- resolved C beat, C advances ----
        with m.If(issue):
            for q in range(pix):
                for j in range(T):
                    m.d.sync += paddr[q][j].eq(sel_mod(caorg[q] + offc[j], caorgn[q] + offc[j]))
            if T == 1:
                for q in range(pix):
                    m.d.sync += ppad[q][0].eq(~(rv_sel[q] & cv_sel[q]))
            else:
                with m.Switch(tg):
                    for t in range(NTG):
                        with (m.Case(t) if t < NTG - 1 else m.Default()):
                            for q in range(pix):
                                for j in range(T):
                                    _, _, _, dy, dx = slots[t * T + j]
                                    v = 1 if dy is None else ~(crv[q][dy] & ccv[q][dx])
                                    m.d.sync += ppad[q][j].eq(v)
            m.d.sync += [
                pf["first"].eq(is_first), pf["wlast"].eq(win_end), pf["pfirst"].eq(is_first & (r == 0)),
                pf["plast"].eq(grp_end), pf["flast"].eq(grp_end & cfend), pf["p1"].eq(cp1 if pix == 2 else 0),
                pf["centre"].eq(is_centre), pneed1.eq(cneed1), pdold.eq(cdold), pdolm.eq(cdolm),
            ]
            # counters
            m.d.sync += [g.eq(Mux(gl, 0, g + 1)), gl.eq(Mux(gl, int(G == 1), g == G - 2))]
            with m.If(win_end):
                m.d.sync += [r.eq(Mux(rl, 0, r + 1)), rl.eq(Mux(rl, int(R == 1), r == R - 2))]
            if T == 1:
                with m.If(gl):
                    m.d.sync += [kx.eq(Mux(kxl, 0, kx + 1)), kxl.eq(Mux(kxl, int(K == 1), kx == K - 2))]
                    with m.If(kxl):
                        m.d.sync += [ky.eq(Mux(kyl, 0, ky + 1)), kyl.eq(Mux(kyl, int(K == 1), ky == K - 2))]
                rowstep = 1 + (W - K) * G
                m.d.sync += offc[0].eq(Mux(win_end, 0, Mux(gl & kxl, offc[0] + rowstep, offc[0] + 1)))
            else:
                with m.If(gl):
                    m.d.sync += [tg.eq(Mux(tl, 0, tg + 1)), tl.eq(Mux(tl, int(NTG == 1), tg == NTG - 2))]
                for j in range(T):
                    m.d.sync += offc[j].eq(Mux(win_end, off[j], Mux(gl, offc[j] + t_delta[j], offc[j] + 1)))

        # ---- memory read (at issue) and output register stage ----
        pad_r = [[Signal(name=f"pad{q}_{j}") for j in range(T)] for q in range(pix)]
        f_first, f_wlast, f_pfirst, f_plast, f_flast, f_p1, f_centre = (
            Signal(name=n) for n in ("f_first", "f_wlast", "f_pfirst", "f_plast", "f_flast", "f_p1", "f_centre"))
        for q in range(pix):
            for j in range(T):
                m.d.comb += [rps[q][j].addr.eq(paddr[q][j]), rps[q][j].en.eq(adv)]
        with m.If(adv):
            m.d.sync += [
                ov.eq(issue),
                f_first.eq(pf["first"]), f_wlast.eq(pf["wlast"]), f_pfirst.eq(pf["pfirst"]),
                f_plast.eq(pf["plast"]), f_flast.eq(pf["flast"]), f_p1.eq(pf["p1"]), f_centre.eq(pf["centre"]),
            ]
            for q in range(pix):
                for j in range(T):
                    m.d.sync += pad_r[q][j].eq(ppad[q][j])

        padword = Const(int.from_bytes(bytes([self.pad_value] * P), "little"), unsigned(P * 8))
        dqs = [[Mux(pad_r[q][j], padword, rps[q][j].data) for j in range(T)] for q in range(pix)]
        j_c = ((K * K) // 2) % T
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
        self._dbg = dict(wcount=wcount, ahead=ahead, running=running, room=room, have=have, waddr=waddr)

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
