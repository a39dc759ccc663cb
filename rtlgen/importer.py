"""Quantized-ONNX importer: QONNX ``Quant``, QDQ/QCDQ and QOperator graphs -> :class:`rtlgen.ir.Network`.

How it works
------------
The graph is interpreted symbolically, node by node in topological order. Every ONNX tensor maps to one of:

* :class:`Const` — a constant array (initializers, ``Constant`` nodes and anything computed only from constants:
  the Shape/Gather/ConstantOfShape arithmetic exporters emit is folded here; ``Shape`` of an activation is known
  because activations have static shapes).
* :class:`QConst` — a quantized constant (weights or bias): integers + scale (per tensor or per channel) + zero point.
  Produced by ``DequantizeLinear`` of an integer constant, QCDQ ``QuantizeLinear -> Clip -> DequantizeLinear`` on a
  float constant, or a QONNX ``Quant`` on a constant (chains allowed).
* :class:`Act` — an integer activation produced by an IR layer, with its :class:`~rtlgen.ir.QType`. The float view
  ``DequantizeLinear(q)`` maps to the same Act (it is lossless), so QDQ, QCDQ and QOperator graphs share one path.
* :class:`Pending` — the float result of a MAC layer (conv, dense, add, average pool) whose requantization is not yet
  known. ``Relu``/``Clip``, a residual ``Add`` of a quantized skip, a ``MatMul`` bias ``Add`` or a folded
  ``BatchNormalization`` may modify it; the next ``QuantizeLinear``/``Quant`` fixes its output type and turns it into
  an IR layer with an integer requantization. At the graph output a pending dense layer stays a raw int32 accumulator.

Everything that cannot be implemented exactly (or within the float-scale tolerance) raises
:class:`~rtlgen.errors.ModelError` with a one-line message naming the node.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from . import ir
from .errors import ModelError
from .quant import QONNX_ROUNDING, dtype_range, fixed_point_multiplier, quantize, round_array

QONNX_DOMAINS = ("onnx.brevitas", "qonnx.custom_op.general", "finn.custom_op.general")
META_KEYS = {"input_scale": "rtlgen.input_scale", "mean": "rtlgen.mean", "std": "rtlgen.std"}

SUPPORTED_OPS = sorted(
    """Conv Gemm MatMul Relu Clip Add MaxPool AveragePool GlobalAveragePool GlobalMaxPool Flatten Reshape Transpose
    Squeeze Unsqueeze BatchNormalization Softmax Identity Dropout Slice Pad Concat QuantizeLinear DequantizeLinear Quant
    QLinearConv QLinearAdd QLinearAveragePool QLinearGlobalAveragePool QGemm QLinearMatMul QLinearSoftmax Shape Gather
    ConstantOfShape Constant Cast""".split()
)


# ----------------------------------------------------------------------------------------------------------------
# symbolic values


@dataclass
class Const:
    value: np.ndarray


@dataclass
class QConst:
    q: np.ndarray  # integers (int64)
    scale: np.ndarray  # float64, broadcastable against q
    zp: np.ndarray  # int64, broadcastable
    axis: int | None  # per-channel axis of q, None for per-tensor

    def real(self):
        return (self.q - self.zp) * self.scale


@dataclass
class Act:
    layer: str
    q: ir.QType
    shape: tuple  # logical shape with batch = 1, in the axis order `axes`
    axes: tuple  # for each logical dim: 'N','C','H','W', or 'F' (flattened)
    flat_order: tuple | None = None  # for flattened tensors: order of ('C','H','W') in the flat index


@dataclass
class GraphInput:
    name: str
    shape: tuple
    axes: tuple
    elem_type: int
    q: ir.QType | None = None  # for integer graph inputs, set by the DequantizeLinear that reads them


@dataclass
class SoftmaxOf:
    """The (dropped) Softmax of a network result; Q/DQ of the probabilities pass through it."""

    inner: object


@dataclass
class Pending:
    kind: str  # conv | dense | add | avgpool
    node: str
    shape: tuple  # NCHW logical output shape (batch 1) or (1, O) for dense
    acc_scale: np.ndarray | None = None  # float [O] value of one accumulator LSB (conv/dense)
    params: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # Acts
    relu: bool = False
    clip: tuple | None = None  # float (min, max)
    residual: Act | None = None
    nodes: list = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------------


def _err(node, msg):
    name = node.name or "(unnamed)"
    return ModelError(f"node {name!r} ({node.op_type}): {msg}")


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


def _parse_floats(text, what, n=None):
    if text is None:
        return None
    if isinstance(text, (int, float)):
        vals = [float(text)]
    elif isinstance(text, str):
        try:
            vals = [float(t) for t in text.replace(" ", "").split(",") if t]
        except ValueError:
            raise ModelError(f"{what}: cannot parse {text!r} as comma-separated numbers") from None
    else:
        vals = [float(t) for t in text]
    if not vals:
        raise ModelError(f"{what}: empty value")
    return vals


class _Importer:
    def __init__(self, model: onnx.ModelProto, name: str, preprocess: dict):
        self.model = model
        self.graph = model.graph
        self.name = name
        self.user_pre = preprocess
        self.env: dict[str, object] = {}
        self.layers: list[ir.Layer] = []
        self.counts: dict[str, int] = {}
        self.softmax = False
        self.formats: set[str] = set()
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)
        self.input: GraphInput | None = None
        self.input_layer: ir.InputStage | None = None
        self.half_slices: dict[str, tuple[set, int]] = {}  # ShortcutA subsampled on one axis only so far

    # --- helpers -------------------------------------------------------------------------------------------------
    def uname(self, kind):
        i = self.counts.get(kind, 0)
        self.counts[kind] = i + 1
        return f"{kind}{i}"

    def add_layer(self, layer):
        self.layers.append(layer)
        return layer

    def get(self, node, i, optional=False):
        if i >= len(node.input) or node.input[i] == "":
            if optional:
                return None
            raise _err(node, f"missing input #{i}")
        name = node.input[i]
        if name not in self.env:
            raise _err(node, f"input {name!r} is not produced by any node, initializer or graph input")
        return self.env[name]

    def const(self, node, i, optional=False, what="input"):
        v = self.get(node, i, optional)
        if v is None:
            return None
        if isinstance(v, QConst):
            return v.real()
        if not isinstance(v, Const):
            raise _err(node, f"{what} #{i} must be a constant")
        return v.value

    def act(self, node, i=0) -> Act:
        v = self.get(node, i)
        if isinstance(v, Act):
            return v
        if isinstance(v, GraphInput):
            raise _err(node, "reads the float graph input before any QuantizeLinear/Quant: unquantized tensor feeding hardware")
        if isinstance(v, Pending):
            raise _err(node, f"input {node.input[i]!r} is an unquantized {v.kind} output (no QuantizeLinear/Quant before this op)")
        if isinstance(v, (Const, QConst)):
            raise _err(node, f"input {node.input[i]!r} is a constant where an activation was expected")
        raise _err(node, f"unexpected input {node.input[i]!r}")

    def out(self, node, v, i=0):
        self.env[node.output[i]] = v

    # --- main ------------------------------------------------------------------------------------------------------
    def run(self) -> ir.Network:
        g = self.graph
        inits = {t.name for t in g.initializer}
        for t in g.initializer:
            try:
                self.env[t.name] = Const(numpy_helper.to_array(t))
            except Exception as e:  # noqa: BLE001
                raise ModelError(f"initializer {t.name!r} cannot be read ({e})") from None
        real_inputs = [i for i in g.input if i.name not in inits]
        if not real_inputs:
            raise ModelError("graph has no (non-initializer) input")
        if len(real_inputs) > 1:
            raise ModelError(f"graph has {len(real_inputs)} inputs ({', '.join(i.name for i in real_inputs)}); exactly one image input is supported")
        if len(g.output) != 1:
            raise ModelError(f"graph has {len(g.output)} outputs ({', '.join(o.name for o in g.output)}); exactly one is supported")
        if not g.node:
            raise ModelError("graph is empty (no nodes)")
        self._graph_input(real_inputs[0])
        for node in self._toposort():
            self.visit(node)
        return self._finish()

    def _graph_input(self, vi):
        tt = vi.type.tensor_type
        dims = []
        for k, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif k == 0:
                dims.append(1)  # dynamic batch is fine: the hardware streams one frame at a time
            else:
                raise ModelError(f"graph input {vi.name!r}: dimension {k} is dynamic ({d.dim_param or '?'}); static H, W, C are required")
        if len(dims) != 4:
            raise ModelError(f"graph input {vi.name!r}: expected a 4-D image tensor, got shape {dims}")
        dims[0] = 1
        if dims[1] in (1, 3, 4) and dims[3] not in (1, 3, 4):
            axes = ("N", "C", "H", "W")
        elif dims[3] in (1, 3, 4) and dims[1] not in (1, 3, 4):
            axes = ("N", "H", "W", "C")
        else:
            axes = ("N", "C", "H", "W")
        self.input = GraphInput(vi.name, tuple(dims), axes, tt.elem_type)
        self.env[vi.name] = self.input

    def _toposort(self):
        nodes = list(self.graph.node)
        avail = set(self.env)
        order, pending = [], nodes
        while pending:
            progress, rest = False, []
            for n in pending:
                if all(i == "" or i in avail for i in n.input):
                    order.append(n)
                    avail.update(n.output)
                    progress = True
                else:
                    rest.append(n)
            if not progress:
                n = rest[0]
                missing = [i for i in n.input if i and i not in avail]
                raise _err(n, f"input(s) {', '.join(repr(m) for m in missing)} never become available (missing initializer or a cycle)")
            pending = rest
        return order

    # --- node dispatch -----------------------------------------------------------------------------------------
    def visit(self, node):
        op = node.op_type
        if node.domain in QONNX_DOMAINS and op == "Quant":
            self.formats.add("qonnx")
            return self.op_quant_qonnx(node)
        if node.domain in QONNX_DOMAINS:
            raise _err(node, f"QONNX op {op} is not supported (supported QONNX op: Quant)")
        handler = getattr(self, "op_" + op, None)
        ins = [self.env.get(i) for i in node.input if i]
        if handler is None:
            if ins and all(isinstance(v, Const) for v in ins) and node.domain in ("", "ai.onnx"):
                return self.fold(node)
            raise _err(node, f"unsupported op {op}; supported: {', '.join(SUPPORTED_OPS)}")
        if (
            ins
            and all(isinstance(v, Const) for v in ins)
            and op not in ("DequantizeLinear",)
            and node.domain in ("", "ai.onnx")
        ):
            return self.fold(node)
        return handler(node)

    def fold(self, node):
        """Evaluate a node whose inputs are all constants with ONNX's reference implementation."""
        ins = [self.env[i].value if i else None for i in node.input]
        names = [f"i{k}" for k in range(len(ins))]
        n2 = onnx.helper.make_node(node.op_type, [nm if v is not None else "" for nm, v in zip(names, ins)],
                                   [f"o{k}" for k in range(len(node.output))], domain=node.domain)
        n2.attribute.extend(node.attribute)
        try:
            ev = _single_node_model(n2, names, ins, len(node.output), self.opset)
            res = ev.run(None, {nm: v for nm, v in zip(names, ins) if v is not None})
        except Exception as e:  # noqa: BLE001
            raise _err(node, f"cannot fold constant expression ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        for k, r in enumerate(res):
            self.env[node.output[k]] = Const(np.asarray(r))

    # --- constants & shapes --------------------------------------------------------------------------------------
    def op_Constant(self, node):
        a = _attrs(node)
        if "value" in a:
            v = numpy_helper.to_array(a["value"])
        elif "value_float" in a:
            v = np.array(a["value_float"], dtype=np.float32)
        elif "value_floats" in a:
            v = np.array(a["value_floats"], dtype=np.float32)
        elif "value_int" in a:
            v = np.array(a["value_int"], dtype=np.int64)
        elif "value_ints" in a:
            v = np.array(a["value_ints"], dtype=np.int64)
        else:
            raise _err(node, "unsupported Constant attribute")
        self.out(node, Const(v))

    def op_Shape(self, node):
        v = self.get(node, 0)
        if isinstance(v, (Act, GraphInput)):
            shape = np.array(v.shape, dtype=np.int64)
        elif isinstance(v, Pending):
            shape = np.array(v.shape, dtype=np.int64)
        else:
            return self.fold(node)
        a = _attrs(node)
        start, end = a.get("start", 0), a.get("end", None)
        self.out(node, Const(shape[start:end]))

    def op_Identity(self, node):
        self.out(node, self.get(node, 0))

    op_Dropout = op_Identity

    def op_Cast(self, node):
        v = self.get(node, 0)
        if isinstance(v, Const):
            return self.fold(node)
        raise _err(node, "Cast of an activation is not supported")

    # --- quantization --------------------------------------------------------------------------------------------
    def _qparams(self, node, si, zi, axis_attr):
        scale = np.asarray(self.const(node, si, what="scale"), dtype=np.float64)
        zp_c = self.get(node, zi, optional=True)
        if zp_c is None:
            zp = np.zeros_like(scale, dtype=np.int64)
            zdtype = np.uint8
        else:
            zv = self.const(node, zi, what="zero point")
            zdtype = zv.dtype
            zp = np.asarray(zv, dtype=np.int64)
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            raise _err(node, "scale must be positive and finite")
        return scale, zp, zdtype

    def op_QuantizeLinear(self, node):
        self.formats.add("qdq")
        x = self.get(node, 0)
        if isinstance(x, SoftmaxOf):
            return self.out(node, x)
        a = _attrs(node)
        scale, zp, zdtype = self._qparams(node, 1, 2, a.get("axis", 1))
        if "output_dtype" in a and a["output_dtype"]:
            zdtype = onnx.helper.tensor_dtype_to_np_dtype(a["output_dtype"])
        zdtype = np.dtype(zdtype)
        if zdtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
            raise _err(node, f"quantized type {zdtype} not supported: activations must be int8 or uint8")
        signed = zdtype == np.dtype(np.int8)
        lo, hi = dtype_range(signed, 8)
        if isinstance(x, (Const, QConst)):
            xv = x.real() if isinstance(x, QConst) else x.value
            axis = a.get("axis", 1)
            sc, zz = _bcast(scale, zp, xv.ndim, axis)
            q = quantize(xv, sc, zz, lo, hi)
            self.out(node, Const(q.astype(zdtype)))
            # remember the quantization for a following DequantizeLinear (QCDQ weights)
            return
        if scale.size != 1 or zp.size != 1:
            raise _err(node, "per-channel quantization of activations is not supported")
        qt = ir.QType(float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]), signed, 8, lo, hi)
        self.out(node, self.quantize_value(node, x, qt, "half_even"))

    def op_DequantizeLinear(self, node):
        self.formats.add("qdq")
        x = self.get(node, 0)
        if isinstance(x, SoftmaxOf):
            return self.out(node, x)
        a = _attrs(node)
        scale, zp, _ = self._qparams(node, 1, 2, a.get("axis", 1))
        if isinstance(x, Const):
            q = np.asarray(x.value)
            if not np.issubdtype(q.dtype, np.integer):
                raise _err(node, f"DequantizeLinear of a {q.dtype} constant")
            axis = a.get("axis", 1) if scale.size > 1 else None
            if axis is not None and axis < 0:
                axis += q.ndim
            sc, zz = _bcast(scale, zp, q.ndim, axis if axis is not None else 0)
            self.out(node, QConst(q.astype(np.int64), sc, zz.astype(np.int64), axis))
            return
        if scale.size != 1 or zp.size != 1:
            raise _err(node, "per-channel dequantization of activations is not supported")
        s, z = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0])
        if isinstance(x, GraphInput):
            # integer graph input (TFLite converters): its quantization is defined here
            if x.elem_type not in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
                raise _err(node, "DequantizeLinear of a float graph input")
            signed = x.elem_type == onnx.TensorProto.INT8
            lo, hi = dtype_range(signed, 8)
            self.formats.add("int-input")
            self.out(node, self.make_input(node, ir.QType(s, z, signed, 8, lo, hi), "half_even"))
            return
        if isinstance(x, Act):
            if not (_close(x.q.scale, s) and x.q.zero_point == z):
                raise _err(node, f"dequantizes with scale {s}/zp {z} a tensor quantized with {x.q.scale}/{x.q.zero_point}")
            self.out(node, x)
            return
        raise _err(node, "DequantizeLinear of an unquantized value")

    def op_quant_qonnx(self, node):
        x = self.get(node, 0)
        if isinstance(x, SoftmaxOf):
            return self.out(node, x)
        a = _attrs(node)
        scale = np.asarray(self.const(node, 1, what="scale"), dtype=np.float64)
        zp = np.asarray(self.const(node, 2, what="zero point"), dtype=np.float64)
        bw = np.asarray(self.const(node, 3, what="bit width"), dtype=np.float64)
        if bw.size != 1 or bw.reshape(-1)[0] != round(float(bw.reshape(-1)[0])):
            raise _err(node, "bit width must be a scalar integer")
        bits = int(bw.reshape(-1)[0])
        signed, narrow = bool(a.get("signed", 1)), bool(a.get("narrow", 0))
        mode_attr = _s(a.get("rounding_mode", "ROUND")).upper()
        if mode_attr not in QONNX_ROUNDING:
            raise _err(node, f"rounding_mode {mode_attr} not supported ({', '.join(QONNX_ROUNDING)})")
        mode = QONNX_ROUNDING[mode_attr]
        if np.any(zp != np.round(zp)):
            raise _err(node, "non-integer zero point")
        if np.any(scale <= 0):
            raise _err(node, "scale must be positive")
        lo, hi = dtype_range(signed, bits, narrow)
        if isinstance(x, (Const, QConst)):
            xv = x.real() if isinstance(x, QConst) else x.value
            sc = np.broadcast_to(scale, np.broadcast_shapes(scale.shape, xv.shape)) if scale.ndim else scale
            q = np.clip(round_array(xv.astype(np.float64) / scale + zp, mode), lo, hi).astype(np.int64)
            axis = None
            if scale.size > 1:
                nz = [k for k, d in enumerate(scale.shape) if d > 1]
                axis = nz[0] if len(nz) == 1 else None
                if axis is None:
                    raise _err(node, "scale must be per-tensor or per one channel axis")
            del sc
            self.out(node, QConst(q, scale, zp.astype(np.int64), axis))
            return
        if bits > 8:
            raise _err(node, f"activation quantized to {bits} bits; at most 8-bit activations are supported")
        if scale.size != 1 or zp.size != 1:
            raise _err(node, "per-channel activation quantization is not supported")
        qt = ir.QType(float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]), signed, 8, lo, hi)
        self.out(node, self.quantize_value(node, x, qt, mode))

    def quantize_value(self, node, x, qt: ir.QType, mode: str):
        """Quantize an activation-like value to ``qt``: input stage, layer finalization, or requant/clamp."""
        if isinstance(x, GraphInput):
            if x.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
                raise _err(node, "quantizes a non-float graph input")
            return self.make_input(node, qt, mode)
        if isinstance(x, Pending):
            return self.finalize(x, qt, mode, node)
        if isinstance(x, Act):
            if _close(x.q.scale, qt.scale) and x.q.zero_point == qt.zero_point and x.q.signed == qt.signed:
                if x.q.lo >= qt.lo and x.q.hi <= qt.hi:
                    return x  # identity (e.g. Q after DQ with the same parameters)
                return self.requant_act(node, x, qt, 1, 0, mode)
            m, sh = fixed_point_multiplier(_ratio(x.q.scale, qt.scale))
            return self.requant_act(node, x, qt, int(m), int(sh), mode)
        raise _err(node, "quantizes an unsupported value")

    def requant_act(self, node, x: Act, qt, m, sh, mode):
        name = self.uname("requant")
        lay = self.add_layer(ir.Requantize(name, [x.layer], _hwc(x), _hwc(x), qt, [node.name], in_q=x.q, m=m, sh=sh, rounding=mode))
        return Act(lay.name, qt, x.shape, x.axes, x.flat_order)

    def make_input(self, node, qt: ir.QType, mode: str):
        if self.input_layer is not None:
            raise _err(node, "the graph input is quantized twice")
        gi = self.input
        C = gi.shape[gi.axes.index("C")]
        H = gi.shape[gi.axes.index("H")]
        W = gi.shape[gi.axes.index("W")]
        pre = self.preprocessing(C)
        px = np.arange(256, dtype=np.float32)
        table = np.empty((C, 256), dtype=np.int64)
        for c in range(C):
            x = (px * np.float32(pre["input_scale"]) - np.float32(pre["mean"][c])) / np.float32(pre["std"][c])
            if gi.elem_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
                pass  # the host quantizes with the model's input parameters (same formula)
            table[c] = quantize(x, np.float32(qt.scale), qt.zero_point, qt.lo, qt.hi, mode)
        lay = ir.InputStage("input", [], (H, W, C), (H, W, C), qt, [node.name], table=table,
                            layout="".join(gi.axes), preprocess=pre)
        self.layers.insert(0, lay)
        self.input_layer = lay
        return Act("input", qt, gi.shape, gi.axes)

    def preprocessing(self, C):
        meta = {p.key: p.value for p in self.model.metadata_props}
        pre = {}
        for k, key in META_KEYS.items():
            v = self.user_pre.get(k)
            if v is None and key in meta:
                v = _parse_floats(meta[key], f"metadata {key}")
            else:
                v = _parse_floats(v, f"--{k.replace('_', '-')}") if v is not None else None
            pre[k] = v
        s = pre["input_scale"]
        pre["input_scale"] = float(s[0]) if s else 1.0 / 255.0
        if not pre["input_scale"] > 0:
            raise ModelError(f"--input-scale: must be positive, got {pre['input_scale']}")
        for k, d in (("mean", 0.0), ("std", 1.0)):
            v = pre[k] or [d]
            if len(v) == 1:
                v = v * C
            if len(v) != C:
                raise ModelError(f"--{k}: {len(v)} values given for a {C}-channel input")
            if k == "std" and any(x == 0 for x in v):
                raise ModelError("--std: values must be non-zero")
            pre[k] = [float(x) for x in v]
        return pre

    # --- layers ----------------------------------------------------------------------------------------------------
    def weight(self, node, i, what="weight") -> QConst:
        w = self.get(node, i)
        if isinstance(w, Const):
            raise _err(node, f"{what} {node.input[i]!r} is an unquantized float tensor feeding hardware (quantize it to int8)")
        if not isinstance(w, QConst):
            raise _err(node, f"{what} {node.input[i]!r} must be a quantized constant")
        return w

    def _int8_weights(self, node, w: QConst, out_axis: int):
        """Integer weights with zero point removed, and the per-output-channel scale."""
        q = w.q - w.zp
        if q.min() < -128 or q.max() > 127:
            raise _err(node, f"weights do not fit int8 after removing the zero point (range {q.min()}..{q.max()}); asymmetric weight zero points are not supported")
        O = q.shape[out_axis]
        sc = np.asarray(w.scale, dtype=np.float64)
        if sc.size == 1:
            s = np.full(O, float(sc.reshape(-1)[0]))
        elif w.axis == out_axis and sc.size == O:
            s = sc.reshape(-1).astype(np.float64)
        else:
            raise _err(node, "weight scales must be per tensor or per output channel")
        return q, s

    def _bias(self, node, i, acc_scale, O):
        b = self.get(node, i, optional=True)
        if b is None:
            return np.zeros(O, dtype=np.int64), 32
        if isinstance(b, QConst):
            real = b.real().reshape(-1).astype(np.float64)
            if real.size == 1:
                real = np.full(O, real[0])
            bq = np.round(real / acc_scale)
            exact = np.allclose(bq * acc_scale, real, rtol=1e-6, atol=1e-12)
            if not exact:
                # bias quantized at a scale other than the accumulator's: rounding to it (1/2 LSB of acc)
                pass
            bits = 16 if (np.abs(b.q - b.zp).max(initial=0) < (1 << 15)) else 32
            return bq.astype(np.int64), bits
        if isinstance(b, Const):
            real = np.asarray(b.value, dtype=np.float64).reshape(-1)
            if real.size == 1:
                real = np.full(O, real[0])
            return np.round(real / acc_scale).astype(np.int64), 32
        raise _err(node, "bias must be a constant")

    def op_Conv(self, node):
        x = self.act(node, 0)
        if x.axes != ("N", "C", "H", "W"):
            raise _err(node, f"input layout {''.join(x.axes)} is not NCHW (missing Transpose?)")
        w = self.weight(node, 1)
        a = _attrs(node)
        if a.get("group", 1) != 1:
            raise _err(node, f"grouped convolution (group={a['group']}) is not supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _err(node, "dilated convolution is not supported")
        q, ws = self._int8_weights(node, w, 0)
        if q.ndim != 4:
            raise _err(node, "only 2-D convolutions are supported")
        O, C, kh, kw = q.shape
        if C != x.shape[1]:
            raise _err(node, f"weight expects {C} input channels, input has {x.shape[1]}")
        H, W = x.shape[2], x.shape[3]
        strides = tuple(a.get("strides", [1, 1]))
        pads = self._pads(node, a, (kh, kw), strides, (H, W))
        Ho = (H + pads[0] + pads[2] - kh) // strides[0] + 1
        Wo = (W + pads[1] + pads[3] - kw) // strides[1] + 1
        acc_scale = _f32mul(x.q.scale, ws)
        bias, bbits = self._bias(node, 2, acc_scale, O)
        wt = q.transpose(0, 2, 3, 1).astype(np.int64)  # O, kh, kw, C
        bias = bias - x.q.zero_point * wt.reshape(O, -1).sum(1)
        p = Pending("conv", node.name, (1, O, Ho, Wo), acc_scale,
                    dict(weights=wt, bias=bias, stride=strides, pads=pads, w_scale=ws, bias_bits=bbits), [x], nodes=[node.name])
        self.out(node, p)

    def _pads(self, node, a, k, strides, hw):
        auto = _s(a.get("auto_pad", "NOTSET"))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = []
            for d in range(2):
                out = -(-hw[d] // strides[d])
                total = max((out - 1) * strides[d] + k[d] - hw[d], 0)
                small, big = total // 2, total - total // 2
                pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
            return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])
        if auto == "VALID":
            return (0, 0, 0, 0)
        p = a.get("pads", [0, 0, 0, 0])
        if len(p) != 4:
            raise _err(node, "pads must have 4 entries (2-D)")
        t, l, b, r = p[0], p[1], p[2], p[3]
        if min(p) < 0:
            raise _err(node, "negative pads are not supported")
        return (t, l, b, r)

    def op_Gemm(self, node):
        a = _attrs(node)
        if a.get("transA", 0):
            raise _err(node, "transA=1 is not supported")
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise _err(node, "alpha/beta other than 1 are not supported")
        self._dense(node, transB=bool(a.get("transB", 0)), bias_idx=2)

    def op_MatMul(self, node):
        self._dense(node, transB=False, bias_idx=None)

    def _dense(self, node, transB, bias_idx):
        x = self.act(node, 0)
        w = self.weight(node, 1)
        if w.q.ndim != 2:
            raise _err(node, "dense weights must be 2-D")
        out_axis = 0 if transB else 1
        q, ws = self._int8_weights(node, w, out_axis)
        wm = q if transB else q.T  # O, Cin (logical input order)
        wm = self._permute_dense_columns(node, x, wm.astype(np.int64))
        O = wm.shape[0]
        acc_scale = _f32mul(x.q.scale, ws)
        bias, bbits = self._bias(node, bias_idx, acc_scale, O) if bias_idx is not None else (np.zeros(O, np.int64), 32)
        bias = bias - x.q.zero_point * wm.sum(1)
        p = Pending("dense", node.name, (1, O), acc_scale, dict(weights=wm, bias=bias, w_scale=ws, bias_bits=bbits), [x], nodes=[node.name])
        self.out(node, p)

    def _permute_dense_columns(self, node, x: Act, wm):
        """Reorder dense weight columns from the model's flatten order to the stream's NHWC order."""
        n_in = int(np.prod(x.shape[1:]))
        if wm.shape[1] != n_in:
            raise _err(node, f"dense expects {wm.shape[1]} inputs, gets {n_in}")
        H, W, C = _hwc(x)
        if H * W == 1:
            return wm
        if x.flat_order is None:
            raise _err(node, "dense layer on an un-flattened spatial tensor")
        dims = {"C": C, "H": H, "W": W}
        order = x.flat_order
        idx = np.arange(n_in).reshape([dims[d] for d in order])  # flat position of each (order) element
        idx_hwc = idx.transpose([order.index(d) for d in ("H", "W", "C")]).reshape(-1)
        return wm[:, idx_hwc]

    def op_BatchNormalization(self, node):
        p = self.get(node, 0)
        if not isinstance(p, Pending) or p.kind != "conv" or p.relu or p.residual is not None:
            raise _err(node, "BatchNormalization is only supported directly after a quantized Conv (it is folded into the requantization)")
        gamma, beta, mean, var = (np.asarray(self.const(node, i), dtype=np.float64) for i in range(1, 5))
        eps = _attrs(node).get("epsilon", 1e-5)
        a = gamma / np.sqrt(var + eps)
        b = beta - mean * a
        if np.any(a <= 0):
            raise _err(node, "BatchNormalization with non-positive gamma cannot be folded into the requantization")
        # y = a * acc * s + b  ->  acc' = acc + round(b / (a * s)),  scale' = a * s
        new_scale = p.acc_scale * a
        p.params["bias"] = p.params["bias"] + np.round(b / new_scale).astype(np.int64)
        p.acc_scale = new_scale
        p.nodes.append(node.name)
        self.out(node, p)

    def op_Relu(self, node):
        v = self.get(node, 0)
        if isinstance(v, Pending):
            v.relu = True
            v.nodes.append(node.name)
            self.out(node, v)
            return
        x = self.act(node, 0)
        qt = ir.QType(x.q.scale, x.q.zero_point, x.q.signed, x.q.bits, max(x.q.lo, x.q.zero_point), x.q.hi)
        self.out(node, x if qt.lo == x.q.lo else self.requant_act(node, x, qt, 1, 0, "half_even"))

    def op_Clip(self, node):
        v = self.get(node, 0)
        a = _attrs(node)
        lo = self.const(node, 1, optional=True)
        hi = self.const(node, 2, optional=True)
        lo = float(a["min"]) if "min" in a else (float(lo) if lo is not None else -np.inf)
        hi = float(a["max"]) if "max" in a else (float(hi) if hi is not None else np.inf)
        if isinstance(v, Pending):
            c = v.clip or (-np.inf, np.inf)
            v.clip = (max(c[0], lo), min(c[1], hi))
            v.nodes.append(node.name)
            self.out(node, v)
            return
        if isinstance(v, Const):
            return self.fold(node)
        x = self.act(node, 0)
        qlo = x.q.lo if lo == -np.inf else max(x.q.lo, int(np.ceil(lo / x.q.scale - 1e-9)) + x.q.zero_point)
        qhi = x.q.hi if hi == np.inf else min(x.q.hi, int(np.floor(hi / x.q.scale + 1e-9)) + x.q.zero_point)
        qt = ir.QType(x.q.scale, x.q.zero_point, x.q.signed, x.q.bits, qlo, qhi)
        self.out(node, x if (qlo, qhi) == (x.q.lo, x.q.hi) else self.requant_act(node, x, qt, 1, 0, "half_even"))

    def op_Add(self, node):
        a, b = self.get(node, 0), self.get(node, 1)
        if isinstance(b, Pending) and not isinstance(a, Pending):
            a, b = b, a
        if isinstance(a, Pending):
            if isinstance(b, (Const, QConst)):  # MatMul + Add bias
                if a.relu or a.clip or a.residual is not None:
                    raise _err(node, "bias add after an activation")
                real = (b.real() if isinstance(b, QConst) else np.asarray(b.value, dtype=np.float64)).reshape(-1)
                O = a.acc_scale.size
                if real.size not in (1, O):
                    raise _err(node, f"bias of {real.size} values for {O} outputs")
                a.params["bias"] = a.params["bias"] + np.round(np.broadcast_to(real, (O,)) / a.acc_scale).astype(np.int64)
                a.nodes.append(node.name)
                self.out(node, a)
                return
            if isinstance(b, Act):
                if a.kind != "conv" or a.relu or a.clip or a.residual is not None:
                    raise _err(node, f"cannot merge this add into the unquantized {a.kind} output; quantize one input")
                if _hwc(b) != _pending_hwc(a):
                    raise _err(node, f"shape mismatch at Add: {_pending_hwc(a)} vs {_hwc(b)}")
                a.residual = b
                a.nodes.append(node.name)
                self.out(node, a)
                return
            raise _err(node, "Add of two unquantized tensors; quantize at least one input (e.g. the shortcut)")
        if isinstance(a, Act) and isinstance(b, Act):
            if _hwc(a) != _hwc(b):
                raise _err(node, f"shape mismatch at Add: {_hwc(a)} vs {_hwc(b)}")
            p = Pending("add", node.name, a.shape, None, {}, [a, b], nodes=[node.name])
            self.out(node, p)
            return
        raise _err(node, "Add operands must be quantized activations (or a constant bias after MatMul)")

    def op_MaxPool(self, node):
        x = self.act(node, 0)
        a = _attrs(node)
        k = tuple(a["kernel_shape"])
        if a.get("ceil_mode", 0):
            raise _err(node, "ceil_mode=1 is not supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _err(node, "dilated pooling is not supported")
        strides = tuple(a.get("strides", [1, 1]))
        H, W, C = _hwc(x)
        pads = self._pads(node, a, k, strides, (H, W))
        Ho = (H + pads[0] + pads[2] - k[0]) // strides[0] + 1
        Wo = (W + pads[1] + pads[3] - k[1]) // strides[1] + 1
        lay = self.add_layer(ir.Pool(self.uname("maxpool"), [x.layer], (H, W, C), (Ho, Wo, C), x.q, [node.name],
                                     mode="max", kernel=k, stride=strides, pads=pads, in_q=x.q))
        self.out(node, Act(lay.name, x.q, (1, C, Ho, Wo), x.axes))

    def op_GlobalMaxPool(self, node):
        x = self.act(node, 0)
        H, W, C = _hwc(x)
        lay = self.add_layer(ir.Pool(self.uname("gmaxpool"), [x.layer], (H, W, C), (1, 1, C), x.q, [node.name],
                                     mode="max", kernel=(H, W), stride=(1, 1), is_global=True, in_q=x.q))
        self.out(node, Act(lay.name, x.q, (1, C, 1, 1), x.axes))

    def op_AveragePool(self, node):
        x = self.act(node, 0)
        a = _attrs(node)
        k = tuple(a["kernel_shape"])
        strides = tuple(a.get("strides", [1, 1]))
        if a.get("ceil_mode", 0):
            raise _err(node, "ceil_mode=1 is not supported")
        H, W, C = _hwc(x)
        pads = self._pads(node, a, k, strides, (H, W))
        if any(pads) and not a.get("count_include_pad", 0):
            raise _err(node, "padded average pooling with count_include_pad=0 is not supported")
        Ho = (H + pads[0] + pads[2] - k[0]) // strides[0] + 1
        Wo = (W + pads[1] + pads[3] - k[1]) // strides[1] + 1
        glob = (Ho, Wo) == (1, 1) and k == (H, W) and not any(pads)
        p = Pending("avgpool", node.name, (1, C, Ho, Wo), None,
                    dict(kernel=k, stride=strides, pads=pads, divisor=k[0] * k[1], is_global=glob), [x], nodes=[node.name])
        self.out(node, p)

    def op_GlobalAveragePool(self, node):
        x = self.act(node, 0)
        H, W, C = _hwc(x)
        p = Pending("avgpool", node.name, (1, C, 1, 1), None,
                    dict(kernel=(H, W), stride=(1, 1), pads=(0, 0, 0, 0), divisor=H * W, is_global=True), [x], nodes=[node.name])
        self.out(node, p)

    # --- layout ops -------------------------------------------------------------------------------------------------
    def op_Transpose(self, node):
        v = self.get(node, 0)
        perm = _attrs(node).get("perm")
        if isinstance(v, (GraphInput, Act)):
            if perm is None:
                perm = list(reversed(range(len(v.shape))))
            shape = tuple(v.shape[p] for p in perm)
            axes = tuple(v.axes[p] for p in perm)
            if isinstance(v, GraphInput):
                nv = GraphInput(v.name, shape, axes, v.elem_type, v.q)
                self.input = nv
            else:
                if v.flat_order is not None and len(v.shape) > 2:
                    raise _err(node, "transpose of a flattened tensor")
                nv = Act(v.layer, v.q, shape, axes, v.flat_order)
            self.out(node, nv)
            return
        raise _err(node, "Transpose is supported on the graph input and on quantized activations only")

    def _flatten_to(self, node, v: Act, new_shape):
        if int(np.prod(new_shape)) != int(np.prod(v.shape)):
            raise _err(node, f"reshape {v.shape} -> {tuple(new_shape)} changes the element count")
        new_shape = tuple(int(d) for d in new_shape)
        if new_shape == tuple(v.shape):
            return v
        if len(new_shape) == 2 and new_shape[0] == 1:
            if v.flat_order is not None:
                return Act(v.layer, v.q, new_shape, ("N", "F"), v.flat_order)
            order = tuple(a for a in v.axes if a != "N")
            return Act(v.layer, v.q, new_shape, ("N", "F"), order)
        if len(new_shape) == 4 and v.flat_order is not None or (len(new_shape) == 4 and np.prod(new_shape[2:]) == 1 and new_shape[1] == np.prod(v.shape[1:])):
            H, W, C = _hwc(v)
            if H * W == 1 and new_shape[2] * new_shape[3] == 1:
                return Act(v.layer, v.q, new_shape, ("N", "C", "H", "W"))
        raise _err(node, f"reshape {tuple(v.shape)} -> {new_shape} is not a flatten (only flattening before a dense layer is supported)")

    def op_Flatten(self, node):
        v = self.get(node, 0)
        if isinstance(v, Pending):
            raise _err(node, "Flatten of an unquantized value")
        x = self.act(node, 0)
        axis = _attrs(node).get("axis", 1)
        if axis != 1:
            raise _err(node, "Flatten axis must be 1")
        self.out(node, self._flatten_to(node, x, (1, int(np.prod(x.shape[1:])))))

    def op_Reshape(self, node):
        v = self.get(node, 0)
        shape = [int(s) for s in self.const(node, 1, what="shape")]
        if isinstance(v, Pending):
            raise _err(node, "Reshape of an unquantized value")
        x = self.act(node, 0)
        total = int(np.prod(x.shape))
        shape = [x.shape[k] if s == 0 else s for k, s in enumerate(shape)]
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1]))
            shape = [total // known if s == -1 else s for s in shape]
        shape[0] = 1 if shape[0] in (1, -1) else shape[0]
        self.out(node, self._flatten_to(node, x, shape))

    def op_Squeeze(self, node):
        x = self.act(node, 0)
        axes = _attrs(node).get("axes")
        if axes is None:
            ax = self.const(node, 1, optional=True)
            axes = [int(a) for a in ax] if ax is not None else [k for k, d in enumerate(x.shape) if d == 1 and k > 0]
        shape = [d for k, d in enumerate(x.shape) if k not in [a % len(x.shape) for a in axes]]
        if shape and shape[0] != 1:
            shape = [1] + shape
        self.out(node, self._flatten_to(node, x, shape))

    def op_Unsqueeze(self, node):
        x = self.act(node, 0)
        axes = _attrs(node).get("axes")
        if axes is None:
            axes = [int(a) for a in self.const(node, 1)]
        shape = list(x.shape)
        for a in sorted(a % (len(shape) + len(axes)) for a in axes):
            shape.insert(a, 1)
        self.out(node, self._flatten_to(node, x, shape))

    def op_Slice(self, node):
        x = self.act(node, 0)
        if x.axes != ("N", "C", "H", "W"):
            raise _err(node, "Slice is only supported on NCHW activations")
        starts = self.const(node, 1)
        ends = self.const(node, 2)
        axes = self.const(node, 3, optional=True)
        steps = self.const(node, 4, optional=True)
        axes = list(range(len(starts))) if axes is None else [int(a) % 4 for a in axes]
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
        H, W, C = _hwc(x)
        sub = {}
        for a, s, e, st in zip(axes, starts, ends, steps):
            dim = x.shape[a]
            s, e = int(s), int(e)
            s = max(0, s + dim if s < 0 else min(s, dim))
            e = max(0, min(e + dim if e < 0 else e, dim))
            if (s, e, st) == (0, dim, 1):
                continue
            if a in (2, 3) and s == 0 and e >= dim and st >= 1:
                sub[a] = st
                continue
            raise _err(node, f"slice on axis {a} ({s}:{e}:{st}) is not supported (only stride-s spatial subsampling, option A)")
        if not sub:
            self.out(node, x)
            return
        # exporters write x[:, :, ::2, ::2] as one Slice on both axes or as two single-axis Slices (often with a
        # Q/DQ pair between them): a single-axis subsample of a fresh single-axis ShortcutA completes it
        prev = next((lay for lay in self.layers if lay.name == x.layer), None)
        half = self.half_slices.get(x.layer)
        if half is not None and isinstance(prev, ir.ShortcutA) and len(sub) == 1:
            (ax, st), = sub.items()
            if ax in half[0] or st != half[1] or any(x.layer in lay.inputs for lay in self.layers):
                raise _err(node, "unsupported chain of subsampling slices")
            Hp, Wp, Cp = prev.in_shape
            Ho, Wo = -(-Hp // st), -(-Wp // st)
            prev.out_shape = (Ho, Wo, Cp)
            prev.source_nodes.append(node.name)
            del self.half_slices[x.layer]
            self.out(node, Act(prev.name, x.q, (1, Cp, Ho, Wo), x.axes))
            return
        st = max(sub.values())
        if len(sub) == 2 and sub[2] != sub[3]:
            raise _err(node, "unequal subsampling strides on H and W")
        Ho = -(-H // st) if 2 in sub else H
        Wo = -(-W // st) if 3 in sub else W
        lay = self.add_layer(ir.ShortcutA(self.uname("shortcut"), [x.layer], (H, W, C), (Ho, Wo, C), x.q, [node.name],
                                          stride=st, pad_value=x.q.zero_point))
        if len(sub) == 1:
            self.half_slices[lay.name] = (set(sub), st)
        self.out(node, Act(lay.name, x.q, (1, C, Ho, Wo), x.axes))

    def op_Pad(self, node):
        x = self.act(node, 0)
        a = _attrs(node)
        mode = _s(a.get("mode", "constant"))
        if mode != "constant":
            raise _err(node, f"pad mode {mode} is not supported")
        pads = [int(p) for p in (a["pads"] if "pads" in a else self.const(node, 1))]
        val = self.get(node, 2, optional=True)
        value = float(self.const(node, 2)) if val is not None else 0.0
        axes_in = self.const(node, 3, optional=True)
        n = len(x.shape)
        full = [0] * (2 * n)
        axes = list(range(n)) if axes_in is None else [int(v) % n for v in axes_in]
        for k, ax in enumerate(axes):
            full[ax], full[ax + n] = pads[k], pads[k + len(axes)]
        if any(full[k] or full[k + n] for k in (0, 2, 3)) or x.axes != ("N", "C", "H", "W"):
            raise _err(node, "only channel zero-padding (option-A shortcut) is supported for Pad")
        qv = value / x.q.scale + x.q.zero_point
        if abs(qv - round(qv)) > 1e-6:
            raise _err(node, f"pad value {value} is not representable in the activation's quantization")
        qv = int(round(qv))
        H, W, C = _hwc(x)
        Co = C + full[1] + full[1 + n]
        lay = next((lay for lay in self.layers if lay.name == x.layer), None)
        if isinstance(lay, ir.ShortcutA) and lay.name == x.layer and x.layer not in self.half_slices and lay.pad_before == lay.pad_after == 0 and qv == lay.pad_value \
                and not any(x.layer in other.inputs for other in self.layers):
            lay.pad_before, lay.pad_after = full[1], full[1 + n]
            lay.out_shape = (H, W, Co)
            lay.source_nodes.append(node.name)
        else:
            lay = self.add_layer(ir.ShortcutA(self.uname("shortcut"), [x.layer], (H, W, C), (H, W, Co), x.q, [node.name],
                                              stride=1, pad_before=full[1], pad_after=full[1 + n], pad_value=qv))
        self.out(node, Act(lay.name, x.q, (1, Co, H, W), x.axes))

    def op_Concat(self, node):
        ins = [self.get(node, i) for i in range(len(node.input))]
        acts = [v for v in ins if isinstance(v, Act)]
        if len(acts) != 1:
            raise _err(node, "Concat of activations is only supported as zero channel padding (option-A shortcut)")
        axis = _attrs(node).get("axis", 1) % 4
        x = acts[0]
        if axis != 1 or x.axes != ("N", "C", "H", "W"):
            raise _err(node, "Concat is only supported along channels")
        k = ins.index(x)
        before = after = 0
        for j, v in enumerate(ins):
            if v is x:
                continue
            val = v.real() if isinstance(v, QConst) else (v.value if isinstance(v, Const) else None)
            if val is None or np.any(val != 0):
                raise _err(node, "Concat operand other than zeros")
            if j < k:
                before += val.shape[1]
            else:
                after += val.shape[1]
        H, W, C = _hwc(x)
        lay = self.add_layer(ir.ShortcutA(self.uname("shortcut"), [x.layer], (H, W, C), (H, W, C + before + after), x.q, [node.name],
                                          stride=1, pad_before=before, pad_after=after, pad_value=x.q.zero_point))
        self.out(node, Act(lay.name, x.q, (1, C + before + after, H, W), x.axes))

    def op_Softmax(self, node):
        v = self.get(node, 0)
        if node.output[0] != self.graph.output[0].name and not self._feeds_output_only(node.output[0]):
            raise _err(node, "Softmax is only supported as the last op (it is kept out of hardware)")
        self.softmax = True
        self.out(node, SoftmaxOf(v))

    def _feeds_output_only(self, name):
        """True if ``name`` reaches the graph output only through Q/DQ/Identity/Softmax nodes."""
        seen = name
        for _ in range(8):
            cons = [n for n in self.graph.node if seen in n.input]
            if seen == self.graph.output[0].name:
                return True
            if len(cons) != 1 or cons[0].op_type not in ("QuantizeLinear", "DequantizeLinear", "Identity", "Softmax", "QLinearSoftmax"):
                return False
            seen = cons[0].output[0]
        return False

    # --- QOperator ---------------------------------------------------------------------------------------------------
    def _q_in(self, node, xi, si, zi) -> Act:
        x = self.act(node, xi)
        s = float(np.asarray(self.const(node, si)).reshape(-1)[0])
        zc = self.get(node, zi, optional=True)
        z = int(np.asarray(self.const(node, zi)).reshape(-1)[0]) if zc is not None else 0
        if not (_close(s, x.q.scale) and z == x.q.zero_point):
            raise _err(node, f"input quantization ({s}, {z}) differs from its producer's ({x.q.scale}, {x.q.zero_point})")
        return x

    def _q_out(self, node, si, zi, signed_hint=None) -> ir.QType:
        s = float(np.asarray(self.const(node, si)).reshape(-1)[0])
        zc = self.get(node, zi, optional=True)
        zv = np.asarray(self.const(node, zi)) if zc is not None else np.zeros(1, np.uint8)
        signed = zv.dtype == np.int8 if signed_hint is None else signed_hint
        lo, hi = dtype_range(signed, 8)
        return ir.QType(s, int(zv.reshape(-1)[0]), bool(signed), 8, lo, hi)

    def _qweight(self, node, wi, si, zi, out_axis=0) -> QConst:
        w = self.get(node, wi)
        if not isinstance(w, Const):
            raise _err(node, "weights must be constant")
        scale = np.asarray(self.const(node, si), dtype=np.float64)
        zp = np.asarray(self.const(node, zi), dtype=np.int64) if self.get(node, zi, optional=True) is not None else np.zeros(1, np.int64)
        q = np.asarray(w.value).astype(np.int64)
        axis = out_axis if scale.size > 1 else None
        sc, zz = _bcast(scale, zp, q.ndim, out_axis)
        return QConst(q, sc, zz, axis)

    def op_QLinearConv(self, node):
        self.formats.add("qoperator")
        x = self._q_in(node, 0, 1, 2)
        w = self._qweight(node, 3, 4, 5, 0)
        out_q = self._q_out(node, 6, 7)
        # reuse the Conv path through a pending conv, then finalize with the given output quantization
        self.env["__w"] = w
        b = self.get(node, 8, optional=True)
        fake = onnx.helper.make_node("Conv", [node.input[0], "__w"] + (["__b"] if b is not None else []), [node.output[0]], name=node.name)
        fake.attribute.extend(node.attribute)
        if b is not None:
            bq = np.asarray(b.value, dtype=np.int64).reshape(-1)
            self.env["__b"] = QConst(bq, x.q.scale * _per_out(w), np.zeros(1, np.int64), 0)
        self.env[node.input[0]] = x
        self.op_Conv(fake)
        p = self.env[node.output[0]]
        self.out(node, self.finalize(p, out_q, "half_even", node))

    def op_QLinearMatMul(self, node):
        self.formats.add("qoperator")
        x = self._q_in(node, 0, 1, 2)
        w = self._qweight(node, 3, 4, 5, 1)
        out_q = self._q_out(node, 6, 7)
        self.env["__w"] = w
        fake = onnx.helper.make_node("MatMul", [node.input[0], "__w"], [node.output[0]], name=node.name)
        self.env[node.input[0]] = x
        self.op_MatMul(fake)
        self.out(node, self.finalize(self.env[node.output[0]], out_q, "half_even", node))

    def op_QGemm(self, node):
        self.formats.add("qoperator")
        a = _attrs(node)
        x = self._q_in(node, 0, 1, 2)
        transB = bool(a.get("transB", 0))
        w = self._qweight(node, 3, 4, 5, 0 if transB else 1)
        self.env["__w"] = w
        b = self.get(node, 6, optional=True)
        ins = [node.input[0], "__w"]
        if b is not None:
            bq = np.asarray(b.value, dtype=np.int64).reshape(-1)
            self.env["__b"] = QConst(bq, x.q.scale * _per_out(w), np.zeros(1, np.int64), 0)
            ins.append("__b")
        fake = onnx.helper.make_node("Gemm", ins, [node.output[0]], name=node.name, transB=int(transB))
        self.env[node.input[0]] = x
        self.op_Gemm(fake)
        p = self.env[node.output[0]]
        if len(node.input) > 7 and node.input[7]:
            self.out(node, self.finalize(p, self._q_out(node, 7, 8), "half_even", node))
        else:
            self.out(node, p)  # float output

    def op_QLinearAdd(self, node):
        self.formats.add("qoperator")
        a = self._q_in(node, 0, 1, 2)
        b = self._q_in(node, 3, 4, 5)
        out_q = self._q_out(node, 6, 7)
        if _hwc(a) != _hwc(b):
            raise _err(node, f"shape mismatch at QLinearAdd: {_hwc(a)} vs {_hwc(b)}")
        p = Pending("add", node.name, a.shape, None, {}, [a, b], nodes=[node.name])
        self.out(node, self.finalize(p, out_q, "half_even", node))

    def op_QLinearGlobalAveragePool(self, node):
        self.formats.add("qoperator")
        if _attrs(node).get("channels_last", 0):
            raise _err(node, "channels_last=1 is not supported")
        x = self._q_in(node, 0, 1, 2)
        out_q = self._q_out(node, 3, 4)
        H, W, C = _hwc(x)
        p = Pending("avgpool", node.name, (1, C, 1, 1), None,
                    dict(kernel=(H, W), stride=(1, 1), pads=(0, 0, 0, 0), divisor=H * W, is_global=True), [x], nodes=[node.name])
        self.out(node, self.finalize(p, out_q, "half_even", node))

    def op_QLinearAveragePool(self, node):
        self.formats.add("qoperator")
        x = self._q_in(node, 0, 1, 2)
        out_q = self._q_out(node, 3, 4)
        a = _attrs(node)
        fake = onnx.helper.make_node("AveragePool", [node.input[0]], [node.output[0]], name=node.name)
        fake.attribute.extend([at for at in node.attribute if at.name != "channels_last"])
        if a.get("channels_last", 0):
            raise _err(node, "channels_last=1 is not supported")
        self.env[node.input[0]] = x
        self.op_AveragePool(fake)
        self.out(node, self.finalize(self.env[node.output[0]], out_q, "half_even", node))

    def op_QLinearSoftmax(self, node):
        self.formats.add("qoperator")
        self.op_Softmax(node)

    # --- finalization -----------------------------------------------------------------------------------------------
    def _clamp(self, p: Pending, qt: ir.QType):
        lo, hi = qt.lo, qt.hi
        if p.relu:
            lo = max(lo, qt.zero_point)
        if p.clip:
            cl, ch = p.clip
            if cl > -np.inf:
                lo = max(lo, int(np.ceil(cl / qt.scale - 1e-9)) + qt.zero_point)
            if ch < np.inf:
                hi = min(hi, int(np.floor(ch / qt.scale + 1e-9)) + qt.zero_point)
        return lo, hi

    def finalize(self, p: Pending, qt: ir.QType, mode: str, node) -> Act:
        lo, hi = self._clamp(p, qt)
        out_q = ir.QType(qt.scale, qt.zero_point, qt.signed, qt.bits, lo, hi)
        nodes = p.nodes + [node.name]
        if p.kind in ("conv", "dense"):
            x = p.inputs[0]
            O = p.acc_scale.size
            m, sh = fixed_point_multiplier(_ratio(p.acc_scale, qt.scale))
            res_m = None
            if p.residual is not None:
                rm, rsh = fixed_point_multiplier(np.full(O, _ratio(p.residual.q.scale, qt.scale)))
                shc = np.maximum(sh, rsh)
                m, res_m = m << (shc - sh), rm << (shc - rsh)
                sh = shc
            rq = ir.Requant(m, sh, qt.zero_point, lo, hi, mode)
            pr = p.params
            if p.kind == "conv":
                _, O, Ho, Wo = p.shape
                name = self.uname("conv")
                inputs = [x.layer] + ([p.residual.layer] if p.residual is not None else [])
                lay = ir.Conv(name, inputs, _hwc(x), (Ho, Wo, O), out_q, nodes, weights=pr["weights"], bias=pr["bias"],
                              stride=pr["stride"], pads=pr["pads"], pad_value=x.q.zero_point, requant=rq, in_q=x.q,
                              w_scale=pr["w_scale"], bias_bits=pr["bias_bits"], relu=p.relu,
                              residual=p.residual.layer if p.residual is not None else None, res_m=res_m,
                              res_zp=p.residual.q.zero_point if p.residual is not None else 0,
                              res_q=p.residual.q if p.residual is not None else None)
                self._check_acc(node, lay)
                self.add_layer(lay)
                return Act(name, out_q, (1, O, Ho, Wo), ("N", "C", "H", "W"))
            name = self.uname("dense")
            lay = ir.Dense(name, [x.layer], self._src_shape(x), (1, 1, O), out_q, nodes, weights=pr["weights"], bias=pr["bias"],
                           requant=rq, in_q=x.q, w_scale=pr["w_scale"], acc_scale=p.acc_scale, bias_bits=pr["bias_bits"], relu=p.relu)
            self._check_acc(node, lay)
            self.add_layer(lay)
            return Act(name, out_q, (1, O), ("N", "F"), ("C", "H", "W"))
        if p.kind == "add":
            a, b = p.inputs
            (ma, sa), (mb, sb) = fixed_point_multiplier(_ratio(a.q.scale, qt.scale)), fixed_point_multiplier(_ratio(b.q.scale, qt.scale))
            sh = max(int(sa), int(sb))
            ma, mb = int(ma) << (sh - int(sa)), int(mb) << (sh - int(sb))
            H, W, C = _hwc(a)
            lay = self.add_layer(ir.Add(self.uname("add"), [a.layer, b.layer], (H, W, C), (H, W, C), out_q, nodes,
                                        a_q=a.q, b_q=b.q, ma=ma, mb=mb, sh=sh, zp_out=qt.zero_point, rounding=mode, relu=p.relu))
            return Act(lay.name, out_q, a.shape, a.axes)
        if p.kind == "avgpool":
            x = p.inputs[0]
            pr = p.params
            m, sh = fixed_point_multiplier(_ratio(x.q.scale, _f32mul(qt.scale, pr["divisor"])))
            rq = ir.Requant(np.atleast_1d(m), np.atleast_1d(sh), qt.zero_point, lo, hi, mode)
            H, W, C = _hwc(x)
            _, _, Ho, Wo = p.shape
            lay = self.add_layer(ir.Pool(self.uname("gavgpool" if pr["is_global"] else "avgpool"), [x.layer], (H, W, C), (Ho, Wo, C),
                                         out_q, nodes, mode="avg", kernel=pr["kernel"], stride=pr["stride"], pads=pr["pads"],
                                         is_global=pr["is_global"], in_q=x.q, requant=rq))
            return Act(lay.name, out_q, p.shape, ("N", "C", "H", "W"))
        raise _err(node, f"cannot quantize a pending {p.kind}")

    def _src_shape(self, x: Act):
        """(H, W, C) of the stream a layer reads: for a flattened tensor, its producer's frame (the hardware streams
        the frame pixel by pixel; the dense weights are already in NHWC flatten order)."""
        for lay in self.layers:
            if lay.name == x.layer:
                return tuple(lay.out_shape)
        return _hwc(x)

    def _check_acc(self, node, lay):
        lo, hi = lay.acc_range()
        if lo < -(1 << 31) or hi >= (1 << 31):
            raise _err(node, f"worst-case accumulator range [{lo}, {hi}] exceeds int32")
        if isinstance(lay, ir.Conv):
            plo, phi = lay.post_range()
            if plo < -(1 << 62) or phi >= (1 << 62):
                raise _err(node, "requantization product exceeds 63 bits")

    def _finish(self) -> ir.Network:
        for name in self.half_slices:
            lay = next(lay for lay in self.layers if lay.name == name)
            raise ModelError(f"node {lay.source_nodes[0]!r} (Slice): subsamples only one spatial axis (option A needs both)")
        out_name = self.graph.output[0].name
        v = self.env.get(out_name)
        while isinstance(v, SoftmaxOf):
            v = v.inner
        if v is None:
            raise ModelError(f"graph output {out_name!r} is not produced by any node")
        if self.input_layer is None:
            raise ModelError(f"graph input {self.input.name!r} is never quantized (no QuantizeLinear/Quant on it)")
        if isinstance(v, Pending):
            if v.kind != "dense" or v.relu or v.clip:
                raise ModelError(f"graph output {out_name!r} is an unquantized {v.kind} result; only a final dense layer may output raw accumulators")
            x = v.inputs[0]
            pr = v.params
            O = v.acc_scale.size
            lay = ir.Dense(self.uname("dense"), [x.layer], self._src_shape(x), (1, 1, O), None, v.nodes, weights=pr["weights"], bias=pr["bias"],
                           requant=None, in_q=x.q, w_scale=pr["w_scale"], acc_scale=v.acc_scale, bias_bits=pr["bias_bits"])
            lo, hi = lay.acc_range()
            if lo < -(1 << 31) or hi >= (1 << 31):
                raise ModelError(f"node {v.node!r}: worst-case accumulator range exceeds int32")
            self.add_layer(lay)
            out_layer, out_scale, out_zp = lay.name, v.acc_scale, 0
        elif isinstance(v, Act):
            out_layer, out_scale, out_zp = v.layer, np.array([v.q.scale]), v.q.zero_point
        else:
            raise ModelError(f"graph output {out_name!r} is not a network result")
        layers = _prune(self.layers, out_layer)
        layers = _fold_clamps(layers)
        fmt = "qonnx" if "qonnx" in self.formats else ("qoperator" if "qoperator" in self.formats else "qdq")
        if "int-input" in self.formats:
            fmt += "+int-input"
        net = ir.Network(self.name, layers, out_layer, fmt, self.softmax, np.asarray(out_scale, dtype=np.float64), out_zp)
        return net


# ----------------------------------------------------------------------------------------------------------------


def _single_node_model(n2, names, ins, n_out, opset):
    from onnx.reference import ReferenceEvaluator

    g = onnx.helper.make_graph(
        [n2], "fold",
        [onnx.helper.make_tensor_value_info(nm, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), np.asarray(v).shape)
         for nm, v in zip(names, ins) if v is not None],
        [onnx.helper.make_empty_tensor_value_info(f"o{k}") for k in range(n_out)],
    )
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", opset)])
    return ReferenceEvaluator(m)


def _per_out(w: QConst):
    s = np.asarray(w.scale, dtype=np.float64).reshape(-1)
    return s


def _bcast(scale, zp, ndim, axis):
    scale = np.asarray(scale)
    zp = np.asarray(zp)
    if scale.size > 1 or zp.size > 1:
        shape = [1] * ndim
        shape[axis] = max(scale.size, zp.size)
        return scale.reshape(-1).reshape(shape) if scale.size > 1 else scale.reshape(-1)[0], \
            zp.reshape(-1).reshape(shape) if zp.size > 1 else zp.reshape(-1)[0]
    return scale.reshape(-1)[0], zp.reshape(-1)[0]


def _f32mul(a, b):
    """Scale product in float32, as the source runtimes compute it (ONNX Runtime: ``X_scale * W_scale``)."""
    return (np.float32(a) * np.asarray(b, dtype=np.float32)).astype(np.float64)


def _ratio(num, den):
    """Requantization ratio in float32 (``acc_scale / out_scale``), as ONNX Runtime's QLinear kernels compute it.

    A float32 ratio has a 24-bit significand, so the 24-bit fixed-point multiplier represents it exactly; the only
    remaining difference to ONNX Runtime is its float32 rounding of the product ``acc * ratio`` (the golden model
    computes that product exactly). With power-of-two scales everything is exact either way.
    """
    return (np.asarray(num, dtype=np.float32) / np.float32(den)).astype(np.float64)


def _close(a, b):
    return abs(float(a) - float(b)) <= 1e-7 * max(abs(float(a)), abs(float(b)))


def _hwc(x: Act):
    if x.axes == ("N", "F"):
        return (1, 1, int(x.shape[1]))
    d = dict(zip(x.axes, x.shape))
    return (int(d.get("H", 1)), int(d.get("W", 1)), int(d.get("C", 1)))


def _pending_hwc(p: Pending):
    _, C, H, W = p.shape
    return (H, W, C)


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


def _fold_clamps(layers):
    """Fold a pure clamp (Requantize with m=1, sh=0, same scale/zp) into its single-consumer MAC producer."""
    by = {lay.name: lay for lay in layers}
    out = []
    removed = {}
    for lay in layers:
        lay.inputs = [removed.get(i, i) for i in lay.inputs]
        if isinstance(lay, ir.Conv) and lay.residual is not None:
            lay.residual = removed.get(lay.residual, lay.residual)
        if isinstance(lay, ir.Requantize) and lay.m == 1 and lay.sh == 0 and lay.in_q.zero_point == lay.out_q.zero_point \
                and _close(lay.in_q.scale, lay.out_q.scale):
            src = by[lay.inputs[0]]
            consumers = [other for other in layers if src.name in other.inputs]
            rq = getattr(src, "requant", None)
            if len(consumers) == 1 and rq is not None and isinstance(src, (ir.Conv, ir.Dense, ir.Pool)):
                rq.lo, rq.hi = max(rq.lo, lay.out_q.lo), min(rq.hi, lay.out_q.hi)
                src.out_q = lay.out_q
                src.source_nodes += lay.source_nodes
                removed[lay.name] = src.name
                continue
        out.append(lay)
    return out


def load_model(model, *, input_scale=None, mean=None, std=None, name: str | None = None) -> ir.Network:
    """Import a quantized ONNX model (path, bytes or ModelProto) into the integer IR.

    ``input_scale``/``mean``/``std`` define the input table (float input = (pixel*input_scale - mean)/std); when None,
    the model's metadata (``rtlgen.input_scale`` ...) or the defaults (1/255, 0, 1) apply.
    """
    if isinstance(model, (str, os.PathLike)):
        p = Path(model)
        if not p.exists():
            raise ModelError(f"model file {str(p)!r} does not exist")
        if p.is_dir():
            raise ModelError(f"model path {str(p)!r} is a directory, not an .onnx file")
        try:
            proto = onnx.load(str(p))
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"model file {str(p)!r} is not a readable ONNX model ({type(e).__name__})") from None
        name = name or p.stem
    elif isinstance(model, (bytes, bytearray)):
        try:
            proto = onnx.load_from_string(bytes(model))
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"bytes are not an ONNX model ({type(e).__name__})") from None
    elif isinstance(model, onnx.ModelProto):
        proto = model
    else:
        raise ModelError(f"cannot load a model from {type(model).__name__}")
    if not proto.graph.node and not proto.graph.input:
        raise ModelError(f"model {name or proto.graph.name!r} is empty or not an ONNX model")
    name = name or proto.graph.name or "model"
    name = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "model"
    imp = _Importer(proto, name, {"input_scale": input_scale, "mean": mean, "std": std})
    return imp.run()
