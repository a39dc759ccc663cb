# amaranth: UnusedElaboratable=no
"""``rtlgen core NAME [--param value ...] -o FILE.v``: any single core as standalone Verilog, for users' own designs.

Each core is one :class:`~rtlgen.cores.registry.CoreSpec` in :data:`rtlgen.cores.registry.CORES` (its parameters
with types, defaults and help, and a builder returning the Amaranth component). Cores needing weights draw
random int8 weights from ``--seed`` or load them from ``--weights FILE.npy``. ``rtlgen core --list`` lists the cores,
``rtlgen core NAME --help`` their parameters. Errors (unknown core or parameter, bad value) are one line on stderr,
exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from rtlgen.cores.hardmul import FAMILIES, mult18x18d_model, mult_family
from rtlgen.cores.registry import CORES, CoreSpec, Param

from ..errors import OptionError

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
@click.option("--family", type=click.Choice(sorted(FAMILIES)), default="xcup", show_default=True,
              help="device family of the hard multipliers: xcup infers DSP48E2 (yosys/Vivado pack its registers), "
                   "ecp5 instantiates MULT18X18D with its input and output registers")
@click.option("--sim-model", type=click.Path(dir_okay=False), default=None,
              help="with --family ecp5: also write a Verilog simulation model of MULT18X18D to this file "
                   "(yosys ships none); never pass it to synthesis")
@click.option("--list", "list_cores", is_flag=True, help="list the available cores")
@click.option("-h", "--help", "show_help", is_flag=True, help="show this help (with NAME: the core's parameters)")
@click.pass_context
def core(ctx, name, output, module, family, sim_model, list_cores, show_help):
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
    from ..emit.verilog import verilog_text

    with mult_family(family):  # the core's stage counts and its products are the family's
        comp = build_core(name, list(ctx.args))
        if not output:
            raise OptionError(f"core {name}: missing -o FILE.v")
        if sim_model and family != "ecp5":
            raise OptionError("--sim-model: only with --family ecp5 (xcup cores instantiate no primitive)")
        top = module or f"rtlgen_{name}"
        outs = [Path(output)] + ([Path(sim_model)] if sim_model else [])
        for out, opt in zip(outs, ("-o", "--sim-model")):
            if out.is_dir():
                raise OptionError(f"{opt}: {str(out)!r} is a folder, not a .v file")
            if out.exists() and not _written_by_rtlgen(out):
                raise OptionError(f"{opt}: refusing to overwrite {str(out)!r}: it was not written by rtlgen core")
        try:
            text = verilog_text(comp, top)
        except (ValueError, TypeError) as e:
            raise OptionError(f"core {name}: {str(e).splitlines()[0]}") from None
    fam = "" if family == "xcup" else f" --family {family}"
    texts = [f"// {_HEADER} {name} {' '.join(ctx.args)}{fam}\n" + text]
    if sim_model:
        texts.append(f"// {_HEADER}: MULT18X18D simulation model\n" + mult18x18d_model())
    for out, t in zip(outs, texts):
        if out.parent and not out.parent.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(t)
    out = outs[0]
    ports = [f"{k}" for k, v in comp.signature.members.items()]
    click.echo(f"wrote {out}: module {top} (ports {', '.join(ports)}; clk, rst)")


_HEADER = "Generated by rtlgen core"


def _written_by_rtlgen(path: Path) -> bool:
    """True if ``path`` starts with the header ``rtlgen core`` writes (so ``-o`` may overwrite it)."""
    try:
        with open(path, errors="replace") as f:
            return f.readline().startswith(f"// {_HEADER}")
    except OSError:
        return False


if __name__ == "__main__":  # pragma: no cover
    core(sys.argv[1:])
