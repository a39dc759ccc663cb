"""Clean-up of the imported layer list: pruning what the output does not need (folding: :mod:`.optimize`)."""

from __future__ import annotations

from .. import ir


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
