"""NumPy integer golden model: the specification every core and whole network must match bit for bit.

All functions work on NHWC batches of integer values. Between layers the integers travel as float32 arrays (every
activation is an 8-bit integer, exact in float32; wide outputs use float64); :func:`run` returns int64. Convolutions and dense layers use a BLAS matmul in floating point,
which is *exact* here: every product and every partial sum is an integer whose magnitude is bounded by
``sum_k |w_k| * max|x|`` (computed per layer from the actual weights and the input's clamp range). When that
bound is below 2**24 a float32 GEMM represents every intermediate integer exactly whatever order BLAS sums in
(float32 has a 24-bit significand); otherwise float64 is used (exact below 2**53, far above any int32
accumulator). The requantization ``round(v * m / 2**sh)`` is evaluated in float64 when a per-layer bound proves
``|v * m| < 2**53`` (then the product, the power-of-two scaling and ``np.round``'s half-to-even are all exact),
and in int64 with :func:`rtlgen.quant.rshift_round` otherwise.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import ir
from .quant import round_array, rshift_round

_F32_EXACT = 1 << 24
_IM2COL_BYTES = 128 << 20
_F64_EXACT = 1 << 53


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
    """Integer convolution accumulator ``bias[o] + sum x*w`` (NHWC in, NHWC int64 out).

    im2col in chunks of images (bounded memory) and one GEMM per chunk; exact as explained in the module docstring.
    """
    O, kh, kw, C = weights.shape
    w2d = weights.reshape(O, -1)
    dt = _gemm_dtype(w2d, in_q)
    wt = np.ascontiguousarray(w2d.T.astype(dt))
    xp = pad_nhwc(x.astype(dt), pads, pad_value)
    N = xp.shape[0]
    Ho = (xp.shape[1] - kh) // stride[0] + 1
    Wo = (xp.shape[2] - kw) // stride[1] + 1
    out = np.empty((N, Ho, Wo, O), dtype=np.float64)
    K = kh * kw * C
    chunk = max(1, int(_IM2COL_BYTES // (Ho * Wo * K * np.dtype(dt).itemsize)))
    sh_, sw_ = stride
    for n0 in range(0, N, chunk):
        xs = xp[n0 : n0 + chunk]
        n = xs.shape[0]
        win = windows(xs, (kh, kw), stride)[:, :Ho, :Wo]  # N, Ho, Wo, kh, kw, C view
        cols = np.ascontiguousarray(win).reshape(-1, K)
        out[n0 : n0 + n] = (cols @ wt).reshape(-1, Ho, Wo, O)
    out += bias.astype(np.float64)  # |acc| < 2**31 (checked at import): exact in float64
    return out


def run_conv(layer: ir.Conv, x: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    acc = conv_acc(x, layer.weights, layer.bias, layer.stride, layer.pads, layer.pad_value, layer.in_q)
    return conv_post(layer, acc, skip)


def _exact_requant(v, m, sh, zp, lo, hi, mode, bound) -> np.ndarray:
    """``clamp(round(v * m / 2**sh) + zp, lo, hi)`` exactly.

    If ``bound`` (a proven bound on ``|v * m|``) is below 2**53 the product, the power-of-two scaling and the
    rounding are all exact in float64 (``np.round`` is half-to-even), which is several times faster than int64
    shifting; otherwise the int64 shift-and-round of :func:`rtlgen.quant.rshift_round` is used.
    """
    if bound < _F64_EXACT:
        dt = np.float32 if bound < _F32_EXACT else np.float64
        scale = (np.asarray(m, dtype=np.float64) * np.exp2(-np.asarray(sh, dtype=np.float64))).astype(dt)
        f = np.multiply(np.asarray(v, dtype=dt), scale, dtype=dt)
        f = round_array(f, mode, out=f)
        f += dt(zp)
        return np.clip(f, lo, hi, out=f)
    return np.clip(rshift_round(np.asarray(v, dtype=np.int64) * np.asarray(m, dtype=np.int64), sh, mode) + zp, lo, hi)


def conv_post(layer: ir.Conv, acc: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """Requantization of a conv accumulator, with the merged residual if the layer has one (golden spec:
    ``clamp(rshift_round(acc*m[o] + (skip-res_zp)*res_m[o], sh[o]) + zp_out, lo, hi)``)."""
    rq = layer.requant
    lo, hi = layer.post_range()
    bound = max(abs(lo), abs(hi))
    if layer.residual is None:
        return _exact_requant(acc, rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding, bound)
    if bound < _F64_EXACT:
        dt = np.float32 if bound < _F32_EXACT else np.float64
        v = np.asarray(acc, dtype=dt) * rq.m.astype(dt)
        v += (np.asarray(skip, dtype=dt) - dt(layer.res_zp)) * layer.res_m.astype(dt)
        return _exact_requant(v, 1, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding, bound)
    v = np.asarray(acc, dtype=np.int64) * rq.m + (np.asarray(skip, dtype=np.int64) - layer.res_zp) * layer.res_m
    return np.clip(rshift_round(v, rq.sh, rq.rounding) + rq.zp_out, rq.lo, rq.hi)


def run_dense(layer: ir.Dense, x: np.ndarray) -> np.ndarray:
    N = x.shape[0]
    v = x.reshape(N, -1)
    dt = _gemm_dtype(layer.weights, layer.in_q)
    acc = (v.astype(dt) @ layer.weights.T.astype(dt)).astype(np.float64) + layer.bias
    if layer.requant is not None:
        rq = layer.requant
        lo, hi = layer.acc_range()
        acc = _exact_requant(acc, rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding, max(abs(lo), abs(hi)) * int(rq.m.max()))
    return acc.reshape(N, 1, 1, -1)


def run_add(layer: ir.Add, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``clamp(rshift_round((a-za)*ma + (b-zb)*mb, sh) + zp_out, lo, hi)``."""
    q = layer.out_q
    bound = 256 * (abs(layer.ma) + abs(layer.mb)) * 2
    if bound < _F64_EXACT:
        v = (np.asarray(a, np.float64) - layer.a_q.zero_point) * layer.ma + (np.asarray(b, np.float64) - layer.b_q.zero_point) * layer.mb
        return _exact_requant(v, 1, layer.sh, layer.zp_out, q.lo, q.hi, layer.rounding, bound)
    v = (np.asarray(a, np.int64) - layer.a_q.zero_point) * layer.ma + (np.asarray(b, np.int64) - layer.b_q.zero_point) * layer.mb
    return np.clip(rshift_round(v, layer.sh, layer.rounding) + layer.zp_out, q.lo, q.hi)


def run_pool(layer: ir.Pool, x: np.ndarray) -> np.ndarray:
    """Max pooling (padding never wins), or average: ``requant(sum over window of (q - zp_in))``."""
    if layer.mode == "max":
        if layer.is_global:
            return x.max(axis=(1, 2), keepdims=True)
        w = windows(pad_nhwc(np.asarray(x, np.float64), layer.pads, -np.inf), layer.kernel, layer.stride)
        return w.max(axis=(3, 4))
    rq = layer.requant
    zp = layer.in_q.zero_point
    if layer.is_global:
        s = (np.asarray(x, np.float64) - zp).sum(axis=(1, 2), keepdims=True)
    else:
        w = windows(pad_nhwc(np.asarray(x, np.float64), layer.pads, zp), layer.kernel, layer.stride)
        s = (w - zp).sum(axis=(3, 4))
    bound = layer.kernel[0] * layer.kernel[1] * 256 * int(rq.m.max())
    return _exact_requant(s, rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding, bound)


def run_shortcut_a(layer: ir.ShortcutA, x: np.ndarray) -> np.ndarray:
    s = layer.stride
    y = x[:, ::s, ::s, :]
    return np.pad(y, ((0, 0), (0, 0), (0, 0), (layer.pad_before, layer.pad_after)), constant_values=layer.pad_value)


def run_requant(layer: ir.Requantize, x: np.ndarray) -> np.ndarray:
    q = layer.out_q
    return _exact_requant(np.asarray(x, np.float64) - layer.in_q.zero_point, layer.m, layer.sh, q.zero_point, q.lo, q.hi,
                          layer.rounding, 512 * layer.m)


def run_input(layer: ir.InputStage, pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC pixels -> table lookup per channel."""
    px = np.asarray(pixels)
    if px.dtype != np.uint8:
        raise ValueError("input stage expects uint8 pixels")
    C = layer.table.shape[0]
    out = np.empty(px.shape, dtype=np.float32)
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
        vals[layer.name] = _compact(run_layer(layer, args))
        if not return_all:
            for i in layer.inputs:
                remaining[i] -= 1
                if remaining[i] == 0 and i != net.output:
                    del vals[i]
    if return_all:
        return {k: v.astype(np.int64) for k, v in vals.items()}
    out = vals[net.output].astype(np.int64)
    return out.reshape(out.shape[0], -1)


def _compact(v: np.ndarray) -> np.ndarray:
    """Integer-valued activations travel between layers as float32 (exact below 2**24) or float64 (wide outputs)."""
    if v.dtype == np.float32:
        return v
    if v.size and max(abs(float(v.max())), abs(float(v.min()))) < _F32_EXACT:
        return v.astype(np.float32)
    return v.astype(np.float64)


def logits(net: ir.Network, q: np.ndarray) -> np.ndarray:
    """Dequantized float logits of the output integers (per-class scale for raw accumulator outputs)."""
    scale = np.asarray(net.output_scale if net.output_scale is not None else 1.0, dtype=np.float64)
    return (q.astype(np.float64) - net.output_zero_point) * scale


def predict(net: ir.Network, pixels: np.ndarray, batch: int = 100, progress=None) -> np.ndarray:
    """Top-1 class per image, in batches (``progress``: optional callable taking the number of images done)."""
    preds = []
    for i in range(0, len(pixels), batch):
        q = run(net, pixels[i : i + batch])
        preds.append(np.argmax(logits(net, q), axis=1))
        if progress:
            progress(len(preds[-1]))
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
