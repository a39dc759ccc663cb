"""Throughput planner: per-layer parallelism, DSP packing, multiplier kind and weight storage under a board budget.

Model
-----
A convolution stage (``cores/linebuffer.py`` + ``cores/conv.py``) takes one window beat per cycle: ``tap_par`` taps of
``ich_par`` input channels for ``pix_par`` output pixels, multiplied by the weights of ``och_par`` output channels
(``tap_par*ich_par*och_par*pix_par`` MACs per cycle). The window of a pixel group is replayed once per output-channel
group, so its cycles per frame are ``ceil(Ho*Wo/pix_par) * ceil(O/och_par) * ceil(K*K/tap_par) * ceil(C/ich_par)`` (tap
parallelism, ``taps=True``, fills the gaps channel groups leave: a 16-channel layer has only the channel steps
``ceil(16/p)`` in {1, 2, 3, 4, 6, 8, 16}; its window generator then has ``pix_par*tap_par`` read ports, i.e.
line-buffer copies, costed in BRAM) — no divisor rule: a
parallelism that does not divide the channel count costs only its tail (see the cores' cycle models). A stage can also never run faster than the beats it
must read and write (``H*W*ceil(C/lanes_in)`` input beats, ``Ho*Wo*ceil(O/och_par)`` output beats).

Resources per configuration (predictions fitted to per-layer yosys ``synth_xilinx -family xcup`` runs of whole
builds, ``tools/calibrate.py``; the constants below say what each one covers):

* DSP48E2: one per multiplier, or one per two MACs when two pixels share a weight (``pix_par=2``, packing on).
  With ``mult="lut"`` the multipliers are LUT fabric instead (``cores/lutmul.py``; when DSPs run out, switchable;
  never packed). The partial-sum adder trees are fabric in both cases (``LUT_PER_*_MAC``).
* A loop-merged 1x1 projection (``compose.projection_merges``) is the engine its host builds for it: the host's
  ``ich_par`` lanes, one pixel per cycle, no packing; it is planned and costed that way.
* The FIFOs and lane converters between cores (``edge_costs``) depend on both neighbours' choices: they are
  reserved from the budget and the search repeated until the reserve covers them; a layer's LUT/FF include the
  adapters on its inputs.
* Weight ROM read bandwidth binds as hard as DSPs: each cycle the stage reads ``ich_par*och_par`` int8 weights.
  A BRAM36 reads at most 72 bits per port, a URAM 72 bits, so a ROM of width ``w`` bits and depth ``d`` words costs
  ``min over aspect ratios of ceil(w/aw)*ceil(d/ad)`` blocks; a LUT ROM costs about ``w*ceil(d/64)`` LUTs.
  UltraRAM has no initial contents, so a ``uram`` memory is loaded at start-up through the design's ``wload`` port
  (``cores/conv.py``): it costs its URAM blocks plus a small load controller (``LUT_PER_URAM_LOAD``,
  ``FF_PER_URAM_LOAD``) and ``depth`` cycles once after reset, never per frame. The planner offers ``uram`` only when
  the budget has URAM (kv260); a plan file may set it for any conv or dense layer.
* Line buffer: ``(K-1)`` rows of ``W*C`` bytes (+ a few pixels) in BRAM; skip FIFOs by the temporal-reuse rule.

Search: a binary search over the target cycles per frame ``T``; for each ``T`` every layer takes its cheapest
configuration meeting ``T`` where cost is a weighted sum of resources normalised by the budget; weights of resources
that overflow are raised (a few Lagrangian rounds). Seconds for ResNet20, not hours.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from . import ir
from .errors import OptionError


@dataclass
class Budget:
    dsp: int
    lut: int
    ff: int
    bram36: int
    uram: int
    clock_mhz: float = 250.0
    part: str = ""

    def as_dict(self):
        return {"dsp": self.dsp, "lut": self.lut, "ff": self.ff, "bram36": self.bram36, "uram": self.uram}


BOARDS = {
    "kv260": Budget(1248, 117_120, 234_240, 144, 64, 250.0, "xck26-sfvc784-2LV-c"),
    "ultra96v2": Budget(360, 70_560, 141_120, 216, 0, 214.29, "xczu3eg-sbva484-1-i"),
}

#: fraction of each resource the planner may fill (the rest is left for the AXI shell, DMA and routing)
UTILIZATION = {"dsp": 1.0, "lut": 0.80, "ff": 0.80, "bram36": 0.92, "uram": 1.0}

RESOURCES = ("dsp", "lut", "ff", "bram36", "uram")

# per-unit costs (LUT/FF) of the model, fitted to yosys (``synth_xilinx -family xcup`` with rtlgen.synth's script)
# per-layer runs of the ResNet8 builds (``tools/calibrate.py BUILD_DIR`` prints planner vs yosys per layer); standalone
# convs match within 5 % (LUT multipliers ~110 LUT per MAC, packed-DSP arrays 27). Measured residual on whole designs
# (with the identical-cell merge of rtlgen.synth): yosys counts 14 % more LUTs than predicted on ResNet8 @ Ultra96-V2,
# 23 % on ResNet20 @ Ultra96-V2, 18 % on ResNet20 @ KV260, whose och_par=2 ich_par=32 layers cost 1.2-1.4x the model
# (their window generators grow with ich_par*pix_par, covered here by the flat LUT_PER_STAGE). The 80 % LUT
# utilization absorbs it; a build's fit is checked by ``rtlgen report --synth [--synth-per-module]``:
#: LUTs per MAC of the partial-sum adder trees: packed DSP pairs (35-bit products summed in chunks, split into two
#: lanes) cost more than plain 17-bit products
LUT_PER_PACKED_MAC = 27
LUT_PER_DSP_MAC = 20
#: a LUT multiplier (cores/lutmul.py, ~110 LUTs alone in yosys) with its adder-tree share
LUT_PER_LUT_MAC = 105
FF_PER_MAC = 25
LUT_PER_STAGE = 400  # control, counters, handshake, window generator, requant (shift)
LUT_PER_REQUANT_LANE = 60
DSP_PER_MULT_REQUANT_LANE = 2  # 24 x 32-bit fixed-point multiplier
#: start-up weight load of a URAM memory (UltraRAM has no initial contents): write-address counter, loaded flag,
#: write enable and its share of the top's ``wload`` daisy chain (the payload is broadcast, no per-memory register)
LUT_PER_URAM_LOAD = 24
#: a window-generator read port of tap parallelism (address counter with its tap-group offsets, padding check,
#: padding multiplexer of the slot's lanes)
LUT_PER_TAP_PORT = 40
FF_PER_URAM_LOAD = 20


def parse_budget(text: str, base: Budget | None = None) -> Budget:
    """``dsp=…,lut=…,ff=…,bram36=…,uram=…`` (missing keys from ``base``)."""
    vals = asdict(base) if base else {"dsp": 0, "lut": 0, "ff": 0, "bram36": 0, "uram": 0, "clock_mhz": 250.0, "part": ""}
    if base is None:
        vals["ff"] = None
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        if "=" not in item:
            raise OptionError(f"--budget: {item!r} is not key=value (keys: {', '.join(RESOURCES)})")
        k, v = (s.strip() for s in item.split("=", 1))
        k = k.lower()
        if k not in RESOURCES:
            raise OptionError(f"--budget: unknown resource {k!r} (keys: {', '.join(RESOURCES)})")
        try:
            n = int(v)
        except ValueError:
            raise OptionError(f"--budget: {k}={v!r} is not an integer") from None
        if n < 0:
            raise OptionError(f"--budget: {k} must be >= 0")
        vals[k] = n
    if vals["ff"] is None:
        vals["ff"] = 2 * vals["lut"]
    return Budget(**vals)


def board_budget(board: str, budget: str | None = None) -> Budget:
    if board == "generic":
        if not budget:
            raise OptionError("--board generic needs --budget dsp=…,lut=…,bram36=…,uram=…")
        return parse_budget(budget)
    if board not in BOARDS:
        raise OptionError(f"--board: unknown board {board!r} (known: {', '.join(list(BOARDS) + ['generic'])})")
    return parse_budget(budget, BOARDS[board]) if budget else BOARDS[board]


# ------------------------------------------------------------------------------------------------------------------


@dataclass
class LayerPlan:
    name: str
    kind: str
    och_par: int = 1
    ich_par: int = 1
    pix_par: int = 1
    tap_par: int = 1  # kernel taps per window beat (tap parallelism)
    packing: bool = False
    mult: str = "dsp"  # dsp | lut
    storage: str = "lut"  # weight ROM: bram | uram | lut
    lanes_out: int = 1  # channels per output beat
    cycles: int = 0
    dsp: int = 0
    lut: int = 0
    ff: int = 0
    bram36: float = 0.0
    uram: int = 0
    fifo_depth: int = 2  # beats of the FIFO on this layer's output
    skip_fifo_depth: int = 0  # entries (pixels x channel beats) of the skip FIFO feeding this layer's merged add
    skip_buffer_bits: int = 0
    notes: list = field(default_factory=list)

    def resources(self):
        return {"dsp": self.dsp, "lut": self.lut, "ff": self.ff, "bram36": self.bram36, "uram": self.uram}


def _ceil(a, b):
    return -(-a // b)


def _par_candidates(n: int) -> list[int]:
    """Smallest parallelism for each distinct ``ceil(n/p)`` (the only values worth considering)."""
    out = sorted({_ceil(n, q) for q in range(1, n + 1)})
    return out


def rom_blocks(width_bits: int, depth: int, kind: str) -> float:
    if width_bits == 0 or depth == 0:
        return 0
    if kind == "bram":  # BRAM36 aspect ratios (w x d); 18-bit granularity halves count as 0.5 (BRAM18)
        best = min(_ceil(width_bits, w) * _ceil(depth, d) for w, d in ((72, 512), (36, 1024), (18, 2048), (9, 4096), (4, 8192)))
        if depth <= 512 and _ceil(width_bits, 36) * 36 >= width_bits:
            best = min(best, _ceil(width_bits, 36) * 0.5)  # BRAM18 as 512 x 36
        return best
    if kind == "uram":
        return _ceil(width_bits, 72) * _ceil(depth, 4096)
    raise ValueError(kind)


def line_buffer_depth(W: int, K: int, stride: int, pix: int) -> int:
    """Pixels a window generator's circular buffer holds (``cores.linebuffer.default_depth``, kept equal by a test)."""
    return (K - 1 + stride - 1) * W + K + 2 * pix * stride + 2


def lut_rom_luts(width_bits: int, depth: int) -> int:
    return width_bits * _ceil(depth, 64) + (width_bits if depth > 64 else 0)


def conv_dims(layer):
    """(Ho*Wo, O, C, K*K, W_in, K) of a conv or dense layer (dense: 1x1 conv on a 1x1 frame of all inputs)."""
    if isinstance(layer, ir.Conv):
        Ho, Wo, O = layer.out_shape
        kh, kw = layer.kernel
        return Ho * Wo, O, layer.in_shape[2], kh * kw, layer.in_shape[1], kh
    O, Cin = layer.weights.shape
    return 1, O, Cin, 1, 1, 1


def conv_config_cost(layer, po, pi, pp, packing, mult, storage, lanes_in, tp=1):
    npix, O, C, KK, W, K = conv_dims(layer)
    compute = _ceil(npix, pp) * _ceil(O, po) * _ceil(KK, tp) * _ceil(C, pi)
    in_h, in_w, in_c = layer.in_shape
    in_beats = in_h * in_w * _ceil(in_c, lanes_in)
    out_beats = npix * _ceil(O, po)
    cycles = max(compute, in_beats, out_beats)
    mults = pi * po * pp * tp
    if mult == "dsp":
        packed = packing and pp == 2
        dsp = _ceil(mults, 2) if packed else mults
        lut = mults * (LUT_PER_PACKED_MAC if packed else LUT_PER_DSP_MAC)
    else:
        dsp = 0
        lut = mults * LUT_PER_LUT_MAC
    lanes = po * pp
    rq = layer.requant
    if rq is not None and rq.kind == "multiplier":
        dsp += lanes * DSP_PER_MULT_REQUANT_LANE
    lut += LUT_PER_STAGE + lanes * LUT_PER_REQUANT_LANE
    ff = mults * FF_PER_MAC + 2 * LUT_PER_STAGE
    wbits = weight_word_bits(po, pi, tp)
    depth = _ceil(O, po) * _ceil(KK, tp) * _ceil(C, pi)
    bram = uram = 0
    if storage == "lut":
        lut += lut_rom_luts(wbits, depth)
    elif storage == "bram":
        bram = rom_blocks(wbits, depth, "bram")
    else:
        uram = rom_blocks(wbits, depth, "uram")
        lut += LUT_PER_URAM_LOAD
        ff += FF_PER_URAM_LOAD
    # line buffer: (K-1) rows of W*C bytes, read (K-1) rows at once
    if K > 1:
        lb_bits = (K - 1) * W * C * 8
        if tp == 1:
            bram += max(math.ceil(lb_bits / 36864 * 2) / 2, (K - 1) * 0.5)
        else:
            # one read port per pixel and tap slot: the memory (lanes*8 bits wide, depth pixels x channel groups deep)
            # is replicated tp*pp times, each copy its own width-bound BRAM; matches yosys within 1 BRAM36 on
            # ResNet8 @ Ultra96-V2 (the earlier per-bit estimate was 25 BRAM36 low)
            words = line_buffer_depth(W, K, layer.stride[0], pp) * _ceil(C, pi)
            bram += tp * pp * rom_blocks(pi * 8, words, "bram")
            lut += tp * pp * LUT_PER_TAP_PORT
    return cycles, {"dsp": dsp, "lut": lut, "ff": ff, "bram36": bram, "uram": uram}


def _cost(res, weights, budget):
    return sum(weights[k] * res[k] / max(getattr(budget, k) * UTILIZATION[k], 1e-9) for k in RESOURCES)


@dataclass
class Plan:
    model: str
    board: str
    clock_mhz: float
    budget: dict
    layers: list[LayerPlan]
    options: dict = field(default_factory=dict)

    @property
    def cycles_per_frame(self) -> int:
        return max(lp.cycles for lp in self.layers)

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles_per_frame

    def totals(self) -> dict:
        t = {k: 0 for k in RESOURCES}
        for lp in self.layers:
            for k in RESOURCES:
                t[k] += getattr(lp, k)
        t["bram36"] = math.ceil(t["bram36"] * 2) / 2
        return t

    @property
    def skip_buffer_bits(self) -> int:
        return sum(lp.skip_buffer_bits for lp in self.layers)

    def layer(self, name) -> LayerPlan:
        for lp in self.layers:
            if lp.name == name:
                return lp
        raise OptionError(f"plan has no layer {name!r}")

    def to_json(self) -> str:
        return json.dumps({
            "model": self.model, "board": self.board, "clock_mhz": self.clock_mhz, "budget": self.budget,
            "options": self.options, "layers": [asdict(lp) for lp in self.layers],
        }, indent=1)


# ------------------------------------------------------------------------------------------------------------------


def _mac_layers(net):
    return [lay for lay in net.layers if isinstance(lay, (ir.Conv, ir.Dense))]


def _lanes_in(net, layer, chosen: dict) -> int:
    src = net[layer.inputs[0]]
    lp = chosen.get(src.name)
    return lp.lanes_out if lp else max(1, min(src.out_shape[2], 8))


#: the widest signal the generator emits (Amaranth refuses wider wires): bounds a layer's weight word
MAX_SIGNAL_BITS = 65_536


def weight_word_bits(och_par: int, ich_par: int, tap_par: int = 1) -> int:
    """Bits of the weight word a conv/dense engine reads per cycle (int8 weights)."""
    return och_par * ich_par * tap_par * 8


def _candidates(layer, allow_lut_mult, allow_packing, storages, allow_tap=True):
    npix, O, C, KK, W, K = conv_dims(layer)
    out = []
    pps = (1, 2) if (isinstance(layer, ir.Conv) and npix >= 2) else (1,)
    tps = _par_candidates(KK) if (allow_tap and isinstance(layer, ir.Conv)) else (1,)
    for po in _par_candidates(O):
        for pi in _par_candidates(C):
            for tp in tps:
                if weight_word_bits(po, pi, tp) > MAX_SIGNAL_BITS:
                    continue
                for pp in pps:
                    for packing in ((False, True) if (pp == 2 and allow_packing) else (False,)):
                        for mult in (("dsp", "lut") if allow_lut_mult else ("dsp",)):
                            if packing and mult == "lut":  # packing is a DSP trick: LUT multipliers are never packed
                                continue
                            for st in storages:
                                out.append((po, pi, pp, packing, mult, st, tp))
    return out


#: planner search strategies (``rtlgen build --search``)
SEARCHES = ("greedy", "knapsack")


def _cheapest_per_key(keys: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the cheapest finite ``cost`` for each distinct ``keys`` value, in increasing key order."""
    idx = np.flatnonzero(np.isfinite(cost))
    if not len(idx):
        return idx
    order = idx[np.lexsort((cost[idx], keys[idx]))]
    _, first = np.unique(keys[order], return_index=True)
    return order[first]


def plan_network(net: ir.Network, board: str = "kv260", budget: Budget | None = None, clock_mhz: float | None = None,
                 allow_lut_mult: bool = True, allow_packing: bool = True, search: str = "greedy",
                 taps: bool = True) -> Plan:
    """Choose every layer's configuration to minimise the slowest stage's cycles per frame under ``budget``.

    ``search``: ``"greedy"`` (each layer its cheapest configuration under the resource weights) or ``"knapsack"``
    (where the greedy choice overflows, also a dynamic programme that spends the DSPs exactly where they save the
    most of the other resources: faster plans where DSPs and LUTs both bind, e.g. ResNet8 @ KV260 5,632 instead of
    6,144 cycles per frame (6,336 instead of 6,913 without taps), ResNet20 @ Ultra96-V2 55,296 instead of 59,904;
    slower to plan).

    ``taps``: also consider tap parallelism (``tap_par`` > 1: several kernel taps per window beat); off, every conv
    reads one tap per beat as before."""
    if search not in SEARCHES:
        raise OptionError(f"--search: {search!r} is not one of {', '.join(SEARCHES)}")
    use_dp = search == "knapsack"
    budget = budget or board_budget(board)
    clock = clock_mhz or budget.clock_mhz
    storages = ("lut", "bram") + (("uram",) if budget.uram > 0 else ())
    macs = _mac_layers(net)
    from .compose import projection_merges

    proj_of = projection_merges(net)  # host -> its loop-merged projection
    host_of = {proj: host for host, proj in proj_of.items()}
    # a loop-merged projection is decided after its host: it reads the host's window centres (host ich_par lanes,
    # one pixel per cycle, no packing)
    macs = [lay for lay in macs if lay.name not in host_of] + [lay for lay in macs if lay.name in host_of]
    # precompute (cycles, resources) per candidate; lanes_in depends on the producer: assume the producer's lanes
    # equal its och_par, refined after the choice (input beats rarely bind)
    table = {}
    for lay in macs:
        rows = []
        for cand in _candidates(lay, allow_lut_mult, allow_packing, storages, allow_tap=taps):
            po, pi, pp, packing, mult, st, tp = cand
            cyc, res = conv_config_cost(lay, po, pi, pp, packing, mult, st, lanes_in=max(pi, 1), tp=tp)
            rows.append((cyc, res, cand))
        table[lay.name] = rows
    fixed = _fixed_stage_costs(net)
    L_by = {lay.name: lay for lay in net.layers}
    ri = {k: j for j, k in enumerate(RESOURCES)}
    adapt_cache: dict = {}

    def adapters(lay, chosen) -> np.ndarray:
        """Per candidate row: the lane converter + FIFO on the layer's main input, given the producer's choice
        (skip edges and the inputs of fixed stages are covered by the reserve below); zeros where there is none."""
        src = L_by[lay.inputs[0]]
        if lay.name in host_of:
            src_lanes = None  # inside its host: no stream of its own
        elif src.name in chosen:
            src_lanes = chosen[src.name][3][0]
        elif isinstance(src, ir.InputStage):
            src_lanes = src.out_shape[2]
        else:
            src_lanes = fixed[src.name][2] if src.name in fixed else None
        key = (lay.name, src_lanes)
        if key not in adapt_cache:
            C = src.out_shape[2]
            a = np.zeros((len(table[lay.name]), len(RESOURCES)))
            for j, (_, _, cand) in enumerate(table[lay.name] if src_lanes is not None else ()):
                dst = cand[1] if isinstance(lay, ir.Conv) else min(cand[1], lay.in_shape[2])
                for c in (lane_converter_cost(src_lanes, dst, C), fifo_cost(2, dst * 8 + 1)):
                    a[j, ri["lut"]] += c["lut"]
                    a[j, ri["ff"]] += c["ff"]
            adapt_cache[key] = a
        return adapt_cache[key]

    arrays = {}
    for name, rows in table.items():
        cyc = np.array([r[0] for r in rows], dtype=np.int64)
        res = np.array([[r[1][k] for k in RESOURCES] for r in rows], dtype=np.float64)
        pis = np.array([r[2][1] for r in rows], dtype=np.int64)
        proj_ok = np.array([r[2][2] == 1 and not r[2][3] for r in rows], dtype=bool)
        arrays[name] = (cyc, res, pis, proj_ok)
    cap = np.array([max(getattr(budget, k) * UTILIZATION[k], 1e-9) for k in RESOURCES])
    fixed_tot = np.array([sum(f[1][k] for f in fixed.values()) for k in RESOURCES], dtype=np.float64)

    def choose(T, weights):
        wv = np.array([weights[k] for k in RESOURCES]) / cap
        chosen, tot = {}, fixed_tot.copy()
        for lay in macs:
            cyc, res, pis, proj_ok = arrays[lay.name]
            ok = cyc <= T
            if lay.name in host_of:
                ok &= proj_ok & (pis == chosen[host_of[lay.name]][3][1])
            res_eff = res + adapters(lay, chosen)
            cost = np.where(ok, res_eff @ wv, np.inf)
            i = int(np.argmin(cost))
            if not np.isfinite(cost[i]):
                return None, None
            row = table[lay.name][i]
            chosen[lay.name] = (cost[i], row[0], row[1], row[2])
            tot += res_eff[i]
        return chosen, dict(zip(RESOURCES, tot))

    dsp_of = {name: a[1][:, ri["dsp"]].astype(np.int64) for name, a in arrays.items()}

    def choose_dp(T, weights, guide):
        """The DSPs as a knapsack: a dynamic programme over the DSP count (exact for DSPs, whose packing and
        multiplier kind make per-layer choices trade DSPs for LUTs in steps) minimising the weighted sum of the other
        resources; ``choose``'s greedy pick of the cheapest configuration per layer misses plans where the DSPs must
        go to the layers that save the most fabric per DSP. Adapters are estimated with the producers of ``guide`` (the
        greedy choice at the same target); a loop-merged projection is one item with its host (same ``ich_par``)."""
        wv = np.array([weights[k] for k in RESOURCES]) / cap
        wv_other = wv.copy()
        wv_other[ri["dsp"]] = 0.0
        cap_d = int(math.floor(room("dsp") - fixed_tot[ri["dsp"]] + 1e-9))
        if cap_d < 0:
            return None, None
        # items: per stage (a layer, or a host with its loop-merged projection) the cheapest choice per DSP count
        items = []  # (names, dsp values, costs, row indices per name)
        for lay in macs:
            if lay.name in host_of:
                continue
            cyc, res, pis, proj_ok = arrays[lay.name]
            res_eff = res + adapters(lay, guide)
            cost = np.where(cyc <= T, res_eff @ wv_other, np.inf)
            dsp = dsp_of[lay.name]
            if lay.name not in proj_of:
                j = _cheapest_per_key(dsp, cost)
                if not len(j):
                    return None, None
                items.append(((lay.name,), dsp[j], cost[j], [(int(x),) for x in j]))
                continue
            pname = proj_of[lay.name]
            pcyc, pres, ppis, pok = arrays[pname]
            pcost = np.where((pcyc <= T) & pok, pres @ wv_other, np.inf)
            pdsp = dsp_of[pname]
            ks, cs, hs, ps = [], [], [], []
            for pi_val in np.unique(pis[np.isfinite(cost)]):
                hj = np.flatnonzero(np.isfinite(cost) & (pis == pi_val))
                pmask = np.where(ppis == pi_val, pcost, np.inf)
                pj = _cheapest_per_key(pdsp, pmask)
                if not len(pj):
                    continue
                ks.append((dsp[hj][:, None] + pdsp[pj][None, :]).ravel())
                cs.append((cost[hj][:, None] + pcost[pj][None, :]).ravel())
                hs.append(np.repeat(hj, len(pj)))
                ps.append(np.tile(pj, len(hj)))
            if not ks:
                return None, None
            ks, cs, hs, ps = (np.concatenate(x) for x in (ks, cs, hs, ps))
            j = _cheapest_per_key(ks, cs)
            items.append(((lay.name, pname), ks[j], cs[j], [(int(hs[x]), int(ps[x])) for x in j]))
        f = np.full(cap_d + 1, np.inf)
        f[0] = 0.0
        back = []
        for names, ks, cs, rows in items:
            g = np.full(cap_d + 1, np.inf)
            arg = np.full(cap_d + 1, -1, dtype=np.int64)
            for t, (k, c) in enumerate(zip(ks, cs)):
                if k > cap_d:
                    break
                cand = f[: cap_d + 1 - k] + c
                seg = g[k:]
                better = cand < seg
                seg[better] = cand[better]
                arg[k:][better] = t
            f = g
            back.append(arg)
        # the DSPs also carry their weight: pick the cheapest total over the DSP counts that fit
        u_all = np.arange(cap_d + 1)
        total = f + u_all * wv[ri["dsp"]]
        u = int(np.argmin(total))
        if not np.isfinite(total[u]):
            return None, None
        picks = {}
        for (names, ks, cs, rows), arg in zip(reversed(items), reversed(back)):
            t = int(arg[u])
            for name, j in zip(names, rows[t]):
                picks[name] = int(j)
            u -= int(ks[t])
        chosen, tot = {}, fixed_tot.copy()
        for lay in macs:  # exact adapters now that every producer is known
            j = picks[lay.name]
            res_eff = arrays[lay.name][1][j] + adapters(lay, chosen)[j]
            row = table[lay.name][j]
            chosen[lay.name] = (float(res_eff @ wv), row[0], row[1], row[2])
            tot += res_eff
        return chosen, dict(zip(RESOURCES, tot))

    #: the FIFOs and lane converters between the cores depend on the neighbours' choices: choose() counts the one
    #: on each MAC layer's main input (its producer is chosen first); the rest (skip edges, inputs of fixed stages)
    #: is reserved from the budget and the search repeated until the reserve covers it (:func:`edge_costs`)
    reserve = {k: 0.0 for k in RESOURCES}

    def room(k):
        return max(getattr(budget, k) * UTILIZATION[k] - reserve[k], 1e-9)

    def fits(tot):
        return all(tot[k] <= room(k) + 1e-9 for k in RESOURCES)

    starts = [{k: 1.0 for k in RESOURCES}] + [{k: (8.0 if k == r else 1.0) for k in RESOURCES} for r in ("dsp", "lut", "bram36")]

    def feasible(T):
        """A choice meeting ``T`` within the budget, or None: the greedy choice, then the DSP-knapsack one, each
        with the Lagrangian weights of the resources that overflow raised round by round."""
        for w0 in starts:
            weights = dict(w0)
            for _ in range(16):
                chosen, tot = choose(T, weights)
                if chosen is None:
                    return None
                if fits(tot):
                    return chosen
                over_by = tot
                if use_dp:
                    ch2, tot2 = choose_dp(T, weights, chosen)
                    if ch2 is not None:
                        if fits(tot2):
                            return ch2
                        over_by = tot2
                for k in RESOURCES:
                    over = over_by[k] / room(k)
                    if over > 1:
                        weights[k] *= min(1.0 + 2.0 * (over - 1.0), 4.0) + 0.25
        return None

    def lowest_feasible_target():
        lo = max((f[0] for f in fixed.values()), default=1)
        lo = max(lo, max(min(r[0] for r in table[lay.name]) for lay in macs))
        hi = max(max(r[0] for r in table[lay.name]) for lay in macs)
        hi = max(hi, lo)
        best = feasible(hi)
        if best is None:
            return None
        while lo < hi:  # smallest feasible T
            mid = (lo + hi) // 2
            ch = feasible(mid)
            if ch is None:
                lo = mid + 1
            else:
                hi, best = mid, ch
        if lo != hi:
            best = feasible(hi)
        return best

    def full_totals(plan, extra):
        t = plan.totals()
        for e in extra.values():
            for k in ("lut", "ff"):
                t[k] += e.get(k, 0)
        return t

    def cap_of(k):
        return getattr(budget, k) * UTILIZATION[k]

    found = None  # (cycles, plan, extra) of the fastest plan that fits with its own adapters
    seen = set()
    last_need = dict(reserve)
    for _ in range(12):
        best = lowest_feasible_target()
        if best is None:  # reserved too much: back off halfway towards the last plan's own adapters
            reserve = {k: (reserve[k] + last_need[k]) / 2 for k in RESOURCES}
            continue
        plan = _build_plan(net, board, budget, clock, best, fixed, allow_lut_mult, allow_packing, search, taps)
        extra = edge_costs(net, plan)
        idx = {lay.name: next(j for j, r in enumerate(table[lay.name]) if r[2] == best[lay.name][3]) for lay in macs}
        counted = sum((adapters(lay, best)[idx[lay.name]] for lay in macs), np.zeros(len(RESOURCES)))
        need = {k: max(0.0, sum(e.get(k, 0) for e in extra.values()) - counted[ri[k]]) for k in RESOURCES}
        last_need = need
        tot = full_totals(plan, extra)
        key = tuple((lp.name, lp.och_par, lp.ich_par, lp.pix_par, lp.tap_par, lp.mult, lp.storage) for lp in plan.layers)
        if all(tot[k] <= cap_of(k) + 1e-9 for k in RESOURCES):
            if found is None or plan.cycles_per_frame < found[0]:
                found = (plan.cycles_per_frame, plan, extra)
            new_reserve = need  # the plan's own adapters: try again with exactly that reserve
        else:  # over with its adapters: reserve them plus half the overflow
            new_reserve = {k: need[k] + 0.5 * max(0.0, tot[k] - cap_of(k)) for k in RESOURCES}
        if key in seen and found is not None:
            break
        seen.add(key)
        reserve = new_reserve
    if found is None:
        mins = _min_resources(table, fixed)
        raise OptionError(
            f"{net.name} does not fit the {board} budget even at the lowest parallelism: needs at least "
            + ", ".join(f"{mins[k]:g} {k.upper() if k != 'bram36' else 'BRAM36'}" for k in RESOURCES if mins[k] > 0)
            + " plus its stream adapters (FIFOs, lane converters)"
            + f" (budget: {', '.join(f'{k}={getattr(budget, k)}' for k in RESOURCES)})")
    _, plan, extra = found
    for name, e in extra.items():  # the adapters in front of a layer count as the layer's
        lp = plan.layer(name)
        lp.lut += int(e.get("lut", 0))
        lp.ff += int(e.get("ff", 0))
    return plan


def lane_converter_cost(lanes_in: int, lanes_out: int, channels: int, width: int = 8) -> dict:
    """LUT/FF of a :class:`~rtlgen.cores.adapters.LaneConverter` (fitted to yosys: the value buffer of
    ``2*lanes_in + lanes_out - 1`` entries and its write/read muxes; a plain splitter/gatherer when one lane count
    divides the other and neither side has tail beats)."""
    if lanes_in == lanes_out:
        return {"lut": 0, "ff": 0}
    simple = (max(lanes_in, lanes_out) % min(lanes_in, lanes_out) == 0 and channels % lanes_in == 0
              and channels % lanes_out == 0)
    if simple:
        return {"lut": 2 * max(lanes_in, lanes_out) * width // 8 + 20, "ff": max(lanes_in, lanes_out) * width + 10}
    B = 2 * lanes_in + lanes_out - 1
    return {"lut": int(3 * B * lanes_in * width / 8 + 0.1 * B * lanes_out) + 30, "ff": B * width + 20}


def fifo_cost(depth: int, bits: int) -> dict:
    """LUT/FF of a stream FIFO in distributed RAM (RAM32M16: 8 LUTs per 32 x 14 bits) with its output register."""
    return {"lut": int(1.3 * 8 * _ceil(bits, 14) * _ceil(max(depth, 1), 32)) + 20, "ff": bits + 12}


def edge_costs(net, plan) -> dict[str, dict]:
    """Per consuming layer: the FIFOs and lane converters the composition puts on its inputs (``compose.topology``)."""
    from .compose import topology

    out: dict[str, dict] = {}
    for e in topology(net, plan).edges:
        d = out.setdefault(e.dst, {"lut": 0, "ff": 0})
        for c in (lane_converter_cost(e.lanes_src, e.lanes_dst, e.channels, e.width),
                  fifo_cost(e.depth, e.lanes_dst * e.width + 1)):
            d["lut"] += c["lut"]
            d["ff"] += c["ff"]
    return out


def _fixed_stage_costs(net):
    """(cycles, resources) of the non-MAC stages (input table, pools, adds, shortcuts) at one pixel per cycle."""
    out = {}
    for lay in net.layers:
        if isinstance(lay, (ir.Conv, ir.Dense)):
            continue
        H, W, C = lay.in_shape if not isinstance(lay, ir.InputStage) else lay.out_shape
        lanes = C if isinstance(lay, ir.InputStage) else max(1, min(C, 16))
        cyc = H * W * _ceil(C, lanes)
        res = {"dsp": 0, "lut": 150 + 30 * lanes, "ff": 200 + 40 * lanes, "bram36": 0, "uram": 0}
        if isinstance(lay, ir.InputStage):
            res["lut"] += 3 * 8 * 4  # 3 x 256 x 8 table ROMs in LUTs
        if isinstance(lay, ir.Pool) and not lay.is_global:
            res["bram36"] = 0.5
        out[lay.name] = (cyc, res, lanes)
    return out


def _min_resources(table, fixed):
    need = {k: 0.0 for k in RESOURCES}
    for f in fixed.values():
        for k in RESOURCES:
            need[k] += f[1][k]
    for rows in table.values():
        for k in RESOURCES:
            need[k] += min(r[1][k] for r in rows)
    need["bram36"] = math.ceil(need["bram36"])
    return {k: int(math.ceil(v)) for k, v in need.items()}


def skip_fifo_entries(K: int, W: int, C: int, och: int, temporal_reuse: bool = True) -> int:
    """Skip FIFO depth (activation entries) for a residual merged into conv2 (K x K, W columns, C channels).

    Without temporal reuse the skip waits for both convolutions' windows: the paper's
    ``(fh-1)*W*C + (fw-1)*C + och + 1``. With temporal reuse conv1 forwards the centre pixel of its own window, so the
    skip only has to wait for conv2's window to reach the same pixel: ``(K-1)/2`` rows and ``(K-1)/2`` pixels, plus
    one pixel of slack for the pipeline.
    """
    if not temporal_reuse:
        return (K - 1) * W * C + (K - 1) * C + och + 1
    r = (K - 1) // 2
    return (r * W + r + 1) * C + och + 1


def _build_plan(net, board, budget, clock, chosen, fixed, allow_lut_mult, allow_packing, search="greedy",
                taps=True) -> Plan:
    layers = []
    for lay in net.layers:
        if lay.name in chosen:
            _, cyc, res, (po, pi, pp, packing, mult, st, tp) = chosen[lay.name]
            lp = LayerPlan(lay.name, lay.kind, och_par=po, ich_par=pi, pix_par=pp, tap_par=tp, packing=packing,
                           mult=mult, storage=st, lanes_out=po, cycles=cyc, **res)
        else:
            cyc, res, lanes = fixed[lay.name]
            lp = LayerPlan(lay.name, lay.kind, lanes_out=lanes, cycles=cyc, **res)
        layers.append(lp)
    plan = Plan(net.name, board, clock, budget.as_dict(), layers,
                {"allow_lut_mult": allow_lut_mult, "allow_packing": allow_packing, "search": search, "taps": taps})
    size_fifos(net, plan)
    return plan


def size_fifos(net, plan: Plan):
    """Analytic FIFO depths: skip FIFOs by the temporal-reuse rule; stream FIFOs absorb the burstiness of the
    producer/consumer pair (one output row of beats where a consumer reads in bursts, else 2)."""
    for lay in net.layers:
        lp = plan.layer(lay.name)
        if isinstance(lay, ir.Conv) and lay.residual is not None:
            kh, kw = lay.kernel
            H, W, C = lay.out_shape
            lanes = max(plan.layer(lay.residual).lanes_out, 1)
            entries = skip_fifo_entries(kh, W, C, lp.och_par)
            lp.skip_fifo_depth = _ceil(entries, lanes)
            lp.skip_buffer_bits = entries * 8
        if isinstance(lay, ir.Add):
            # standalone add: the shorter branch waits for the longer branch's window delay (3x3 conv assumed)
            H, W, C = lay.out_shape
            entries = skip_fifo_entries(3, W, C, C, temporal_reuse=False)
            lp.skip_fifo_depth = entries
            lp.skip_buffer_bits = entries * 8
        cons = net.consumers(lay.name)
        lp.fifo_depth = 2 if all(plan.layer(c.name).cycles >= lp.cycles for c in cons) else 16
