"""Clean-up of the imported layer list: pruning what the output does not need, folding clamps into their producers."""

from __future__ import annotations

from .. import ir
from .values import _close


def _prune(layers, out):
    """Keep only layers the output depends on (drops dead branches)."""
    by = {lay.name: lay for lay in layers}
    need, stack = set(), [out]
    while stack:
        n = stack.pop()
        if n in need:
            continue
        need.add(n)
        stack.extend(by[n].inputs)
    return [lay for lay in layers if lay.name in need]


def _fold_clamps(layers):
    """Fold a pure clamp (Requantize with m=1, sh=0, same scale/zp) into its single-consumer MAC producer."""
    by = {lay.name: lay for lay in layers}
    out = []
    removed = {}
    for lay in layers:
        lay.inputs = [removed.get(i, i) for i in lay.inputs]
        if isinstance(lay, ir.Conv) and lay.residual is not None:
            lay.residual = removed.get(lay.residual, lay.residual)
        if isinstance(lay, ir.Requantize) and lay.m == 1 and lay.sh == 0 and lay.in_q.zero_point == lay.out_q.zero_point \
                and _close(lay.in_q.scale, lay.out_q.scale):
            src = by[lay.inputs[0]]
            consumers = [other for other in layers if src.name in other.inputs]
            rq = getattr(src, "requant", None)
            if len(consumers) == 1 and rq is not None and isinstance(src, (ir.Conv, ir.Dense, ir.Pool)):
                rq.lo, rq.hi = max(rq.lo, lay.out_q.lo), min(rq.hi, lay.out_q.hi)
                src.out_q = lay.out_q
                src.source_nodes += lay.source_nodes
                removed[lay.name] = src.name
                continue
        out.append(lay)
    return out
