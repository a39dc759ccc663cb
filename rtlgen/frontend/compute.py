"""The float compute ops of QDQ/QONNX graphs: ``Conv``, ``Gemm``/``MatMul``, ``BatchNormalization`` (folded),
``Relu``/``Clip``, ``Add``, the pools and ``Softmax``; each leaves a :class:`~rtlgen.frontend.values.Pending` MAC
result that the next quantizer turns into an IR layer."""

from __future__ import annotations

import numpy as np

from .. import ir
from .registry import onnx_handler
from .values import (
    Act,
    Const,
    Pending,
    QConst,
    SoftmaxOf,
    _attrs,
    _err,
    _f32mul,
    _hwc,
    _pending_hwc,
    _s,
)


class ComputeOps:
    """Mixin of :class:`rtlgen.frontend.importer.Importer` (handlers registered with :func:`~rtlgen.frontend.registry.onnx_handler`)."""

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

    @onnx_handler("Conv")
    def op_Conv(self, node):
        x = self.act(node, 0)
        if x.axes != ("N", "C", "H", "W"):
            raise _err(node, f"input layout {''.join(x.axes)} is not NCHW (missing Transpose?)")
        w = self.weight(node, 1)
        a = _attrs(node)
        group = int(a.get("group", 1))
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise _err(node, "dilated convolution is not supported")
        q, ws = self._int8_weights(node, w, 0)
        if q.ndim != 4:
            raise _err(node, "only 2-D convolutions are supported")
        O, Cg, kh, kw = q.shape
        C = Cg * group
        if group < 1 or x.shape[1] % group or O % group:
            raise _err(node, f"group={group} does not divide the {x.shape[1]} input and {O} output channels")
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
                    dict(weights=wt, bias=bias, stride=strides, pads=pads, w_scale=ws, bias_bits=bbits, group=group), [x],
                    nodes=[node.name])
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

    @onnx_handler("Gemm")
    def op_Gemm(self, node):
        a = _attrs(node)
        if a.get("transA", 0):
            raise _err(node, "transA=1 is not supported")
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
            raise _err(node, "alpha/beta other than 1 are not supported")
        self._dense(node, transB=bool(a.get("transB", 0)), bias_idx=2)

    @onnx_handler("MatMul")
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

    @onnx_handler("BatchNormalization")
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

    @onnx_handler("Relu")
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

    @onnx_handler("Clip")
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

    @onnx_handler("Add")
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

    @onnx_handler("MaxPool")
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

    @onnx_handler("GlobalMaxPool")
    def op_GlobalMaxPool(self, node):
        x = self.act(node, 0)
        H, W, C = _hwc(x)
        lay = self.add_layer(ir.Pool(self.uname("gmaxpool"), [x.layer], (H, W, C), (1, 1, C), x.q, [node.name],
                                     mode="max", kernel=(H, W), stride=(1, 1), is_global=True, in_q=x.q))
        self.out(node, Act(lay.name, x.q, (1, C, 1, 1), x.axes))

    @onnx_handler("AveragePool")
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

    @onnx_handler("GlobalAveragePool")
    def op_GlobalAveragePool(self, node):
        x = self.act(node, 0)
        H, W, C = _hwc(x)
        p = Pending("avgpool", node.name, (1, C, 1, 1), None,
                    dict(kernel=(H, W), stride=(1, 1), pads=(0, 0, 0, 0), divisor=H * W, is_global=True), [x], nodes=[node.name])
        self.out(node, p)

    @onnx_handler("Softmax")
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
