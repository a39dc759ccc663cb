"""Networks beyond 3-channel square images (issue 22 item 3), built with ``onnx.helper`` in QDQ form
(tests/badmodels.py's :class:`~badmodels.G`) with power-of-two scales, so the golden model is exact.

* :func:`mlp`: a dense-only network (fully connected autoencoder ``64 -> 32 -> 8 -> 32 -> 64`` by default): a 2-D
  ``[1, F]`` graph input (float32 quantized by the first QuantizeLinear, or int8/uint8 codes dequantized by the first
  DequantizeLinear and fed as they are), Gemm layers with ReLU, the last quantized tensor as the output.
* :func:`kws_tiny`: a keyword-spotting-like network on a non-square one-channel input (``12 x 6 x 1`` by default):
  conv (any ``kh x kw`` kernel, stride 1 or 2) + ReLU -> 2x2 max pool -> conv 3x3 + ReLU -> flatten -> dense.
  Graph input float32 NCHW, or int8/uint8 NHWC (``DequantizeLinear -> Transpose``, TFLite style).

Used by tests/test_input_shape_plans.py (import, plan, cost) and sim_tests/test_input_shapes.py (RTL end to end).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

import zoo_dw

IN_TYPES = {"float": TensorProto.FLOAT, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
#: the graph input's quantization: (scale, zero point) per input type (uint8: zero point 128, as int8 shifted)
IN_Q = {"float": (1 / 32, 0), "int8": (1 / 32, 0), "uint8": (1 / 32, 128)}


class G(zoo_dw.G):
    """zoo_dw.G (badmodels.G with a scalar bias zero point) with typed graph inputs."""

    def graph_in(self, in_type: str, nhwc: bool = False):
        """The first quantized tensor: QuantizeLinear/DequantizeLinear of a float input, or DequantizeLinear of an
        integer one (then Transpose NHWC -> NCHW for an image)."""
        scale, zp = IN_Q[in_type]
        if in_type == "float":
            return self.q(self.x, scale, zp, name="q_in")
        s = self.init("in_s", np.float32(scale))
        z = self.init("in_zp", np.asarray(zp, dtype=np.int8 if in_type == "int8" else np.uint8))
        x = self.node("DequantizeLinear", [self.x, s, z], name="dq_in")
        return self.node("Transpose", [x], perm=[0, 3, 1, 2]) if nhwc else x


def mlp(dims=(64, 32, 8, 32, 64), in_type: str = "float", seed: int = 0) -> onnx.ModelProto:
    """Dense-only network over ``dims`` (ReLU between the layers, none after the last; every output quantized)."""
    g = G(shape=(1, dims[0]), in_dtype=IN_TYPES[in_type], seed=seed)
    x = g.graph_in(in_type)
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        y = g.gemm(x, a, b, in_scale=1 / 32, w_scale=1 / 64, name=f"fc{i}")
        if i < len(dims) - 2:
            y = g.relu(y)
        x = g.q(y, 1 / 32, 0, name=f"q_fc{i}")
    g.output(x, [1, dims[-1]])
    return g.model()


def stem_s2(H: int = 12, W: int = 32, c1: int = 8, c2: int = 8, classes: int = 5, seed: int = 0) -> onnx.ModelProto:
    """An image network whose input stream bounds the frame (a stride-2 3x3 stem on a float NCHW ``3 x H x W`` input,
    then a 3x3 conv of unequal strides ``(1, 2)``, global average pool, dense): the planner folds pixel pairs into
    the stem's channels (two pixels per input beat, :mod:`rtlgen.plan.fold`)."""
    g = G(shape=(1, 3, H, W), seed=seed)
    x = g.graph_in("float")
    x = g.q(g.relu(g.conv(x, 3, c1, k=3, stride=2, in_scale=1 / 32, name="stem")), 1 / 32, 0, name="q_stem")
    x = g.q(g.relu(g.conv(x, c1, c2, k=3, stride=(1, 2), name="conv_s12")), 1 / 32, 0, name="q_s12")
    g.head(x, c=c2, classes=classes)
    return g.model()


def same_pads(kh: int, kw: int) -> list[int]:
    """ONNX pads (top, left, bottom, right) keeping the size at stride 1 (the extra row/column at the bottom/right)."""
    return [(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2]


def kws_tiny(H: int = 12, W: int = 6, k1=3, stride1: int = 1, pads1=None, c1: int = 4, c2: int = 8,
             classes: int = 5, in_type: str = "float", seed: int = 0) -> onnx.ModelProto:
    """The keyword-spotting-like network of the module docstring (``k1``: int or ``(kh, kw)``; ``pads1`` default
    :func:`same_pads`)."""
    kh, kw = (k1, k1) if isinstance(k1, int) else k1
    pads1 = same_pads(kh, kw) if pads1 is None else list(pads1)
    nhwc = in_type != "float"
    g = G(shape=(1, H, W, 1) if nhwc else (1, 1, H, W), in_dtype=IN_TYPES[in_type], seed=seed)
    x = g.graph_in(in_type, nhwc=nhwc)
    h = g.conv(x, 1, c1, k=(kh, kw), stride=stride1, pads=pads1, in_scale=IN_Q[in_type][0], w_scale=1 / 64,
               name="conv1")
    x = g.q(g.relu(h), 1 / 32, 0, name="q_conv1")
    x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2], name="pool1")
    x = g.q(g.relu(g.conv(x, c1, c2, k=3, in_scale=1 / 32, w_scale=1 / 64, name="conv2")), 1 / 32, 0, name="q_conv2")
    H1 = (H + pads1[0] + pads1[2] - kh) // stride1 + 1
    W1 = (W + pads1[1] + pads1[3] - kw) // stride1 + 1
    n = c2 * (H1 // 2) * (W1 // 2)
    y = g.q(g.gemm(g.flatten(x), n, classes, in_scale=1 / 32, w_scale=1 / 64, name="fc"), 1 / 16, 0, name="q_fc")
    g.output(y, [1, classes])
    return g.model()


def ds_cnn(H: int = 49, W: int = 10, c: int = 64, blocks: int = 4, classes: int = 12, in_type: str = "int8",
           seed: int = 0, avgpool: bool = True) -> onnx.ModelProto:
    """MLPerf-Tiny keyword spotting's DS-CNN shape: ``H x W x 1`` MFCC input -> conv 10x4 stride 2 ('same': pads
    4, 1, 5, 1 on 49 x 10) + ReLU -> ``blocks`` x (depthwise 3x3 + ReLU -> pointwise 1x1 + ReLU) -> average pool over
    the whole map (``AveragePool`` with the map's size, or ``GlobalAveragePool``) -> dense ``classes``."""
    nhwc = in_type != "float"
    g = G(shape=(1, H, W, 1) if nhwc else (1, 1, H, W), in_dtype=IN_TYPES[in_type], seed=seed)
    x = g.graph_in(in_type, nhwc=nhwc)
    Ho, Wo = -(-H // 2), -(-W // 2)
    ph, pw = (Ho - 1) * 2 + 10 - H, (Wo - 1) * 2 + 4 - W
    pads = [ph // 2, pw // 2, ph - ph // 2, pw - pw // 2]
    h = g.conv(x, 1, c, k=(10, 4), stride=2, pads=pads, in_scale=IN_Q[in_type][0], w_scale=1 / 128, name="conv1")
    x = g.q(g.relu(h), 1 / 32, 0, name="q_conv1")
    for b in range(blocks):
        h = g.conv(x, c, c, k=3, group=c, in_scale=1 / 32, w_scale=1 / 32, name=f"dw{b}")
        x = g.q(g.relu(h), 1 / 32, 0, name=f"q_dw{b}")
        h = g.conv(x, c, c, k=1, pads=[0, 0, 0, 0], in_scale=1 / 32, w_scale=2 ** -int(np.log2(2 * c)),
                   name=f"pw{b}")
        x = g.q(g.relu(h), 1 / 32, 0, name=f"q_pw{b}")
    p = g.node("AveragePool", [x], kernel_shape=[Ho, Wo], strides=[Ho, Wo], name="avg") if avgpool else g.gap(x)
    p = g.q(p, 1 / 32, 0, name="q_avg")
    y = g.q(g.gemm(g.flatten(p), c, classes, in_scale=1 / 32, w_scale=1 / 16, name="fc"), 1 / 16, 0, name="q_fc")
    g.output(y, [1, classes])
    return g.model()
