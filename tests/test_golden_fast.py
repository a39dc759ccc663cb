"""The golden model's fast paths against a plain int64 evaluation of the specification (issue 20, golden speed).

* :func:`rtlgen.golden.run_conv`'s fused float32 path (``_conv_fused``: im2col + GEMM + requantization a few images
  at a time) equals ``clamp(rshift_round((bias + sum x*w) * m [+ (skip - res_zp) * res_m], sh) + zp, lo, hi)``
  computed in int64, on random layers drawn by hypothesis (1x1 and 3x3 kernels, strides 1 and 2, padding, every
  rounding mode, merged residuals, multipliers that put the requantization input just below and just above 2**24);
  it is taken exactly when float32 is proven exact and declines otherwise (the float64 / int64 path then runs).
* :func:`rtlgen.golden.predict` gives the same classes on 1, 2 and 3 worker threads, with batch sizes that do not
  divide the image count, as the serial argmax of :func:`rtlgen.golden.run`; the progress callback counts every image.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtlgen import golden, ir
from rtlgen.quant import ROUNDING_MODES, rshift_round


def qtype(signed: bool, zp: int = 0):
    lo, hi = (-128, 127) if signed else (0, 255)
    return ir.QType(0.05, zp, signed, 8, lo, hi)


def make_conv(rng, K, stride, C, O, H, signed, zp, residual, mode, m_bits, sh_max):
    in_q = qtype(signed, zp if signed else abs(zp))
    w = rng.integers(-128, 128, (O, K, K, C))
    pads = (K // 2,) * 4
    Ho = (H + 2 * (K // 2) - K) // stride + 1
    m = rng.integers(1, 1 << m_bits, O)
    sh = rng.integers(0, sh_max + 1, O)
    rq = ir.Requant(m, sh, -3, -128, 127, mode)
    lay = ir.Conv("c", ["x"], (H, H, C), (Ho, Ho, O), qtype(True, -3), weights=w,
                  bias=rng.integers(-5000, 5000, O), stride=(stride, stride), pads=pads, pad_value=in_q.zero_point,
                  requant=rq, in_q=in_q, w_scale=np.ones(O))
    if residual:
        lay.residual, lay.inputs = "s", ["x", "s"]
        lay.res_m, lay.res_zp, lay.res_q = rng.integers(1, 1 << m_bits, O), 5, qtype(True, 5)
    return lay


def spec_int64(lay: ir.Conv, x: np.ndarray, skip) -> np.ndarray:
    """The specification, evaluated in int64 with nothing shared with the fast path but the padding and windows."""
    xi = golden.pad_nhwc(x.astype(np.int64), lay.pads, lay.pad_value)
    win = golden.windows(xi, lay.kernel, lay.stride)
    Ho, Wo = lay.out_shape[:2]
    acc = np.einsum("nhwijc,oijc->nhwo", win[:, :Ho, :Wo], lay.weights.astype(np.int64)) + lay.bias
    v = acc * lay.requant.m
    if lay.residual is not None:
        v = v + (skip.astype(np.int64) - lay.res_zp) * lay.res_m
    rq = lay.requant
    return np.clip(rshift_round(v, rq.sh, rq.rounding) + rq.zp_out, rq.lo, rq.hi)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(K=st.sampled_from([1, 3]), stride=st.sampled_from([1, 2]), C=st.integers(1, 20), O=st.integers(1, 5),
       signed=st.booleans(), zp=st.integers(-10, 10), residual=st.booleans(), mode=st.sampled_from(ROUNDING_MODES),
       m_bits=st.integers(1, 14), sh_max=st.integers(0, 24), seed=st.integers(0, 2**32 - 1))
def test_fused_conv_equals_int64_spec(K, stride, C, O, signed, zp, residual, mode, m_bits, sh_max, seed):
    rng = np.random.default_rng(seed)
    lay = make_conv(rng, K, stride, C, O, 7, signed, zp, residual, mode, m_bits, sh_max)
    n = 5
    x = rng.integers(lay.in_q.lo, lay.in_q.hi + 1, (n, 7, 7, C))
    x[0] = np.where(rng.random((7, 7, C)) < 0.5, lay.in_q.lo, lay.in_q.hi)  # extremes reach the bounds
    skip = rng.integers(-128, 128, (n, *lay.out_shape)) if residual else None
    fast = golden.run_conv(lay, x.astype(np.float32), None if skip is None else skip.astype(np.float32))
    assert np.array_equal(np.asarray(fast, np.int64), spec_int64(lay, x, skip))


def test_fused_path_taken_below_and_declined_above_2_24():
    """The fused float32 path runs exactly when the requantization input is proven below 2**24, and both sides of
    the boundary equal the int64 specification (multipliers chosen to put ``post_range`` at either side)."""
    rng = np.random.default_rng(1)
    taken = []
    for below in (True, False):
        lay = make_conv(rng, 3, 1, 16, 4, 6, False, 0, True, "half_even", 1, 20)
        lay.res_m = np.ones(4, np.int64)
        lo, hi = lay.acc_range()
        amax = max(abs(lo), abs(hi))
        # the largest m keeping max |acc * m + (skip - res_zp)| below 2**24, or the smallest reaching 2**24
        m = ((1 << 24) - 1 - 133) // amax if below else -(-(1 << 24) // amax)
        lay.requant.m = np.full(4, m, np.int64)
        plo, phi = lay.post_range()
        assert (max(abs(plo), abs(phi)) < 1 << 24) == below
        x = rng.integers(0, 256, (3, 6, 6, 16))
        x[0] = np.where(lay.weights[0] > 0, 255, 0)[1, 1]  # the centre windows reach the accumulator's maximum
        skip = rng.integers(-128, 128, (3, 6, 6, 4))
        taken.append(golden._conv_fused(lay, x.astype(np.float32), skip.astype(np.float32)) is not None)
        out = golden.run_conv(lay, x.astype(np.float32), skip.astype(np.float32))
        assert np.array_equal(np.asarray(out, np.int64), spec_int64(lay, x, skip))
    assert taken == [True, False]


@pytest.fixture(scope="module")
def resnet8_frames():
    from rtlgen.frontend import load_model
    from rtlgen.models import resolve

    net = load_model(resolve("resnet8"))
    rng = np.random.default_rng(7)
    return net, rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("threads,batch", [(1, 5), (2, 4), (3, 7)])
def test_predict_threads_equal_serial_run(resnet8_frames, threads, batch):
    net, px = resnet8_frames
    want = np.argmax(golden.logits(net, golden.run(net, px)), axis=1)
    seen = []
    got = golden.predict(net, px, batch=batch, threads=threads, progress=seen.append)
    assert np.array_equal(got, want)
    assert sum(seen) == len(px) and len(seen) == -(-len(px) // batch)
