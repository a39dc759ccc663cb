"""QOperator graphs (``QLinearConv``, ``QLinearMatMul``, ``QGemm``, ``QLinearAdd``, ``QLinear(Global)AveragePool``,
``QLinearSoftmax``): each is rewritten into the float op it quantizes between its input and output quantizers."""

from __future__ import annotations

import numpy as np
import onnx

from .. import ir
from ..quant import dtype_range
from .registry import onnx_handler
from .values import (
    Act,
    Const,
    Pending,
    QConst,
    _attrs,
    _bcast,
    _close,
    _err,
    _hwc,
    _per_out,
)


class QOperatorOps:
    """Mixin of :class:`rtlgen.frontend.importer.Importer` (handlers registered with :func:`~rtlgen.frontend.registry.onnx_handler`)."""

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

    @onnx_handler("QLinearConv")
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

    @onnx_handler("QLinearMatMul")
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

    @onnx_handler("QGemm")
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

    @onnx_handler("QLinearAdd")
    def op_QLinearAdd(self, node):
        self.formats.add("qoperator")
        a = self._q_in(node, 0, 1, 2)
        b = self._q_in(node, 3, 4, 5)
        out_q = self._q_out(node, 6, 7)
        if _hwc(a) != _hwc(b):
            raise _err(node, f"shape mismatch at QLinearAdd: {_hwc(a)} vs {_hwc(b)}")
        p = Pending("add", node.name, a.shape, None, {}, [a, b], nodes=[node.name])
        self.out(node, self.finalize(p, out_q, "half_even", node))

    @onnx_handler("QLinearGlobalAveragePool")
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

    @onnx_handler("QLinearAveragePool")
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

    @onnx_handler("QLinearSoftmax")
    def op_QLinearSoftmax(self, node):
        self.formats.add("qoperator")
        self.op_Softmax(node)
