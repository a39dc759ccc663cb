"""The importer's symbolic values (each ONNX tensor maps to one: :class:`Const`, :class:`QConst`, :class:`Act`,
:class:`Pending`, see :mod:`rtlgen.frontend`) and the small helpers the op handlers share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from .. import ir
from ..errors import ModelError

META_KEYS = {"input_scale": "rtlgen.input_scale", "mean": "rtlgen.mean", "std": "rtlgen.std"}


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


def conv_as_dense(node, p: Pending, what: str) -> Pending:
    """A pending (unquantized) convolution whose kernel covers its whole input frame (one output pixel, no padding,
    no groups: a 1x1-conv classifier after a global pool, say) as the equivalent pending dense layer, so it may end the
    network with raw accumulators. The conv's ``[O, kh, kw, C]`` weights flatten in the stream's NHWC order."""
    if p.kind == "dense":
        return p
    x = p.inputs[0] if p.inputs else None
    if p.kind != "conv" or p.relu or p.clip or p.residual is not None:
        raise _err(node, f"{what} of an unquantized {p.kind} result")
    pr = p.params
    O, kh, kw, C = pr["weights"].shape
    H, W, _ = _hwc(x)
    if pr.get("group", 1) != 1 or any(pr["pads"]) or (H, W) != (kh, kw):
        raise _err(node, f"{what} of an unquantized conv output that is not a whole-frame (dense) conv")
    params = dict(weights=pr["weights"].reshape(O, -1), bias=pr["bias"], w_scale=pr["w_scale"], bias_bits=pr["bias_bits"])
    return Pending("dense", p.node, (1, O), p.acc_scale, params, [x], nodes=list(p.nodes))
