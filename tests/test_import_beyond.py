"""Models beyond CIFAR ResNets (issue 22, importer + golden model): depthwise / grouped convolutions, non-square
inputs and kernels, one-channel inputs, feature-vector (2-D) inputs and dense-only networks.

Each graph is built with ``onnx.helper`` (tests/badmodels.py) with power-of-two scales, so the golden model must equal
ONNX Runtime bit for bit on every output; one torch model (a DS-CNN-like network on a 49 x 10 x 1 input with a 10 x 4
stride-2 first kernel, depthwise-separable blocks, ReLU6) is quantized by ORT ``quantize_static`` with per-channel
float scales and held to the float-scale criterion (>= 99.9 % of the int8 outputs identical, none off by more than 1).
Hardware: depthwise convolutions (multiplier 1) build (tests/test_dw_plan.py, sim_tests/test_mobilenet.py); other grouped
convolutions are refused before planning (tests/test_bad_inputs.py, UNBUILDABLE_CASES).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import badmodels as B
import reference as R
import zoo
from rtlgen import golden, ir
from rtlgen.frontend import load_model


class G(B.G):
    """badmodels.G whose bias DequantizeLinear has a scalar zero point (ONNX Runtime requires it with a scalar
    scale)."""

    def qb(self, b_int, scale):
        b = self.init(self.uid("b"), np.asarray(b_int, dtype=np.int32))
        s = self.init(self.uid("bs"), np.asarray(scale, dtype=np.float32))
        z = self.init(self.uid("bzp"), np.int32(0))
        return self.node("DequantizeLinear", [b, s, z])


def _pixels(n, shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _ort_ints(model, x, scale, zp=0):
    """The graph output of ``model`` in ORT, back to its integer codes (exact: a DequantizeLinear output)."""
    y = R.ort_output(model, x).astype(np.float64)
    return np.round(y / scale).astype(np.int64) + zp


def _save(m, tmp_path, name):
    p = tmp_path / f"{name}.onnx"
    onnx.save(m, str(p))
    return p


def _dw_separable(group_mult=1, stride=1, shape=(1, 3, 8, 8)):
    """stem conv (8 ch) -> depthwise 3x3 (group 8, multiplier ``group_mult``) -> ReLU6 -> pointwise 1x1 -> GAP -> FC."""
    g = G(shape=shape)
    x = g.stem(c=8)
    co = 8 * group_mult
    h = g.conv(x, 8, co, k=3, stride=stride, group=8, name="conv_dw")
    lo = g.init(g.uid("lo"), np.float32(0.0))
    hi = g.init(g.uid("hi"), np.float32(3.0))  # ReLU6-style clip at 3.0 (a multiple of 1/32)
    h = g.q(g.node("Clip", [h, lo, hi]), 1 / 32, 0, name="q_dw")
    h = g.q(g.relu(g.conv(h, co, 8, k=1, pads=[0, 0, 0, 0], name="conv_pw")), 1 / 32, 0, name="q_pw")
    g.head(h, c=8)
    return g.model()


@pytest.mark.parametrize("mult,stride", [(1, 1), (2, 2)])
def test_depthwise_separable_bit_exact_vs_ort(tmp_path, mult, stride):
    p = _save(_dw_separable(mult, stride), tmp_path, f"dw{mult}{stride}")
    net = load_model(p)
    dw = next(lay for lay in net.layers if "conv_dw" in lay.source_nodes)
    assert isinstance(dw, ir.Conv) and dw.group == 8 and dw.depthwise
    assert dw.weights.shape == (8 * mult, 3, 3, 1) and dw.stride == (stride, stride)
    assert dw.describe()["group"] == 8
    assert dw.macs == dw.out_shape[0] * dw.out_shape[1] * 8 * mult * 9
    px = _pixels(64, (8, 8, 3), seed=mult)
    q = golden.run(net, px)
    ref = _ort_ints(p, zoo.float_input(px), 1 / 16)
    assert np.array_equal(q, ref), f"{int((q != ref).sum())} of {q.size} outputs differ"


def test_grouped_conv_bit_exact_vs_ort(tmp_path):
    m = G().good(mid=lambda g, h: g.q(g.conv(h, 4, 4, group=2, name="conv_g"), 1 / 32, 0))
    p = _save(m, tmp_path, "grouped")
    net = load_model(p)
    cg = next(lay for lay in net.layers if "conv_g" in lay.source_nodes)
    assert cg.group == 2 and not cg.depthwise and cg.weights.shape == (4, 3, 3, 2)
    px = _pixels(64, (8, 8, 3), seed=3)
    assert np.array_equal(golden.run(net, px), _ort_ints(p, zoo.float_input(px), 1 / 16))


def test_golden_depthwise_equals_grouped_reference():
    """The depthwise fast path equals the generic per-group convolution (and a direct loop) on random data."""
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=(3, 7, 9, 4)).astype(np.float32)
    w = rng.integers(-128, 128, size=(8, 3, 3, 1))
    b = rng.integers(-1000, 1000, size=8)
    q = ir.QType(1.0, 0, True)
    fast = golden.grouped_conv_acc(x, w, b, (2, 1), (1, 1, 1, 1), -3, q, group=4)
    xp = golden.pad_nhwc(x.astype(np.float64), (1, 1, 1, 1), -3)
    ref = np.zeros_like(fast)
    for o in range(8):
        c = o // 2
        for i in range(fast.shape[1]):
            for j in range(fast.shape[2]):
                ref[:, i, j, o] = (xp[:, 2 * i:2 * i + 3, j:j + 3, c] * w[o, :, :, 0]).sum((1, 2)) + b[o]
    assert np.array_equal(fast, ref)


def test_non_square_one_channel_input_with_non_square_kernels(tmp_path):
    """A 12 x 6 x 1 input (keyword-spotting-like), a 5x3 stride-2 conv and an even 4x2 conv with asymmetric padding
    (4 x 2 outputs, so the global average divides by a power of two and stays exact)."""
    g = G(shape=(1, 1, 12, 6))
    x = g.q(g.x, 1 / 32, 0, name="q_in")
    h = g.q(g.relu(g.conv(x, 1, 8, k=(5, 3), stride=2, pads=[2, 1, 2, 1], name="conv_5x3")), 1 / 32, 0)
    h = g.q(g.relu(g.conv(h, 8, 8, k=(4, 2), pads=[1, 0, 0, 0], name="conv_4x2")), 1 / 32, 0)
    g.head(h, c=8, classes=12)
    p = _save(g.model(), tmp_path, "kws")
    net = load_model(p)
    assert net.layers[0].out_shape == (12, 6, 1)
    c1 = next(lay for lay in net.layers if "conv_5x3" in lay.source_nodes)
    c2 = next(lay for lay in net.layers if "conv_4x2" in lay.source_nodes)
    assert c1.kernel == (5, 3) and c1.out_shape == (6, 3, 8) and c2.kernel == (4, 2) and c2.out_shape == (4, 2, 8)
    px = _pixels(64, (12, 6, 1), seed=7)
    assert np.array_equal(golden.run(net, px), _ort_ints(p, zoo.float_input(px, mean=(0.0,), std=(1.0,)), 1 / 16))


def test_feature_vector_input_dense_only_autoencoder(tmp_path):
    """A 2-D [N, 16] input and dense layers only: 16 -> 8 -> 4 -> 8 -> 16 (an autoencoder in miniature)."""
    g = G(shape=(1, 16))
    h = g.q(g.x, 1 / 32, 0, name="q_in")
    for k, (i, o) in enumerate(((16, 8), (8, 4), (4, 8))):
        h = g.q(g.relu(g.gemm(h, i, o, name=f"fc{k}")), 1 / 32, 0)
    g.output(g.q(g.gemm(h, 8, 16, name="fc_out"), 1 / 16, 0), [1, 16])
    p = _save(g.model(), tmp_path, "ae")
    net = load_model(p)
    assert net.layers[0].out_shape == (1, 1, 16) and net.layers[0].layout == "NF"
    assert [lay.kind for lay in net.layers] == ["input", "dense", "dense", "dense", "dense"]
    px = _pixels(128, (1, 1, 16), seed=9)
    x = zoo.float_input(px, mean=(0.0,) * 16, std=(1.0,) * 16, layout="NHWC").reshape(len(px), 16)
    assert np.array_equal(golden.run(net, px), _ort_ints(p, x, 1 / 16))


def test_three_d_input_is_refused_with_one_line():
    from rtlgen.errors import ModelError

    g = G(shape=(1, 4, 16))
    g.output(g.q(g.x, 1 / 32, 0), [1, 4, 16])
    with pytest.raises(ModelError) as e:
        load_model(g.model())
    msg = str(e.value)
    assert "\n" not in msg and "2-D feature vector" in msg and "'x'" in msg


# ---- a DS-CNN-like torch model, quantized by ONNX Runtime (per-channel float scales) -------------------------------


def _ds_cnn_float(tmp_path, seed=0):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    def dw_block(c):
        return [nn.Conv2d(c, c, 3, padding=1, groups=c), nn.ReLU6(), nn.Conv2d(c, c, 1), nn.ReLU()]

    c = 16
    model = nn.Sequential(nn.Conv2d(1, c, (10, 4), stride=2, padding=(5, 1)), nn.ReLU(), *dw_block(c), *dw_block(c),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 12)).eval()
    path = tmp_path / "dscnn_float.onnx"
    zoo._torch_export(model, torch.zeros(1, 1, 49, 10), path)
    return path


@pytest.mark.parametrize("per_channel", [True])
def test_ds_cnn_ort_per_channel_float_scales(tmp_path, per_channel):
    fpath = _ds_cnn_float(tmp_path)
    qpath = tmp_path / "dscnn_qdq.onnx"
    calib = _pixels(32, (49, 10, 1), seed=11)
    zoo.ort_quantize(fpath, qpath, calib, input_scale=1 / 255, mean=(0.5,), std=(0.25,), per_channel=per_channel)
    net = load_model(qpath, input_scale=1 / 255, mean=[0.5], std=[0.25])
    dws = [lay for lay in net.layers if isinstance(lay, ir.Conv) and lay.depthwise]
    assert len(dws) == 2 and all(lay.weights.shape == (16, 3, 3, 1) for lay in dws)
    first = next(lay for lay in net.layers if isinstance(lay, ir.Conv))
    assert first.kernel == (10, 4) and first.stride == (2, 2) and first.in_shape == (49, 10, 1)
    px = _pixels(200, (49, 10, 1), seed=12)
    q = golden.run(net, px)
    ref_f = R.ort_output(qpath, zoo.float_input(px, 1 / 255, (0.5,), (0.25,)))
    ref = np.round(ref_f.astype(np.float64) / np.asarray(net.output_scale, np.float64)) + net.output_zero_point
    diff = np.abs(q - ref)
    assert diff.max() <= 1, f"max |diff| {diff.max()}"
    assert (diff == 0).mean() >= 0.999, f"{(diff == 0).mean():.5f} identical"
