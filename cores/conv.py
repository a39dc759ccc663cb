"""Streaming convolution: window generator + MAC engine with DSP packing + requant with a merged residual add.

Stream contract of :class:`Conv`
--------------------------------
* ``i``: activation stream (:mod:`rtlgen.cores.stream`), ``ich_par`` lanes x 8 bits (int8, or uint8 when the layer's
  input is unsigned), the ``H x W x C`` input frame in raster order, ``ceil(C/ich_par)`` beats per pixel (the tail beat
  may be partial). ``ich_par`` is the conv's input parallelism: a producer with another lane count needs a lane
  converter in front.
* ``o``: activation stream, ``och_par`` lanes x 8 bits, the ``Ho x Wo x O`` output frame in raster order,
  ``R = ceil(O/och_par)`` beats per pixel (tail lanes zero), ``last`` on the final beat of each frame.
* ``skip`` (only when the layer has a merged residual): activation stream with the layout of ``o`` (``och_par`` lanes,
  ``R`` beats per pixel, raster order); beat ``n`` is added into output beat ``n`` as
  ``(skip - res_zp) * res_m[o]`` before the shared rounding shift (exactly ``golden.conv_post``).
* ``centre`` (optional, temporal reuse): the centre pixel of every window, ``ich_par`` lanes, raster order of the
  output pixels (see :mod:`rtlgen.cores.linebuffer`): with 'same' padding and stride 1 this is the layer input
  itself, delayed to the conv's window timing -- the skip stream of the block's second conv needs only
  :func:`rtlgen.plan.geometry.skip_fifo_entries` entries of FIFO behind it.
* ``proj`` (optional, loop merging): the output of a 1x1 stride-``s`` projection shortcut computed on the window
  centres of this conv (``Conv(..., proj=layer)``), ``proj_och_par`` lanes, raster order.
* Throughput (no stalls, back-to-back frames): :meth:`Conv.cycles_per_frame`; one window beat (``pix_par`` pixels x
  ``tap_par`` taps x ``ich_par`` channels x ``och_par`` output channels of MACs) per cycle.
* Latency: :attr:`Conv.latency` (input beat to first output beat, input at full rate).

Engine (:class:`ConvEngine`)
----------------------------
For each group of ``pix_par`` output pixels and each of the ``R`` output-channel groups, the window
(``ceil(K*K/tap_par)*G`` beats, ``G = ceil(C/ich_par)``; ``tap_par`` taps per beat, see
:mod:`rtlgen.cores.linebuffer`) streams through an ``och_par x (tap_par*ich_par) x pix_par`` MAC array (tap
parallelism splits the ``K*K*C`` dot product finer than channel groups alone: e.g. a 16-channel 3x3 layer at 8 output
channels, 9 taps and 1 channel per beat uses its 72 MACs per pixel fully, where ``ceil(16/ich_par)`` steps waste up to a
third); weights come from one ROM word per beat (``och_par*tap_par*ich_par`` int8 weights, depth
``R*ceil(K*K/tap_par)*G``, storage ``bram`` | ``uram`` | ``lut`` chosen per
instance: a memory with ``ram_style``/``rom_style`` attributes, or a ROM in logic for ``lut``; see
:data:`STORAGE_ATTRS`). Lanes beyond ``C`` or ``O`` carry zero weights, so no
parallelism needs to divide the channel counts.

Pipeline and flow control (every register-to-register path at most ~2 adders): the engine's MAC pipeline runs free
(no clock enable; a valid bit travels with the data): input register (the ROM read beside it) ->
packed pre-add ``x0 + x1 * 2**18`` (or the activations again) with the weight word -> multiplier ``M`` and ``P``
registers (LUT multipliers: four partial products, then their tree) -> the per-beat sum as a tree registered every
2 adder levels (packed: chunk trees, the lane split, the tree over the chunks; :attr:`ConvEngine.sum_stages`) ->
the accumulate adder, which writes a finished window into the result FIFO(s). Windows are admitted by credits: a
counter per result FIFO counts the windows whose last beat was taken and whose result has not been read yet, and
``win.ready`` is a register (``ok``: every counter below :attr:`ConvEngine.credits`, which is also the FIFO depth),
so a counted window always finds room and no ``ready`` travels through the pipeline. The requant behind it
(:class:`~rtlgen.cores.requant.RequantStage`) has its own registered ready and output FIFO: ``o.ready`` never reaches
``win.ready`` or the window generator in the same cycle. Throughput is unchanged (one window beat per cycle); the
latency grows by the pipeline stages (:attr:`Conv.latency`).

Weights in UltraRAM (``storage="uram"``): load protocol
------------------------------------------------------
UltraRAM has no initial contents on UltraScale+ (it powers up to zero; Vivado ignores an INIT for it), so a ``uram``
weight memory is a RAM (``ram_style="ultra"``, no initial values in the Verilog: :func:`strip_ultra_init`) with one
write port, filled at start-up through the stream port ``wload``:

* ``wload``: payload = one memory word, ``rom_width = och_par*P*8`` bits, ``P = tap_par*ich_par`` (the same packing
  as :meth:`ConvEngine.rom_init`: weight of output lane ``o`` and MAC lane ``i`` at bits ``[(o*P+i)*8 +: 8]``,
  int8 two's complement), no ``last``; exactly ``rom_depth`` beats in address order (word 0 first). Beat ``n`` is
  written to address ``n`` on the clock edge where ``valid & ready``.
* ``wload.ready`` is high exactly while the memory is not yet fully loaded: from reset until the edge that accepts
  the last word, then low for good (it never drops in between, so a producer may stream at full rate). Further beats
  are not accepted (the stream just stalls), so a second image cannot overwrite the first without a reset.
* ``loaded`` (output): 1 from the cycle after the last word was written. Until then the core does not start
  computing: its activation inputs (``i``, and ``skip`` with a merged residual) hold ``ready`` low, so no beat is
  consumed before the weights are in place. ``rst`` clears ``loaded`` and the write address: after a reset the
  weights must be loaded again (the RAM contents survive, but the core does not assume so).
* With a loop-merged projection whose storage is ``uram`` too, :class:`Conv` has a second port ``proj_wload`` (the
  projection's words, same rules); ``loaded`` is then the AND of both memories.
* Cycle model and latency count from the first activation beat after loading; loading ``rom_depth`` words takes
  ``rom_depth`` cycles at full rate.

``bram`` and ``lut`` storage have no load port and are initialized ROMs as before.

DSP packing (``pix_par=2, packing=True``): both pixels share each weight, so one multiplier computes
``(x0 + x1 * 2**18) * w`` (27 x 8 bits: the DSP48E2 A x B port) for two MACs. Activations are 9-bit signed (int8
sign-extended or uint8 zero-extended). Packed products are summed in chunks small enough that the low lane stays
within +-2**17 (``chunk = (2**17-1) // max|x*w|``: 4 products for uint8, 8 for int8 with narrow-range weights, 7 when a weight is -128), then split: ``lo = sext(sum[0:18])`` and
``hi = (sum >> 18) + sum[17]`` (the borrow of a negative low lane is given back to the high lane); the lanes then
accumulate separately at full width. ``packing=False`` uses one multiplier per MAC. Accumulators are sized from the
actual weights (at most 32 bits are needed for int8 layers).
"""

from __future__ import annotations

import math
import operator
import re

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtlgen import ir
from rtlgen.plan.geometry import conv_live_slots, conv_window, mac_range
from rtlgen.quant import bits_signed

from .arith import credit_counter, delay, ptree, ptree_stages, tree_reduce
from .linebuffer import WindowGen, WindowModel, window_layout
from .mac import mac_product, packed_sums, registered_word, result_sequencer, weight_rom
from .requant import RequantStage
from .interface import LayerCore
from .stream import act_signature

__all__ = ["Conv", "ConvEngine", "STORAGE_ATTRS", "dsp_count", "strip_ultra_init",
           "load_signature"]

#: Memory attributes per weight storage. ``lut`` is not a memory at all but a ROM built from logic
#: (:func:`rtlgen.cores.arith.logic_rom`), which every tool maps to LUTs. ``uram``: UltraRAM has no initial
#: contents on UltraScale+, so a ``uram`` weight memory is a RAM written through the ``wload`` port at start-up
#: (see the module docstring), never an initialized ROM.
STORAGE_ATTRS = {
    "bram": {"ram_style": "block", "rom_style": "block"},
    "uram": {"ram_style": "ultra"},
    "lut": {},
}


def load_signature(width: int) -> stream.Signature:
    """Weight-load stream: one memory word (``width`` bits) per beat, no ``last`` (see the module docstring)."""
    return stream.Signature(unsigned(width))


_ULTRA_INIT = re.compile(
    r'(\(\* ram_style = "ultra" \*\)\n\s*reg \[[^\]]*\] (\S+) \[[^\]]*\];\n)\s*initial begin\n(?:\s*\2\[\d+\] = [^;]*;\n)*\s*end\n')


def strip_ultra_init(verilog: str) -> str:
    """Remove the ``initial`` block Amaranth emits (all zeros) for every ``ram_style = "ultra"`` memory: UltraRAM has
    no initial contents, the weights are written through the load port."""
    return _ULTRA_INIT.sub(r"\1", verilog)


def _load_port(m: Module, mem: Memory, port, n_words: int, loaded: Signal):
    """Write port of a load-at-start-up weight RAM: ``n_words`` beats of ``port`` into addresses 0.. in order."""
    wp = mem.write_port()
    addr = Signal(range(max(n_words, 2)), name="load_addr")
    fire = Signal(name="load_fire")
    m.d.comb += [port.ready.eq(~loaded), fire.eq(port.valid & ~loaded),
                 wp.addr.eq(addr), wp.data.eq(port.payload), wp.en.eq(fire)]
    with m.If(fire):
        with m.If(addr == n_words - 1):
            m.d.sync += [addr.eq(0), loaded.eq(1)]
        with m.Else():
            m.d.sync += addr.eq(addr + 1)
    return wp


def embedded_weights(layer: ir.Conv) -> np.ndarray:
    """The layer's ``[O, kh, kw, C]`` weights inside its ``K' x K'`` window (:func:`rtlgen.plan.geometry.conv_window`,
    the one embedding the planner costs): the kernel at offset ``(oy, ox)``, zeros elsewhere (the added taps read
    the window's grown pads or real pixels and add nothing). A square odd kernel with pads below ``K`` is itself."""
    O, kh, kw, C = layer.weights.shape
    K, oy, ox, _ = conv_window(layer)
    if (K, oy, ox) == (kh, 0, 0) and kh == kw:
        return layer.weights
    emb = np.zeros((O, K, K, C), dtype=np.int64)
    emb[:, oy:oy + kh, ox:ox + kw] = layer.weights
    return emb


def tree_and(terms):
    terms = list(terms)
    return terms[0] if len(terms) == 1 else terms[0] & terms[1]


def tree_sum(terms):
    """Balanced adder tree (avoids deep recursion at Verilog export); ``Const(0)`` for no terms."""
    terms = list(terms)
    return tree_reduce(terms, operator.add) if terms else Const(0)


def dsp_count(och_par: int, ich_par: int, pix_par: int, packing: bool, mult: str = "dsp") -> int:
    """Multipliers (DSP48E2) of the MAC array (the requant multipliers come on top when ``m`` is not a power of 2);
    0 with ``mult="lut"`` (multipliers in fabric)."""
    if mult == "lut":
        return 0
    per = 1 if (pix_par == 2 and packing) else pix_par
    return och_par * ich_par * per


def _acc_layout(lanes, bits, extra=0):
    return unsigned(lanes * bits + extra)


class ConvEngine(wiring.Component):
    """MAC array + requant behind a :class:`~rtlgen.cores.linebuffer.WindowGen` (port ``win``).

    Parameters
    ----------
    weights, bias : int arrays
        int8 ``[O, K, K, C]`` weights, int32 ``[O]`` biases.
    requant : :class:`rtlgen.ir.Requant`
        The per-channel requantization (multiplier, shift, zero point, clamp, rounding).
    in_signed : bool
        int8 (else uint8) activations.
    out_pixels : int
        Output pixels per frame.
    ich_par, och_par, pix, tap : int
        Channels, output channels, pixels and kernel taps per cycle.
    packing, storage, mult :
        Two MACs per DSP48E2 (``pix=2``); weight ROM (``bram``, ``uram``, ``lut``); multipliers (``dsp``, ``lut``).
    res_m, res_zp, skip_signed :
        Merged residual: per-channel multipliers, zero point and signedness of the skip (None: no residual).

    Members
    -------
    win : ``In(stream.Signature(window_layout(tap * ich_par, pix)))``
        Window beats from the window generator.
    o : ``Out(act_signature(och_par))``
        Output activations.
    skip : ``In(act_signature(och_par))``
        Only with a residual: the skip stream.
    wload : ``In(load_signature(rom_width))``
        Only with ``storage="uram"``: the weight words, loaded once after reset.
    loaded : ``Out(1)``
        Only with ``storage="uram"``: the weights are loaded.
    """

    def __init__(self, *, weights: np.ndarray, bias: np.ndarray, requant: ir.Requant, in_signed: bool,
                 out_pixels: int, ich_par: int, och_par: int = 1, pix: int = 1, packing: bool = True,
                 storage: str = "bram", res_m=None, res_zp: int = 0, skip_signed: bool = True, mult: str = "dsp",
                 tap: int = 1, live_slots=None):
        O, Kh, Kw, C = weights.shape
        if mult not in ("dsp", "lut"):
            raise ValueError("mult must be 'dsp' or 'lut'")
        if Kh != Kw:
            raise ValueError("square kernels only")
        if storage not in STORAGE_ATTRS:
            raise ValueError(f"storage must be one of {', '.join(STORAGE_ATTRS)}")
        if np.any(weights < -128) or np.any(weights > 127):
            raise ValueError("weights must be int8")
        self.weights = np.asarray(weights, dtype=np.int64)
        self.O, self.K, self.C = O, Kh, C
        if not 1 <= tap <= Kh * Kw:
            raise ValueError(f"tap must be in [1, {Kh * Kw}]")
        self.T = int(tap)
        self.NTG = math.ceil(Kh * Kw / self.T)
        self.ich = ich_par
        # MAC lanes per pixel: T tap slots x ich_par channels (lane l = slot j, channel i: l = j*ich_par + i)
        self.P, self.och, self.pix = ich_par * self.T, och_par, pix
        #: tap slots that carry a real kernel tap in some tap group (an embedded kernel's others only ever meet zero
        #: weights: no multiplier); the MAC lanes of those slots
        self.slots = sorted(set(range(self.T) if live_slots is None else live_slots))
        if not self.slots or not set(self.slots) <= set(range(self.T)):
            raise ValueError(f"live_slots must be a non-empty subset of range({self.T})")
        self.live = [j * ich_par + i for j in self.slots for i in range(ich_par)]
        self.mult = mult  # "lut": multipliers in fabric (cores/arith.py lut_mul), never packed
        self.packing = bool(packing and pix == 2 and mult == "dsp")
        self.storage = storage
        self.G = math.ceil(C / ich_par)
        self.R = math.ceil(O / och_par)
        self.in_signed = in_signed
        self.x_lo, self.x_hi = (-128, 127) if in_signed else (0, 255)
        self.out_pixels = out_pixels
        lo, hi = mac_range(self.weights.reshape(O, -1), self.x_lo, self.x_hi)
        self.acc_lo, self.acc_hi = lo, hi
        self.acc_bits = bits_signed(lo, hi)
        if self.acc_bits > 32:
            raise ValueError(f"accumulator needs {self.acc_bits} bits (> 32)")
        # packed products are summed in chunks whose low lane must stay within a signed 18-bit field:
        # chunk * max|x * w| <= 2**17 - 1 (8 for int8 with narrow-range weights, 7 when a weight is -128, 4 for uint8)
        pmax = max(abs(self.x_lo), abs(self.x_hi)) * max(int(np.abs(self.weights).max(initial=0)), 1)
        self.chunk = max(1, ((1 << 17) - 1) // pmax)
        self.requant = RequantStage(
            lanes=och_par, channels=O, acc_range=(lo, hi), bias=bias, m=requant.m, sh=requant.sh,
            zp_out=requant.zp_out, lo=requant.lo, hi=requant.hi, rounding=requant.rounding,
            beats_per_frame=out_pixels * self.R, res_m=res_m, res_zp=res_zp, skip_signed=skip_signed, out_shift=requant.out_shift,
            out_hi=requant.out_hi)
        self.residual = res_m is not None
        sig = {"win": In(stream.Signature(window_layout(self.P, pix))), "o": Out(act_signature(och_par))}
        if self.residual:
            sig["skip"] = In(act_signature(och_par))
        self.uram = storage == "uram"
        if self.uram:  # weights loaded at start-up (UltraRAM has no initial contents)
            sig["wload"] = In(load_signature(self.rom_width))
            sig["loaded"] = Out(1)
        super().__init__(sig)
        self._MustUse__silence = True  # also built as a pure cycle/shape model by the planner

    @property
    def rom_depth(self) -> int:
        return self.R * self.NTG * self.G

    @property
    def rom_width(self) -> int:
        return self.och * self.P * 8

    def rom_init(self) -> list[int]:
        """Weight words in read order ``r, tap group, g``: output lane ``o``, MAC lane ``l = j*ich_par + i`` (tap
        ``n = tg*T + j``, channel ``c = g*ich_par + i``) at bits ``[(o*P + l)*8 +: 8]``, ``P = T*ich_par``; lanes past
        ``O``, ``C`` or the last tap hold 0."""
        O, K, C, P, och, ich, T = self.O, self.K, self.C, self.P, self.och, self.ich, self.T
        words = []
        for r in range(self.R):
            for tg in range(self.NTG):
                for g in range(self.G):
                    w = 0
                    for o in range(och):
                        oc = r * och + o
                        for j in range(T):
                            n = tg * T + j
                            for i in range(ich):
                                c = g * ich + i
                                if oc < O and c < C and n < K * K:
                                    v = int(self.weights[oc, n // K, n % K, c])
                                    w |= (v & 0xFF) << ((o * P + j * ich + i) * 8)
                    words.append(w)
        return words

    # -- pipeline geometry (pure Python: the cycle model and the planner read it) ---------------------------------
    @property
    def window_beats(self) -> int:
        """Beats of one window (one output beat): ``ceil(K*K/tap_par) * ceil(C/ich_par)``."""
        return self.NTG * self.G

    @property
    def chunks(self) -> list[int]:
        """Sizes of the packed-product chunks summed before the lane split (packing only)."""
        n = len(self.live)
        return [min(self.chunk, n - c0) for c0 in range(0, n, self.chunk)]

    @property
    def sum_stages(self) -> int:
        """Register stages of the per-beat sum (stage 3): a tree registered every 2 adder levels; packed: chunk
        tree, the lane split (1 stage), the tree over the chunks."""
        if self.packing:
            return ptree_stages(max(self.chunks)) + 1 + ptree_stages(len(self.chunks))
        return ptree_stages(len(self.live))

    @property
    def pipe_depth(self) -> int:
        """Cycles from taking a window's last beat to writing its result into the result FIFO: input register (ROM
        read), pre-add (with the registered weight word), multiplier M and P registers, :attr:`sum_stages`, then the accumulate adder
        writes the FIFO."""
        return 4 + self.sum_stages

    @property
    def credits(self) -> int:
        """Windows that may be in flight (taken up to their last beat, not yet read from the result FIFO), per
        result FIFO; also the FIFO depth, so a counted window always finds room. ``R`` for one pixel's output
        groups, plus the windows the pipeline and the credit loop (FIFO read -> registered ready, 4 cycles) hold."""
        return self.R + -(-(self.pipe_depth + 4) // self.window_beats) + 2

    @property
    def latency(self) -> int:
        """Cycles from the first window beat (taken) to the first output beat: the window's beats, the pipeline,
        the result FIFO (2 cycles) and the requant."""
        return self.window_beats - 1 + self.pipe_depth + 2 + self.requant.latency

    def elaborate(self, platform):
        m = Module()
        P, och, pix, acb = self.P, self.och, self.pix, self.acc_bits
        m.submodules.requant = rq = self.requant
        win = self.win
        N = self.credits

        # ---- flow control: credits. ``ok`` (a register) admits window beats while every result FIFO has room
        # for the window being taken; the MAC pipeline behind it runs free (valid bits travel with the data). ----
        ok = Signal(init=1, name="credit_ok")
        if self.uram:  # no window is taken before the weight RAM is loaded
            loaded = Signal(name="weights_loaded")
            m.d.comb += [win.ready.eq(ok & loaded), self.loaded.eq(loaded)]
            take = win.valid & ok & loaded
        else:
            m.d.comb += win.ready.eq(ok)
            take = win.valid & ok

        # ---- weight ROM: read with the input register, its word registered (a BRAM's output register) so it
        # reaches the multipliers from a register, together with the pre-added activations ----
        init = self.rom_init()
        init += [0] * (2 - len(init))  # no 1-entry memories (zero-width address in Verilog)
        waddr = Signal(range(len(init)))
        cur = Mux(win.payload.pfirst, 0, waddr)
        if self.uram:  # RAM written through wload (no initial contents), read like the ROM
            m.submodules.weights = ram = Memory(shape=unsigned(self.rom_width), depth=len(init), init=[],
                                                attrs=dict(STORAGE_ATTRS["uram"]))
            _load_port(m, ram, self.wload, self.rom_depth, loaded)
            rp = ram.read_port(transparent_for=())
            m.d.comb += [rp.addr.eq(cur), rp.en.eq(1)]
            rom_data = registered_word(m, rp.data, self.rom_width)
        else:
            rom_data = weight_rom(m, init, self.rom_width, cur, self.storage, STORAGE_ATTRS.get(self.storage))
        with m.If(take):
            m.d.sync += waddr.eq(Mux(cur == self.rom_depth - 1, 0, cur + 1))

        # ---- stage 1: activations (9-bit signed) and flags ----
        x1 = [[Signal(signed(9), name=f"x1_{q}_{i}") for i in range(P)] for q in range(pix)]
        v1, first1, wlast1, p11 = (Signal(name=n) for n in ("v1", "first1", "wlast1", "p1_1"))
        m.d.sync += [v1.eq(take), first1.eq(win.payload.first), wlast1.eq(win.payload.wlast), p11.eq(win.payload.p1)]
        for q in range(pix):
            for i in range(P):
                b = win.payload.data[(q * P + i) * 8:(q * P + i + 1) * 8]
                m.d.sync += x1[q][i].eq(b.as_signed() if self.in_signed else b)

        # ---- stage 2: packed pre-add (x0 + x1 * 2**18) or the activations again; the weight word arrives ----
        if self.packing:
            xa = [[Signal(signed(27), name=f"pk_{i}") for i in range(P)]]
            m.d.sync += [xa[0][i].eq(x1[0][i] + (x1[1][i] << 18)) for i in range(P)]
        else:
            xa = [[Signal(signed(9), name=f"x2_{q}_{i}") for i in range(P)] for q in range(pix)]
            m.d.sync += [xa[q][i].eq(x1[q][i]) for q in range(pix) for i in range(P)]
        w2 = [[rom_data[(o * P + i) * 8:(o * P + i + 1) * 8].as_signed() for i in range(P)] for o in range(och)]

        # ---- stages 3, 4: products with the multiplier's M and P registers (LUT multipliers: partial products,
        # then their 2-level tree) ----
        prod = [[[None] * P for _ in range(och)] for _ in xa]
        for q in range(len(xa)):
            for o in range(och):
                for i in self.live:  # a dead tap slot's lanes get no multiplier
                    prod[q][o][i] = mac_product(m, xa[q][i], w2[o][i], self.mult, self.packing, f"{q}_{o}_{i}")
        flags4 = [delay(m, s, 3, s.name) for s in (v1, first1, wlast1, p11)]

        # ---- stage 3 (sum_stages cycles): per-beat partial sums, a tree registered every 2 adder levels ----
        ps = [[None] * och for _ in range(pix)]
        for o in range(och):
            if self.packing:
                ps[0][o], ps[1][o] = packed_sums(m, [prod[0][o][i] for i in self.live], self.chunk, self.chunks,
                                                 str(o))
            else:
                for q in range(pix):
                    ps[q][o] = ptree(m, [prod[q][o][i] for i in self.live], f"ps_{q}_{o}")
        v3, first3, wlast3, p13 = (delay(m, s, self.sum_stages, s.name) for s in flags4)

        # ---- accumulate (one adder); a finished window enters the result FIFO(s), which always have room ----
        m.submodules.res0 = f0 = fifo.SyncFIFOBuffered(width=och * acb + 1, depth=max(N, 3))
        fifos = [f0]
        if pix == 2:
            m.submodules.res1 = f1 = fifo.SyncFIFOBuffered(width=och * acb, depth=max(N, 3))
            fifos.append(f1)
        acc = [[Signal(signed(acb), name=f"acc_{q}_{o}") for o in range(och)] for q in range(pix)]
        nxt = [[Signal(signed(acb), name=f"accn_{q}_{o}") for o in range(och)] for q in range(pix)]
        for q in range(pix):
            for o in range(och):
                m.d.comb += nxt[q][o].eq(Mux(first3, 0, acc[q][o]) + ps[q][o])
                with m.If(v3):
                    m.d.sync += acc[q][o].eq(nxt[q][o])
        push = v3 & wlast3
        m.d.comb += [
            f0.w_data.eq(Cat(*[nxt[0][o] for o in range(och)], p13)),
            f0.w_en.eq(push),
        ]
        if pix == 2:
            m.d.comb += [f1.w_data.eq(Cat(*[nxt[1][o] for o in range(och)])), f1.w_en.eq(push & p13)]

        # ---- output order: R groups of pixel 0, then R groups of pixel 1 ----
        result_sequencer(m, fifos, self.R, och * acb, rq.i)

        # ---- credit counters: +1 when a window's last beat is taken, -1 when its result leaves the FIFO ----
        inc = Signal(name="credit_inc")
        m.d.comb += inc.eq(take & win.payload.wlast)
        oks = [credit_counter(m, f"inflight{k}", N, inc if k == 0 else inc & win.payload.p1, f.r_en)
               for k, f in enumerate(fifos)]
        m.d.sync += ok.eq(tree_and(oks))

        wiring.connect(m, wiring.flipped(self.o), rq.o)
        if self.residual:
            wiring.connect(m, wiring.flipped(self.skip), rq.skip)
        return m


class Conv(LayerCore, wiring.Component):
    """A convolution layer of the IR as a streaming core (window generator + :class:`ConvEngine`).

    With ``storage="uram"`` (or ``proj_storage="uram"``) the core takes no input beat before every weight RAM is
    loaded (module docstring).

    Parameters
    ----------
    layer : :class:`rtlgen.ir.Conv`
        The layer (weights, bias, requantization, geometry).
    ich_par, och_par : int
        Input channels per cycle (input lanes); output channels per cycle (output lanes).
    pix_par, tap_par : int
        Output pixels per cycle (1 or 2); kernel taps per cycle (1..K*K).
    packing : bool
        Two MACs per DSP48E2 when ``pix_par=2``.
    storage, mult : str
        Weight ROM (``bram``, ``uram``, ``lut``); multipliers (``dsp`` or ``lut``).
    centre : bool
        Forward the window centres on ``centre`` (temporal reuse of the skip).
    proj : :class:`rtlgen.ir.Conv` or None
        A 1x1 projection computed on the window centres (loop merging), with ``proj_och_par``, ``proj_pix_par``,
        ``proj_storage``, ``proj_mult``.
    line_ram_style :
        Memory style attribute of the line buffer.

    Members
    -------
    i : ``In(act_signature(ich_par))``
        Input activations.
    o : ``Out(act_signature(och_par))``
        Output activations.
    skip : ``In(act_signature(och_par))``
        Only with a merged residual: the skip stream, added before the rounding.
    centre : ``Out(act_signature(ich_par))``
        Only with ``centre``: the window centres.
    proj : ``Out(act_signature(proj_och_par))``
        Only with ``proj``: the projection's output.
    wload, proj_wload : ``In(load_signature(rom_width))``
        Only with URAM weights: the weight words, loaded once after reset.
    loaded : ``Out(1)``
        Only with URAM weights: every weight RAM is loaded.
    """

    def __init__(self, layer: ir.Conv, *, ich_par: int = 1, och_par: int = 1, pix_par: int = 1,
                 packing: bool = True, storage: str = "bram", centre: bool = False, line_ram_style=None,
                 proj: ir.Conv | None = None, proj_och_par: int = 1, proj_pix_par: int = 1,
                 proj_storage: str = "bram", mult: str = "dsp", proj_mult: str = "dsp", tap_par: int = 1):
        self.layer = layer
        H, W, C = layer.in_shape
        O = layer.weights.shape[0]
        self.ich_par, self.och_par, self.pix_par, self.tap_par = ich_par, och_par, pix_par, tap_par
        in_signed = bool(layer.in_q.signed) if layer.in_q is not None else True
        self.R = math.ceil(O / och_par)
        self.proj_layer = proj
        self.centre_out = centre
        self.window = WindowGen(**self._window_args(layer, ich_par, och_par, pix_par, tap_par, centre or proj is not None),
                                ram_style=line_ram_style)
        if (self.window.Ho, self.window.Wo, O) != tuple(layer.out_shape):
            raise ValueError(f"{layer.name}: output shape {layer.out_shape} does not match the window geometry")
        res = layer.residual is not None
        skip_signed = bool(layer.res_q.signed) if (res and layer.res_q is not None) else True
        self.engine = ConvEngine(
            weights=embedded_weights(layer), bias=layer.bias, requant=layer.requant, in_signed=in_signed,
            out_pixels=self.window.Ho * self.window.Wo, ich_par=ich_par, och_par=och_par, pix=pix_par,
            packing=packing, storage=storage, res_m=layer.res_m if res else None, res_zp=layer.res_zp,
            skip_signed=skip_signed, mult=mult, tap=tap_par, live_slots=conv_live_slots(layer, tap_par))
        sig = {"i": In(act_signature(ich_par)), "o": Out(act_signature(och_par))}
        if res:
            sig["skip"] = In(act_signature(och_par))
        if centre:
            sig["centre"] = Out(act_signature(ich_par))
        if proj is not None:
            self._check_proj(proj)
            Ho, Wo = self.window.Ho, self.window.Wo
            self.proj_window = WindowGen(**self._proj_window_args(proj, Ho, Wo, ich_par, proj_och_par, proj_pix_par))
            self.proj_engine = ConvEngine(
                weights=proj.weights, bias=proj.bias, requant=proj.requant, in_signed=in_signed,
                out_pixels=Ho * Wo, ich_par=ich_par, och_par=proj_och_par, pix=proj_pix_par, packing=packing,
                storage=proj_storage, mult=proj_mult)
            sig["proj"] = Out(act_signature(proj_och_par))
        self.load_ports = []  # (port name, engine) of the weight RAMs loaded at start-up, in load order
        if self.engine.uram:
            self.load_ports.append(("wload", self.engine))
        if proj is not None and self.proj_engine.uram:
            self.load_ports.append(("proj_wload", self.proj_engine))
        for name, eng in self.load_ports:
            sig[name] = In(load_signature(eng.rom_width))
        if self.load_ports:
            sig["loaded"] = Out(1)
        super().__init__(sig)
        self._MustUse__silence = True  # also built as a pure cycle/shape model by the planner

    def _check_proj(self, proj: ir.Conv):
        L = self.layer
        K = L.weights.shape[1]
        if proj.weights.shape[1:3] != (1, 1) or any(proj.pads):
            raise ValueError("loop merging takes a 1x1 projection without padding")
        if tuple(proj.stride) != tuple(L.stride) or L.pads[0] != K // 2 or L.pads[1] != K // 2:
            raise ValueError("loop merging needs the projection's stride to equal the conv's and 'same' padding")
        if tuple(proj.in_shape) != tuple(L.in_shape) or tuple(proj.out_shape[:2]) != tuple(L.out_shape[:2]):
            raise ValueError("projection shapes do not match the conv's")
        if proj.pad_value != L.pad_value and any(L.pads):
            pass  # centres are never padding with 'same' padding

    @staticmethod
    def _window_args(layer, ich_par, och_par, pix_par, tap_par, centre) -> dict:
        H, W, C = layer.in_shape
        O = layer.weights.shape[0]
        K, _, _, pads = conv_window(layer)  # a non-square or even kernel: its odd square window, pads grown
        return dict(H=H, W=W, C=C, lanes=ich_par, K=K, stride=tuple(layer.stride), pads=pads,
                    pad_value=layer.pad_value, repeats=math.ceil(O / och_par), pix=pix_par, centre=centre, tap=tap_par)

    @staticmethod
    def _proj_window_args(proj, Ho, Wo, ich_par, proj_och_par, proj_pix_par) -> dict:
        return dict(H=Ho, W=Wo, C=proj.in_shape[2], lanes=ich_par, K=1, stride=1, pads=(0, 0, 0, 0),
                    pad_value=proj.pad_value, repeats=math.ceil(proj.weights.shape[0] / proj_och_par), pix=proj_pix_par)

    # -- the interface of the layer cores (rtlgen.cores.interface) --------------------------------------------------
    @classmethod
    def from_layer(cls, layer, **knobs):
        return cls(layer, **knobs)

    @classmethod
    def plan_knobs(cls, layer, lp, ctx=None) -> dict:
        """The plan's decisions; with ``ctx``, the residual merges of the topology (window centres forwarded, a
        loop-merged projection with its own plan entry)."""
        kw = dict(ich_par=lp.ich_par, och_par=lp.och_par, pix_par=lp.pix_par, tap_par=lp.tap_par, packing=lp.packing,
                  storage=lp.storage, mult=lp.mult)
        if ctx is not None:
            kw["centre"] = bool(ctx.topo.centre_of.get(layer.name))
            if layer.name in ctx.topo.proj_of:
                proj = ctx.net[ctx.topo.proj_of[layer.name]]
                pp = ctx.plans[proj.name]
                kw.update(proj=proj, proj_och_par=pp.och_par, proj_pix_par=1, proj_storage=pp.storage, proj_mult=pp.mult)
        return kw

    @classmethod
    def plan_cycles(cls, layer, lp, ctx=None) -> int:
        """:meth:`cycles_per_frame` from the window generators' pure-Python models (no core is built)."""
        kw = cls.plan_knobs(layer, lp, ctx)
        proj = kw.get("proj")
        wg = WindowModel(**cls._window_args(layer, kw["ich_par"], kw["och_par"], kw["pix_par"], kw["tap_par"],
                                            kw.get("centre", False) or proj is not None))
        pw = None
        if proj is not None:
            pw = WindowModel(**cls._proj_window_args(proj, wg.Ho, wg.Wo, kw["ich_par"], kw["proj_och_par"], 1))
        return cls._frame_cycles(wg, proj, pw, kw.get("proj_och_par", 1))

    @staticmethod
    def _frame_cycles(wg, proj, pw, proj_och) -> int:
        """Steady-state cycles per frame (back-to-back frames, no external stalls)."""
        cyc = max(wg.cycles_per_frame(), wg.Ho * wg.Wo * wg.R)
        if proj is not None:
            cyc = max(cyc, pw.cycles_per_frame(), wg.Ho * wg.Wo * math.ceil(proj.weights.shape[0] / proj_och))
        return cyc

    def cycles_per_frame(self) -> int:
        """Steady-state cycles per frame (back-to-back frames, no external stalls)."""
        if self.proj_layer is None:
            return self._frame_cycles(self.window, None, None, 1)
        return self._frame_cycles(self.window, self.proj_layer, self.proj_window, self.proj_engine.och)

    @property
    def latency(self) -> int:
        """Cycles from the first input beat to the first output beat (input at full rate)."""
        wg = self.window
        return wg.latency + self.engine.latency

    @property
    def dsp(self) -> int:
        e = self.engine
        n = dsp_count(e.och, len(e.live), e.pix, e.packing, e.mult)
        if self.proj_layer is not None:
            p = self.proj_engine
            n += dsp_count(p.och, len(p.live), p.pix, p.packing, p.mult)
        return n

    def resources(self) -> dict:
        """Pure-Python resource model for the planner.

        ``dsp_mac``: MAC multipliers (one DSP48E2 each); ``requant_dsp``: the requant's ``acc x m`` and the residual's
        ``skip x res_m`` products, their DSP-sized partial products per lane
        (:attr:`~rtlgen.cores.requant.RequantStage.dsp_per_lane`), 0 when the factors are powers of two (shifts);
        ``line_buffer_bits`` (x2 with ``pix_par=2``: two read ports duplicate the memory), ``weight_bits``
        (ROM depth x width; BRAM/URAM or LUTs by ``storage``).
        """
        def parts(eng, wg):
            rq = eng.requant
            return {
                "dsp_mac": dsp_count(eng.och, len(eng.live), eng.pix, eng.packing, eng.mult),
                "lut_mults": eng.och * len(eng.live) * eng.pix if eng.mult == "lut" else 0,
                "requant_dsp": eng.och * rq.dsp_per_lane,
                "line_buffer_bits": wg.DG * wg.lanes * 8 * wg.pix * wg.T,
                "weight_bits": eng.rom_depth * eng.rom_width,
                "weight_rom": (eng.rom_depth, eng.rom_width, eng.storage),
            }

        out = parts(self.engine, self.window)
        out["dsp"] = out["dsp_mac"] + out["requant_dsp"]
        if self.proj_layer is not None:
            p = parts(self.proj_engine, self.proj_window)
            out["proj"] = p
            out["dsp"] += p["dsp_mac"] + p["requant_dsp"]
            out["line_buffer_bits"] += p["line_buffer_bits"]
            out["weight_bits"] += p["weight_bits"]
        return out

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = wg = self.window
        m.submodules.engine = eng = self.engine
        if self.proj_layer is not None:
            m.submodules.proj_window = pw = self.proj_window
            m.submodules.proj_engine = pe = self.proj_engine
        if self.load_ports:
            # weight RAMs loaded at start-up: no activation beat is taken before all of them are loaded
            ready = Signal(name="all_loaded")
            for name, e in self.load_ports:
                wiring.connect(m, wiring.flipped(getattr(self, name)), e.wload)
            m.d.comb += [ready.eq(tree_and([e.loaded for _, e in self.load_ports])), self.loaded.eq(ready)]
            m.d.comb += [wg.i.payload.eq(self.i.payload), wg.i.valid.eq(self.i.valid & ready),
                         self.i.ready.eq(wg.i.ready & ready)]
            wiring.connect(m, wg.o, eng.win)
            wiring.connect(m, eng.o, wiring.flipped(self.o))
            if self.engine.residual:
                m.d.comb += [eng.skip.payload.eq(self.skip.payload), eng.skip.valid.eq(self.skip.valid & ready),
                             self.skip.ready.eq(eng.skip.ready & ready)]
        else:
            wiring.connect(m, wiring.flipped(self.i), wg.i)
            wiring.connect(m, wg.o, eng.win)
            wiring.connect(m, eng.o, wiring.flipped(self.o))
            if self.engine.residual:
                wiring.connect(m, wiring.flipped(self.skip), eng.skip)
        if self.proj_layer is not None:
            wiring.connect(m, pe.o, wiring.flipped(self.proj))
            m.d.comb += pe.win.payload.eq(pw.o.payload)
            m.d.comb += [pe.win.valid.eq(pw.o.valid), pw.o.ready.eq(pe.win.ready)]
            if self.centre_out:
                # broadcast the centre stream to the projection and the centre port (both must take a beat)
                c = wg.centre
                m.d.comb += [
                    pw.i.payload.eq(c.payload), self.centre.payload.eq(c.payload),
                    pw.i.valid.eq(c.valid & self.centre.ready), self.centre.valid.eq(c.valid & pw.i.ready),
                    c.ready.eq(pw.i.ready & self.centre.ready),
                ]
            else:
                wiring.connect(m, wg.centre, pw.i)
        elif self.centre_out:
            wiring.connect(m, wg.centre, wiring.flipped(self.centre))
        return m
