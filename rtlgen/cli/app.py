"""The ``rtlgen`` command group: every RtlgenError and click usage error is one line on stderr and exit code 2."""

from __future__ import annotations

import sys

import click

from ..errors import RtlgenError


class _Group(click.Group):
    """Turns every RtlgenError (and the data/toolchain errors) and click's usage errors into one line on stderr and
    exit code 2."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("rtlgen: aborted", err=True)
            sys.exit(1)
        except click.ClickException as e:
            msg = " ".join(e.format_message().split())
            click.echo(f"rtlgen: error: {msg}", err=True)
            sys.exit(2)
        if isinstance(rv, int):
            sys.exit(rv)
        return rv

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RtlgenError as e:
            click.echo(f"rtlgen: error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="rtlgen")
def main():
    """rtlgen: quantized ResNet (ONNX) -> streaming dataflow accelerator in Verilog, bit-exact to a NumPy golden model."""
