"""Quantizers: QDQ/QCDQ (``QuantizeLinear``, ``DequantizeLinear``) and QONNX ``Quant``; the graph input's quantizer
becomes the input stage (with its preprocessing)."""

from __future__ import annotations

import numpy as np
import onnx

from .. import ir
from ..errors import ModelError
from ..quant import (
    QONNX_ROUNDING,
    dtype_range,
    fixed_point_multiplier,
    quantize,
    round_array,
)
from .registry import QONNX_DOMAINS, onnx_handler
from .values import (
    META_KEYS,
    Act,
    Const,
    GraphInput,
    Pending,
    QConst,
    SoftmaxOf,
    _attrs,
    _bcast,
    _close,
    _err,
    _hwc,
    _parse_floats,
    _ratio,
    _s,
)


class QuantOps:
    """Mixin of :class:`rtlgen.frontend.importer.Importer` (handlers registered with :func:`~rtlgen.frontend.registry.onnx_handler`)."""

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

    @onnx_handler("QuantizeLinear")
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

    @onnx_handler("DequantizeLinear")
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

    @onnx_handler("Quant", domains=QONNX_DOMAINS)
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
        if gi.axes == ("N", "F"):
            H, W, C = 1, 1, gi.shape[1]
        else:
            C = gi.shape[gi.axes.index("C")]
            H = gi.shape[gi.axes.index("H")]
            W = gi.shape[gi.axes.index("W")]
        if self.user_pre.get("codes") and any(self.user_pre.get(k) is not None for k in META_KEYS):
            raise ModelError("--input-codes excludes --input-scale/--mean/--std (the hardware takes the input's codes)")
        is_int = gi.elem_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
        if self.user_pre.get("codes") or (is_int and not self.preprocessing_given()):
            # --input-codes, or an integer graph input without pixel preprocessing: the hardware takes the first
            # quantizer's codes as they are (the input stage is the identity on the 8-bit bus: int8 codes as
            # two's-complement bytes; the host quantizes float inputs)
            byte = np.arange(256, dtype=np.int64)
            codes = np.where(byte >= 128, byte - 256, byte) if qt.signed else byte
            table = np.tile(codes, (C, 1))
            pre = {"codes": "int8" if qt.signed else "uint8"}
        else:
            pre = self.preprocessing(C)
            px = np.arange(256, dtype=np.float32)
            table = np.empty((C, 256), dtype=np.int64)
            for c in range(C):
                x = (px * np.float32(pre["input_scale"]) - np.float32(pre["mean"][c])) / np.float32(pre["std"][c])
                table[c] = quantize(x, np.float32(qt.scale), qt.zero_point, qt.lo, qt.hi, mode)
        lay = ir.InputStage("input", [], (H, W, C), (H, W, C), qt, [node.name], table=table,
                            layout="".join(gi.axes), preprocess=pre)
        self.layers.insert(0, lay)
        self.input_layer = lay
        return Act("input", qt, gi.shape, gi.axes)

    def preprocessing_given(self) -> bool:
        """Pixel preprocessing was chosen: an ``input_scale``/``mean``/``std`` option or the model's metadata."""
        meta = {p.key for p in self.model.metadata_props}
        return any(self.user_pre.get(k) is not None or key in meta for k, key in META_KEYS.items())

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
