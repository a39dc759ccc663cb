"""The one cost model: cycles and resources of every stage configuration (fitted to yosys, see the constants), the
stream adapters between stages, and re-costing an edited plan. Pure Python."""

from __future__ import annotations

import math

from .. import ir
from ..quant import bits_signed
from .data import RESOURCES
from .geometry import (LUTS_PER_LUTRAM, avg_pool_dsp, avg_pool_sum_bits, clog2, conv_dims, conv_live_slots,
                       converter_mode, dense_acc_range, dense_weight_register, dw_dsp_count, dw_live_slots, dw_weight_word_bits,
                       embed_kernel, is_depthwise, line_buffer_depth, line_copy_style, lutram_primitives, mac_range,
                       normalize_requant, per_channel, requant_fold, requant_lane_dsp, weight_word_bits)



#: LUTs per MAC of the partial-sum adder trees: packed DSP pairs (35-bit products summed in chunks, split into two
#: lanes) cost more than plain 17-bit products
LUT_PER_PACKED_MAC = 27
#: (engine v2, issue 19: the pipelined trees of unpacked 17-bit products cost ~12 % more LUTs in yosys than the
#: single-cycle trees: 16->16 3x3 och 4 ich 8 pix 2 unpacked, 2,317 -> 2,605 LUT; packed arrays got cheaper, 3,247
#: -> 2,603, and are left at their old cost)
LUT_PER_DSP_MAC = 24
#: a LUT multiplier (cores/arith.py lut_mul, ~110 LUTs alone in yosys) with its adder-tree share
LUT_PER_LUT_MAC = 105
#: engine v2 (issue 19): every MAC's pipeline (pre-add, multiplier M and P registers -- yosys 0.23 keeps them in
#: fabric for DSP48E2 --, the per-beat tree registered every 2 adder levels); yosys on the 16->16 3x3 reference conv
#: (och 4, ich 8, pix 2): packed 2,315 -> 5,338 FF, unpacked 2,219 -> 4,402, LUT multipliers (16 MACs) 1,258 -> 2,180
FF_PER_MAC = 60
#: the requant's stages (bias add, DSP-sized partial products with M/P registers and their sum, residual sum,
#: rounding, clamp) and its output FIFO's credit logic, per output lane
FF_PER_REQUANT_LANE = 150
LUT_PER_STAGE = 400  # control, counters, handshake, window generator, requant (shift)
#: a dense core's control (no window generator): yosys on the ResNet8/ResNet20 classifiers (64 -> 10, och 1 ich 1,
#: LUT multiplier) 348 / 370 LUT and 252 / 228 FF with the multiplier and requant, against 647 / 735 and 1,185 / 1,169
#: planned with a conv's LUT_PER_STAGE
LUT_PER_DENSE_STAGE = 150
FF_PER_DENSE_STAGE = 20
#: a global average pool whose requant is a shift (no product), per lane: the per-channel sum in LUT RAM, the add,
#: rounding and clamp registers. yosys (ResNet8 and ResNet20 @ ultra96v2, 64 channels, 16 lanes): 1,033 / 1,001 LUT
#: (LUT RAM counted as LUTs) and 1,174 FF each
LUT_PER_GAVG_LANE = 55
FF_PER_GAVG_LANE = 60
LUT_PER_REQUANT_LANE = 60
#: start-up weight load of a URAM memory (UltraRAM has no initial contents): write-address counter, loaded flag,
#: write enable and its share of the top's ``wload`` daisy chain (the payload is broadcast, no per-memory register)
LUT_PER_URAM_LOAD = 24
#: a window-generator read port of tap parallelism (address counter with its tap-group offsets, padding check,
#: padding multiplexer of the slot's lanes)
LUT_PER_TAP_PORT = 40
FF_PER_URAM_LOAD = 20


def ceil_div(a, b):
    return -(-a // b)


def rom_blocks(width_bits: int, depth: int, kind: str) -> float:
    if width_bits == 0 or depth == 0:
        return 0
    if kind == "bram":  # BRAM36 aspect ratios (w x d); 18-bit granularity halves count as 0.5 (BRAM18)
        best = min(ceil_div(width_bits, w) * ceil_div(depth, d) for w, d in ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192)))
        if depth <= 512 and ceil_div(width_bits, 36) * 36 >= width_bits:
            best = min(best, ceil_div(width_bits, 36) * 0.5)  # BRAM18 as 512 x 36
        return best
    if kind == "uram":
        return ceil_div(width_bits, 72) * ceil_div(depth, 4096)
    raise ValueError(kind)


def lut_rom_luts(width_bits: int, depth: int) -> int:
    return width_bits * ceil_div(depth, 64) + (width_bits if depth > 64 else 0)


def requant_dsp_per_lane(layer, lanes: int) -> int:
    """DSP48E2s of one requant lane of a conv, depthwise or dense layer, as its core builds them
    (:attr:`rtlgen.cores.requant.RequantStage.dsp_per_lane`): the accumulator range the core sizes its adders by
    (inputs over the whole int8/uint8 range; conv and depthwise: zero included, the bias range added, the padding
    channels of the last lane group holding bias 0; dense: per channel with its bias), the multipliers after
    :func:`~rtlgen.plan.geometry.requant_fold` (dense: :func:`~rtlgen.plan.geometry.normalize_requant` first)."""
    rq = layer.requant
    if rq is None:
        return 0
    signed = layer.in_q.signed if layer.in_q is not None else True
    x_lo, x_hi = (-128, 127) if signed else (0, 255)
    O = layer.weights.shape[0]
    w2d = layer.weights.reshape(O, -1).astype("int64")
    bias = per_channel(layer.bias, O) if layer.bias is not None and layer.bias.size else [0] * O
    m, sh = per_channel(rq.m, O), per_channel(rq.sh, O)
    res_m = None
    if isinstance(layer, ir.Dense):
        lo, hi = dense_acc_range(w2d, bias, x_lo, x_hi)
        t_lo, t_hi = int(lo.min()), int(hi.max())
        m, sh = normalize_requant(rq.m, rq.sh, O)[0], [0] * O
    else:
        lo, hi = mac_range(w2d, x_lo, x_hi)
        b = bias + ([0] if O % lanes else [])
        t_lo, t_hi = lo + min(b), hi + max(b)
        if getattr(layer, "residual", None) is not None:
            res_m = per_channel(layer.res_m, O)
    m, res_m, _ = requant_fold(m, sh, res_m)
    return requant_lane_dsp(bits_signed(t_lo, t_hi), m, res_m)


def conv_config_cost(layer, po, pi, pp, packing, mult, storage, lanes_in, tp=1):
    npix, O, C, KK, W, K = conv_dims(layer)
    compute = ceil_div(npix, pp) * ceil_div(O, po) * ceil_div(KK, tp) * ceil_div(C, pi)
    in_h, in_w, in_c = layer.in_shape
    in_beats = in_h * in_w * ceil_div(in_c, lanes_in)
    out_beats = npix * ceil_div(O, po)
    cycles = max(compute, in_beats, out_beats)
    # multipliers: the tap slots that carry a real tap of the (embedded) kernel in some tap group (cores/conv.py)
    mults = pi * po * pp * (len(conv_live_slots(layer, tp)) if isinstance(layer, ir.Conv) else tp)
    if mult == "dsp":
        packed = packing and pp == 2
        dsp = ceil_div(mults, 2) if packed else mults
        lut = mults * (LUT_PER_PACKED_MAC if packed else LUT_PER_DSP_MAC)
    else:
        dsp = 0
        lut = mults * LUT_PER_LUT_MAC
    lanes = po * pp
    # the requant (cores/requant.py RequantStage) has och_par lanes: packed pixel pairs leave one after the other
    dsp += po * requant_dsp_per_lane(layer, po)  # the requant's (and residual's) products (cores/requant.py)
    dense = isinstance(layer, ir.Dense)
    lut += (LUT_PER_DENSE_STAGE if dense else LUT_PER_STAGE) + lanes * LUT_PER_REQUANT_LANE
    ff = mults * FF_PER_MAC + (FF_PER_DENSE_STAGE if dense else 2 * LUT_PER_STAGE) + lanes * FF_PER_REQUANT_LANE
    wbits = weight_word_bits(po, pi, tp)
    depth = ceil_div(O, po) * ceil_div(KK, tp) * ceil_div(C, pi)
    bram = uram = 0
    if isinstance(layer, ir.Dense) and dense_weight_register(storage, depth):
        ff += wbits + pi * 8  # the dense core's weight word and input register (cores/dense.py weight_reg)
    if storage == "lut":
        lut += lut_rom_luts(wbits, depth)
    elif storage == "bram":
        bram = rom_blocks(wbits, depth, "bram")
    else:
        uram = rom_blocks(wbits, depth, "uram")
        lut += LUT_PER_URAM_LOAD
        ff += FF_PER_URAM_LOAD
    lb_bram, lb_lut = line_buffer_cost(W, C, K, tuple(layer.stride) if K > 1 else 1, pi, pp, tp)
    return cycles, {"dsp": dsp, "lut": lut + lb_lut, "ff": ff, "bram36": bram + lb_bram, "uram": uram}


def layer_config_cost(layer, po, pi, pp, packing, mult, storage, lanes_in, tp=1):
    """(cycles, resources) of a conv, depthwise conv or dense layer's configuration (depthwise: ``po == pi``)."""
    if is_depthwise(layer):
        if po != pi:
            raise ValueError(f"{layer.name}: a depthwise layer has ich_par == och_par")
        return dwconv_config_cost(layer, po, pp, packing, mult, storage, lanes_in, tp)
    return conv_config_cost(layer, po, pi, pp, packing, mult, storage, lanes_in, tp)


def line_buffer_cost(W: int, C: int, K: int, stride, lanes: int, pp: int, tp: int) -> tuple[float, int]:
    """(BRAM36, LUT) of a window generator's line buffer: ``(K-1)`` rows of ``W*C`` bytes (none for ``K = 1``)."""
    if K <= 1:
        return 0, 0
    # one copy per pixel and tap slot (lanes*8 bits wide, depth pixels x channel groups deep), each in LUTRAM or
    # block RAM by :func:`~rtlgen.plan.geometry.line_copy_style` (the window generator sets that style)
    words = line_buffer_depth(W, K, stride, pp) * ceil_div(C, lanes)
    ports = tp * pp * LUT_PER_TAP_PORT if tp > 1 else 0
    if line_copy_style(words, lanes * 8) == "distributed":
        return 0, tp * pp * LUTS_PER_LUTRAM * lutram_primitives(words, lanes * 8) + ports
    # each copy its own width-bound BRAM (a 16-lane copy is 128 bits wide: two BRAM36 however shallow); matches yosys
    # within 1 BRAM36 per layer on ResNet8 @ Ultra96-V2 and ResNet20 @ KV260 (the per-bit estimate of (K-1) rows,
    # used for one tap per beat until 2026-12-06, was 3-7 BRAM36 low per layer: 61.5 planned, 163 in yosys)
    return tp * pp * rom_blocks(lanes * 8, words, "bram"), ports


def dwconv_config_cost(layer, cp, pp, packing, mult, storage, lanes_in, tp=1):
    """(cycles, resources) of a depthwise conv (``cores/dwconv.py``) with ``cp`` channels per beat (input and
    output lanes), ``pp`` pixels and ``tp`` taps per window beat. The kernel is embedded in the window generator's
    ``K' x K'`` window (:func:`~rtlgen.plan.geometry.embed_kernel`): ``ceil(K'*K'/tp)`` tap groups of
    ``G = ceil(C/cp)`` beats per pixel group; multipliers only on the live lanes and tap slots
    (:func:`~rtlgen.plan.geometry.dw_live_slots`), one per two pixels when packed; weight ROM ``tp*cp`` bytes wide,
    ``ceil(K'*K'/tp)*G`` words deep (``bram`` or ``lut``); one requant lane per channel lane (the two pixels' results
    leave one after the other); per lane and pixel a ``G``-entry accumulator delay line (SRL) when there is more
    than one tap group. The cycles here are the closed form; the build replaces them with the core's own model
    (:meth:`rtlgen.cores.dwconv.DWConv.plan_cycles`)."""
    H, W, C = layer.in_shape
    Ho, Wo, _ = layer.out_shape
    kh, kw = layer.kernel
    K, oy, ox, _ = embed_kernel(kh, kw, layer.pads)
    KK = K * K
    ntg = ceil_div(KK, tp)
    G = ceil_div(C, cp)
    npix = Ho * Wo
    cycles = max(ceil_div(npix, pp) * ntg * G, H * W * ceil_div(C, lanes_in), npix * G)
    lanes = min(cp, C)
    slots = len(dw_live_slots(K, oy, ox, kh, kw, tp))
    macs = lanes * slots * pp
    packed = packing and pp == 2 and mult == "dsp"
    dsp = dw_dsp_count(lanes, slots, pp, packed, mult)
    if mult == "dsp":
        lut = macs * (LUT_PER_PACKED_MAC if packed else LUT_PER_DSP_MAC)
    else:
        lut = macs * LUT_PER_LUT_MAC
    dsp += cp * requant_dsp_per_lane(layer, cp)
    lut += LUT_PER_STAGE + cp * LUT_PER_REQUANT_LANE
    if ntg > 1:  # accumulator delay lines: 32-bit SRLs of G entries per lane and pixel
        lut += lanes * pp * 32 * ceil_div(G, 32)
    ff = macs * FF_PER_MAC + 2 * LUT_PER_STAGE + cp * FF_PER_REQUANT_LANE
    wbits, depth = dw_weight_word_bits(cp, tp), ntg * G
    bram = 0
    if storage == "lut":
        lut += lut_rom_luts(wbits, depth)
    elif storage == "bram":
        bram = rom_blocks(wbits, depth, "bram")
    else:
        raise ValueError(f"depthwise weight storage {storage!r}: bram or lut")
    lb_bram, lb_lut = line_buffer_cost(W, C, K, tuple(layer.stride), cp, pp, tp)
    return cycles, {"dsp": dsp, "lut": lut + lb_lut, "ff": ff, "bram36": bram + lb_bram, "uram": 0}


def lane_converter_cost(lanes_in: int, lanes_out: int, channels: int, width: int = 8) -> dict:
    """LUT/FF of the :class:`~rtlgen.cores.adapters.LaneConverter` the composition builds (its form chosen by
    :func:`lane_converter_slots`): none when the lanes agree, a plain splitter/gatherer when one lane count divides
    the other and neither side has tail beats, else the cheaper of two pixel slots and the packing value buffer."""
    mode = converter_mode(channels, lanes_in, lanes_out, slots=True)
    if mode == "pass":
        return {"lut": 0, "ff": 0}
    if mode in ("split", "gather"):
        return {"lut": 2 * max(lanes_in, lanes_out) * width // 8 + 20, "ff": max(lanes_in, lanes_out) * width + 10}
    return min(_slots_cost(lanes_in, lanes_out, channels, width), _pack_cost(lanes_in, lanes_out, width),
               key=lambda r: r["lut"])


def lane_converter_slots(lanes_in: int, lanes_out: int, channels: int, width: int = 8) -> bool:
    """Whether the composition builds a converter between these lanes as two pixel slots (``slots=True``): where
    they take fewer LUTs than the value buffer (many lanes; the buffer grows with ``(2M + N) x M``, the slots with
    the channels)."""
    return _slots_cost(lanes_in, lanes_out, channels, width)["lut"] < _pack_cost(lanes_in, lanes_out, width)["lut"]


def _slots_cost(M: int, N: int, C: int, w: int) -> dict:
    """Two pixel slots (``2C`` registers, each output lane an AND-OR over its channels), fitted to yosys on 16
    standalone converters (``rtlgen core lanes --slots``; 1..16 lanes, 5..64 channels: 50-669 LUT, -31..+42 %)."""
    bout = ceil_div(C, N)
    lut = 6.7 * C * w / 8 + 1.5 * N * math.log2(2 * bout) * w / 8 + 8
    return {"lut": int(lut), "ff": 2 * C * w + 2 * bout + 2 * clog2(ceil_div(C, M)) + 6}


def _pack_cost(M: int, N: int, w: int) -> dict:
    """The value buffer of ``B = 2M + N - 1`` entries (``w + 1`` bits: the value and its ``last`` flag), each fed
    from every input lane and its shifts: ``3.78 (B (M + 1) (w + 1)) ** 0.785`` LUT, fitted to yosys on 13
    standalone converters (``rtlgen core lanes``; 2..16 lanes, 16..64 channels: 279-3,419 LUT, -26..+43 %)."""
    B = 2 * M + N - 1
    return {"lut": int(3.78 * (B * (M + 1) * (w + 1)) ** 0.785), "ff": B * (w + 1) + 20}


#: a stream FIFO at least this deep and this big maps to block RAM (yosys 0.23 synth_xilinx on cores/fifo.py
#: StreamFIFO: 1828 x 9 -> 1 RAMB18 + 48 LUT, 600 x 9 -> 2 RAMB18, 160 x 33 -> 2 RAMB18; 300 x 9, 64 x 33 and
#: 40 x 129 stay in LUT RAM)
FIFO_BRAM_MIN_DEPTH, FIFO_BRAM_MIN_BITS = 128, 4096


def fifo_cost(depth: int, bits: int) -> dict:
    """LUT/FF/BRAM36 of a stream FIFO: distributed RAM (RAM32M16: 8 LUTs per 32 x 14 bits) with its output register,
    or block RAM with its pointers and flags when deep and big (:data:`FIFO_BRAM_MIN_DEPTH`)."""
    if depth >= FIFO_BRAM_MIN_DEPTH and depth * bits >= FIFO_BRAM_MIN_BITS:
        return {"lut": 80, "ff": bits + 30, "bram36": rom_blocks(bits, depth, "bram")}
    return {"lut": int(1.3 * 8 * ceil_div(bits, 14) * ceil_div(max(depth, 1), 32)) + 20, "ff": bits + 12}


def edge_costs(net, plan) -> dict[str, dict]:
    """Per consuming layer: the FIFOs and lane converters the composition puts on its inputs (:func:`rtlgen.plan.topology.topology`)."""
    from .topology import topology

    out: dict[str, dict] = {}
    for e in topology(net, plan).edges:
        d = out.setdefault(e.dst, {"lut": 0, "ff": 0, "bram36": 0})
        for c in (lane_converter_cost(e.lanes_src, e.lanes_dst, e.channels, e.width),
                  fifo_cost(e.depth, e.lanes_dst * e.width + 1)):
            for k in d:
                d[k] += c.get(k, 0)
    return out


def slim_lanes(lay, target: int | None) -> int:
    """Lanes of a :func:`slimmed` stage (an add, requant or average pool core: one beat per cycle): the fewest (1, 2,
    4, 8, 16, capped at the channel count) that keep it within ``target`` cycles per frame; ``None``: one pixel per
    cycle (up to 16 lanes). The slowest MAC stage sets ``target``, so these cores (and their skip buffers) shrink with it."""
    H, W, C = lay.in_shape
    top = max(1, min(C, 16))
    if target is None:
        return top
    lanes = 1
    while lanes < top and H * W * ceil_div(C, lanes) > target:
        lanes *= 2
    return min(lanes, top)


def slimmed(lay) -> bool:
    """A non-MAC stage whose lanes follow the slowest stage (:func:`slim_lanes`): a standalone add or requant, or an
    average pool whose requant multiplies (a DSP48E2 per lane; a pool whose multipliers are shifts keeps one pixel
    per cycle)."""
    if isinstance(lay, (ir.Add, ir.Requantize)):
        return True
    if isinstance(lay, ir.Pool) and lay.mode == "avg" and lay.requant is not None:
        C = lay.in_shape[2]
        return avg_pool_dsp(1, C, normalize_requant(lay.requant.m, lay.requant.sh, C)[0], avg_pool_sum_bits(lay)) > 0
    return False


def fixed_stage_costs(net, target: int | None = None, lanes: dict | None = None):
    """(cycles, resources, lanes) of the non-MAC stages (input table, pools, adds, shortcuts, requants): one pixel per
    cycle, except the :func:`slimmed` stages (standalone adds and requants, average pools with multipliers), which
    get the fewest lanes that meet ``target`` cycles per frame (:func:`slim_lanes`) or the ``lanes`` given per layer
    name (a plan's own decision)."""
    out = {}
    for lay in net.layers:
        if isinstance(lay, (ir.Conv, ir.Dense)):
            continue
        H, W, C = lay.in_shape if not isinstance(lay, ir.InputStage) else lay.out_shape
        lanes_ = C if isinstance(lay, ir.InputStage) else max(1, min(C, 16))
        if slimmed(lay):
            lanes_ = (lanes or {}).get(lay.name) or slim_lanes(lay, target)
        cyc = H * W * ceil_div(C, lanes_)
        # FF: the pipelined requant of adds, average pools and requant cores (<= 2 adders per stage, output FIFO)
        ff = 200 + (FF_PER_REQUANT_LANE if isinstance(lay, (ir.Add, ir.Requantize, ir.Pool)) else 40) * lanes_
        res = {"dsp": 0, "lut": 150 + 30 * lanes_, "ff": ff, "bram36": 0, "uram": 0}
        if isinstance(lay, ir.InputStage):
            res["lut"], res["ff"] = input_stage_cost(lay.table, lanes_)
        elif isinstance(lay, ir.Pool) and lay.is_global and lay.mode == "avg" and not slimmed(lay):
            res["lut"], res["ff"] = 150 + LUT_PER_GAVG_LANE * lanes_, 200 + FF_PER_GAVG_LANE * lanes_
        if isinstance(lay, ir.Pool) and not lay.is_global:
            res["bram36"] = 0.5
        if isinstance(lay, ir.Pool) and lay.mode == "avg" and lay.requant is not None:
            res["dsp"] = avg_pool_dsp(lanes_, C, normalize_requant(lay.requant.m, lay.requant.sh, C)[0],
                                      avg_pool_sum_bits(lay))
        out[lay.name] = (cyc, res, lanes_)
    return out


def input_stage_cost(table, lanes: int) -> tuple[int, int]:
    """(LUT, FF) of the input stage (cores/input_stage.py) from its tables' contents: each output bit of a lane's ROM
    (``ceil(C / lanes) * 256`` entries) that is not a constant or a pixel bit (possibly inverted) costs 4 LUT6 (+ MUXF7/8)
    per 256 entries; the rest is wiring. yosys, 3 lanes: a random table 96 LUT, an ImageNet-normalising one 83, the
    bundled models' ``p - 128`` (one inverted bit) 4; 26 FF (output register, valid/last, beat counter)."""
    import numpy as np

    t = np.asarray(table, dtype=np.int64) & 0xFF
    C = t.shape[0]
    bpp = ceil_div(C, lanes)
    px = np.arange(256)
    lits = [np.zeros(256, dtype=np.int64), np.ones(256, dtype=np.int64)]
    lits += [(px >> k) & 1 for k in range(8)] + [1 - ((px >> k) & 1) for k in range(8)]
    lut = 4
    for lane_ in range(lanes):
        chans = [b * lanes + lane_ for b in range(bpp) if b * lanes + lane_ < C]
        for k in range(8):
            cols = [(t[c] >> k) & 1 for c in chans]
            if any(all(np.array_equal(col, x) for col in cols) for x in lits):
                continue
            lut += 4 * bpp
    return lut, 2 + 8 * lanes + (clog2(bpp) if bpp > 1 else 0)


def min_resources(table, fixed):
    need = {k: 0.0 for k in RESOURCES}
    for f in fixed.values():
        for k in RESOURCES:
            need[k] += f[1][k]
    for rows in table.values():
        for k in RESOURCES:
            need[k] += min(r[1][k] for r in rows)
    need["bram36"] = math.ceil(need["bram36"])
    return {k: int(math.ceil(v)) for k, v in need.items()}
