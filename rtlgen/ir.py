"""Integer IR: a small graph of hardware-meaningful layers with explicit integer types.

Conventions
-----------
* Activations are integer tensors laid out NHWC (raster order, channels innermost: the order the hardware
  streams them). Each activation carries a :class:`QType` (``real = scale * (q - zero_point)``), 8 bits,
  signed (int8) or unsigned (uint8), with an inclusive clamp range ``[lo, hi]``.
* Weights are int8 with zero point 0, stored ``[O, Kh, Kw, C]`` (conv; ``[O, Kh, Kw, C/group]`` for a grouped or
  depthwise conv, output channel ``o`` reading input channels of group ``o // (O/group)``) or ``[O, C]`` (dense, input
  in NHWC flatten order). Biases are integers at the accumulator scale ``s_in * s_w[o]``; the input zero point is
  folded into them (``bias - zp_in * sum(w[o])``) so the MAC array multiplies raw activations and pads with
  the input zero point.
* Every requantization is ``clamp(rshift_round(v * m[o], sh[o]) + zp_out, lo, hi)`` (see :mod:`rtlgen.quant`);
  a fused ReLU is just ``lo = zp_out``. A conv's requant may end in an exact left shift (``Requant.out_shift``: a
  folded finer-scale requantization, see :mod:`rtlgen.frontend.optimize`).
* A :class:`Conv` may carry a merged residual: the skip value ``(x_skip - zp_skip) * res_m[o]`` is added to
  ``acc * m[o]`` before the shared rounding shift. This is exact when the source model adds the skip to the
  un-requantized convolution output (as rtlgen's Brevitas models do).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .quant import bits_signed, is_pow2_multiplier


@dataclass
class QType:
    scale: float
    zero_point: int
    signed: bool
    bits: int = 8
    lo: int = -128
    hi: int = 127

    @property
    def dtype(self) -> str:
        return ("int" if self.signed else "uint") + str(self.bits)

    def to_json(self):
        return {"scale": self.scale, "zero_point": self.zero_point, "dtype": self.dtype, "range": [self.lo, self.hi]}


@dataclass
class Requant:
    m: np.ndarray  # int64 [O] (or scalar-shaped [1])
    sh: np.ndarray  # int64 [O]
    zp_out: int
    lo: int
    hi: int
    rounding: str = "half_even"
    out_shift: int = 0  # exact left shift after the clamp: ((out - zp_out) << out_shift) + zp_out (zp_out 0 in hardware)
    out_hi: int | None = None  # with out_shift: saturation of the shifted value (min(shifted, out_hi))

    @property
    def kind(self) -> str:
        return "shift" if is_pow2_multiplier(self.m) else "multiplier"

    def to_json(self):
        d = {
            "kind": self.kind,
            "rounding": self.rounding,
            "m": self.m.tolist(),
            "shift": self.sh.tolist(),
            "zp_out": self.zp_out,
            "clamp": [self.lo, self.hi],
        }
        if self.out_shift:
            d["out_shift"] = self.out_shift
        if self.out_hi is not None:
            d["out_hi"] = self.out_hi
        return d


@dataclass
class Layer:
    name: str
    inputs: list[str]
    in_shape: tuple[int, int, int]  # H, W, C of the first input
    out_shape: tuple[int, int, int]  # H, W, C
    out_q: QType | None  # None: raw int32 accumulator output (final dense layer without output quant)
    source_nodes: list[str] = field(default_factory=list)

    kind = "layer"

    @property
    def macs(self) -> int:
        return 0

    @property
    def params(self) -> int:
        return 0

    def describe(self) -> dict:
        d = {
            "name": self.name,
            "op": self.kind,
            "inputs": list(self.inputs),
            "in_shape": list(self.in_shape),
            "out_shape": list(self.out_shape),
            "out": self.out_q.to_json() if self.out_q else {"dtype": "int32", "scale": None},
            "macs": self.macs,
            "params": self.params,
            "source_nodes": list(self.source_nodes),
        }
        return d


@dataclass
class InputStage(Layer):
    """Raw uint8 RGB pixels -> per-channel 256-entry table -> first layer's 8-bit input."""

    table: np.ndarray = None  # int64 [C, 256]
    layout: str = "NCHW"  # layout of the source model's graph input
    preprocess: dict = field(default_factory=dict)  # input_scale, mean, std actually used for the table

    kind = "input"

    @property
    def params(self):
        return int(self.table.size)

    @property
    def passthrough(self) -> bool:
        """The table is the identity on the 8-bit bus (every channel maps byte ``b`` to the code whose two's-complement
        byte is ``b``: an integer graph input fed as it is): the input stage holds no table."""
        return table_is_identity(self.table)

    def describe(self):
        d = super().describe()
        d.update(layout=self.layout, preprocess=self.preprocess)
        return d


def table_is_identity(table) -> bool:
    """``table`` ``[C, 256]`` maps every byte onto itself (codes taken modulo 256)."""
    t = np.asarray(table, dtype=np.int64)
    return t.ndim == 2 and t.shape[1] == 256 and bool(np.all((t & 0xFF) == np.arange(256)))


@dataclass
class Conv(Layer):
    weights: np.ndarray = None  # int64 [O, Kh, Kw, C], int8 range
    bias: np.ndarray = None  # int64 [O] at accumulator scale, input zero point folded in
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    pad_value: int = 0  # input zero point
    requant: Requant = None
    in_q: QType = None
    w_scale: np.ndarray = None  # float [O]
    bias_bits: int = 32  # width of the bias as stored in the source model (16 or 32)
    residual: str | None = None  # name of the merged skip input (also in inputs[1])
    res_m: np.ndarray | None = None  # int64 [O]
    res_zp: int = 0
    res_q: QType | None = None
    relu: bool = False
    group: int = 1  # grouped convolution: weights [O, Kh, Kw, C/group]; group == C is depthwise (O = C * multiplier)

    kind = "conv"

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.in_shape[2]

    @property
    def kernel(self):
        return tuple(self.weights.shape[1:3])

    @property
    def macs(self):
        H, W, _ = self.out_shape
        return int(H * W * self.weights.size)

    @property
    def params(self):
        return int(self.weights.size + self.bias.size)

    def acc_range(self) -> tuple[int, int]:
        """Worst-case MAC accumulator range over all inputs in the input's range (bias included)."""
        return _mac_range(self.weights.reshape(self.weights.shape[0], -1), self.bias, self.in_q)

    def post_range(self) -> tuple[int, int]:
        """Worst-case range of ``acc * m + res * res_m`` (the requant input)."""
        lo, hi = _mac_range(self.weights.reshape(self.weights.shape[0], -1), self.bias, self.in_q, per_channel=True)
        m = self.requant.m
        plo, phi = lo * m, hi * m
        if self.residual is not None:
            rlo = (self.res_q.lo - self.res_zp) * self.res_m
            rhi = (self.res_q.hi - self.res_zp) * self.res_m
            plo, phi = plo + np.minimum(rlo, rhi), phi + np.maximum(rlo, rhi)
        return int(plo.min()), int(phi.max())

    @property
    def acc_bits(self) -> int:
        return bits_signed(*self.acc_range())

    def describe(self):
        d = super().describe()
        d.update(
            kernel=list(self.kernel),
            stride=list(self.stride),
            pads=list(self.pads),
            in_dtype=self.in_q.dtype,
            weight_dtype="int8",
            bias_bits=self.bias_bits,
            acc_bits=self.acc_bits,
            post_bits=bits_signed(*self.post_range()),
            requant=self.requant.to_json(),
            relu=self.relu,
            residual=self.residual,
            w_scale=[float(s) for s in self.w_scale],
            in_scale=self.in_q.scale,
        )
        if self.group != 1:
            d["group"] = self.group
        return d


@dataclass
class Dense(Layer):
    weights: np.ndarray = None  # int64 [O, C]; C in NHWC flatten order of the input
    bias: np.ndarray = None  # int64 [O], zero point folded
    requant: Requant | None = None  # None: raw accumulator output
    in_q: QType = None
    w_scale: np.ndarray = None
    acc_scale: np.ndarray = None  # float [O]: real value of one accumulator LSB (for raw output)
    bias_bits: int = 32
    relu: bool = False

    kind = "dense"

    @property
    def macs(self):
        return int(self.weights.size)

    @property
    def params(self):
        return int(self.weights.size + self.bias.size)

    def acc_range(self):
        return _mac_range(self.weights, self.bias, self.in_q)

    @property
    def acc_bits(self):
        return bits_signed(*self.acc_range())

    def describe(self):
        d = super().describe()
        d.update(
            in_dtype=self.in_q.dtype,
            weight_dtype="int8",
            bias_bits=self.bias_bits,
            acc_bits=self.acc_bits,
            requant=self.requant.to_json() if self.requant else None,
            relu=self.relu,
            w_scale=[float(s) for s in self.w_scale],
            in_scale=self.in_q.scale,
        )
        return d


@dataclass
class Add(Layer):
    """Standalone residual add: ``clamp(rshift_round((a-za)*ma + (b-zb)*mb, sh) + zo, lo, hi)``."""

    a_q: QType = None
    b_q: QType = None
    ma: int = 1
    mb: int = 1
    sh: int = 0
    zp_out: int = 0
    rounding: str = "half_even"
    relu: bool = False
    out_shift: int = 0  # exact left shift after the clamp (zero point 0), as Requant.out_shift
    clamp: tuple[int, int] | None = None  # clamp before out_shift (None: out_q's range)
    out_hi: int | None = None  # with out_shift: saturation of the shifted value

    kind = "add"

    @property
    def bounds(self) -> tuple[int, int]:
        return self.clamp if self.clamp is not None else (self.out_q.lo, self.out_q.hi)

    def describe(self):
        d = super().describe()
        d.update(ma=self.ma, mb=self.mb, shift=self.sh, relu=self.relu, rounding=self.rounding)
        if self.out_shift:
            d.update(out_shift=self.out_shift, clamp=list(self.bounds), out_hi=self.out_hi)
        return d


@dataclass
class Requantize(Layer):
    """Elementwise requant of one activation (a Quant chain that changes scale or range)."""

    in_q: QType = None
    m: int = 1
    sh: int = 0
    rounding: str = "half_even"

    kind = "requant"


@dataclass
class Pool(Layer):
    """Max or average K x K pooling; ``global`` pools the whole frame. Average: sum then requant."""

    mode: str = "max"  # max | avg
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    is_global: bool = False
    in_q: QType = None
    requant: Requant | None = None  # avg only: applied to sum(q - zp_in) over the window

    @property
    def kind(self):
        return ("global_" if self.is_global else "") + self.mode + "pool"

    def describe(self):
        d = super().describe()
        d.update(kernel=list(self.kernel), stride=list(self.stride), pads=list(self.pads))
        if self.requant is not None:
            d["requant"] = self.requant.to_json()
        return d


@dataclass
class ShortcutA(Layer):
    """Parameter-free "option A" shortcut: stride-s subsample + zero (zero-point) channel padding."""

    stride: int = 2
    pad_before: int = 0
    pad_after: int = 0
    pad_value: int = 0

    kind = "shortcut_a"

    def describe(self):
        d = super().describe()
        d.update(stride=self.stride, pad_channels=[self.pad_before, self.pad_after])
        return d


@dataclass
class Network:
    name: str
    layers: list[Layer]
    output: str
    source_format: str
    softmax: bool = False  # a trailing Softmax was dropped (kept out of hardware; argmax unchanged)
    output_scale: np.ndarray | None = None  # float per output: logits = scale * (q - zp)
    output_zero_point: int = 0
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        self.by_name = {layer.name: layer for layer in self.layers}

    def __getitem__(self, name) -> Layer:
        return self.by_name[name]

    @property
    def input(self) -> InputStage:
        return self.layers[0]

    @property
    def total_macs(self):
        return sum(layer.macs for layer in self.layers)

    @property
    def total_params(self):
        return sum(layer.params for layer in self.layers if layer.kind != "input")

    def consumers(self, name):
        return [layer for layer in self.layers if name in layer.inputs]

    def describe(self) -> dict:
        return {
            "model": self.name,
            "source_format": self.source_format,
            "layers": [layer.describe() for layer in self.layers],
            "output": self.output,
            "softmax_dropped": self.softmax,
            "total_macs": self.total_macs,
            "total_params": self.total_params,
        }

    def to_json(self) -> str:
        return json.dumps(self.describe(), indent=1)


def _mac_range(w2d: np.ndarray, bias: np.ndarray, in_q: QType, per_channel: bool = False):
    """Exact worst case of ``bias[o] + sum_k w[o,k] * x_k`` for ``x_k`` in ``[in_q.lo, in_q.hi]``."""
    w = w2d.astype(np.int64)
    pos = np.where(w > 0, w, 0)
    neg = np.where(w < 0, w, 0)
    hi = bias + (pos * in_q.hi).sum(1) + (neg * in_q.lo).sum(1)
    lo = bias + (pos * in_q.lo).sum(1) + (neg * in_q.hi).sum(1)
    if per_channel:
        return lo, hi
    return int(lo.min()), int(hi.max())
