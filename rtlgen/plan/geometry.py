"""Geometry of the streaming cores, in pure Python: the one source of every size the planner, the cores and the
composition share (line-buffer depth, skip-FIFO entries, window delays, weight-word width). The cores build exactly
these sizes (``cores/linebuffer.py``, ``cores/conv.py``); nothing here imports Amaranth."""

from __future__ import annotations

import numpy as np

from .. import ir
from ..quant import is_pow2_multiplier as _pow2



#: the LUTRAM primitives a simple-dual-port memory is tiled with (UltraScale+ SLICEM, 8 LUTs each): RAM64M8 as
#: 64 x 7 bits, RAM32M16 as 32 x 14 bits (yosys' ``lutrams_xcu.txt``; Vivado uses the same primitives)
LUTRAM_SHAPES = ((64, 7), (32, 14))
LUTS_PER_LUTRAM = 8
#: a line-buffer copy of at most this many LUTRAM primitives (64 LUTs) is built in LUTRAM, a larger one in block RAM:
#: to yosys' memory mapper a RAMB18 costs about as much as 8 LUTRAM primitives (cost 129 vs 16 each), and measured
#: with yosys 0.23 ``synth_xilinx -family xcup`` every copy of up to 8 primitives maps to LUTRAM on its own
LUTRAM_MAX_PRIMITIVES = 8


def lutram_primitives(words: int, width_bits: int) -> int:
    """LUTRAM primitives (:data:`LUTRAM_SHAPES`) of a ``words`` x ``width_bits`` simple-dual-port memory."""
    return min(-(-words // d) * -(-width_bits // w) for d, w in LUTRAM_SHAPES)


def line_copy_style(words: int, width_bits: int) -> str:
    """``ram_style`` of one line-buffer copy (``cores/linebuffer.py`` sets it; the planner costs it): ``"distributed"``
    (LUTRAM) up to :data:`LUTRAM_MAX_PRIMITIVES` primitives, else ``"block"``."""
    return "distributed" if lutram_primitives(words, width_bits) <= LUTRAM_MAX_PRIMITIVES else "block"


def line_buffer_depth(W: int, K: int, stride, pix: int) -> int:
    """Pixels a window generator's circular buffer holds (the window generator, ``cores/linebuffer.py``, builds this
    depth); ``stride``: an int or ``(vertical, horizontal)`` (a vertical stride of 2 keeps one more row)."""
    sy, sx = (stride, stride) if isinstance(stride, int) else stride
    return (K - 1 + sy - 1) * W + K + 2 * pix * sx + 2


def embed_kernel(kh: int, kw: int, pads) -> tuple[int, int, int, tuple[int, int, int, int]]:
    """``(K', oy, ox, pads')``: the smallest odd square window ``K' >= max(kh, kw)`` holding a ``kh x kw`` kernel at
    offset ``(oy, ox)`` with every pad of ``pads' = (pt+oy, pl+ox, pb+K'-kh-oy, pr+K'-kw-ox)`` in ``[0, K')`` (the
    window generator's range). The largest valid offsets are taken (added taps on the top/left: they read rows the
    buffer holds anyway, so the first window waits for no extra input). Same output size and input position per
    real tap as the ``kh x kw`` convolution with ``pads``. The depthwise core (``cores/dwconv.py``) builds this
    window; the planner costs it."""
    pt, pl, pb, pr = (int(p) for p in pads)
    if min(pt, pl, pb, pr) < 0:
        raise ValueError("negative pads")
    k = max(kh, kw)
    k += 1 - k % 2
    while True:
        oys = [oy for oy in range(k - kh + 1) if pt + oy < k and pb + k - kh - oy < k]
        oxs = [ox for ox in range(k - kw + 1) if pl + ox < k and pr + k - kw - ox < k]
        if oys and oxs:
            oy, ox = max(oys), max(oxs)
            return k, oy, ox, (pt + oy, pl + ox, pb + k - kh - oy, pr + k - kw - ox)
        k += 2


def dw_live_slots(K: int, oy: int, ox: int, kh: int, kw: int, tap: int) -> list[int]:
    """Tap slots (of ``tap`` per window beat) of a depthwise engine that carry a real kernel tap in some tap group
    (the others get no multiplier): the ``kh x kw`` kernel at ``(oy, ox)`` of the ``K x K`` window, taps in raster
    order, tap group ``tg`` holding taps ``tg*tap .. tg*tap + tap - 1``."""
    ntg = -(-K * K // tap)

    def live(n):
        ky, kx = divmod(n, K)
        return n < K * K and oy <= ky < oy + kh and ox <= kx < ox + kw

    return [j for j in range(tap) if any(live(tg * tap + j) for tg in range(ntg))]


def conv_live_slots(layer, tap: int) -> list[int]:
    """:func:`dw_live_slots` of a conv layer's embedded kernel (ordinary or depthwise) at ``tap`` taps per beat: the
    tap slots that get multipliers (all of them for a square odd kernel; ``cores/conv.py`` builds these)."""
    kh, kw = layer.kernel
    K, oy, ox, _ = conv_window(layer)
    return dw_live_slots(K, oy, ox, kh, kw, tap)


#: DSP48E2 multiplier ports: 27-bit and 18-bit signed operands
DSP_A_BITS, DSP_B_BITS = 27, 18


def _chunks(width: int, step: int) -> int:
    return max(1, -(-(width - 1) // step)) if width > step + 1 else 1


def pmul_split(a_bits: int, b_bits: int, ports: tuple[int, int] = (DSP_A_BITS, DSP_B_BITS)) -> tuple[int, int]:
    """Chunks ``(n_a, n_b)`` a ``a_bits`` x ``b_bits`` signed product is split into (``cores/arith.py`` ``pmul``), so
    that every partial product fits one multiplier of ``ports = (wide, narrow)`` signed operand bits (DSP48E2:
    27 x 18): ``a`` in ``narrow - 1``-bit pieces, ``b`` in ``wide - 1``-bit pieces."""
    wide, narrow = ports
    if min(a_bits, b_bits) <= narrow and max(a_bits, b_bits) <= wide:
        return 1, 1
    return _chunks(a_bits, narrow - 1), _chunks(b_bits, wide - 1)


def pmul_dsp(a_bits: int, b_bits: int) -> int:
    """DSP48E2s of one ``a_bits`` x ``b_bits`` signed product: its DSP-sized partial products."""
    na, nb = pmul_split(a_bits, b_bits)
    return na * nb


def requant_fold(m, sh, res_m=None):
    """The requant's multipliers after its one constant rounding shift ``S = max(sh)`` (``cores/requant.py``
    ``RequantStage`` builds this): the per-channel left shifts ``S - sh`` fold into the multipliers when they are all
    powers of two (and so are the residual's), else they stay a barrel shift. Returns ``(m, res_m, ls)`` as lists
    (``ls`` None when folded or all zero)."""
    m, sh = [int(x) for x in m], [int(x) for x in sh]
    res_m = None if res_m is None else [int(x) for x in res_m]
    S = max(sh)
    ls = [S - x for x in sh]
    if any(ls):
        if _pow2(m) and (res_m is None or _pow2(res_m)):
            m = [x << k for x, k in zip(m, ls)]
            res_m = None if res_m is None else [x << k for x, k in zip(res_m, ls)]
            ls = None
    else:
        ls = None
    return m, res_m, ls


#: width of the requant's skip operand ``skip - res_zp`` (``cores/requant.py``)
RES_OPERAND_BITS = 10


def requant_lane_dsp(t_bits: int, m, res_m=None) -> int:
    """DSP48E2s of one requant lane (``cores/requant.py``): the ``(acc + bias) x m`` product of a ``t_bits``-wide sum
    by the unsigned multipliers ``m`` (none when all are powers of two: a shift), plus the residual's
    ``(skip - zp) x res_m`` one; ``m``/``res_m`` as :func:`requant_fold` returns them."""
    n = 0 if _pow2(m) else pmul_dsp(t_bits, max(int(x) for x in m).bit_length() + 1)
    if res_m is not None and not _pow2(res_m):
        n += pmul_dsp(RES_OPERAND_BITS, max(int(x) for x in res_m).bit_length() + 1)
    return n


def const_mul_dsp(k: int, a_bits: int) -> int:
    """DSP48E2s of ``v * k`` for a constant ``k >= 0`` and a signed ``a_bits``-wide ``v`` (``cores/arith.py``
    ``const_mul``): none for a power of two or two set bits (a shift, one adder), else a multiplier."""
    if k & (k - 1) == 0 or bin(k).count("1") == 2:
        return 0
    return pmul_dsp(a_bits, k.bit_length() + 1)


def avg_pool_dsp(lanes: int, channels: int, m, sum_bits: int) -> int:
    """DSP48E2s of an average pool's requant (``cores/pool.py`` ``PoolCore``): per lane, the window sum
    (``sum_bits`` signed) times the multipliers of the channels it carries (``m``: one per channel, normalized to one
    shift): a constant (:func:`const_mul_dsp`) when they are all equal, else a product by a selected multiplier."""
    bpp = -(-channels // lanes)
    n = 0
    for i in range(lanes):
        ms = [int(m[c]) if c < channels else 1 for c in (b * lanes + i for b in range(bpp))]
        if len(set(ms)) == 1:
            n += const_mul_dsp(ms[0], sum_bits)
        else:
            n += pmul_dsp(sum_bits, max(x.bit_length() for x in ms) + 1)
    return n


def avg_pool_sum_bits(layer) -> int:
    """Width of an average pool's window sum (``cores/pool.py``): 9-bit ``x - zp`` values, ``ceil(log2(n))`` more
    bits for a sum of ``n``."""
    H, W, _ = layer.in_shape
    kh, kw = layer.kernel
    if layer.is_global:
        return 9 + clog2(H * W)
    return 9 + clog2(kw) + clog2(kh)


def clog2(n: int) -> int:
    """``ceil(log2(n))``, 0 for ``n <= 1``."""
    return (n - 1).bit_length() if n > 1 else 0


def per_channel(v, channels: int) -> list[int]:
    """A scalar or per-channel integer parameter as ``channels`` Python ints (a per-channel one as it is)."""
    v = [int(x) for x in np.asarray(v).reshape(-1)]
    return v * channels if len(v) == 1 else v


def normalize_requant(m, sh, channels: int) -> tuple[list[int], int]:
    """Per-channel ``(m, sh)`` -> per-channel multipliers ``m'`` and ONE constant shift ``S``.

    ``rshift_round(v * m, sh) == rshift_round(v * (m << (S - sh)), S)`` exactly (same rational value, same
    rounding), so the hardware needs a per-channel multiplier only. ``sh <= 0`` folds into ``m``.
    """
    m, sh = per_channel(m, channels), per_channel(sh, channels)
    if len(m) != channels or len(sh) != channels:
        raise ValueError(f"requant parameters have {len(m)}/{len(sh)} entries for {channels} channels")
    S = max(0, max(sh))
    mm = [mi << (S - si) for mi, si in zip(m, sh)]
    if any(x <= 0 for x in mm):
        raise ValueError("requant multipliers must be positive")
    return mm, S


def dense_acc_range(w2d, bias, x_lo: int, x_hi: int):
    """Per-output ``(lo, hi)`` arrays of ``bias[o] + sum_k w[o, k] * x_k`` for inputs in ``[x_lo, x_hi]``: the
    accumulator range the dense core (``cores/dense.py``) checks and sizes its requant by."""
    w = np.asarray(w2d)
    pos, neg = np.where(w > 0, w, 0), np.where(w < 0, w, 0)
    bias = np.asarray(bias)
    return bias + pos.sum(1) * x_lo + neg.sum(1) * x_hi, bias + pos.sum(1) * x_hi + neg.sum(1) * x_lo


def mac_range(w2d, x_lo: int, x_hi: int) -> tuple[int, int]:
    """Range of ``sum_k x_k * w[o, k]`` over every output ``o`` (rows of ``w2d``, an integer numpy array) and inputs
    in ``[x_lo, x_hi]``, zero included: the accumulator range the conv and depthwise engines size their adders by."""
    w = w2d.astype("int64")
    pos = (w > 0) * w
    neg = (w < 0) * w
    hi = (pos * x_hi).sum(1) + (neg * x_lo).sum(1)
    lo = (pos * x_lo).sum(1) + (neg * x_hi).sum(1)
    return int(min(lo.min(), 0)), int(max(hi.max(), 0))


def dw_dsp_count(ch_live: int, taps_live: int, pix_par: int, packing: bool, mult: str = "dsp") -> int:
    """Multipliers (DSP48E2) of the depthwise MAC array: ``ch_live * taps_live`` per pixel (one for both pixels when
    packed); 0 with ``mult="lut"``. The requant's multipliers come on top when ``m`` is not a power of 2."""
    if mult == "lut":
        return 0
    return ch_live * taps_live * (1 if (pix_par == 2 and packing) else pix_par)


def conv_window(layer) -> tuple[int, int, int, tuple[int, int, int, int]]:
    """:func:`embed_kernel` of a conv layer (ordinary or depthwise): ``(K', oy, ox, window pads)``, the window the
    core's window generator builds (``cores/conv.py``, ``cores/dwconv.py``); ``(K, 0, 0, pads)`` for a square odd
    kernel with every pad below ``K``."""
    kh, kw = layer.kernel
    return embed_kernel(kh, kw, layer.pads)


#: the depthwise name of :func:`conv_window`
dw_window = conv_window


def is_depthwise(layer) -> bool:
    """A depthwise convolution with depth multiplier 1 (what ``cores/dwconv.py`` builds): ``group == C == O``."""
    return isinstance(layer, ir.Conv) and layer.depthwise and layer.out_shape[2] == layer.in_shape[2]


def conv_dims(layer):
    """(Ho*Wo, O, C, K*K, W_in, K) of a conv or dense layer (dense: 1x1 conv on a 1x1 frame of all inputs); ``K``:
    the conv's window, its kernel embedded in the smallest odd square (:func:`conv_window`: a non-square or even
    kernel streams ``K*K`` taps, the added ones with zero weights)."""
    if isinstance(layer, ir.Conv):
        Ho, Wo, O = layer.out_shape
        K = conv_window(layer)[0]
        return Ho * Wo, O, layer.in_shape[2], K * K, layer.in_shape[1], K
    O, Cin = layer.weights.shape
    return 1, O, Cin, 1, 1, 1


#: the widest signal the generator emits (Amaranth refuses wider wires): bounds a layer's weight word
MAX_SIGNAL_BITS = 65_536


def weight_word_bits(och_par: int, ich_par: int, tap_par: int = 1) -> int:
    """Bits of the weight word a conv/dense engine reads per cycle (int8 weights)."""
    return och_par * ich_par * tap_par * 8


def dense_weight_register(storage: str, rom_depth: int) -> bool:
    """Whether a dense core registers its weight ROM word once more before the multipliers (a block RAM's / UltraRAM's
    output register: RAM clock-to-out plus a multiplier was the worst path): wherever the ROM is a memory not forced
    into logic (``storage`` neither ``lut`` nor ``logic``) and more than one word deep, and always in UltraRAM."""
    return storage == "uram" or (storage not in ("lut", "logic") and rom_depth > 1)


def dw_weight_word_bits(ch_par: int, tap_par: int = 1) -> int:
    """Bits of the weight word a depthwise engine reads per cycle (one int8 weight per channel lane and tap slot)."""
    return ch_par * tap_par * 8


#: Pixels of slack in :func:`skip_fifo_entries` (temporal reuse) beyond the second conv's window half: the two convs'
#: pipelines (window generator, MAC pipeline, result FIFO, requant, output FIFO) lie between a centre leaving the
#: first conv's window and the second conv's requant taking it. Measured on the small residual network of
#: sim_tests/test_network.py (Ultra96-V2 plan, every conv at 3,073 cycles per frame, 3 cycles per pixel): 2 pixels
#: lose 4.5 % (3,212 cycles), 6, 9 and 16 pixels give exactly 3,073; 8 keeps a margin.
SKIP_SLACK_PIXELS = 8


def skip_fifo_entries(W: int, C: int, fh: int = 3, fw: int = 3, och: int = 1, *, temporal_reuse: bool = True,
                      pix: int = 1) -> int:
    """Skip-FIFO entries (activation values) a residual block with a merged add needs between the skip source and
    the block's last conv (``fh x fw`` window, ``och`` output channels in parallel, input width ``W``, ``C``
    channels, ``pix`` output pixels per cycle). The one formula: the composition
    (:func:`rtlgen.plan.topology.topology`) sizes the RTL's skip FIFOs with it (rounded up to whole pixels, plus one
    pixel's output beats and 2 beats), and :func:`rtlgen.plan.search.size_fifos` reports what the composition instantiates.

    Without temporal reuse (the skip is tapped at the block input) the paper's rule holds:
    ``(fh-1)*W*C + (fw-1)*C + och + 1``. With temporal reuse (the skip is the centre pixel forwarded by the first
    conv's window) the skip only waits for the second conv's window half plus the pipelines:
    ``(fh//2)*W*C + (fw//2 + 2*pix + SKIP_SLACK_PIXELS)*C + och + 1`` -- about half.
    """
    if not temporal_reuse:
        return (fh - 1) * W * C + (fw - 1) * C + och + 1
    return (fh // 2) * W * C + (fw // 2 + 2 * pix + SKIP_SLACK_PIXELS) * C + och + 1


def window_delay_pixels(lay: ir.Conv, pix: int) -> int:
    """Input pixels a conv must see beyond pixel p before it emits output p (its window look-ahead)."""
    W = lay.in_shape[1]
    s = lay.stride[0]
    kh, kw = lay.kernel
    K, _, _, (pt, pl, _, _) = conv_window(lay)
    if lay.group != 1 or (K, K) != (kh, kw):  # the embedded window's look-ahead below and right of the output origin
        return (K - 1 - pt) * W + (K - 1 - pl) + 2 * pix + (W if s > 1 else 0) + 2
    return (kh // 2) * W + kw // 2 + 2 * pix + (W if s > 1 else 0) + 2


def converter_mode(c_in: int, lanes_in: int, lanes_out: int, c_out: int | None = None, slots: bool = False) -> str:
    """The form of a lane converter (:attr:`rtlgen.cores.adapters.LaneConverter.mode`; the cost model prices it):
    ``pass``, ``split``, ``gather``, ``slots`` (``slots`` asked and pixels kept) or ``pack``."""
    M, N, c_out = lanes_in, lanes_out, c_in if c_out is None else c_out
    if M == N and c_in == c_out:
        return "pass"
    full = c_in % M == 0 and c_out % N == 0
    if full and M % N == 0:
        return "split"
    if full and N % M == 0:
        return "gather"
    return "slots" if slots and c_out == c_in else "pack"
