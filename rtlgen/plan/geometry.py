"""Geometry of the streaming cores, in pure Python: the one source of every size the planner, the cores and the
composition share (line-buffer depth, skip-FIFO entries, window delays, weight-word width). The cores build exactly
these sizes (``cores/linebuffer.py``, ``cores/conv.py``); nothing here imports Amaranth."""

from __future__ import annotations

from .. import ir



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
