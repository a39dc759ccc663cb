"""Several pixels per input beat: adjacent pixels folded into the channels of the stem convolution.

A stem convolution whose horizontal stride ``s`` is a multiple of ``f`` reads the input frame ``H x W x C`` exactly as
a convolution of horizontal stride ``s / f`` reads the same bytes viewed as ``H x W/f x f*C`` (each run of ``f``
adjacent pixels of a row one "pixel" of ``f*C`` channels). The byte stream does not change -- raster order, channels
innermost -- only the beat width: the input stage takes ``f`` pixels per beat and the stem's line buffer writes ``f``
pixels per cycle. Without it a 96 x 96 frame costs 9,216 input cycles at one pixel per beat, more than the rest of a
MobileNetV1 0.25 needs on a KV260 (issue 22: "the input stage accepts several pixels per beat where the first layer
would otherwise wait on the input stream").

The folded convolution (:func:`fold_conv`): output column ``x`` of the original reads input columns
``s*x - pl + j`` (``j < kw``); input column ``i`` is folded column ``i // f``, channel block ``i % f``, so the folded
kernel spans folded columns ``x*s/f + u0 .. x*s/f + u1`` (``u0 = floor(-pl / f)``, ``u1 = floor((kw-1-pl) / f)``),
its left padding is ``-u0`` folded columns and its weights are the original taps at their channel blocks, zero
elsewhere (a zero weight times any value, padding included, adds nothing). Rows, the bias, the requantization and the
output are unchanged, so the folded network computes every output bit of the original (tests/test_fold.py checks the
golden model on both); the stem's vertical stride stays (the window generator takes unequal strides).

Pure Python (the plan layer): :func:`fold_input` returns the folded :class:`~rtlgen.ir.Network`; the planner keeps it
only where it makes the frame faster (:func:`rtlgen.flow.Design.plan`) and the build records the factor
(``report.json`` ``input_fold``), so ``rtlgen sim`` rebuilds the same network (:func:`apply_fold`).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from rtlgen import ir

__all__ = ["FOLD", "apply_fold", "plan_file_fold", "fold_conv", "fold_input", "fold_pixels", "why_not_foldable"]

#: pixels per input beat of a folded input stage
FOLD = 2


def _geometry(c: ir.Conv, f: int):
    """(u0, kw', pad_left', pad_right', stride') of the folded convolution (horizontal axis)."""
    kw, s, pl = c.kernel[1], c.stride[1], c.pads[1]
    W, Wo = c.in_shape[1], c.out_shape[1]
    u0, u1 = (-pl) // f, (kw - 1 - pl) // f
    kw2, s2 = u1 - u0 + 1, s // f
    pr2 = (Wo - 1) * s2 + kw2 - W // f + u0
    return u0, kw2, -u0, pr2, s2


def why_not_foldable(net: ir.Network, f: int = FOLD) -> str | None:
    """None if :func:`fold_input` applies with factor ``f``, else the reason (one line)."""
    inp = net.input
    cons = net.consumers(inp.name)
    if len(cons) != 1 or not isinstance(cons[0], ir.Conv):
        return "the input does not feed exactly one convolution"
    c = cons[0]
    W = inp.out_shape[1]
    if c.group != 1:
        return f"{c.name} is a grouped convolution"
    if c.residual is not None:
        return f"{c.name} has a merged residual"
    if W % f:
        return f"the input width {W} is not a multiple of {f}"
    if c.stride[1] % f:
        return f"{c.name}'s horizontal stride {c.stride[1]} is not a multiple of {f}"
    if _geometry(c, f)[3] < 0:
        return f"{c.name} would need a negative right padding"
    return None


def fold_conv(c: ir.Conv, f: int = FOLD) -> ir.Conv:
    """The convolution on the ``H x W/f x f*C`` view of ``c``'s input that computes ``c``'s output exactly."""
    O, kh, kw, C = c.weights.shape
    u0, kw2, pl2, pr2, s2 = _geometry(c, f)
    pl = c.pads[1]
    w2 = np.zeros((O, kh, kw2, f * C), dtype=c.weights.dtype)
    for k in range(kw2):
        for h in range(f):
            j = f * (k + u0) + h + pl  # the original tap at (folded column k, channel block h)
            if 0 <= j < kw:
                w2[:, :, k, h * C:(h + 1) * C] = c.weights[:, :, j, :]
    H, W, _ = c.in_shape
    return replace(c, weights=w2, in_shape=(H, W // f, f * C), stride=(c.stride[0], s2),
                   pads=(c.pads[0], pl2, c.pads[2], pr2), source_nodes=list(c.source_nodes))


def fold_input(net: ir.Network, f: int = FOLD) -> ir.Network:
    """``net`` with its input stage taking ``f`` pixels per beat and its stem convolution folded (:func:`fold_conv`);
    ValueError with :func:`why_not_foldable`'s reason where it does not apply."""
    why = why_not_foldable(net, f)
    if why is not None:
        raise ValueError(f"input fold {f}: {why}")
    inp = net.input
    stem = net.consumers(inp.name)[0]
    H, W, C = inp.out_shape
    inp2 = replace(inp, in_shape=(H, W // f, f * C), out_shape=(H, W // f, f * C),
                   table=np.concatenate([inp.table] * f), source_nodes=list(inp.source_nodes))
    layers = [inp2 if lay is inp else fold_conv(stem, f) if lay is stem else lay for lay in net.layers]
    out = ir.Network(net.name, layers, net.output, net.source_format, net.softmax, net.output_scale,
                     net.output_zero_point, dict(net.metadata))
    for k, v in vars(net).items():  # the optimizer's notes and other annotations travel along
        if k not in vars(out):
            setattr(out, k, copy.copy(v))
    out.input_fold = f
    out.pixel_shape = (H, W, C)
    return out


def apply_fold(net: ir.Network, f: int | None) -> ir.Network:
    """``net`` folded by ``f`` (a build's ``report.json`` ``input_fold``; None or 1: unchanged)."""
    return net if not f or f == 1 else fold_input(net, int(f))


def plan_file_fold(path) -> int | None:
    """The ``options.input_fold`` of a ``plan.json`` (None where absent or unreadable: the plan loader names the
    problem)."""
    import json
    from pathlib import Path

    try:
        d = json.loads(Path(path).read_text())
        f = d.get("options", {}).get("input_fold")
        return int(f) if f else None
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def fold_pixels(net: ir.Network, pixels: np.ndarray) -> np.ndarray:
    """uint8 frames ``N x H x W x C`` (or already in the input stage's shape) as ``net``'s input stage takes them:
    the same bytes, reshaped."""
    px = np.asarray(pixels)
    shape = tuple(net.input.in_shape)
    if px.shape[1:] == shape:
        return px
    return px.reshape((px.shape[0], *shape))
