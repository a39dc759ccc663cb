"""Streaming depthwise convolution (group == channels, depth multiplier 1): window generator + per-channel MAC engine
+ the one requantization.

Stream contract of :class:`DWConv`
----------------------------------
The same as :class:`rtlgen.cores.conv.Conv` (so it drops into the composer where a conv would go), with
``ich_par == och_par == ch_par`` (a depthwise layer maps input channel ``c`` to output channel ``c``):

* ``i``: activation stream (:mod:`rtlgen.cores.stream`), ``ch_par`` lanes x 8 bits (int8, or uint8 when the layer's
  input is unsigned), the ``H x W x C`` input frame in raster order, ``G = ceil(C/ch_par)`` beats per pixel (the tail
  beat may be partial). Malformed frames (short/long) are realigned by the window generator
  (:mod:`rtlgen.cores.linebuffer`).
* ``o``: activation stream, ``ch_par`` lanes x 8 bits, the ``Ho x Wo x C`` output frame in raster order, ``G`` beats
  per pixel (tail lanes zero), ``last`` on the final beat of each frame.
* Throughput (no stalls, back-to-back frames): :meth:`DWConv.cycles_per_frame`; one window beat (``pix_par`` pixels x
  ``tap_par`` taps x ``ch_par`` channels of MACs) per cycle, one output beat per cycle at most.
* Latency: :meth:`DWConv.latency` (input beat to first output beat, input at full rate).
* No ``ready`` travels combinationally from ``o`` to ``i``: the engine admits window beats by credits (a registered
  ``ok``), the requant has its own credits and output FIFO, and the window generator's ``i.ready`` is a function of
  its registers only.

Kernels
-------
Any ``Kh x Kw`` kernel (odd, even, non-square), the model's own pads ``(top, left, bottom, right)``, stride 1 or 2
(equal in both directions). The window generator (:class:`~rtlgen.cores.linebuffer.WindowGen`) takes odd square
kernels only; a ``Kh x Kw`` kernel is embedded in the smallest odd square ``K' >= max(Kh, Kw)`` whose pads stay in
``[0, K')`` (:func:`embed_kernel`): the kernel sits at offset ``(oy, ox)`` of the ``K' x K'`` window, the pads grow by
the offset on the top/left and by the rest on the bottom/right (same output size and same input positions per tap),
and the added taps carry no multiplier (a slot whose taps are all outside the real kernel is dropped at elaboration;
its line-buffer read port is then unused and removed by synthesis). Odd square kernels use the window generator
as it is. The cost of an embedding is the window generator's: ``K'-1`` buffered rows and, with ``tap_par < K'*K'``,
``ceil(K'*K'/tap_par)`` beats per window instead of ``ceil(Kh*Kw/tap_par)`` (``tap_par = K'`` reads a kernel row
per beat: only the ``K'-Kh`` added rows cost beats).

Engine (:class:`DWConvEngine`)
------------------------------
Window beats arrive in the order ``tap group, channel group`` (:mod:`rtlgen.cores.linebuffer`, ``repeats = 1``):
``NTG = ceil(K'*K'/tap_par)`` tap groups of ``G`` beats. Beat ``(tg, g)`` carries, for each of ``pix_par`` pixels,
the ``tap_par`` taps of tap group ``tg`` for channels ``g*ch_par ...``; lane ``l`` of slot ``j`` is multiplied by
the weight of channel ``g*ch_par + l``, tap ``tg*tap_par + j`` (one ROM word of ``tap_par*ch_par`` int8 weights per
beat, depth ``NTG*G``, storage ``bram`` | ``lut``), the ``tap_par`` products of each lane are summed by a tree
registered every 2 adder levels, and the tap groups are accumulated per channel group in a ``G``-entry delay line
(a shift register without reset, SRL-friendly: the entry leaving it is the same channel group's sum of the previous
tap group). The last tap group's sums are the finished accumulators of channel group ``g``: they enter the result
FIFO and the :class:`~rtlgen.cores.requant.RequantStage` (bias, per-channel multiplier/shift, zero point, clamp:
ReLU/ReLU6 are its ``lo``/``hi``). With ``pix_par = 2`` the two pixels' results go to two FIFOs read ``G`` beats of
pixel 0, then ``G`` beats of pixel 1 (the output's raster order).

Pipeline (every register-to-register path at most ~2 adders, issue 19): input register (the ROM read beside it) ->
activations again / packed pre-add ``x0 + x1 * 2**18`` with the registered weight word -> multiplier ``M`` and ``P``
registers (LUT multipliers: four registered partial products, then their sum) -> the per-lane tap sum as a tree
registered every 2 levels (packed: chunk trees, the lane split, the tree over the chunks) -> the accumulate adder
(``0`` or the delay line's output, plus the tap sum), which writes finished sums into the result FIFO(s). The MAC
pipeline runs free (a valid bit travels with the data); a credit counter per result FIFO counts the results whose
beat was taken and that were not read yet, and ``win.ready`` is the register ``ok`` (every counter below
:attr:`DWConvEngine.credits`, the FIFO depth), so a counted result always finds room.

DSP packing (``pix_par=2, packing=True``): both pixels share each weight (it depends on channel and tap only), so one
multiplier computes ``(x0 + x1 * 2**18) * w`` for two MACs, exactly as :mod:`rtlgen.cores.conv` (chunks small enough
that the low lane stays within +-2**17, then ``lo = sext(sum[0:18])``, ``hi = (sum >> 18) + sum[17]``).
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen import ir
from rtlgen.plan.geometry import dw_dsp_count, embed_kernel, mac_range
from rtlgen.quant import bits_signed

from .arith import credit_counter, delay, ptree, ptree_stages
from .interface import LayerCore
from .linebuffer import WindowGen, WindowModel, window_layout
from .mac import mac_product, packed_sums, result_sequencer, weight_rom
from .requant import RequantStage
from .stream import act_signature

__all__ = ["DW_STORAGE", "DWConv", "DWConvEngine", "dw_dsp_count", "embed_kernel"]

#: weight storage of the depthwise engine (``uram`` is not offered: a depthwise layer holds ``Kh*Kw*C`` bytes)
DW_STORAGE = {"bram": {"ram_style": "block", "rom_style": "block"}, "lut": {}}


class DWConvEngine(wiring.Component):
    """Per-channel MAC array + requant behind a :class:`~rtlgen.cores.linebuffer.WindowGen` (``repeats=1``).

    Parameters
    ----------
    weights : ndarray
        ``[C, K', K']`` int8, the kernel embedded in the window generator's odd square window (zero outside the real
        kernel; ``live`` says which taps are real).
    live : ndarray
        ``[K', K']`` bool, the taps of the real kernel (the others get no multiplier).
    bias, requant
        The layer's int32 bias ``[C]`` and :class:`rtlgen.ir.Requant` (per-channel ``m``/``sh``, ``lo``/``hi``).
    in_signed : bool
        int8 (else uint8) activations.
    out_pixels : int
        ``Ho * Wo``.
    ch_par, pix, tap
        Channel lanes, pixels (1 or 2) and taps per window beat.
    packing : bool
        Two pixels per multiplier (``pix == 2`` and ``mult == "dsp"`` only).
    storage : str
        Weight ROM: ``bram`` | ``lut``.
    mult : str
        ``dsp`` (``*`` with M/P registers) or ``lut`` (fabric multipliers, :func:`~rtlgen.cores.add.lut_mul_pps`).

    Members
    -------
    win : In(stream.Signature(window_layout(tap * ch_par, pix)))
        Window beats of the window generator.
    o : Out(act_signature(ch_par))
        Requantized output, ``G`` beats per pixel, raster order, ``last`` on the frame's final beat.
    """

    def __init__(self, *, weights: np.ndarray, live: np.ndarray, bias: np.ndarray, requant: ir.Requant,
                 in_signed: bool, out_pixels: int, ch_par: int, pix: int = 1, tap: int = 1, packing: bool = True,
                 storage: str = "bram", mult: str = "dsp"):
        C, K, K2 = weights.shape
        if K != K2:
            raise ValueError("the engine takes the embedded square window")
        if np.any(weights < -128) or np.any(weights > 127):
            raise ValueError("weights must be int8")
        if storage not in DW_STORAGE:
            raise ValueError(f"storage must be one of {', '.join(DW_STORAGE)}")
        if mult not in ("dsp", "lut"):
            raise ValueError("mult must be 'dsp' or 'lut'")
        if pix not in (1, 2):
            raise ValueError("pix must be 1 or 2")
        if not 1 <= tap <= K * K:
            raise ValueError(f"tap must be in [1, {K * K}]")
        self.weights = np.asarray(weights, dtype=np.int64) * np.asarray(live, dtype=bool)[None]
        self.live_taps = np.asarray(live, dtype=bool)
        self.C, self.K, self.ch, self.pix, self.T = C, K, ch_par, pix, int(tap)
        self.NTG = math.ceil(K * K / self.T)
        self.G = math.ceil(C / ch_par)
        self.mult = mult
        self.packing = bool(packing and pix == 2 and mult == "dsp")
        self.storage = storage
        self.in_signed = in_signed
        self.x_lo, self.x_hi = (-128, 127) if in_signed else (0, 255)
        self.out_pixels = out_pixels
        lo, hi = mac_range(self.weights.reshape(C, -1), self.x_lo, self.x_hi)
        self.acc_lo, self.acc_hi = lo, hi
        self.acc_bits = bits_signed(lo, hi)
        if self.acc_bits > 32:
            raise ValueError(f"accumulator needs {self.acc_bits} bits (> 32)")
        # slot j is live when some tap group puts a real tap there; lane l when some channel group has channel l
        flat = self.live_taps.reshape(-1)
        self.slots = [j for j in range(self.T)
                      if any(tg * self.T + j < K * K and flat[tg * self.T + j] for tg in range(self.NTG))]
        self.lanes_live = [l for l in range(ch_par) if l < C]
        pmax = max(abs(self.x_lo), abs(self.x_hi)) * max(int(np.abs(self.weights).max(initial=0)), 1)
        self.chunk = max(1, ((1 << 17) - 1) // pmax)
        self.requant = RequantStage(
            lanes=ch_par, channels=C, acc_range=(lo, hi), bias=bias, m=requant.m, sh=requant.sh,
            zp_out=requant.zp_out, lo=requant.lo, hi=requant.hi, rounding=requant.rounding,
            beats_per_frame=out_pixels * self.G, out_shift=requant.out_shift,
            out_hi=requant.out_hi)
        super().__init__({"win": In(stream.Signature(window_layout(self.T * ch_par, pix))),
                          "o": Out(act_signature(ch_par))})
        self._MustUse__silence = True  # also built as a pure cycle/shape model

    # -- geometry -------------------------------------------------------------------------------------------------
    @property
    def rom_depth(self) -> int:
        return self.NTG * self.G

    @property
    def rom_width(self) -> int:
        return self.T * self.ch * 8

    def rom_init(self) -> list[int]:
        """Weight words in read order ``tap group, g``: slot ``j``, lane ``l`` (channel ``g*ch_par + l``, tap
        ``tg*tap + j``) at bits ``[(j*ch_par + l)*8 +: 8]``; zero past the channels and the taps."""
        K, T, P = self.K, self.T, self.ch
        flat = self.weights.reshape(self.C, -1)
        words = []
        for tg in range(self.NTG):
            for g in range(self.G):
                w = 0
                for j in range(T):
                    n = tg * T + j
                    for l in range(P):
                        c = g * P + l
                        if n < K * K and c < self.C:
                            w |= (int(flat[c, n]) & 0xFF) << ((j * P + l) * 8)
                words.append(w)
        return words

    @property
    def chunks(self) -> list[int]:
        n = len(self.slots)
        return [min(self.chunk, n - c0) for c0 in range(0, n, self.chunk)]

    @property
    def sum_stages(self) -> int:
        """Register stages of the per-lane tap sum: a tree registered every 2 adder levels (packed: chunk trees, the
        lane split, the tree over the chunks)."""
        n = len(self.slots)
        if n == 0:
            return 0
        if self.packing:
            return ptree_stages(max(self.chunks)) + 1 + ptree_stages(len(self.chunks))
        return ptree_stages(n)

    @property
    def pipe_depth(self) -> int:
        """Cycles from taking a beat to writing its finished sums into the result FIFO: input register (ROM read),
        activations again / pre-add (with the registered weight word), multiplier M and P registers,
        :attr:`sum_stages`, then the accumulate adder writes the FIFO."""
        return 4 + self.sum_stages

    @property
    def credits(self) -> int:
        """Results in flight (beat taken, not yet read from the result FIFO) per result FIFO; also the FIFO depth.
        The pipeline and the credit loop (FIFO read -> registered read -> registered ``ok``), plus with two pixels the ``G`` results of
        pixel 1 waiting while pixel 0's are read."""
        return self.pipe_depth + 6 + (self.G if self.pix == 2 else 0)

    @property
    def latency(self) -> int:
        """Cycles from the first window beat (taken) to the first output beat: the tap groups before the last one,
        the pipeline, the result FIFO (2 cycles) and the requant."""
        return (self.NTG - 1) * self.G + self.pipe_depth + 2 + self.requant.latency

    # -- hardware -------------------------------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        P, T, pix, G, NTG = self.ch, self.T, self.pix, self.G, self.NTG
        acb = self.acc_bits
        m.submodules.requant = rq = self.requant
        win = self.win
        N = self.credits

        ok = Signal(init=1, name="credit_ok")
        take = Signal(name="take")
        m.d.comb += [win.ready.eq(ok), take.eq(win.valid & ok)]

        # ---- beat position within the window (registers; realigned at every window's last beat) ----
        gc = Signal(range(max(G, 2)), name="gc")
        gl = Signal(init=int(G == 1), name="g_last")
        tg = Signal(range(max(NTG, 2)), name="tg")
        tg0 = Signal(init=1, name="tg_first")
        tgl = Signal(init=int(NTG == 1), name="tg_last")
        waddr = Signal(range(max(self.rom_depth, 2)), name="waddr")
        with m.If(take):
            with m.If(win.payload.wlast):
                m.d.sync += [gc.eq(0), gl.eq(int(G == 1)), tg.eq(0), tg0.eq(1), tgl.eq(int(NTG == 1)),
                             waddr.eq(0)]
            with m.Else():
                m.d.sync += waddr.eq(waddr + 1)
                with m.If(gl):
                    m.d.sync += [gc.eq(0), gl.eq(int(G == 1)), tg.eq(tg + 1), tg0.eq(0), tgl.eq(tg == NTG - 2)]
                with m.Else():
                    m.d.sync += [gc.eq(gc + 1), gl.eq(gc == G - 2)]

        # ---- weight ROM, read with the input register; its word registered once more ----
        init = self.rom_init()
        init += [0] * (2 - len(init))
        rom_data = weight_rom(m, init, self.rom_width, waddr, self.storage, DW_STORAGE.get(self.storage))

        # ---- stage 1: activations (9-bit signed) and flags ----
        slots, lanes = self.slots, self.lanes_live
        x1 = {}
        for q in range(pix):
            for j in slots:
                for l in lanes:
                    b = win.payload.data[((q * T + j) * P + l) * 8:((q * T + j) * P + l + 1) * 8]
                    s = Signal(signed(9), name=f"x1_{q}_{j}_{l}")
                    m.d.sync += s.eq(b.as_signed() if self.in_signed else b)
                    x1[q, j, l] = s
        v1, tg01, tgl1, p11 = (Signal(name=n) for n in ("v1", "tg0_1", "tgl_1", "p1_1"))
        m.d.sync += [v1.eq(take), tg01.eq(tg0), tgl1.eq(tgl), p11.eq(win.payload.p1)]

        # ---- stage 2: packed pre-add or the activations again; the weight word arrives ----
        xa = {}
        if self.packing:
            for j in slots:
                for l in lanes:
                    s = Signal(signed(27), name=f"pk_{j}_{l}")
                    m.d.sync += s.eq(x1[0, j, l] + (x1[1, j, l] << 18))
                    xa[0, j, l] = s
        else:
            for key, v in x1.items():
                s = Signal(signed(9), name=f"x2_{key[0]}_{key[1]}_{key[2]}")
                m.d.sync += s.eq(v)
                xa[key] = s

        def weight(j, l):
            return rom_data[(j * P + l) * 8:(j * P + l + 1) * 8].as_signed()

        # ---- stages 3, 4: products with M and P registers (LUT multipliers: partial products, then their sum) ----
        prod = {}
        for (q, j, l), xv in xa.items():
            prod[q, j, l] = mac_product(m, xv, weight(j, l), self.mult, self.packing, f"{q}_{j}_{l}")
        flags4 = [delay(m, s, 3, s.name) for s in (v1, tg01, tgl1, p11)]

        # ---- per-lane tap sums: a tree registered every 2 adder levels ----
        S = self.sum_stages
        ps = {}
        for l in lanes:
            if not slots:
                for q in range(pix):
                    ps[q, l] = Const(0, signed(2))
            elif self.packing:
                ps[0, l], ps[1, l] = packed_sums(m, [prod[0, j, l] for j in slots], self.chunk, self.chunks, str(l))
            else:
                for q in range(pix):
                    ps[q, l] = ptree(m, [prod[q, j, l] for j in slots], f"ps_{q}_{l}")
        v3, tg03, tgl3, p13 = (delay(m, s, S, s.name) for s in flags4)

        # ---- accumulate over the tap groups: a G-entry delay line per lane (no reset: SRL-friendly) ----
        res = [[None] * P for _ in range(pix)]
        for q in range(pix):
            for l in range(P):
                if l not in lanes:
                    res[q][l] = Const(0, signed(acb))
                    continue
                nxt = Signal(signed(acb), name=f"accn_{q}_{l}")
                if NTG == 1:
                    m.d.comb += nxt.eq(ps[q, l])
                else:
                    line = [Signal(signed(acb), name=f"accl_{q}_{l}_{k}", reset_less=True) for k in range(G)]
                    m.d.comb += nxt.eq(Mux(tg03, 0, line[-1]) + ps[q, l])
                    with m.If(v3):
                        m.d.sync += line[0].eq(nxt)
                        m.d.sync += [line[k].eq(line[k - 1]) for k in range(1, G)]
                res[q][l] = nxt

        # ---- result FIFO(s): a finished channel group (last tap group) enters; credits guarantee room ----
        m.submodules.res0 = f0 = fifo.SyncFIFOBuffered(width=P * acb + 1, depth=N)
        fifos = [f0]
        push = v3 & tgl3
        m.d.comb += [f0.w_data.eq(Cat(*[res[0][l] for l in range(P)], p13)), f0.w_en.eq(push)]
        if pix == 2:
            m.submodules.res1 = f1 = fifo.SyncFIFOBuffered(width=P * acb, depth=N)
            fifos.append(f1)
            m.d.comb += [f1.w_data.eq(Cat(*[res[1][l] for l in range(P)])), f1.w_en.eq(push & p13)]

        # ---- output order: G groups of pixel 0, then G groups of pixel 1 ----
        result_sequencer(m, fifos, G, P * acb, rq.i)

        # ---- credits: +1 when a last-tap-group beat is taken, -1 the cycle after its result left the FIFO (the
        # read is registered first: the output sequencer's multiplexers and the counter's adder are in different
        # cycles; the count is one too high for a cycle, never too low, so a counted result always finds room) ----
        inc = Signal(name="credit_inc")
        m.d.comb += inc.eq(take & tgl)
        oks = []
        for k, f in enumerate(fifos):
            dec = Signal(name=f"read{k}")
            m.d.sync += dec.eq(f.r_en)
            oks.append(credit_counter(m, f"inflight{k}", N, inc if k == 0 else inc & win.payload.p1, dec))
        m.d.sync += ok.eq(oks[0] if len(oks) == 1 else oks[0] & oks[1])

        wiring.connect(m, wiring.flipped(self.o), rq.o)
        return m


class DWConv(LayerCore, wiring.Component):
    """A depthwise convolution layer of the IR (``layer.depthwise``, ``O == C``) as a streaming core:
    :class:`~rtlgen.cores.linebuffer.WindowGen` (``repeats=1``) + :class:`DWConvEngine`.

    Parameters
    ----------
    layer : rtlgen.ir.Conv
        ``group == C``, weights ``[C, Kh, Kw, 1]`` (any ``Kh x Kw``), ``stride`` ``(1, 1)`` or ``(2, 2)``, ``pads``
        ``(top, left, bottom, right)``, ``pad_value`` (input zero point), ``requant`` (``lo``/``hi`` carry ReLU /
        ReLU6). A merged residual is not supported.
    ch_par : int
        Channel lanes of ``i`` and ``o`` (channels per beat).
    pix_par : int
        Output pixels per window beat (1 or 2).
    tap_par : int
        Kernel taps per window beat, ``1 .. K'*K'`` (``K'``: :func:`embed_kernel`); each costs a line-buffer read
        port (a memory copy) per pixel.
    packing : bool
        With ``pix_par=2``: two MACs per DSP (the pixels share the weight).
    storage : str
        Weight ROM ``bram`` | ``lut``.
    mult : str
        ``dsp`` | ``lut`` multipliers.
    line_ram_style : str or None
        ``ram_style`` of the line buffer.

    Members
    -------
    i : In(act_signature(ch_par))
        Input activations, ``H x W x C`` frames, ``ceil(C/ch_par)`` beats per pixel, ``last`` on each frame's final
        beat.
    o : Out(act_signature(ch_par))
        Output activations, ``Ho x Wo x C`` frames, ``ceil(C/ch_par)`` beats per pixel, ``last`` on each frame's
        final beat.
    """

    def __init__(self, layer: ir.Conv, *, ch_par: int = 1, pix_par: int = 1, tap_par: int = 1,
                 packing: bool = True, storage: str = "bram", mult: str = "dsp", line_ram_style=None):
        H, W, C = layer.in_shape
        O, kh, kw, cg = layer.weights.shape
        if cg != 1 or O != C or layer.group != C:
            raise ValueError(f"{layer.name}: not a depthwise conv with depth multiplier 1 "
                             f"(weights {layer.weights.shape}, group {layer.group}, {C} channels)")
        if layer.residual is not None:
            raise ValueError(f"{layer.name}: a merged residual is not supported by the depthwise core")
        if layer.stride[0] != layer.stride[1] or layer.stride[0] not in (1, 2):
            raise ValueError(f"{layer.name}: stride {tuple(layer.stride)}: equal strides 1 or 2 only")
        self.layer = layer
        self.ch_par, self.pix_par = ch_par, pix_par
        self.ich_par = self.och_par = ch_par  # the conv core's names (composer, planner)
        self.kernel = (kh, kw)
        K, oy, ox, wpads = embed_kernel(kh, kw, layer.pads)
        self.K, self.offset, self.window_pads = K, (oy, ox), wpads
        if not 1 <= tap_par <= K * K:
            raise ValueError(f"tap_par must be in [1, {K * K}]")
        self.tap_par = tap_par
        emb = np.zeros((C, K, K), dtype=np.int64)
        emb[:, oy:oy + kh, ox:ox + kw] = layer.weights[:, :, :, 0]
        live = np.zeros((K, K), dtype=bool)
        live[oy:oy + kh, ox:ox + kw] = True
        in_signed = bool(layer.in_q.signed) if layer.in_q is not None else True
        self.window = WindowGen(**self._window_args(layer, ch_par, pix_par, tap_par), ram_style=line_ram_style)
        if (self.window.Ho, self.window.Wo, C) != tuple(layer.out_shape):
            raise ValueError(f"{layer.name}: output shape {layer.out_shape} does not match the window geometry "
                             f"{(self.window.Ho, self.window.Wo, C)}")
        self.engine = DWConvEngine(weights=emb, live=live, bias=layer.bias, requant=layer.requant,
                                   in_signed=in_signed, out_pixels=self.window.Ho * self.window.Wo, ch_par=ch_par,
                                   pix=pix_par, tap=tap_par, packing=packing, storage=storage, mult=mult)
        self.G = self.R = self.engine.G
        # the conv core's optional features, absent here (what the composer asks a conv core)
        self.load_ports, self.centre_out, self.proj_layer = [], False, None
        super().__init__({"i": In(act_signature(ch_par)), "o": Out(act_signature(ch_par))})
        self._MustUse__silence = True  # also built as a pure cycle/shape model

    # -- the interface of the layer cores (rtlgen.cores.interface) --------------------------------------------------
    @classmethod
    def from_layer(cls, layer, **knobs):
        return cls(layer, **knobs)

    @classmethod
    def plan_knobs(cls, layer, lp, ctx=None) -> dict:
        """The plan's decisions: ``ch_par`` is the plan's ``och_par`` (= its ``ich_par``)."""
        return dict(ch_par=lp.och_par, pix_par=lp.pix_par, tap_par=lp.tap_par, packing=lp.packing,
                    storage=lp.storage, mult=lp.mult)

    @staticmethod
    def _window_args(layer, ch_par, pix_par, tap_par) -> dict:
        H, W, C = layer.in_shape
        _, kh, kw, _ = layer.weights.shape
        K, _, _, wpads = embed_kernel(kh, kw, layer.pads)
        return dict(H=H, W=W, C=C, lanes=ch_par, K=K, stride=layer.stride[0], pads=wpads,
                    pad_value=layer.pad_value, repeats=1, pix=pix_par, tap=tap_par)

    @classmethod
    def plan_cycles(cls, layer, lp, ctx=None) -> int:
        """:meth:`cycles_per_frame` from the window generator's pure-Python model (no core is built)."""
        kw = cls.plan_knobs(layer, lp, ctx)
        return cls._frame_cycles(WindowModel(**cls._window_args(layer, kw["ch_par"], kw["pix_par"], kw["tap_par"])))

    @staticmethod
    def _frame_cycles(wg) -> int:
        return max(wg.cycles_per_frame(), wg.Ho * wg.Wo * wg.G)

    # -- cycle model ----------------------------------------------------------------------------------------------
    def cycles_per_frame(self) -> int:
        """Steady-state cycles per frame (back-to-back frames, no external stalls): the window generator's (input
        ``H*W*G`` beats, ``ceil(Ho*Wo/pix_par) * NTG * G`` window beats, the frame change) or the output's
        ``Ho*Wo*G`` beats, whichever is larger."""
        return self._frame_cycles(self.window)

    @property
    def latency(self) -> int:
        """Cycles from the first input beat to the first output beat (input at full rate)."""
        return self.window.latency + self.engine.latency

    @property
    def dsp(self) -> int:
        e = self.engine
        return dw_dsp_count(len(e.lanes_live), len(e.slots), e.pix, e.packing, e.mult)

    def resources(self) -> dict:
        """Pure-Python resource model (the planner's, :meth:`rtlgen.cores.conv.Conv.resources` keys): ``dsp_mac``,
        ``lut_mults``, ``requant_dsp`` (the requant's DSP48E2s), ``line_buffer_bits`` (``pix_par * tap_par`` memory
        copies), ``weight_bits``, ``weight_rom``, ``dsp``."""
        e, wg = self.engine, self.window
        rq = e.requant
        out = {
            "dsp_mac": self.dsp,
            "lut_mults": len(e.lanes_live) * len(e.slots) * e.pix if e.mult == "lut" else 0,
            "requant_dsp": e.ch * rq.dsp_per_lane,
            "line_buffer_bits": wg.DG * wg.lanes * 8 * wg.pix * wg.T,
            "weight_bits": e.rom_depth * e.rom_width,
            "weight_rom": (e.rom_depth, e.rom_width, e.storage),
        }
        out["dsp"] = out["dsp_mac"] + out["requant_dsp"]
        return out

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = wg = self.window
        m.submodules.engine = eng = self.engine
        wiring.connect(m, wiring.flipped(self.i), wg.i)
        wiring.connect(m, wg.o, eng.win)
        wiring.connect(m, eng.o, wiring.flipped(self.o))
        return m
