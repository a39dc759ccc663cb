"""The importer: the graph walk (topological order, one symbolic value per tensor, constant folding, dispatch of every
node to its registered handler), the requantization of pending MAC results and the finished
:class:`rtlgen.ir.Network`; :func:`load_model` is the entry point."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from .. import ir
from ..errors import ModelError
from ..quant import fixed_point_multiplier
from .cleanup import _prune
from .optimize import optimize
from .compute import ComputeOps
from .qdq import QuantOps
from .qoperator import QOperatorOps
from .registry import HANDLERS, QONNX_DOMAINS, supported_ops
from .shape import ShapeOps
from .values import Act, Const, GraphInput, Pending, QConst, SoftmaxOf, _err, _f32mul, _hwc, _ratio, conv_as_dense

#: every op type the importer reads (error messages list them)
SUPPORTED_OPS = supported_ops()


class Importer(ShapeOps, QuantOps, ComputeOps, QOperatorOps):
    """One ONNX model -> :class:`rtlgen.ir.Network` (the op handlers come from the mixins, one per op family)."""

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
        if len(dims) == 2:  # a feature vector (MLP / autoencoder input): streamed as a 1 x 1 x F frame
            self.input = GraphInput(vi.name, (1, dims[1]), ("N", "F"), tt.elem_type)
            self.env[vi.name] = self.input
            return
        if len(dims) != 4:
            raise ModelError(f"graph input {vi.name!r}: expected a 4-D image tensor or a 2-D feature vector, got shape {dims}")
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
        handler = HANDLERS.get(op)
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
        return handler(self, node)

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
                              res_q=p.residual.q if p.residual is not None else None, group=pr.get("group", 1))
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
        if isinstance(v, Pending) and v.kind == "conv" and not (v.relu or v.clip or v.residual is not None):
            v = conv_as_dense(self.graph.node[-1], v, "graph output")
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
        layers, out_layer, notes = optimize(layers, out_layer)
        fmt = "qonnx" if "qonnx" in self.formats else ("qoperator" if "qoperator" in self.formats else "qdq")
        if "int-input" in self.formats:
            fmt += "+int-input"
        net = ir.Network(self.name, layers, out_layer, fmt, self.softmax, np.asarray(out_scale, dtype=np.float64), out_zp)
        net.fusion_notes = notes
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


def load_model(model, *, input_scale=None, mean=None, std=None, name: str | None = None,
               input_codes: bool = False) -> ir.Network:
    """Import a quantized ONNX model (path, bytes or ModelProto) into the integer IR.

    ``input_scale``/``mean``/``std`` define the input table (float input = (pixel*input_scale - mean)/std); when None,
    the model's metadata (``rtlgen.input_scale`` ...) or the defaults (1/255, 0, 1) apply. ``input_codes`` (or an
    int8/uint8 graph input without any of these): the hardware takes the graph input's first quantizer's codes
    themselves (the identity input table; the host quantizes float inputs with that quantizer).
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
    imp = Importer(proto, name, {"input_scale": input_scale, "mean": mean, "std": std, "codes": bool(input_codes)})
    return imp.run()
