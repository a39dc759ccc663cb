"""NumPy integer golden model: the specification every core and whole network must match bit for bit.

All functions work on int64 NHWC batches. Convolutions and dense layers use a BLAS matmul in floating point,
which is *exact* here: every product and every partial sum is an integer whose magnitude is bounded by
``sum_k |w_k| * max|x|`` (computed per layer from the actual weights and the input's clamp range). When that
bound is below 2**24 a float32 GEMM represents every intermediate integer exactly whatever order BLAS sums in
(float32 has a 24-bit significand); otherwise float64 is used (exact below 2**53, far above any int32
accumulator). The bias and the requantization are then applied in int64.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import ir
from .quant import requantize, rshift_round

_F32_EXACT = 1 << 24


def _gemm_dtype(w2d: np.ndarray, in_q: ir.QType):
    bound = int(np.abs(w2d).sum(1).max()) * max(abs(in_q.lo), abs(in_q.hi), 1)
    return np.float32 if bound < _F32_EXACT else np.float64


def pad_nhwc(x: np.ndarray, pads, value: int) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def windows(x: np.ndarray, kernel, stride) -> np.ndarray:
    """[N, H, W, C] -> [N, Ho, Wo, Kh, Kw, C] view of the K x K windows (no copy)."""
    kh, kw = kernel
    v = sliding_window_view(x, (kh, kw), axis=(1, 2))  # N, H', W', C, kh, kw
    v = v[:, :: stride[0], :: stride[1]]
    return v.transpose(0, 1, 2, 4, 5, 3)


def conv_acc(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, stride, pads, pad_value, in_q) -> np.ndarray:
    """Integer convolution accumulator ``bias[o] + sum x*w`` (NHWC in, NHWC int64 out)."""
    O, kh, kw, C = weights.shape
    xp = pad_nhwc(x, pads, pad_value)
    w2d = weights.reshape(O, -1)
    dt = _gemm_dtype(w2d, in_q)
    wt = w2d.T.astype(dt)
    N = xp.shape[0]
    Ho = (xp.shape[1] - kh) // stride[0] + 1
    Wo = (xp.shape[2] - kw) // stride[1] + 1
    xf = xp.astype(dt)
    if kh == 1 and kw == 1:
        cols = xf[:, :: stride[0], :: stride[1], :][:, :Ho, :Wo].reshape(-1, C)
        acc = cols @ wt
    else:
        # sum of kh*kw shifted 1x1 GEMMs: avoids materializing the full im2col matrix
        acc = np.zeros((N * Ho * Wo, O), dtype=dt)
        wr = weights.astype(dt)  # O, kh, kw, C
        for i in range(kh):
            for j in range(kw):
                sl = xf[:, i : i + stride[0] * (Ho - 1) + 1 : stride[0], j : j + stride[1] * (Wo - 1) + 1 : stride[1], :]
                acc += sl.reshape(-1, C) @ wr[:, i, j, :].T
    out = acc.astype(np.int64).reshape(N, Ho, Wo, O)
    return out + bias.astype(np.int64)


def run_conv(layer: ir.Conv, x: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    acc = conv_acc(x, layer.weights, layer.bias, layer.stride, layer.pads, layer.pad_value, layer.in_q)
    return conv_post(layer, acc, skip)


def conv_post(layer: ir.Conv, acc: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """Requantization of a conv accumulator, with the merged residual if the layer has one."""
    rq = layer.requant
    v = acc * rq.m
    if layer.residual is not None:
        v = v + (skip.astype(np.int64) - layer.res_zp) * layer.res_m
    return np.clip(rshift_round(v, rq.sh, rq.rounding) + rq.zp_out, rq.lo, rq.hi)


def run_dense(layer: ir.Dense, x: np.ndarray) -> np.ndarray:
    N = x.shape[0]
    v = x.reshape(N, -1)
    dt = _gemm_dtype(layer.weights, layer.in_q)
    acc = (v.astype(dt) @ layer.weights.T.astype(dt)).astype(np.int64) + layer.bias
    if layer.requant is not None:
        rq = layer.requant
        acc = requantize(acc, rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding)
    return acc.reshape(N, 1, 1, -1)


def run_add(layer: ir.Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    v = (a - layer.a_q.zero_point) * layer.ma + (b - layer.b_q.zero_point) * layer.mb
    q = layer.out_q
    return np.clip(rshift_round(v, layer.sh, layer.rounding) + layer.zp_out, q.lo, q.hi)


def run_pool(layer: ir.Pool, x: np.ndarray) -> np.ndarray:
    if layer.is_global:
        if layer.mode == "max":
            return x.max(axis=(1, 2), keepdims=True)
        s = (x - layer.in_q.zero_point).sum(axis=(1, 2), keepdims=True)
        rq = layer.requant
        return requantize(s, rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding)
    if layer.mode == "max":
        lo = np.iinfo(np.int64).min
        w = windows(pad_nhwc(x, layer.pads, lo), layer.kernel, layer.stride)
        return w.max(axis=(3, 4))
    w = windows(pad_nhwc(x, layer.pads, layer.in_q.zero_point), layer.kernel, layer.stride)
    s = (w - layer.in_q.zero_point).sum(axis=(3, 4))
    rq = layer.requant
    return requantize(s, rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding)


def run_shortcut_a(layer: ir.ShortcutA, x: np.ndarray) -> np.ndarray:
    s = layer.stride
    y = x[:, ::s, ::s, :]
    return np.pad(y, ((0, 0), (0, 0), (0, 0), (layer.pad_before, layer.pad_after)), constant_values=layer.pad_value)


def run_requant(layer: ir.Requantize, x: np.ndarray) -> np.ndarray:
    q = layer.out_q
    return requantize(x - layer.in_q.zero_point, layer.m, layer.sh, q.zero_point, q.lo, q.hi, layer.rounding)


def run_input(layer: ir.InputStage, pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC pixels -> table lookup per channel."""
    px = np.asarray(pixels)
    if px.dtype != np.uint8:
        raise ValueError("input stage expects uint8 pixels")
    C = layer.table.shape[0]
    out = np.empty(px.shape, dtype=np.int64)
    for c in range(C):
        out[..., c] = layer.table[c][px[..., c]]
    return out


def run_layer(layer: ir.Layer, args: list[np.ndarray]) -> np.ndarray:
    if isinstance(layer, ir.Conv):
        return run_conv(layer, args[0], args[1] if layer.residual is not None else None)
    if isinstance(layer, ir.Dense):
        return run_dense(layer, args[0])
    if isinstance(layer, ir.Add):
        return run_add(layer, args[0], args[1])
    if isinstance(layer, ir.Pool):
        return run_pool(layer, args[0])
    if isinstance(layer, ir.ShortcutA):
        return run_shortcut_a(layer, args[0])
    if isinstance(layer, ir.Requantize):
        return run_requant(layer, args[0])
    raise TypeError(f"golden model has no rule for layer kind {layer.kind!r}")


def run(net: ir.Network, pixels: np.ndarray, return_all: bool = False):
    """Run the integer network on uint8 NHWC ``pixels`` [N, H, W, C].

    Returns the output layer's integers ([N, classes] int64), or a dict of every layer's NHWC output when
    ``return_all``.
    """
    vals: dict[str, np.ndarray] = {}
    remaining = {layer.name: len(net.consumers(layer.name)) for layer in net.layers}
    for layer in net.layers:
        if isinstance(layer, ir.InputStage):
            vals[layer.name] = run_input(layer, pixels)
            continue
        args = [vals[i] for i in layer.inputs]
        vals[layer.name] = run_layer(layer, args)
        if not return_all:
            for i in layer.inputs:
                remaining[i] -= 1
                if remaining[i] == 0 and i != net.output:
                    del vals[i]
    if return_all:
        return vals
    out = vals[net.output]
    return out.reshape(out.shape[0], -1)


def logits(net: ir.Network, q: np.ndarray) -> np.ndarray:
    """Dequantized float logits of the output integers (per-class scale for raw accumulator outputs)."""
    scale = np.asarray(net.output_scale if net.output_scale is not None else 1.0, dtype=np.float64)
    return (q.astype(np.float64) - net.output_zero_point) * scale


def predict(net: ir.Network, pixels: np.ndarray, batch: int = 500, progress=None) -> np.ndarray:
    """Top-1 class per image, in batches (``progress``: optional callable taking the number of images done)."""
    preds = []
    for i in range(0, len(pixels), batch):
        q = run(net, pixels[i : i + batch])
        preds.append(np.argmax(logits(net, q), axis=1))
        if progress:
            progress(len(preds[-1]))
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
