# amaranth: UnusedElaboratable=no
"""``rtlgen core NAME [--param value ...] -o FILE.v``: any single core as standalone Verilog, for users' own designs.

Each core is one :class:`CoreSpec` in :data:`CORES` (its parameters with types, defaults and help, and a builder
returning the Amaranth component); adding a core is one ``_add(CoreSpec(...))`` entry. Cores needing weights draw
random int8 weights from ``--seed`` or load them from ``--weights FILE.npy``. ``rtlgen core --list`` lists the cores,
``rtlgen core NAME --help`` their parameters. Errors (unknown core or parameter, bad value) are one line on stderr,
exit code 2.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import click
import numpy as np

from .errors import OptionError


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
    from . import ir

    lo, hi = (-128, 127) if signed else (0, 255)
    return ir.QType(1.0, zp, signed, 8, zp if relu else lo, hi)


# ---------------------------------------------------------------------------------------------------------- cores

_SEED = {"seed": Param(int, 0, "seed of the random weights"),
         "weights": Param(Path, None, "weights from a .npy file instead of random ones")}
_SHAPE = {"h": Param(int, 8, "input height"), "w": Param(int, 8, "input width"), "c": Param(int, 16, "channels")}


def _fifo(p, rng):
    from .cores.fifo import StreamFIFO

    return StreamFIFO(depth=p["depth"], lanes=p["lanes"], width=p["width"])


_add(CoreSpec("fifo", "stream FIFO (amaranth.lib.fifo.SyncFIFOBuffered)", {
    "depth": Param(int, 16, "entries"), "lanes": Param(int, 1, "lanes per beat"), "width": Param(int, 8, "bits per lane"),
}, _fifo))


def _skid(p, rng):
    from .cores.fifo import SkidBuffer

    return SkidBuffer(lanes=p["lanes"], width=p["width"])


_add(CoreSpec("skid", "skid buffer: full-throughput register slice", {
    "lanes": Param(int, 1, "lanes per beat"), "width": Param(int, 8, "bits per lane"),
}, _skid))


def _lanes(p, rng):
    from .cores.adapters import LaneConverter

    return LaneConverter(p["c"], p["lanes_in"], p["lanes_out"], c_out=p["c_out"] or None, width=p["width"])


_add(CoreSpec("lanes", "lane-width converter (M -> N lanes, preserves last)", {
    "c": Param(int, 3, "channels per input pixel"), "lanes_in": Param(int, 3, "input lanes"),
    "lanes_out": Param(int, 1, "output lanes"), "c_out": Param(int, 0, "values per output pixel (0: same as --c)"),
    "width": Param(int, 8, "bits per lane"),
}, _lanes))


def _pool(p, rng):
    from .cores.pool import PoolCore
    from .quant import fixed_point_multiplier

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
    from .cores.dense import DenseCore
    from .quant import fixed_point_multiplier

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
    from .cores.argmax import ArgmaxCore

    return ArgmaxCore(p["classes"], p["lanes"], p["width"], p["signed"])


_add(CoreSpec("argmax", "class index of a logits stream (lowest index on ties)", {
    "classes": Param(int, 10, "number of classes"), "lanes": Param(int, 1, "lanes per beat"),
    "width": Param(int, 8, "bits per logit"), "signed": Param(bool, True, "signed logits"),
}, _argmax))


def _input(p, rng):
    from .cores.input_stage import InputStageCore

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
    from .cores.add import AddCore

    lo = p["zo"] if p["relu"] else -128
    return AddCore((p["h"], p["w"], p["c"]), p["lanes"], p["za"], p["zb"], p["ma"], p["mb"], p["sh"], p["zo"], lo, 127)


_add(CoreSpec("add", "residual add: clamp(rshift_round((a-za)*ma + (b-zb)*mb, sh) + zo)", {
    **_SHAPE, "lanes": Param(int, 1, "lanes per beat"), "za": Param(int, 0, "zero point of a"),
    "zb": Param(int, 0, "zero point of b"), "ma": Param(int, 1, "multiplier of a"), "mb": Param(int, 1, "multiplier of b"),
    "sh": Param(int, 0, "rounding right shift"), "zo": Param(int, 0, "output zero point"),
    "relu": Param(bool, False, "fused ReLU"),
}, _addcore))


def _shortcut(p, rng):
    from .cores.shortcut_a import ShortcutACore

    return ShortcutACore((p["h"], p["w"], p["c"]), p["stride"], p["pad_before"], p["pad_after"], p["pad_value"],
                         p["lanes_in"], p["lanes_out"])


_add(CoreSpec("shortcut_a", "option-A shortcut: stride-s subsample + zero-point channel padding", {
    **_SHAPE, "stride": Param(int, 2, "subsampling stride"), "pad_before": Param(int, 8, "channels padded before"),
    "pad_after": Param(int, 8, "channels padded after"), "pad_value": Param(int, 0, "pad value (zero point)"),
    "lanes_in": Param(int, 1, "input lanes"), "lanes_out": Param(int, 1, "output lanes"),
}, _shortcut))


def _conv_layer(p, rng):
    """A random (or --weights) int8 convolution layer of the IR with a typical requant."""
    from . import ir
    from .quant import fixed_point_multiplier

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
    from .cores.conv import Conv

    return Conv(_conv_layer(p, rng), ich_par=p["ich_par"], och_par=p["och_par"], pix_par=p["pix_par"],
                packing=p["packing"], storage=p["storage"])


_add(CoreSpec("conv", "convolution: line buffer + MAC array (DSP packing), bias, requant, ReLU (random or --weights)", {
    "h": Param(int, 8, "input height"), "w": Param(int, 8, "input width"), "cin": Param(int, 16, "input channels"),
    "cout": Param(int, 16, "output channels"), "k": Param(int, 3, "kernel size (odd)"),
    "stride": Param(int, 1, "stride (1 or 2)"), "pad": Param(int, -1, "padding (-1: k // 2)"),
    "ich_par": Param(int, 1, "input channels per cycle (input lanes)"),
    "och_par": Param(int, 1, "output channels per cycle"), "pix_par": Param(int, 1, "output pixels per cycle (1, 2)"),
    "packing": Param(bool, True, "two int8 MACs per DSP48E2 when pix_par=2"),
    "storage": Param(str, "bram", "weight ROM storage", ("bram", "uram", "lut")),
    "relu": Param(bool, False, "fused ReLU"), "shift_requant": Param(bool, False, "power-of-two requant (pure shift)"),
    **_SEED,
}, _conv, needs_weights=True))


def _linebuffer(p, rng):
    from .cores.linebuffer import WindowGen

    K = p["k"]
    pad = K // 2 if p["pad"] < 0 else p["pad"]
    return WindowGen(H=p["h"], W=p["w"], C=p["c"], lanes=p["lanes"], K=K, stride=p["stride"], pads=(pad,) * 4,
                     pad_value=p["pad_value"], pix=p["pix_par"])


_add(CoreSpec("linebuffer", "line buffer / K x K window generator (zero padding with the zero point)", {
    **_SHAPE, "lanes": Param(int, 1, "channel lanes per beat"), "k": Param(int, 3, "window size (odd)"),
    "stride": Param(int, 1, "stride (1 or 2)"), "pad": Param(int, -1, "padding (-1: k // 2)"),
    "pad_value": Param(int, 0, "padding value (input zero point)"), "pix_par": Param(int, 1, "windows per beat (1, 2)"),
}, _linebuffer))


# ---------------------------------------------------------------------------------------------------------- parsing


def _convert(core: str, key: str, prm: Param, text: str):
    try:
        if prm.type is int:
            v = int(text, 0)
        elif prm.type is float:
            v = float(text)
        elif prm.type is Path:
            v = str(text)
        else:
            v = str(text)
    except ValueError:
        raise OptionError(f"core {core}: --{key.replace('_', '-')} needs {prm.type.__name__}, got {text!r}") from None
    if prm.choices and v not in prm.choices:
        raise OptionError(f"core {core}: --{key.replace('_', '-')} must be one of {', '.join(prm.choices)}, got {v!r}")
    return v


def parse_params(spec: CoreSpec, args: list[str]) -> dict:
    """``['--och-par', '8', '--packing', '--k=3']`` -> parameter dict (defaults filled in); OptionError if wrong."""
    p = {k: v.default for k, v in spec.params.items()}
    known = ", ".join("--" + k.replace("_", "-") for k in spec.params)
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise OptionError(f"core {spec.name}: unexpected argument {a!r} (parameters: {known})")
        name, eq, val = a[2:].partition("=")
        key = name.replace("-", "_")
        if key not in spec.params and key.startswith("no_") and key[3:] in spec.params \
                and spec.params[key[3:]].type is bool and not eq:
            p[key[3:]] = False
            i += 1
            continue
        if key not in spec.params:
            raise OptionError(f"core {spec.name}: unknown parameter --{name} (parameters: {known})")
        prm = spec.params[key]
        if prm.type is bool:
            if eq:
                if val.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise OptionError(f"core {spec.name}: --{name} is a flag (use --{name} or --no-{name})")
                p[key] = val.lower() in ("1", "true", "yes")
            else:
                p[key] = True
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args):
                raise OptionError(f"core {spec.name}: --{name} needs a value")
            val = args[i + 1]
            i += 1
        p[key] = _convert(spec.name, key, prm, val)
        i += 1
    return p


def build_core(name: str, args: list[str]):
    """(component, module name) for ``rtlgen core NAME args...``."""
    if name not in CORES:
        raise OptionError(f"unknown core {name!r}; available: {', '.join(CORES)}")
    spec = CORES[name]
    p = parse_params(spec, args)
    rng = np.random.default_rng(p.get("seed", 0))
    try:
        comp = spec.build(p, rng)
    except (ValueError, TypeError, ImportError) as e:
        raise OptionError(f"core {name}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return comp


def _core_help(spec: CoreSpec) -> str:
    lines = [f"rtlgen core {spec.name} [--param value ...] -o FILE.v", "", spec.help, "", "parameters:"]
    for k, prm in spec.params.items():
        flag = "--" + k.replace("_", "-")
        if prm.type is bool:
            flag += f" / --no-{k.replace('_', '-')}"
        ch = f" ({'|'.join(prm.choices)})" if prm.choices else ""
        lines.append(f"  {flag:28s} {prm.help}{ch} [default: {prm.default}]")
    lines.append("  --name MODULE                top module name [default: rtlgen_<core>]")
    return "\n".join(lines)


@click.command("core", context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
               add_help_option=False)
@click.argument("name", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Verilog file to write")
@click.option("--module", "--name", "module", default=None, help="top module name (default rtlgen_<core>)")
@click.option("--list", "list_cores", is_flag=True, help="list the available cores")
@click.option("-h", "--help", "show_help", is_flag=True, help="show this help (with NAME: the core's parameters)")
@click.pass_context
def core(ctx, name, output, module, list_cores, show_help):
    """Emit a single core as standalone Verilog: rtlgen core NAME [--param value ...] -o FILE.v

    Cores: fifo, skid, lanes, pool, dense, argmax, input, add, shortcut_a, conv, linebuffer
    (``rtlgen core --list``; ``rtlgen core NAME --help`` lists a core's parameters). Cores with weights use random
    int8 weights from --seed, or --weights FILE.npy.
    """
    if list_cores:
        for spec in CORES.values():
            click.echo(f"{spec.name:12s} {spec.help}")
        return
    if not name and not show_help:
        raise OptionError("missing core NAME (rtlgen core --list)")
    if show_help:
        click.echo(_core_help(CORES[name]) if name in CORES else ctx.get_help())
        return
    if name not in CORES:
        raise OptionError(f"unknown core {name!r}; available: {', '.join(CORES)}")
    comp = build_core(name, list(ctx.args))
    if not output:
        raise OptionError(f"core {name}: missing -o FILE.v")
    from .simulate import verilog_text

    top = module or f"rtlgen_{name}"
    try:
        text = verilog_text(comp, top)
    except (ValueError, TypeError) as e:
        raise OptionError(f"core {name}: {str(e).splitlines()[0]}") from None
    out = Path(output)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    ports = [f"{k}" for k, v in comp.signature.members.items()]
    click.echo(f"wrote {out}: module {top} (ports {', '.join(ports)}; clk, rst)")


if __name__ == "__main__":  # pragma: no cover
    core(sys.argv[1:])
