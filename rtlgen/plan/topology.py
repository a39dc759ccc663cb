"""Topology of the composed design, decided from the IR and the plan alone (pure Python): residual merges (loop
merging of 1x1 projections, temporal reuse of window centres), every stream edge with its lane counts and FIFO depth,
and the skip-FIFO sizes from the window delays. :mod:`rtlgen.emit.compose` builds exactly this; the planner costs it.
A depthwise conv (``cores/dwconv.py``: no ``centre`` or ``proj`` port) is never the host of a residual merge."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import ir
from .geometry import skip_fifo_entries, window_delay_pixels



@dataclass
class Edge:
    src: str  # producing layer
    port: str  # producer port: o | centre | proj
    dst: str  # consuming layer
    dport: str  # consumer port: i | a | b | skip
    lanes_src: int
    lanes_dst: int
    channels: int
    depth: int  # FIFO depth in beats of lanes_dst
    width: int = 8


@dataclass
class Topology:
    edges: list[Edge] = field(default_factory=list)
    centre_of: dict = field(default_factory=dict)  # conv name -> True when its centre port is used
    proj_of: dict = field(default_factory=dict)  # conv name -> projection layer merged into it
    merged: set = field(default_factory=set)  # layers computed inside another core
    skip_bits: dict = field(default_factory=dict)  # consumer -> skip FIFO bits


def _same_padded(lay: ir.Conv) -> bool:
    kh, kw = lay.kernel
    return kh == kw and kh % 2 == 1 and tuple(lay.pads) == (kh // 2,) * 4 and lay.stride[0] == lay.stride[1]


def input_lanes(lay, lp) -> int:
    """Lanes a core reads on its main input."""
    if isinstance(lay, ir.Conv):
        return lp.ich_par
    if isinstance(lay, ir.Dense):  # the core regroups pixels of C values into ich_par-wide groups itself
        return min(lp.ich_par, lay.in_shape[2])
    return lp.lanes_out


def out_lanes(lay, lp) -> int:
    if isinstance(lay, ir.InputStage):
        return lay.out_shape[2]
    if isinstance(lay, (ir.Conv, ir.Dense)):
        return lp.och_par if isinstance(lay, ir.Conv) else lp.lanes_out
    return lp.lanes_out


def projection_merges(net: ir.Network) -> dict[str, str]:
    """Loop merging: host conv -> the 1x1 projection shortcut computed on its window centres (one pass over the
    block input feeds both). The rule depends on the network only; :func:`topology` applies it and the planner
    (:func:`rtlgen.plan.search.plan_network`) costs a merged projection as the engine it becomes: the host's
    ``ich_par`` lanes, one pixel per cycle, no packing."""
    L = {lay.name: lay for lay in net.layers}
    consumers = {lay.name: [c for c in net.layers if lay.name in c.inputs] for lay in net.layers}
    out: dict[str, str] = {}
    for lay in net.layers:
        if not (isinstance(lay, ir.Conv) and lay.residual is not None):
            continue
        a = L[lay.inputs[0]]
        r = L[lay.residual]
        if (isinstance(a, ir.Conv) and isinstance(r, ir.Conv) and a.group == 1 and r.group == 1
                and r.kernel == (1, 1) and not any(r.pads)
                and r.inputs[0] == a.inputs[0] and tuple(r.stride) == tuple(a.stride) and _same_padded(a)
                and a.residual is None and [c.name for c in consumers[r.name]] == [lay.name]
                and a.name not in out and len(consumers[a.name]) == 1):
            out[a.name] = r.name
    return out


def topology(net: ir.Network, plan) -> Topology:
    t = Topology()
    L = {lay.name: lay for lay in net.layers}
    P = {lp.name: lp for lp in plan.layers}
    consumers = {lay.name: [c for c in net.layers if lay.name in c.inputs] for lay in net.layers}

    # 1. residual merges: loop merging (projection) and temporal reuse (identity)
    merges = projection_merges(net)
    skip_src: dict[str, tuple[str, str]] = {}
    for lay in net.layers:
        if not (isinstance(lay, ir.Conv) and lay.residual is not None):
            continue
        a = L[lay.inputs[0]]
        r = L[lay.residual]
        if merges.get(a.name) == r.name:
            t.proj_of[a.name] = r.name
            t.merged.add(r.name)
            skip_src[lay.name] = (a.name, "proj")
            continue
        if (isinstance(a, ir.Conv) and a.group == 1 and a.inputs[0] == r.name and tuple(a.stride) == (1, 1)
                and _same_padded(a)
                and len(consumers[a.name]) == 1 and not t.centre_of.get(a.name)):
            t.centre_of[a.name] = True
            skip_src[lay.name] = (a.name, "centre")
            continue
        skip_src[lay.name] = (r.name, "o")

    # 2. edges
    for lay in net.layers:
        if isinstance(lay, ir.InputStage) or lay.name in t.merged:
            continue
        lp = P[lay.name]
        ins = [lay.inputs[0]]
        ports = ["i"]
        if isinstance(lay, ir.Add):
            ins, ports = list(lay.inputs), ["a", "b"]
        for src, dport in zip(ins, ports):
            s = L[src]
            lanes_src = out_lanes(s, P[src])
            lanes_dst = input_lanes(lay, lp) if dport == "i" else lp.lanes_out
            C = s.out_shape[2]
            width = 32 if (s.out_q is None) else 8
            depth = max(P[src].fifo_depth, 2)
            if isinstance(lay, ir.Add):
                depth = max(depth, _add_skip_depth(net, lay, src, lanes_dst, P))
            t.edges.append(Edge(src, "o", lay.name, dport, lanes_src, lanes_dst, C, depth, width))
        if isinstance(lay, ir.Conv) and lay.residual is not None:
            src, port = skip_src[lay.name]
            s = L[src]
            O = lay.out_shape[2]
            if port == "centre":
                lanes_src = P[src].ich_par
            elif port == "proj":
                lanes_src = P[lay.residual].och_par
            else:
                lanes_src = out_lanes(s, P[src])
            R = math.ceil(O / lp.och_par)
            W = lay.out_shape[1]
            kh, kw = lay.kernel
            if port in ("centre", "proj"):
                entries = skip_fifo_entries(W, O, kh, kw, lp.och_par, temporal_reuse=True, pix=lp.pix_par)
            else:
                entries = _generic_skip_entries(net, lay, src, P)
            pixels = math.ceil(entries / O)
            depth = pixels * R + R + 2
            t.skip_bits[lay.name] = depth * lp.och_par * 8
            t.edges.append(Edge(src, port, lay.name, "skip", lanes_src, lp.och_par, O, depth))
        if isinstance(lay, ir.Add):
            H, W, C = lay.out_shape
            t.skip_bits[lay.name] = max(e.depth for e in t.edges if e.dst == lay.name) * lp.lanes_out * 8
    return t


def _path_delay(net, frm: str, to: str, P) -> int:
    """Sum of window delays (pixels) of the convs on the longest path frm -> to (exclusive of frm)."""
    L = {lay.name: lay for lay in net.layers}
    memo = {}

    def d(name):
        if name == frm:
            return 0
        if name in memo:
            return memo[name]
        lay = L[name]
        best = None
        for i in lay.inputs:
            v = d(i)
            if v is not None:
                best = v if best is None else max(best, v)
        if best is not None and isinstance(lay, ir.Conv):
            best += window_delay_pixels(lay, P[name].pix_par)
        elif best is not None and isinstance(lay, ir.Pool) and not lay.is_global:
            best += lay.kernel[0] * lay.in_shape[1] + 2
        memo[name] = best
        return best

    return d(to) or 0


def _generic_skip_entries(net, lay: ir.Conv, src: str, P) -> int:
    """Skip FIFO entries for a merged residual without reuse: the window delays on the main path (paper's rule).

    The main path is measured from the skip source when it feeds the main path (identity skip), else from the
    nearest common ancestor of both paths (e.g. an option-A shortcut and the block's stride-2 conv1 are siblings fed
    by the block input: conv1's window delay must be covered too, or the block input's fork stalls -- a deadlock).
    Delays of convs before a stride count in their input pixels, which over-covers the skip pixels (safe)."""
    main_in = lay.inputs[0]
    root = src
    if src not in _ancestors(net, main_in):
        main_anc = _ancestors(net, main_in)
        common = [a for a in _ancestors(net, src) if a in main_anc]
        root = common[0] if common else src
    delay = _path_delay(net, root, main_in, P) + window_delay_pixels(lay, P[lay.name].pix_par)
    return delay * lay.out_shape[2] + P[lay.name].och_par + 1


def _add_skip_depth(net, lay: ir.Add, src: str, lanes: int, P) -> int:
    """FIFO beats on one input of a standalone add: the other path's extra window delay, at the add's resolution."""
    other = [i for i in lay.inputs if i != src][0]
    # common ancestor: walk up from both
    anc = _ancestors(net, src)
    common = [a for a in _ancestors(net, other) if a in anc]
    if not common:
        return 2
    root = common[0]
    d_self = _path_delay(net, root, src, P)
    d_other = _path_delay(net, root, other, P)
    H, W, C = lay.out_shape
    extra = max(0, d_other - d_self) + W + 4
    return extra * math.ceil(C / lanes) + 4


def _ancestors(net, name):
    L = {lay.name: lay for lay in net.layers}
    out, stack = [], [name]
    while stack:
        n = stack.pop(0)
        if n in out:
            continue
        out.append(n)
        stack.extend(L[n].inputs)
    return out
