"""Throughput planner (the search): per-layer parallelism, DSP packing, multiplier kind and weight storage under a board budget.

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
  With ``mult="lut"`` the multipliers are LUT fabric instead (``cores/arith.py lut_mul``; when DSPs run out, switchable;
  never packed). The partial-sum adder trees are fabric in both cases (``LUT_PER_*_MAC``).
* A loop-merged 1x1 projection (:func:`rtlgen.plan.topology.projection_merges`) is the engine its host builds for it: the host's
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
* A depthwise convolution (``group == C``, multiplier 1: ``cores/dwconv.py``) has one channel parallelism
  ``ch_par`` (the plan's ``ich_par == och_par``), ``pix_par`` and ``tap_par`` over its kernel embedded in an odd
  square window; ``ceil(Ho*Wo/pix_par) * ceil(K'*K'/tap_par) * ceil(C/ch_par)`` cycles, one multiplier per live lane
  and tap slot (per two pixels when packed), weights in BRAM or LUTs (:func:`~rtlgen.plan.cost.dwconv_config_cost`).
  It takes no merged residual (``rtlgen.flow.check_hardware``) and is never a loop-merging or temporal-reuse host.

Search: a binary search over the target cycles per frame ``T``; for each ``T`` every layer takes its cheapest
configuration meeting ``T`` where cost is a weighted sum of resources normalised by the budget; weights of resources
that overflow are raised (a few Lagrangian rounds). Seconds for ResNet20, not hours.
"""

from __future__ import annotations

import math

import numpy as np

from .. import ir
from ..errors import OptionError
from .cost import (ceil_div, edge_costs, fifo_cost, fixed_stage_costs, lane_converter_cost, layer_config_cost,
                   min_resources, slimmed)
from .data import RESOURCES, UTILIZATION, Budget, LayerPlan, Plan, board_budget, validate_layer_plan
from .geometry import MAX_SIGNAL_BITS, conv_dims, dw_weight_word_bits, dw_window, is_depthwise, weight_word_bits
from .topology import projection_merges, topology



def _par_candidates(n: int) -> list[int]:
    """Smallest parallelism for each distinct ``ceil(n/p)`` (the only values worth considering)."""
    out = sorted({ceil_div(n, q) for q in range(1, n + 1)})
    return out


#: the walk below the binary search's target ends after this many targets in a row that the greedy cannot meet
DESCEND_MISSES = 16


def _cost(res, weights, budget):
    return sum(weights[k] * res[k] / max(getattr(budget, k) * UTILIZATION[k], 1e-9) for k in RESOURCES)


def mac_layers(net):
    return [lay for lay in net.layers if isinstance(lay, (ir.Conv, ir.Dense))]


def _lanes_in(net, layer, chosen: dict) -> int:
    src = net[layer.inputs[0]]
    lp = chosen.get(src.name)
    return lp.lanes_out if lp else max(1, min(src.out_shape[2], 8))


def _candidates(layer, allow_lut_mult, allow_packing, storages, allow_tap=True):
    npix, O, C, KK, W, K = conv_dims(layer)
    out = []
    pps = (1, 2) if (isinstance(layer, ir.Conv) and npix >= 2) else (1,)
    dw = is_depthwise(layer)
    if dw:  # the embedded window's taps; ich_par == och_par; no UltraRAM (a depthwise layer holds Kh*Kw*C bytes)
        KK = dw_window(layer)[0] ** 2
        storages = tuple(st for st in storages if st != "uram")
    tps = _par_candidates(KK) if (allow_tap and isinstance(layer, ir.Conv)) else (1,)
    for po in _par_candidates(O):
        for pi in ((po,) if dw else _par_candidates(C)):
            for tp in tps:
                if (dw_weight_word_bits(po, tp) if dw else weight_word_bits(po, pi, tp)) > MAX_SIGNAL_BITS:
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


class _KeyGroups:
    """The candidates of one layer grouped by a key (their DSP count), sorted once: :meth:`cheapest` is then a
    segmented minimum (the knapsack asks it thousands of times per plan)."""

    def __init__(self, keys: np.ndarray):
        self.order = np.argsort(keys, kind="stable")
        sk = keys[self.order]
        self.starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]]) if len(sk) else np.zeros(0, dtype=np.int64)
        self.sizes = np.diff(np.r_[self.starts, len(sk)])

    def cheapest(self, cost: np.ndarray) -> np.ndarray:
        """Indices of the cheapest finite ``cost`` per distinct key (the lowest index among equal costs), in
        increasing key order."""
        if not len(self.order):
            return self.order
        c = cost[self.order]
        m = np.minimum.reduceat(c, self.starts)
        hit = np.flatnonzero(c == np.repeat(m, self.sizes))
        grp = np.repeat(np.arange(len(self.starts)), self.sizes)[hit]
        first = hit[np.r_[True, grp[1:] != grp[:-1]]]
        return self.order[first[np.isfinite(m)]]


def _cheapest_per_key(keys: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the cheapest finite ``cost`` for each distinct ``keys`` value, in increasing key order."""
    return _KeyGroups(keys).cheapest(cost)


def plan_network(net: ir.Network, board: str = "kv260", budget: Budget | None = None, clock_mhz: float | None = None,
                 allow_lut_mult: bool = True, allow_packing: bool = True, search: str = "greedy",
                 taps: bool = True) -> Plan:
    """Choose every layer's configuration to minimise the slowest stage's cycles per frame under ``budget``.

    ``search``: ``"greedy"`` (each layer its cheapest configuration under the resource weights) or ``"knapsack"``
    (where the greedy choice overflows, also a dynamic programme that spends the DSPs exactly where they save the
    most of the other resources: faster plans where DSPs and LUTs both bind, e.g. ResNet8 @ KV260 5,632 instead of
    6,144 cycles per frame, ResNet20 @ Ultra96-V2 49,152 instead of 53,248 (2026-12-06; about as much CPU as the
    greedy since its DSP groups are sorted once per layer, e.g. 87 s for ResNet20 @ Ultra96-V2; not yet the default:
    its plans are not measured in RTL and yosys).

    ``taps``: also consider tap parallelism (``tap_par`` > 1: several kernel taps per window beat); off, every conv
    reads one tap per beat as before."""
    if search not in SEARCHES:
        raise OptionError(f"--search: {search!r} is not one of {', '.join(SEARCHES)}")
    use_dp = search == "knapsack"
    budget = budget or board_budget(board)
    clock = clock_mhz or budget.clock_mhz
    storages = ("lut", "bram") + (("uram",) if budget.uram > 0 else ())
    macs = mac_layers(net)
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
            cyc, res = layer_config_cost(lay, po, pi, pp, packing, mult, st, lanes_in=max(pi, 1), tp=tp)
            rows.append((cyc, res, cand))
        table[lay.name] = rows
    fixed = fixed_stage_costs(net)
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
    fixed_tots: dict = {}

    def fixed_tot_at(T):
        """Resources of the non-MAC stages when the slowest stage takes ``T`` cycles (standalone adds and requants
        get the fewest lanes that keep up: :func:`~rtlgen.plan.cost.slim_lanes`)."""
        if T not in fixed_tots:
            f = fixed_stage_costs(net, T)
            fixed_tots[T] = np.array([sum(x[1][k] for x in f.values()) for k in RESOURCES], dtype=np.float64)
        return fixed_tots[T]

    def choose(T, weights):
        wv = np.array([weights[k] for k in RESOURCES]) / cap
        chosen, tot = {}, fixed_tot_at(T).copy()
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
    groups_of = {name: _KeyGroups(d) for name, d in dsp_of.items()}

    def choose_dp(T, weights, guide):
        """The DSPs as a knapsack: a dynamic programme over the DSP count (exact for DSPs, whose packing and
        multiplier kind make per-layer choices trade DSPs for LUTs in steps) minimising the weighted sum of the other
        resources; ``choose``'s greedy pick of the cheapest configuration per layer misses plans where the DSPs must
        go to the layers that save the most fabric per DSP. Adapters are estimated with the producers of ``guide`` (the
        greedy choice at the same target); a loop-merged projection is one item with its host (same ``ich_par``)."""
        wv = np.array([weights[k] for k in RESOURCES]) / cap
        wv_other = wv.copy()
        wv_other[ri["dsp"]] = 0.0
        cap_d = int(math.floor(room("dsp") - fixed_tot_at(T)[ri["dsp"]] + 1e-9))
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
                j = groups_of[lay.name].cheapest(cost)
                if not len(j):
                    return None, None
                items.append(((lay.name,), dsp[j], cost[j], j[:, None]))
                continue
            pname = proj_of[lay.name]
            pcyc, pres, ppis, pok = arrays[pname]
            pcost = np.where((pcyc <= T) & pok, pres @ wv_other, np.inf)
            pdsp = dsp_of[pname]
            ks, cs, hs, ps = [], [], [], []
            for pi_val in np.unique(pis[np.isfinite(cost)]):
                # the cheapest host per DSP count of this ich_par: the pair's cheapest per total is among them
                hj = groups_of[lay.name].cheapest(np.where(pis == pi_val, cost, np.inf))
                pmask = np.where(ppis == pi_val, pcost, np.inf)
                pj = groups_of[pname].cheapest(pmask)
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
            items.append(((lay.name, pname), ks[j], cs[j], np.stack([hs[j], ps[j]], axis=1)))
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
        chosen, tot = {}, fixed_tot_at(T).copy()
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
            flips, prev = 0, None
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
                # the layers' choices flip together (all DSP -> all fabric): each change of the overflowing set
                # halves the step (in log weight), closing in on the balance between them instead of oscillating
                over_set = frozenset(k for k in RESOURCES if over_by[k] > room(k))
                flips += prev is not None and over_set != prev
                prev = over_set
                for k in over_set:
                    over = over_by[k] / room(k)
                    weights[k] *= (min(1.0 + 2.0 * (over - 1.0), 4.0) + 0.25) ** (0.5 ** flips)
        return None

    def lowest_feasible_target():
        lo = max((f[0] for f in fixed.values()), default=1)
        lo = max(lo, max(min(r[0] for r in table[lay.name]) for lay in macs))
        lo_start = lo
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
        # the greedy's feasibility is not monotone in T (a choice that fits at T also meets any larger T, but the
        # greedy may miss it there): walk down the cycle counts the layers can take below the one found
        T_found = max(best[lay.name][1] for lay in macs) if macs else hi
        below = sorted({int(c) for lay in macs for c in arrays[lay.name][0] if lo_start <= c < T_found}, reverse=True)
        misses = 0
        for T in below:
            if T >= T_found:
                continue
            ch = feasible(T)
            if ch is None:
                misses += 1
                if misses >= DESCEND_MISSES:
                    break
                continue
            best, misses = ch, 0
            T_found = max(best[lay.name][1] for lay in macs)
        return best

    def full_totals(plan, extra):
        t = plan.totals()
        for e in extra.values():
            for k in ("lut", "ff", "bram36"):
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
        T_best = max((best[lay.name][1] for lay in macs), default=None)  # the fixed stages keep up with it
        plan = _build_plan(net, board, budget, clock, best, fixed_stage_costs(net, T_best), allow_lut_mult,
                           allow_packing, search, taps)
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
        mins = min_resources(table, fixed)
        raise OptionError(
            f"{net.name} does not fit the {board} budget even at the lowest parallelism: needs at least "
            + ", ".join(f"{mins[k]:g} {k.upper() if k != 'bram36' else 'BRAM36'}" for k in RESOURCES if mins[k] > 0)
            + " plus its stream adapters (FIFOs, lane converters)"
            + f" (budget: {', '.join(f'{k}={getattr(budget, k)}' for k in RESOURCES)})")
    _, plan, extra = found
    charge_adapters(plan, extra)
    return plan


def charge_adapters(plan: Plan, extra: dict) -> None:
    """The FIFOs and lane converters in front of a layer (:func:`edge_costs`) count as the layer's resources."""
    for name, e in extra.items():
        lp = plan.layer(name)
        lp.lut += int(e.get("lut", 0))
        lp.ff += int(e.get("ff", 0))
        lp.bram36 += e.get("bram36", 0)


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
    """Stream FIFOs absorb the burstiness of the producer/consumer pair (one output row of beats where a consumer
    reads in bursts, else 2). Skip FIFOs (a merged residual's ``skip`` port, a standalone add's inputs): the depths
    the composition instantiates (:func:`rtlgen.plan.topology.topology`, from :func:`skip_fifo_entries` and the window
    delays), so ``skip_fifo_depth`` (beats) and ``skip_buffer_bits`` (activation bits: depth x lanes x 8, without
    the 1-bit ``last`` flag each entry also holds) are what the RTL contains."""
    for lay in net.layers:
        lp = plan.layer(lay.name)
        cons = net.consumers(lay.name)
        lp.fifo_depth = 2 if all(plan.layer(c.name).cycles >= lp.cycles for c in cons) else 16
    topo = topology(net, plan)
    for lay in net.layers:
        lp = plan.layer(lay.name)
        if lay.name not in topo.skip_bits:
            continue
        if isinstance(lay, ir.Add):
            lp.skip_fifo_depth = max(e.depth for e in topo.edges if e.dst == lay.name)
        else:
            lp.skip_fifo_depth = next(e.depth for e in topo.edges if e.dst == lay.name and e.dport == "skip")
        lp.skip_buffer_bits = topo.skip_bits[lay.name]


def recost(net: ir.Network, plan: Plan, exact_cycles=None):
    """Recompute every layer's cycles and resources from its (possibly edited) configuration. ``exact_cycles``: a
    function ``(net, plan) -> {layer: cycles}`` (the cores' own cycle models, what RTL simulation measures) that
    replaces the closed form's cycles; the plan layer imports no core, so the caller passes it
    (:func:`rtlgen.cores.registry.core_cycles`)."""
    fixed = fixed_stage_costs(net, lanes={lay.name: plan.layer(lay.name).lanes_out for lay in net.layers
                                          if slimmed(lay)})
    for lay in net.layers:
        lp = plan.layer(lay.name)
        if isinstance(lay, (ir.Conv, ir.Dense)):
            validate_layer_plan(lay, lp)
            src = plan.layer(lay.inputs[0])
            cyc, res = layer_config_cost(lay, lp.och_par, lp.ich_par, lp.pix_par, lp.packing, lp.mult, lp.storage,
                                         lanes_in=src.lanes_out, tp=lp.tap_par)
            lp.lanes_out = lp.och_par
        else:
            cyc, res, lanes = fixed[lay.name]
            lp.lanes_out = lanes
        lp.cycles = cyc
        for k, v in res.items():
            setattr(lp, k, v)
    if exact_cycles is not None:
        for name, cyc in exact_cycles(net, plan).items():
            plan.layer(name).cycles = cyc
    size_fifos(net, plan)
    charge_adapters(plan, edge_costs(net, plan))  # each layer's figures include its input adapters, as planned
