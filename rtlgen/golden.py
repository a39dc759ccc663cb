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

Speed: a convolution whose accumulators and requantization inputs are proven below 2**24 runs fused in float32, a few
images at a time (:func:`_conv_fused`: im2col, GEMM straight into the output, bias and requantization while the
chunk is in cache), and :func:`predict` spreads its batches over worker threads with a single-threaded BLAS each.
10,000 CIFAR-10 images through ResNet20 take about 26 CPU seconds (BENCHMARKS.md, golden model).
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


def grouped_conv_acc(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, stride, pads, pad_value, in_q,
                     group: int) -> np.ndarray:
    """Grouped convolution accumulator (``weights`` [O, Kh, Kw, C/group]); depthwise (C/group == 1) as one
    multiply-add per tap over all channels at once, other groups as one :func:`conv_acc` each. Exact: every product
    and partial sum is an integer below 2**31 (checked at import), computed in float64."""
    O, kh, kw, Cg = weights.shape
    Og = O // group
    if Cg == 1:
        xp = pad_nhwc(np.asarray(x, np.float64), pads, pad_value)
        Ho = (xp.shape[1] - kh) // stride[0] + 1
        Wo = (xp.shape[2] - kw) // stride[1] + 1
        w = weights[:, :, :, 0].astype(np.float64)  # O, kh, kw; output o reads channel o // Og
        chan = np.arange(O) // Og
        out = np.zeros((xp.shape[0], Ho, Wo, O), dtype=np.float64)
        for i in range(kh):
            for j in range(kw):
                tap = xp[:, i: i + (Ho - 1) * stride[0] + 1: stride[0], j: j + (Wo - 1) * stride[1] + 1: stride[1], :]
                out += tap[..., chan] * w[:, i, j]
        return out + bias.astype(np.float64)
    parts = [conv_acc(x[..., g * Cg:(g + 1) * Cg], weights[g * Og:(g + 1) * Og], bias[g * Og:(g + 1) * Og], stride,
                      pads, pad_value, in_q) for g in range(group)]
    return np.concatenate(parts, axis=-1)


#: im2col chunk size of the fused float32 convolution: small enough that the columns, the GEMM output and the
#: requantization temporaries stay in the L2/L3 caches (a 100-image batch of ResNet20's first stage is 59 MB of
#: columns; fresh pages of that size cost more than the GEMM)
_FUSED_COLS_BYTES = 2 << 20


def _conv_fused(layer: ir.Conv, x: np.ndarray, skip: np.ndarray | None) -> np.ndarray | None:
    """:func:`conv_acc` + :func:`conv_post` in float32, a few images at a time (columns, accumulators and the
    requantization stay in cache), or ``None`` where float32 is not proven exact for this layer.

    Exact when every accumulator (bias included, :meth:`ir.Conv.acc_range`) and every requantization input
    ``acc * m [+ (skip - res_zp) * res_m]`` (:meth:`ir.Conv.post_range`) is an integer below 2**24 in magnitude,
    and the GEMM's partial sums too (:func:`_gemm_dtype`): then every product, sum and power-of-two scaling below is
    an exactly representable float32 integer (or such an integer times a power of two), the same argument as
    :func:`_exact_requant`'s, which this reproduces operation for operation.
    """
    O, kh, kw, C = layer.weights.shape
    w2d = layer.weights.reshape(O, -1)
    if _gemm_dtype(w2d, layer.in_q) is not np.float32:
        return None
    alo, ahi = layer.acc_range()
    plo, phi = layer.post_range()
    rq = layer.requant
    if max(abs(alo), abs(ahi), abs(plo), abs(phi)) >= _F32_EXACT or int(np.abs(rq.m).max()) >= _F32_EXACT:
        return None
    f32 = np.float32
    wt = np.ascontiguousarray(w2d.T.astype(f32))
    bias = np.asarray(layer.bias, dtype=f32)
    sh = np.exp2(-np.asarray(rq.sh, dtype=np.float64))
    if layer.residual is None:
        mul, scale = None, (np.asarray(rq.m, dtype=np.float64) * sh).astype(f32)  # as _exact_requant(acc, m, sh)
    else:
        if int(np.abs(layer.res_m).max()) >= _F32_EXACT:
            return None
        mul, scale = np.asarray(rq.m, dtype=f32), np.broadcast_to(sh, (O,)).astype(f32)
        res_m = np.asarray(layer.res_m, dtype=f32)
    xp = pad_nhwc(np.asarray(x, dtype=f32), layer.pads, layer.pad_value)
    N = xp.shape[0]
    Ho = (xp.shape[1] - kh) // layer.stride[0] + 1
    Wo = (xp.shape[2] - kw) // layer.stride[1] + 1
    K = kh * kw * C
    out = np.empty((N, Ho, Wo, O), dtype=f32)
    chunk = max(1, _FUSED_COLS_BYTES // (Ho * Wo * K * 4))
    zp, lo, hi = f32(rq.zp_out), rq.lo, rq.hi
    for n0 in range(0, N, chunk):
        xs = xp[n0:n0 + chunk]
        n = xs.shape[0]
        if (kh, kw) == (1, 1):
            cols = np.ascontiguousarray(xs[:, ::layer.stride[0], ::layer.stride[1]][:, :Ho, :Wo]).reshape(-1, K)
        else:
            cols = np.ascontiguousarray(windows(xs, (kh, kw), layer.stride)[:, :Ho, :Wo]).reshape(-1, K)
        a = out[n0:n0 + n].reshape(-1, O)
        np.matmul(cols, wt, out=a)
        a += bias
        if mul is not None:
            a *= mul
            r = np.asarray(skip[n0:n0 + n], dtype=f32).reshape(-1, O) - f32(layer.res_zp)
            r *= res_m
            a += r
        a *= scale
        round_array(a, rq.rounding, out=a)
        a += zp
        np.clip(a, lo, hi, out=a)
        if rq.out_shift:
            a -= zp
            a *= f32(1 << rq.out_shift)
            a += zp
            if rq.out_hi is not None:
                np.minimum(a, f32(rq.out_hi), out=a)
    return out


def run_conv(layer: ir.Conv, x: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    if layer.group == 1:
        out = _conv_fused(layer, x, skip)
        if out is not None:
            return out
    if layer.group != 1:
        acc = grouped_conv_acc(x, layer.weights, layer.bias, layer.stride, layer.pads, layer.pad_value, layer.in_q,
                               layer.group)
        return conv_post(layer, acc, skip)
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
        return out_shift(_exact_requant(acc, rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding, bound), rq)
    if bound < _F64_EXACT:
        dt = np.float32 if bound < _F32_EXACT else np.float64
        v = np.asarray(acc, dtype=dt) * rq.m.astype(dt)
        v += (np.asarray(skip, dtype=dt) - dt(layer.res_zp)) * layer.res_m.astype(dt)
        return out_shift(_exact_requant(v, 1, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding, bound), rq)
    v = np.asarray(acc, dtype=np.int64) * rq.m + (np.asarray(skip, dtype=np.int64) - layer.res_zp) * layer.res_m
    return out_shift(np.clip(rshift_round(v, rq.sh, rq.rounding) + rq.zp_out, rq.lo, rq.hi), rq)


def out_shift(q, rq: ir.Requant):
    """The requant's exact output left shift ``((q - zp_out) << out_shift) + zp_out``, saturated at ``out_hi`` when
    set (identity when ``out_shift`` is 0)."""
    if not rq.out_shift:
        return q
    q = (q - rq.zp_out) * (1 << rq.out_shift) + rq.zp_out
    return q if rq.out_hi is None else np.minimum(q, rq.out_hi)


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
    lo, hi = layer.bounds
    k = 1 << layer.out_shift  # exact output shift (zero point 0 where it is used)
    bound = 256 * (abs(layer.ma) + abs(layer.mb)) * 2
    if bound < _F64_EXACT:
        v = (np.asarray(a, np.float64) - layer.a_q.zero_point) * layer.ma + (np.asarray(b, np.float64) - layer.b_q.zero_point) * layer.mb
        q = (_exact_requant(v, 1, layer.sh, layer.zp_out, lo, hi, layer.rounding, bound) - layer.zp_out) * k + layer.zp_out
        return q if layer.out_hi is None else np.minimum(q, layer.out_hi)
    v = (np.asarray(a, np.int64) - layer.a_q.zero_point) * layer.ma + (np.asarray(b, np.int64) - layer.b_q.zero_point) * layer.mb
    q = (np.clip(rshift_round(v, layer.sh, layer.rounding) + layer.zp_out, lo, hi) - layer.zp_out) * k + layer.zp_out
    return q if layer.out_hi is None else np.minimum(q, layer.out_hi)


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
    ``return_all``. A network planned with an input fold (:mod:`rtlgen.plan.fold`: two pixels per input beat) takes
    the image's frames too: the same bytes, viewed in its input stage's shape.
    """
    px = np.asarray(pixels)
    shape = tuple(net.input.in_shape)
    if getattr(net, "input_fold", 1) > 1 and px.ndim == 4 and px.shape[1:] != shape \
            and int(np.prod(px.shape[1:])) == int(np.prod(shape)):
        px = px.reshape((px.shape[0], *shape))
    return _forward(net, run_input(net.input, px), return_all)


def run_codes(net: ir.Network, codes: np.ndarray, return_all: bool = False):
    """Run the integer network from the input stage's *output*: ``codes`` [N, H, W, C] are the first quantized
    tensor's integers (the graph input quantized by the model's own first quantizer, or an integer graph input as
    given; see :mod:`rtlgen.userdata`). Same results as :func:`run` on pixels the input stage maps onto ``codes``."""
    q = net.input.out_q
    c = np.asarray(codes)
    if c.ndim != 4 or tuple(c.shape[1:]) != tuple(net.input.out_shape):
        raise ValueError(f"input codes of shape {c.shape}: expected [N, {', '.join(map(str, net.input.out_shape))}]")
    if c.size and (c.min() < q.lo or c.max() > q.hi):
        raise ValueError(f"input codes outside [{q.lo}, {q.hi}]")
    return _forward(net, c.astype(np.float32), return_all)


def _forward(net: ir.Network, first: np.ndarray, return_all: bool):
    vals: dict[str, np.ndarray] = {}
    remaining = {layer.name: len(net.consumers(layer.name)) for layer in net.layers}
    for layer in net.layers:
        if isinstance(layer, ir.InputStage):
            vals[layer.name] = first
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


def _blas_set_threads_local():
    """OpenBLAS's ``openblas_set_num_threads_local`` (per calling thread, OpenBLAS >= 0.3.27) from the BLAS library
    NumPy loaded, or ``None`` (another BLAS, another OS): found through /proc/self/maps, no extra dependency."""
    global _BLAS_LOCAL
    if _BLAS_LOCAL is False:
        import ctypes

        _BLAS_LOCAL = None
        try:
            with open("/proc/self/maps") as f:
                paths = {ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln}
            for path in sorted(paths):
                fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
                if fn is not None:
                    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
                    _BLAS_LOCAL = fn
                    break
        except OSError:
            pass
    return _BLAS_LOCAL


_BLAS_LOCAL = False


def workers() -> int:
    """Threads :func:`predict` uses: the CPUs this process may run on (``$RTLGEN_GOLDEN_THREADS`` overrides)."""
    import os

    env = os.environ.get("RTLGEN_GOLDEN_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def predict(net: ir.Network, pixels: np.ndarray, batch: int = 100, progress=None,
            threads: int | None = None) -> np.ndarray:
    """Top-1 class per image, in batches (``progress``: optional callable taking the number of images done).

    Batches run on ``threads`` worker threads (default :func:`workers`; one worker thread too, so that the BLAS
    setting stays there), each with a single-threaded BLAS where NumPy's BLAS is OpenBLAS: NumPy releases the GIL in its GEMMs, copies and ufuncs, so one batch per core beats a
    multithreaded GEMM (whose threads spin between the small matrix products: twice the CPU time for little gain)
    and leaves the copies and the requantization single-threaded. Results do not depend on the thread count (every
    operation is exact).
    """
    starts = list(range(0, len(pixels), batch))
    if not starts:
        return np.zeros(0, dtype=np.int64)
    threads = min(threads or workers(), len(starts))
    local = _blas_set_threads_local()

    def one(i: int) -> np.ndarray:
        if local is not None:
            local(1)
        return np.argmax(logits(net, run(net, pixels[i : i + batch])), axis=1)

    if threads == 1 and local is None:
        preds = []
        for i in starts:
            preds.append(one(i))
            if progress:
                progress(len(preds[-1]))
        return np.concatenate(preds)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="rtlgen-golden") as ex:
        preds = []
        for p in ex.map(one, starts):  # in order; at most ~threads batches ahead of the progress bar
            preds.append(p)
            if progress:
                progress(len(p))
    return np.concatenate(preds)
