"""Accumulator and width analysis (issue 9, item 2).

* :meth:`rtlgen.ir.Conv.acc_range` / :meth:`~rtlgen.ir.Dense.acc_range` (worst case of ``bias + sum w*x`` over the
  input's clamp range) and :meth:`~rtlgen.ir.Conv.post_range` (``acc*m + skip*res_m``) are *sound*: the golden
  model's accumulators never leave them (adversarial and random inputs, random layers drawn by hypothesis), and
  *tight*: the adversarial input (``x = hi`` where ``w > 0``, ``lo`` where ``w < 0``, and vice versa) reaches both
  ends exactly, with max-magnitude weights (+-127 / -128, all of one sign), large ``K*K*C`` and inputs all 255 / -128.
* The importer refuses a layer whose worst case exceeds int32 with a one-line :class:`~rtlgen.errors.ModelError`
  naming the node (through the bias, or through ``K*K*C`` alone: a 67,500-input dense layer of +127 weights on
  uint8 pixels), on the requantized path and on the raw-accumulator output path.
* The cores size their accumulators from the actual weights (``ConvEngine.acc_bits``) and refuse more than 32 bits;
  the RTL check at the end streams adversarial frames (all max, all min, the sign pattern of the weights) through
  conv cores (plain, ``pix_par=2`` with DSP packing, int8 and uint8 inputs) and a raw-int32 dense core and compares
  every output bit-exactly with the golden model (one Verilator build, ``frame_bench`` pattern).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from rtlgen import golden, ir
from rtlgen.errors import ModelError
from rtlgen.frontend import load_model
from rtlgen.quant import bits_signed

SIM_TESTS = Path(__file__).resolve().parent.parent / "sim_tests"


def qtype(signed: bool, zp: int = 0, lo=None, hi=None):
    dlo, dhi = (-128, 127) if signed else (0, 255)
    return ir.QType(0.05, zp, signed, 8, dlo if lo is None else lo, dhi if hi is None else hi)


def conv_layer(w, bias=None, in_q=None, pads=(0, 0, 0, 0), stride=1, H=None, W=None, m=None, sh=None, zp_out=0,
               name="conv"):
    """A Conv IR layer around ``w`` [O, K, K, C] (valid by default: the input frame is one window when H, W = K)."""
    w = np.asarray(w, dtype=np.int64)
    O, K, _, C = w.shape
    H = K if H is None else H
    W = K if W is None else W
    in_q = in_q or qtype(True)
    bias = np.zeros(O, np.int64) if bias is None else np.asarray(bias, np.int64)
    Ho = (H + pads[0] + pads[2] - K) // stride + 1
    Wo = (W + pads[1] + pads[3] - K) // stride + 1
    m = np.ones(O, np.int64) if m is None else np.asarray(m, np.int64)
    sh = np.zeros(O, np.int64) if sh is None else np.asarray(sh, np.int64)
    rq = ir.Requant(m, sh, zp_out, -128, 127)
    return ir.Conv(name, ["x"], (H, W, C), (Ho, Wo, O), qtype(True, zp_out), weights=w, bias=bias, stride=(stride, stride),
                   pads=pads, pad_value=in_q.zero_point, requant=rq, in_q=in_q, w_scale=np.ones(O))


def adversarial_frames(w_o: np.ndarray, in_q: ir.QType) -> tuple[np.ndarray, np.ndarray]:
    """The two inputs maximising / minimising ``sum w_o * x`` over ``x`` in the clamp range (``w_o`` [K, K, C])."""
    hi = np.where(w_o > 0, in_q.hi, in_q.lo)
    lo = np.where(w_o > 0, in_q.lo, in_q.hi)
    return hi, lo


def _acc(layer: ir.Conv, frames: np.ndarray) -> np.ndarray:
    return golden.conv_acc(frames, layer.weights, layer.bias, layer.stride, layer.pads, layer.pad_value, layer.in_q)


# ------------------------------------------------------------------------------------------------------------------
# soundness and tightness of the proven ranges


ADVERSARIAL = {
    # name: (weights generator (O, K, K, C) -> w, in_q)
    "all+127_uint8": (lambda s: np.full(s, 127), qtype(False)),
    "all-128_uint8": (lambda s: np.full(s, -128), qtype(False)),
    "all-128_int8": (lambda s: np.full(s, -128), qtype(True)),  # (-128)*(-128) = +16384 per tap: the largest product
    "all+127_int8": (lambda s: np.full(s, 127), qtype(True)),
    "mixed_int8_zp": (lambda s: np.where(np.random.default_rng(1).random(s) < 0.5, 127, -128), qtype(True, zp=-7)),
    "relu_clamped_uint8": (lambda s: np.where(np.random.default_rng(2).random(s) < 0.5, 127, -128), qtype(False, lo=3, hi=200)),
}


@pytest.mark.parametrize("K,C", [(1, 24), (3, 24), (5, 24), (5, 256)])
@pytest.mark.parametrize("case", list(ADVERSARIAL))
def test_conv_range_sound_and_tight(case, K, C):
    gen, in_q = ADVERSARIAL[case]
    w = gen((3, K, K, C)).astype(np.int64)
    bias = np.array([0, 12345, -(1 << 20)], np.int64)
    lay = conv_layer(w, bias, in_q)
    lo, hi = lay.acc_range()
    # tight: the adversarial frame of each output channel reaches its channel's end exactly, and the layer's range is
    # the extreme over channels
    reached_hi, reached_lo = [], []
    for o in range(3):
        fhi, flo = adversarial_frames(w[o], in_q)
        acc = _acc(lay, np.stack([fhi, flo]).astype(np.float32))  # [2, 1, 1, O]
        reached_hi.append(int(acc[0, 0, 0, o]))
        reached_lo.append(int(acc[1, 0, 0, o]))
    assert max(reached_hi) == hi and min(reached_lo) == lo
    # sound: random frames inside the clamp range and the all-hi / all-lo frames stay inside
    rng = np.random.default_rng(K * 1000 + C)
    frames = rng.integers(in_q.lo, in_q.hi + 1, (6, K, K, C))
    frames[0], frames[1] = in_q.hi, in_q.lo
    acc = _acc(lay, frames.astype(np.float32))
    assert acc.min() >= lo and acc.max() <= hi
    assert lay.acc_bits == bits_signed(lo, hi)
    # max-magnitude uint8 x +127: 255 * 127 * K*K*C
    if case == "all+127_uint8":
        assert hi == 255 * 127 * K * K * C + 12345
    if case == "all-128_int8":
        assert hi == 16384 * K * K * C + 12345


@pytest.mark.parametrize("case", list(ADVERSARIAL))
def test_dense_range_sound_and_tight(case):
    gen, in_q = ADVERSARIAL[case]
    N = 600
    w = gen((4, N)).astype(np.int64)
    bias = np.array([7, -7, 1 << 16, 0], np.int64)
    lay = ir.Dense("dense", ["x"], (1, 1, N), (1, 1, 4), None, weights=w, bias=bias, in_q=in_q, w_scale=np.ones(4),
                   acc_scale=np.ones(4))
    lo, hi = lay.acc_range()
    best_hi, best_lo = [], []
    for o in range(4):
        fhi, flo = adversarial_frames(w[o], in_q)
        out = golden.run_dense(lay, np.stack([fhi, flo]).reshape(2, 1, 1, N).astype(np.float32))
        best_hi.append(int(out[0, 0, 0, o]))
        best_lo.append(int(out[1, 0, 0, o]))
    assert max(best_hi) == hi and min(best_lo) == lo


def test_post_range_with_residual_tight():
    """``post_range`` (requant input incl. the merged skip) is reached by the adversarial frame and skip."""
    w = np.full((2, 3, 3, 16), 127, np.int64)
    w[1] = -128
    lay = conv_layer(w, np.array([5, -5]), qtype(False), m=[3, 1 << 20], sh=[2, 21])
    lay.residual, lay.inputs = "skip", ["x", "skip"]
    lay.res_m, lay.res_zp, lay.res_q = np.array([1 << 10, 1 << 30], np.int64), -3, qtype(True, zp=-3)
    plo, phi = lay.post_range()
    x = np.stack([np.full((3, 3, 16), 255), np.zeros((3, 3, 16))]).astype(np.float32)
    acc = _acc(lay, x)  # [2, 1, 1, 2]
    v = acc.astype(np.int64) * lay.requant.m
    skip = np.array([127, -128])
    vals = [int(v[f, 0, 0, o] + (s - lay.res_zp) * lay.res_m[o]) for f in range(2) for o in range(2) for s in skip]
    assert max(vals) == phi and min(vals) == plo
    # the golden requant on the extreme values is exact (int64 path beyond 2**53 would be taken automatically)
    out = golden.conv_post(lay, acc, np.full((2, 1, 1, 2), 127, np.float32))
    assert out.shape == (2, 1, 1, 2)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.integers(1, 5).filter(lambda k: k % 2 == 1), st.integers(1, 40), st.booleans(), st.integers(-20, 20),
       st.integers(0, 2**32 - 1))
def test_random_layers_never_exceed_range(K, C, signed, zp, seed):
    rng = np.random.default_rng(seed)
    in_q = qtype(signed, zp=zp if signed else abs(zp))
    w = rng.integers(-128, 128, (2, K, K, C))
    w[0] = np.where(rng.random((K, K, C)) < 0.8, 127, -128)  # mostly max magnitude
    lay = conv_layer(w, rng.integers(-(1 << 24), 1 << 24, 2), in_q, pads=(K // 2,) * 4, H=K + 3, W=K + 2)
    frames = rng.integers(in_q.lo, in_q.hi + 1, (4, K + 3, K + 2, C))
    frames[0] = in_q.hi
    frames[1] = in_q.lo
    acc = _acc(lay, frames.astype(np.float32))
    lo, hi = lay.acc_range()
    assert lo <= acc.min() and acc.max() <= hi


def test_conv_core_sizes_accumulator_from_weights():
    """The conv engine's accumulator width follows the weights (not a fixed 32 bits) and >32 bits is refused."""
    from rtlgen.cores.conv import ConvEngine

    def engine(w, signed=False):
        lay = conv_layer(w, in_q=qtype(signed))
        return ConvEngine(weights=lay.weights, bias=lay.bias, requant=lay.requant, in_signed=signed, out_pixels=1,
                          ich_par=1, och_par=1, storage="lut")

    small = engine(np.ones((1, 1, 1, 1), np.int64))
    assert small.acc_bits == bits_signed(0, 255)
    big = engine(np.full((1, 5, 5, 24), 127, np.int64))
    assert big.acc_bits == bits_signed(0, 255 * 127 * 600) == 26
    s16 = engine(np.full((1, 5, 5, 24), -128, np.int64), signed=True)
    assert s16.acc_bits == bits_signed(-128 * 127 * 600, 16384 * 600)
    # 2**31 / (255 * 127) = 66,313 taps: a 5x5 kernel over 2,700 channels needs 33 bits
    with pytest.raises(ValueError, match="33 bits"):
        engine(np.full((1, 5, 5, 2700), 127, np.int64))


# ------------------------------------------------------------------------------------------------------------------
# importer refusal beyond int32


def _onnx_conv_model(weights: np.ndarray, bias_int: np.ndarray, H: int, W: int, quantized_out=True):
    """float NCHW input (uint8 quantized, scale 1/255) -> Conv (int8 weights, int32 bias) -> QuantizeLinear."""
    O, C, K, _ = weights.shape
    inits = [numpy_helper.from_array(np.float32(1 / 255), "in_s"), numpy_helper.from_array(np.uint8(0), "in_z"),
             numpy_helper.from_array(weights.astype(np.int8), "wq"), numpy_helper.from_array(np.float32(0.01), "ws"),
             numpy_helper.from_array(np.int8(0), "wz"), numpy_helper.from_array(bias_int.astype(np.int32), "bq"),
             numpy_helper.from_array(np.float32(0.01 / 255), "bs"), numpy_helper.from_array(np.int32(0), "bz"),
             numpy_helper.from_array(np.float32(0.5), "out_s"), numpy_helper.from_array(np.int8(0), "out_z")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "in_s", "in_z"], ["xq"], name="quant_in"),
             helper.make_node("DequantizeLinear", ["xq", "in_s", "in_z"], ["x"], name="dequant_in"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dequant_w"),
             helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], name="dequant_b"),
             helper.make_node("Conv", ["x", "w", "b"], ["y"], name="the_big_conv", kernel_shape=[K, K]),
             helper.make_node("QuantizeLinear", ["y", "out_s", "out_z"], ["yq"], name="quant_out"),
             helper.make_node("DequantizeLinear", ["yq", "out_s", "out_z"], ["out"], name="dequant_out")]
    Ho, Wo = H - K + 1, W - K + 1
    g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("input", TP.FLOAT, [1, C, H, W])],
                          [helper.make_tensor_value_info("out", TP.FLOAT, [1, O, Ho, Wo])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 10
    return m


def _onnx_dense_model(n_pixels_side: int, quantized_out: bool):
    """[1, 3, S, S] uint8-quantized input -> Flatten -> Gemm with all +127 weights (one output)."""
    S = n_pixels_side
    N = 3 * S * S
    inits = [numpy_helper.from_array(np.float32(1 / 255), "in_s"), numpy_helper.from_array(np.uint8(0), "in_z"),
             numpy_helper.from_array(np.full((1, N), 127, np.int8), "wq"), numpy_helper.from_array(np.float32(0.01), "ws"),
             numpy_helper.from_array(np.int8(0), "wz"), numpy_helper.from_array(np.float32(0.5), "out_s"),
             numpy_helper.from_array(np.int8(0), "out_z")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "in_s", "in_z"], ["xq"], name="quant_in"),
             helper.make_node("DequantizeLinear", ["xq", "in_s", "in_z"], ["x"], name="dequant_in"),
             helper.make_node("Flatten", ["x"], ["f"], name="flatten"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], name="dequant_w"),
             helper.make_node("Gemm", ["f", "w"], ["y" if quantized_out else "out"], name="the_big_gemm", transB=1)]
    if quantized_out:
        nodes += [helper.make_node("QuantizeLinear", ["y", "out_s", "out_z"], ["yq"], name="quant_out"),
                  helper.make_node("DequantizeLinear", ["yq", "out_s", "out_z"], ["out"], name="dequant_out")]
    g = helper.make_graph(nodes, "bigdense", [helper.make_tensor_value_info("input", TP.FLOAT, [1, 3, S, S])],
                          [helper.make_tensor_value_info("out", TP.FLOAT, [1, 1])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 10
    return m


def test_importer_accepts_range_just_inside_int32():
    """Bias chosen so that the worst case is exactly 2**31 - 1: accepted, and acc_range says so."""
    w = np.full((1, 3, 3, 3), 127)
    top = 255 * 127 * 27
    net = load_model(_onnx_conv_model(w, np.array([(1 << 31) - 1 - top]), 3, 3))
    conv = next(lay for lay in net.layers if lay.kind == "conv")
    assert conv.acc_range()[1] == (1 << 31) - 1
    assert conv.acc_bits == 32


def _refusal(model) -> str:
    with pytest.raises(ModelError) as ei:
        load_model(model)
    msg = str(ei.value)
    assert "\n" not in msg and "exceeds int32" in msg, msg
    return msg


def test_importer_refuses_conv_beyond_int32_through_bias():
    w = np.full((1, 3, 3, 3), 127)
    top = 255 * 127 * 27
    msg = _refusal(_onnx_conv_model(w, np.array([(1 << 31) - top]), 3, 3))  # worst case 2**31: one too many
    assert "node '" in msg and ("the_big_conv" in msg or "quant_out" in msg), msg
    assert f"{(1 << 31)}" in msg, msg  # the offending bound is printed


def test_importer_refuses_negative_side_beyond_int32():
    w = np.full((1, 3, 3, 3), -128)
    msg = _refusal(_onnx_conv_model(w, np.array([-(1 << 31) + 255 * 128 * 27 - 1]), 3, 3))
    assert f"{-(1 << 31) - 1}" in msg, msg


@pytest.mark.xfail(strict=True, reason="the message names the QuantizeLinear that closes the layer ('quant_out'), "
                   "not the Conv node whose weights/bias overflow (importer._check_acc gets the finalizing node)")
def test_importer_refusal_names_the_conv_node():
    w = np.full((1, 3, 3, 3), 127)
    msg = _refusal(_onnx_conv_model(w, np.array([(1 << 31) - 255 * 127 * 27]), 3, 3))
    assert "the_big_conv" in msg, msg


@pytest.mark.parametrize("quantized_out", [True, False], ids=["requantized", "raw_int32_output"])
def test_importer_refuses_dense_beyond_int32_through_fan_in(quantized_out):
    """No bias at all: 3*150*150 = 67,500 inputs x 255 x 127 = 2,185,987,500 > 2**31 - 1 (66,313 inputs would fit)."""
    msg = _refusal(_onnx_dense_model(150, quantized_out))
    assert "node '" in msg
    if not quantized_out:
        assert "the_big_gemm" in msg, msg
    # 148 x 148 x 3 = 65,712 inputs fit
    net = load_model(_onnx_dense_model(148, quantized_out))
    d = next(lay for lay in net.layers if lay.kind == "dense")
    assert d.acc_range()[1] == 255 * 127 * 3 * 148 * 148 < (1 << 31)


# ------------------------------------------------------------------------------------------------------------------
# RTL: the cores' accumulators are bit-exact on adversarial frames


def _rtl_conv_layer(name, in_signed, K=5, C=24, HW=6):
    """O=4: all +127 / all -128 channels with biases that move the extreme into the int8 output window (so the
    output shows the accumulator's LOW bits at its extreme), one channel showing its TOP bits (shift), one mixed."""
    in_q = qtype(in_signed)
    xs = (-128, 127) if in_signed else (0, 255)
    w = np.empty((4, K, K, C), np.int64)
    w[0], w[1] = 127, -128
    w[2] = -128 if in_signed else 127
    w[3] = np.where(np.random.default_rng(3).random((K, K, C)) < 0.5, 127, -128)
    taps = K * K * C
    hi0 = 127 * max(xs[1], 0) * taps if not in_signed else 127 * 127 * taps
    lo1 = -128 * max(xs[1], 0) * taps if not in_signed else -128 * 127 * taps
    bias = np.array([-hi0 + 50, -lo1 - 60, 0, 0], np.int64)
    top = bits_signed(*ir._mac_range(w.reshape(4, -1), bias, in_q)) - 8
    sh = np.array([0, 0, top, top - 1], np.int64)
    return conv_layer(w, bias, in_q, H=HW, W=HW, sh=sh, name=name)


def test_rtl_accumulators_bit_exact_on_adversarial_frames(tmp_path):
    sys.path.insert(0, str(SIM_TESTS))
    from frame_bench import build, job, run_jobs

    from rtlgen.cores.conv import Conv
    from rtlgen.cores.dense import DenseCore
    from rtlgen.cores.stream import frame_to_beats

    cores, jobs = {}, []
    confs = {"conv_u8": (False, dict(ich_par=8, och_par=2)),
             "conv_s8_packed": (True, dict(ich_par=24, och_par=4, pix_par=2, packing=True)),
             "conv_u8_packed": (False, dict(ich_par=6, och_par=1, pix_par=2, packing=True))}
    for name, (signed, knobs) in confs.items():
        lay = _rtl_conv_layer(name, signed)
        cores[name] = Conv(lay, storage="lut", **knobs)
        q = lay.in_q
        fhi, flo = adversarial_frames(lay.weights[3], q)
        H, W, C = lay.in_shape
        frames = np.stack([np.full((H, W, C), q.hi), np.full((H, W, C), q.lo),
                           np.tile(fhi, (2, 2, 1))[:H, :W], np.tile(flo, (2, 2, 1))[:H, :W],
                           np.random.default_rng(9).integers(q.lo, q.hi + 1, (H, W, C))])
        out = golden.run_conv(lay, frames.astype(np.float32)).astype(np.int64)
        # the extremes really are hit: channel 0 shows exactly 50 on the all-max frame (uint8) / all -128 (int8)
        jobs.append(job(name, {"i": [frame_to_beats(f, knobs["ich_par"]) for f in frames]},
                        [frame_to_beats(o, knobs["och_par"]) for o in out], prefix=name + "_", last_bit=8 * knobs["och_par"],
                        model=None, timeout=200_000))
    # raw int32 dense: 600 inputs of +127 / -128 weights; all-255 and all-0 uint8 frames and the sign pattern
    N = 600
    wd = np.stack([np.full(N, 127), np.full(N, -128), np.where(np.arange(N) % 3 == 0, 127, -128)]).astype(np.int64)
    bd = np.array([(1 << 31) - 1 - 255 * 127 * N, -(1 << 31) + 255 * 128 * N, 0], np.int64)  # extremes at +-2**31
    cores["dense_raw"] = DenseCore((1, 1, N), wd, bd, lanes_in=8, och_par=2, ich_par=8, lanes_out=1, in_signed=False,
                                   requant=None)
    dl = ir.Dense("d", ["x"], (1, 1, N), (1, 1, 3), None, weights=wd, bias=bd, in_q=qtype(False), w_scale=np.ones(3),
                  acc_scale=np.ones(3))
    assert dl.acc_range() == (-(1 << 31), (1 << 31) - 1)
    xd = np.stack([np.full(N, 255), np.zeros(N), np.where(wd[2] > 0, 255, 0)]).reshape(3, 1, 1, N)
    yd = golden.run_dense(dl, xd.astype(np.float32)).astype(np.int64)
    assert yd[0, 0, 0, 0] == (1 << 31) - 1 and yd[0, 0, 0, 1] == -(1 << 31)
    jobs.append(job("dense_raw", {"i": [frame_to_beats(f, 8) for f in xd]}, [frame_to_beats(o, 1, 32) for o in yd],
                    prefix="dense_raw_", last_bit=32, model=None, timeout=200_000))
    run_jobs(tmp_path, build(tmp_path, cores, "widths_bench"), jobs)
