"""The one table of cores: every core's ``rtlgen core`` entry (parameters, an example builder) and, for the layer
cores, the IR layer it implements. The composition (:mod:`rtlgen.emit.compose`), ``rtlgen core``
(:mod:`rtlgen.cli.core`) and the planner's exact cycle counts (:func:`core_cycles`, passed to
:func:`rtlgen.plan.search.recost`) all read it, so a new core is one module plus entries here.

* :data:`CORES` -- ``rtlgen core NAME`` -> :class:`CoreSpec`; adding a core is one ``_add(CoreSpec(...))``;
* :data:`LAYER_CORES` -- IR layer class -> core class (each a :class:`~rtlgen.cores.interface.LayerCore`); a
  depthwise ``ir.Conv`` (``group == C``, multiplier 1) is :class:`~rtlgen.cores.dwconv.DWConv` (:func:`core_class`);
* :func:`from_plan`, :func:`core_cycles` -- the core of a planned layer, every layer's exact cycles per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from rtlgen import ir
from rtlgen.errors import OptionError

from .interface import PlanContext

__all__ = ["Param", "CoreSpec", "CORES", "LAYER_CORES", "core_class", "from_plan", "core_cycles", "PlanContext"]


@dataclass
class Param:
    type: type  # int, float, str, bool or Path
    default: object
    help: str
    choices: tuple = ()


@dataclass
class CoreSpec:
    name: str
    help: str
    params: dict[str, Param]
    build: Callable  # (p: dict, rng) -> wiring.Component
    needs_weights: bool = False
    extra: dict = field(default_factory=dict)


CORES: dict[str, CoreSpec] = {}


def _add(spec: CoreSpec):
    CORES[spec.name] = spec


def _weights(p, shape, rng, lo=-128, hi=127):
    """``--weights FILE.npy`` (checked against ``shape``) or random integers in ``[lo, hi]`` from ``--seed``."""
    if p.get("weights"):
        path = Path(p["weights"])
        try:
            w = np.load(path)
        except (OSError, ValueError) as e:
            raise OptionError(f"--weights {path}: cannot read a .npy array ({e})") from None
        if tuple(w.shape) != tuple(shape):
            raise OptionError(f"--weights {path}: shape {tuple(w.shape)}, expected {tuple(shape)}")
        w = np.asarray(w).astype(np.int64)
        if w.min() < lo or w.max() > hi:
            raise OptionError(f"--weights {path}: values must lie in [{lo}, {hi}]")
        return w
    return rng.integers(lo, hi + 1, size=shape).astype(np.int64)


def _qtype(signed: bool, zp: int = 0, relu: bool = False):
    lo, hi = (-128, 127) if signed else (0, 255)
    return ir.QType(1.0, zp, signed, 8, zp if relu else lo, hi)


# ---------------------------------------------------------------------------------------------------------- cores

_SEED = {"seed": Param(int, 0, "seed of the random weights"),
         "weights": Param(Path, None, "weights from a .npy file instead of random ones")}
_SHAPE = {"h": Param(int, 8, "input height"), "w": Param(int, 8, "input width"), "c": Param(int, 16, "channels")}


def _fifo(p, rng):
    from .fifo import StreamFIFO

    return StreamFIFO(depth=p["depth"], lanes=p["lanes"], width=p["width"])


_add(CoreSpec("fifo", "stream FIFO (amaranth.lib.fifo.SyncFIFOBuffered)", {
    "depth": Param(int, 16, "entries"), "lanes": Param(int, 1, "lanes per beat"), "width": Param(int, 8, "bits per lane"),
}, _fifo))


def _skid(p, rng):
    from .fifo import SkidBuffer

    return SkidBuffer(lanes=p["lanes"], width=p["width"])


_add(CoreSpec("skid", "skid buffer: full-throughput register slice", {
    "lanes": Param(int, 1, "lanes per beat"), "width": Param(int, 8, "bits per lane"),
}, _skid))


def _lanes(p, rng):
    from .adapters import LaneConverter

    return LaneConverter(p["c"], p["lanes_in"], p["lanes_out"], c_out=p["c_out"] or None, width=p["width"],
                         slots=p["slots"])


_add(CoreSpec("lanes", "lane-width converter (M -> N lanes, preserves last)", {
    "c": Param(int, 3, "channels per input pixel"), "lanes_in": Param(int, 3, "input lanes"),
    "lanes_out": Param(int, 1, "output lanes"), "c_out": Param(int, 0, "values per output pixel (0: same as --c)"),
    "width": Param(int, 8, "bits per lane"),
    "slots": Param(bool, False, "two pixel slots instead of the value buffer (as the composition builds them)"),
}, _lanes))


def _pool(p, rng):
    from .pool import PoolCore
    from rtlgen.quant import fixed_point_multiplier

    H, W, C = p["h"], p["w"], p["c"]
    k, s = p["k"], p["stride"] or p["k"]
    pad = p["pad"]
    req = None
    if p["mode"] == "avg":
        n = H * W if p["global"] else k * k
        m, sh = fixed_point_multiplier(1.0 / n)
        lo, hi = (-128, 127) if p["signed"] else (0, 255)
        req = (int(m), int(sh), p["zp_out"], lo, hi)
    return PoolCore((H, W, C), p["lanes"], p["mode"], (k, k), (s, s), (pad,) * 4, p["global"], p["signed"],
                    p["zp_in"], req)


_add(CoreSpec("pool", "max/avg K x K pooling or global pooling (avg: sum * 1/n requantized, half-to-even)", {
    **_SHAPE, "lanes": Param(int, 1, "channel lanes per beat"), "mode": Param(str, "max", "max or avg", ("max", "avg")),
    "k": Param(int, 2, "kernel size"), "stride": Param(int, 0, "stride (0: = k)"), "pad": Param(int, 0, "padding"),
    "global": Param(bool, False, "global pooling over the frame"), "signed": Param(bool, True, "int8 (else uint8)"),
    "zp_in": Param(int, 0, "input zero point"), "zp_out": Param(int, 0, "output zero point (avg)"),
}, _pool))


def _dense(p, rng):
    from .dense import DenseCore
    from rtlgen.quant import fixed_point_multiplier

    H, W, C, O = p["h"], p["w"], p["c"], p["cout"]
    N = H * W * C
    w = _weights(p, (O, N), rng)
    bias = rng.integers(-(1 << 12), 1 << 12, size=O)
    req = None
    if not p["raw"]:
        m, sh = fixed_point_multiplier(1.0 / (64 * math.sqrt(N)))
        req = (int(m), int(sh), 0, 0 if p["relu"] else -128, 127)
    return DenseCore((H, W, C), w, bias, lanes_in=p["lanes_in"], och_par=p["och_par"], ich_par=p["ich_par"],
                     lanes_out=p["lanes_out"], in_signed=p["signed"], requant=req, storage=p["storage"])


_add(CoreSpec("dense", "fully connected layer (ROM weights, int32 accumulation, bias, requant or raw int32 out)", {
    "h": Param(int, 1, "input height"), "w": Param(int, 1, "input width"), "c": Param(int, 64, "input channels"),
    "cout": Param(int, 10, "outputs"), "lanes_in": Param(int, 1, "input lanes"),
    "och_par": Param(int, 1, "outputs per cycle"), "ich_par": Param(int, 1, "inputs per cycle"),
    "lanes_out": Param(int, 1, "output lanes"), "raw": Param(bool, False, "raw int32 accumulator output"),
    "relu": Param(bool, False, "fused ReLU"), "signed": Param(bool, True, "int8 input (else uint8)"),
    "storage": Param(str, "auto", "weight ROM storage", ("auto", "bram", "uram", "lut")), **_SEED,
}, _dense, needs_weights=True))


def _argmax(p, rng):
    from .argmax import ArgmaxCore

    return ArgmaxCore(p["classes"], p["lanes"], p["width"], p["signed"])


_add(CoreSpec("argmax", "class index of a logits stream (lowest index on ties)", {
    "classes": Param(int, 10, "number of classes"), "lanes": Param(int, 1, "lanes per beat"),
    "width": Param(int, 8, "bits per logit"), "signed": Param(bool, True, "signed logits"),
}, _argmax))


def _input(p, rng):
    from .input_stage import InputStageCore

    C = p["c"]
    if p.get("weights"):
        t = _weights(p, (C, 256), rng, -128, 255)
    else:
        t = np.tile(np.arange(256) - 128, (C, 1))  # pixel - 128 as int8
    return InputStageCore(t, p["lanes"], (p["h"], p["w"], C))


_add(CoreSpec("input", "input stage: uint8 pixels -> per-channel 256-entry table (default: pixel - 128)", {
    "h": Param(int, 32, "height"), "w": Param(int, 32, "width"), "c": Param(int, 3, "channels"),
    "lanes": Param(int, 3, "lanes per beat"),
    "weights": Param(Path, None, "tables from a .npy file [C, 256]"),
}, _input))


def _addcore(p, rng):
    from .add import AddCore

    lo = p["zo"] if p["relu"] else -128
    return AddCore((p["h"], p["w"], p["c"]), p["lanes"], p["za"], p["zb"], p["ma"], p["mb"], p["sh"], p["zo"], lo, 127)


_add(CoreSpec("add", "residual add: clamp(rshift_round((a-za)*ma + (b-zb)*mb, sh) + zo)", {
    **_SHAPE, "lanes": Param(int, 1, "lanes per beat"), "za": Param(int, 0, "zero point of a"),
    "zb": Param(int, 0, "zero point of b"), "ma": Param(int, 1, "multiplier of a"), "mb": Param(int, 1, "multiplier of b"),
    "sh": Param(int, 0, "rounding right shift"), "zo": Param(int, 0, "output zero point"),
    "relu": Param(bool, False, "fused ReLU"),
}, _addcore))


def _shortcut(p, rng):
    from .shortcut_a import ShortcutACore

    return ShortcutACore((p["h"], p["w"], p["c"]), p["stride"], p["pad_before"], p["pad_after"], p["pad_value"],
                         p["lanes_in"], p["lanes_out"])


_add(CoreSpec("shortcut_a", "option-A shortcut: stride-s subsample + zero-point channel padding", {
    **_SHAPE, "stride": Param(int, 2, "subsampling stride"), "pad_before": Param(int, 8, "channels padded before"),
    "pad_after": Param(int, 8, "channels padded after"), "pad_value": Param(int, 0, "pad value (zero point)"),
    "lanes_in": Param(int, 1, "input lanes"), "lanes_out": Param(int, 1, "output lanes"),
}, _shortcut))


def _conv_layer(p, rng):
    """A random (or --weights) int8 convolution layer of the IR with a typical requant."""
    from rtlgen.quant import fixed_point_multiplier

    H, W, C, O, K, s = p["h"], p["w"], p["cin"], p["cout"], p["k"], p["stride"]
    pad = K // 2 if p["pad"] < 0 else p["pad"]
    w = _weights(p, (O, K, K, C), rng)
    bias = rng.integers(-(1 << 12), 1 << 12, size=O).astype(np.int64)
    m, sh = fixed_point_multiplier(np.full(O, 1.0 / (64 * math.sqrt(K * K * C))))
    if p["shift_requant"]:
        m, sh = np.ones(O, dtype=np.int64), np.full(O, int(round(math.log2(64 * math.sqrt(K * K * C)))), dtype=np.int64)
    relu = p["relu"]
    rq = ir.Requant(m=m.astype(np.int64), sh=sh.astype(np.int64), zp_out=0, lo=0 if relu else -128, hi=127)
    Ho, Wo = (H + 2 * pad - K) // s + 1, (W + 2 * pad - K) // s + 1
    return ir.Conv(name="conv", inputs=["x"], in_shape=(H, W, C), out_shape=(Ho, Wo, O), out_q=_qtype(True, 0, relu),
                   weights=w, bias=bias, stride=(s, s), pads=(pad,) * 4, pad_value=0, requant=rq,
                   in_q=_qtype(True), w_scale=np.ones(O), relu=relu)


def _conv(p, rng):
    from .conv import Conv

    return Conv(_conv_layer(p, rng), ich_par=p["ich_par"], och_par=p["och_par"], pix_par=p["pix_par"],
                packing=p["packing"], storage=p["storage"], mult=p["mult"])


_add(CoreSpec("conv", "convolution: line buffer + MAC array (DSP packing), bias, requant, ReLU (random or --weights)", {
    "h": Param(int, 8, "input height"), "w": Param(int, 8, "input width"), "cin": Param(int, 16, "input channels"),
    "cout": Param(int, 16, "output channels"), "k": Param(int, 3, "kernel size (odd)"),
    "stride": Param(int, 1, "stride (1 or 2)"), "pad": Param(int, -1, "padding (-1: k // 2)"),
    "ich_par": Param(int, 1, "input channels per cycle (input lanes)"),
    "och_par": Param(int, 1, "output channels per cycle"), "pix_par": Param(int, 1, "output pixels per cycle (1, 2)"),
    "packing": Param(bool, True, "two int8 MACs per DSP48E2 when pix_par=2"),
    "storage": Param(str, "bram", "weight ROM storage", ("bram", "uram", "lut")),
    "mult": Param(str, "dsp", "multipliers (lut: fabric shift-and-add, pipelined, never packed)", ("dsp", "lut")),
    "relu": Param(bool, False, "fused ReLU"), "shift_requant": Param(bool, False, "power-of-two requant (pure shift)"),
    **_SEED,
}, _conv, needs_weights=True))


def _dwconv(p, rng):
    from .dwconv import DWConv
    from rtlgen.quant import fixed_point_multiplier

    H, W, C, K, s = p["h"], p["w"], p["c"], p["k"], p["stride"]
    pad = K // 2 if p["pad"] < 0 else p["pad"]
    w = _weights(p, (C, K, K, 1), rng)
    bias = rng.integers(-(1 << 10), 1 << 10, size=C).astype(np.int64)
    m, sh = fixed_point_multiplier(np.full(C, 1.0 / (64 * K)))
    relu = p["relu"]
    rq = ir.Requant(m=m.astype(np.int64), sh=sh.astype(np.int64), zp_out=0, lo=0 if relu else -128, hi=127)
    Ho, Wo = (H + 2 * pad - K) // s + 1, (W + 2 * pad - K) // s + 1
    layer = ir.Conv(name="dwconv", inputs=["x"], in_shape=(H, W, C), out_shape=(Ho, Wo, C),
                    out_q=_qtype(True, 0, relu), weights=w, bias=bias, stride=(s, s), pads=(pad,) * 4, pad_value=0,
                    requant=rq, in_q=_qtype(True), w_scale=np.ones(C), relu=relu, group=C)
    return DWConv(layer, ch_par=p["ch_par"], pix_par=p["pix_par"], tap_par=p["tap_par"], packing=p["packing"],
                  storage=p["storage"], mult=p["mult"])


_add(CoreSpec("dwconv", "depthwise convolution (group = channels): line buffer + per-channel MACs (DSP packing), "
              "bias, requant, ReLU (random or --weights [C, K, K, 1])", {
    **_SHAPE, "k": Param(int, 3, "kernel size"), "stride": Param(int, 1, "stride (1 or 2)"),
    "pad": Param(int, -1, "padding (-1: k // 2)"), "ch_par": Param(int, 1, "channels per cycle (input = output lanes)"),
    "pix_par": Param(int, 1, "output pixels per cycle (1, 2)"), "tap_par": Param(int, 1, "kernel taps per cycle"),
    "packing": Param(bool, True, "two int8 MACs per DSP48E2 when pix_par=2"),
    "storage": Param(str, "bram", "weight ROM storage", ("bram", "lut")),
    "mult": Param(str, "dsp", "multipliers", ("dsp", "lut")), "relu": Param(bool, False, "fused ReLU"), **_SEED,
}, _dwconv, needs_weights=True))


def _linebuffer(p, rng):
    from .linebuffer import WindowGen

    K = p["k"]
    pad = K // 2 if p["pad"] < 0 else p["pad"]
    return WindowGen(H=p["h"], W=p["w"], C=p["c"], lanes=p["lanes"], K=K, stride=p["stride"], pads=(pad,) * 4,
                     pad_value=p["pad_value"], pix=p["pix_par"])


_add(CoreSpec("linebuffer", "line buffer / K x K window generator (zero padding with the zero point)", {
    **_SHAPE, "lanes": Param(int, 1, "channel lanes per beat"), "k": Param(int, 3, "window size (odd)"),
    "stride": Param(int, 1, "stride (1 or 2)"), "pad": Param(int, -1, "padding (-1: k // 2)"),
    "pad_value": Param(int, 0, "padding value (input zero point)"), "pix_par": Param(int, 1, "windows per beat (1, 2)"),
}, _linebuffer))


# ---------------------------------------------------------------------------------------------------- layer cores


def _layer_cores() -> dict:
    from .add import AddCore
    from .conv import Conv
    from .dense import DenseCore
    from .input_stage import InputStageCore
    from .pool import PoolCore
    from .requant_core import RequantCore
    from .shortcut_a import ShortcutACore

    return {ir.InputStage: InputStageCore, ir.Conv: Conv, ir.Dense: DenseCore, ir.Pool: PoolCore, ir.Add: AddCore,
            ir.ShortcutA: ShortcutACore, ir.Requantize: RequantCore}


#: IR layer class -> core class (filled on first use: the core modules import Amaranth)
LAYER_CORES: dict = {}


def core_class(layer):
    """The core class implementing ``layer`` (an IR layer): :data:`LAYER_CORES` by IR class, except that an
    ``ir.Conv`` with ``group != 1`` is the depthwise core (:class:`~rtlgen.cores.dwconv.DWConv`) when it is depthwise
    with depth multiplier 1, and has no core otherwise."""
    from rtlgen.errors import RtlgenError

    if not LAYER_CORES:
        LAYER_CORES.update(_layer_cores())
    if isinstance(layer, ir.Conv) and layer.group != 1:
        from rtlgen.plan.geometry import is_depthwise

        if not is_depthwise(layer):
            raise RtlgenError(f"layer {layer.name!r}: no core for a grouped convolution (group={layer.group}, "
                              f"{layer.in_shape[2]} -> {layer.out_shape[2]} channels; depthwise with multiplier 1 only)")
        from .dwconv import DWConv

        return DWConv
    for kind, cls in LAYER_CORES.items():
        if isinstance(layer, kind):
            return cls
    raise RtlgenError(f"layer {layer.name!r}: no core for op {layer.kind!r}")


def from_plan(layer, lp, ctx: PlanContext | None = None):
    """The core of one planned layer (``lp``: its :class:`rtlgen.plan.LayerPlan`; ``ctx``: the residual merges)."""
    return core_class(layer).from_plan(layer, lp, ctx)


def core_cycles(net, plan) -> dict[str, int]:
    """Steady-state cycles per frame of every stage from the cores' own cycle models (``plan_cycles``), with the
    residual merges of the topology (a loop-merged projection runs inside its conv and reports that conv's)."""
    ctx = PlanContext.of(net, plan)
    out = {}
    for lay in net.layers:
        if lay.name in ctx.topo.merged:
            continue
        out[lay.name] = int(core_class(lay).plan_cycles(lay, ctx.plans[lay.name], ctx))
    for a, r in ctx.topo.proj_of.items():
        out[r] = out[a]
    return out
