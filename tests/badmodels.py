"""Tiny QDQ / QONNX graphs built with ``onnx.helper`` for the bad-input catalogue (tests/test_bad_inputs.py).

:class:`G` builds a QDQ network step by step (int8 activations, int8 per-tensor weights, int32 biases); every method
returns the name of the *float* (dequantized) tensor it produced, so a test can splice a bad node in anywhere.
``G().good()`` is a complete small ResNet-like model that imports; each bad case changes one thing.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8


class G:
    def __init__(self, shape=(1, 3, 8, 8), in_dtype=TensorProto.FLOAT, input_name="x", seed=0):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs = [helper.make_tensor_value_info(input_name, in_dtype, list(shape))]
        self.outputs: list[onnx.ValueInfoProto] = []
        self.rng = np.random.default_rng(seed)
        self.k = 0
        self.x = input_name
        self.opset = [helper.make_opsetid("", OPSET)]

    # --- plumbing --------------------------------------------------------------------------------------------------
    def uid(self, p):
        self.k += 1
        return f"{p}{self.k}"

    def init(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, inputs, n_out=1, name=None, domain="", **attrs):
        name = name or self.uid(op.lower() + "_")
        outs = [f"{name}_out{i}" if n_out > 1 else f"{name}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    # --- quantization ----------------------------------------------------------------------------------------------
    def q(self, x, scale=1 / 32, zp=0, dtype=np.int8, name=None):
        """QuantizeLinear -> DequantizeLinear; returns the float tensor."""
        s = self.init(self.uid("s"), np.float32(scale))
        z = self.init(self.uid("zp"), np.asarray(zp, dtype=dtype))
        qn = self.node("QuantizeLinear", [x, s, z], name=name)
        return self.node("DequantizeLinear", [qn, s, z])

    def qw(self, w_int, scale, zp=0):
        """A DequantizeLinear'd int8 weight initializer."""
        w = self.init(self.uid("w"), np.asarray(w_int, dtype=np.int8))
        s = self.init(self.uid("ws"), np.asarray(scale, dtype=np.float32))
        z = self.init(self.uid("wzp"), np.asarray(zp, dtype=np.int8))
        return self.node("DequantizeLinear", [w, s, z])

    def qb(self, b_int, scale):
        b = self.init(self.uid("b"), np.asarray(b_int, dtype=np.int32))
        s = self.init(self.uid("bs"), np.asarray(scale, dtype=np.float32))
        z = self.init(self.uid("bzp"), np.zeros(np.shape(b_int), np.int32))
        return self.node("DequantizeLinear", [b, s, z])

    # --- layers (float in, float out; the caller adds the QuantizeLinear) -------------------------------------------
    def conv(self, x, cin, cout, k=3, stride=1, pads=None, group=1, dilations=None, in_scale=1 / 32, w_scale=1 / 64,
             w_zp=0, w=None, name=None, float_weights=False):
        kh, kw = (k, k) if isinstance(k, int) else k
        if w is None:
            w = self.rng.integers(-20, 21, size=(cout, cin // group, kh, kw))
        if float_weights:
            wn = self.init(self.uid("wf"), (np.asarray(w) * w_scale).astype(np.float32))
        else:
            wn = self.qw(w, w_scale, w_zp)
        bn = self.qb(self.rng.integers(-50, 51, size=cout), in_scale * w_scale)
        if pads is None:
            pads = [kh // 2, kw // 2, kh // 2, kw // 2]
        strides = [stride, stride] if isinstance(stride, int) else list(stride)
        attrs = dict(kernel_shape=[kh, kw], strides=strides, pads=list(pads), group=group)
        if dilations is not None:
            attrs["dilations"] = list(dilations)
        return self.node("Conv", [x, wn, bn], name=name, **attrs)

    def relu(self, x):
        return self.node("Relu", [x])

    def add(self, a, b, name=None):
        return self.node("Add", [a, b], name=name)

    def gap(self, x):
        return self.node("GlobalAveragePool", [x])

    def flatten(self, x):
        return self.node("Flatten", [x], axis=1)

    def gemm(self, x, cin, cout, in_scale=1 / 32, w_scale=1 / 64, name=None):
        w = self.qw(self.rng.integers(-20, 21, size=(cout, cin)), w_scale)
        b = self.qb(self.rng.integers(-50, 51, size=cout), in_scale * w_scale)
        return self.node("Gemm", [x, w, b], name=name, transB=1)

    def output(self, x, shape=None):
        self.outputs.append(helper.make_tensor_value_info(x, TensorProto.FLOAT, shape))
        return x

    def model(self) -> onnx.ModelProto:
        g = helper.make_graph(self.nodes, "bad", self.inputs, self.outputs, self.inits)
        m = helper.make_model(g, opset_imports=self.opset, producer_name="rtlgen-tests")
        m.ir_version = IR_VERSION
        return m

    # --- the good reference network ------------------------------------------------------------------------------
    def stem(self, c=4):
        """input quant -> conv3x3 -> relu -> quant; returns the float tensor of the stem's quantized output."""
        x = self.q(self.x, 1 / 32, 0, name="q_in")
        return self.q(self.relu(self.conv(x, 3, c, name="conv_stem")), 1 / 32, 0, name="q_stem")

    def block(self, x, c=4, mid=None):
        """Residual block: conv-relu-q-[mid]-conv-q + skip -> add -> relu -> q."""
        h = self.q(self.relu(self.conv(x, c, c, name="conv_a")), 1 / 32, 0, name="q_a")
        if mid is not None:
            h = mid(self, h)
        h = self.q(self.conv(h, c, c, name="conv_b"), 1 / 32, 0, name="q_b")
        return self.q(self.relu(self.add(h, x, name="add_res")), 1 / 32, 0, name="q_res")

    def head(self, x, c=4, classes=10):
        p = self.q(self.gap(x), 1 / 32, 0, name="q_gap")
        return self.output(self.q(self.gemm(self.flatten(p), c, classes, name="fc"), 1 / 16, 0, name="q_fc"), [1, classes])

    def good(self, mid=None):
        return self.build(mid=mid)

    def build(self, mid=None):
        self.head(self.block(self.stem(), mid=mid))
        return self.model()


def qonnx_model(act_bits=8, rounding_mode="ROUND", per_channel_act=False, seed=0) -> onnx.ModelProto:
    """Small QONNX graph (Brevitas-style ``Quant`` nodes): Quant(input) -> Conv(Quant(weights)) -> Quant -> GAP -> Quant
    -> Flatten -> Gemm -> Quant -> output. ``act_bits``/``rounding_mode``/``per_channel_act`` alter the conv's output
    Quant."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    dom = "qonnx.custom_op.general"

    def init(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def quant(x, name, scale, bits, signed=1, narrow=0, mode="ROUND"):
        s = init(name + "_s", np.asarray(scale, np.float32))
        z = init(name + "_z", np.zeros(np.shape(scale), np.float32))
        b = init(name + "_b", np.float32(bits))
        nodes.append(helper.make_node("Quant", [x, s, z, b], [name + "_out"], name=name, domain=dom,
                                      signed=signed, narrow=narrow, rounding_mode=mode))
        return name + "_out"

    x = quant("x", "quant_in", 1 / 32, 8)
    w = quant(init("w0", (rng.integers(-20, 21, size=(4, 3, 3, 3)) / 64).astype(np.float32)), "quant_w0", 1 / 64, 8, narrow=1)
    nodes.append(helper.make_node("Conv", [x, w], ["c0"], name="conv0", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c0"], ["r0"], name="relu0"))
    act_scale = np.full((1, 4, 1, 1), 1 / 32, np.float32) if per_channel_act else 1 / 32
    if per_channel_act:
        act_scale[0, 1] = 1 / 16
    a = quant("r0", "quant_act", act_scale, act_bits, signed=0, mode=rounding_mode)
    nodes.append(helper.make_node("GlobalAveragePool", [a], ["g0"], name="gap0"))
    g = quant("g0", "quant_gap", 1 / 32, 8, signed=0)
    nodes.append(helper.make_node("Flatten", [g], ["f0"], name="flatten0", axis=1))
    w1 = quant(init("w1", (rng.integers(-20, 21, size=(10, 4)) / 64).astype(np.float32)), "quant_w1", 1 / 64, 8, narrow=1)
    nodes.append(helper.make_node("Gemm", ["f0", w1], ["y0"], name="fc", transB=1))
    y = quant("y0", "quant_out", 1 / 16, 8)
    graph = helper.make_graph(nodes, "qonnx_bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(dom, 1)])
    m.ir_version = IR_VERSION
    return m
