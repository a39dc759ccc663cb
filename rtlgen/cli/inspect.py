"""``rtlgen inspect``: the integer IR of a model, layer by layer."""

from __future__ import annotations

import json

import click

from ..frontend.optimize import fusion_lines, fusion_report
from .common import load_net, preprocess_options


def _fmt_scale(x):
    return f"{x:.4g}" if x is not None else "-"


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="print {layers, total_macs, total_params, fusion} as JSON")
@click.option("--fusion", is_flag=True, help="also print the graph optimizer's report: per layer, the ONNX nodes it "
              "absorbed and why anything was not folded")
@preprocess_options
def inspect(model, as_json, fusion, input_scale, mean, std, input_codes):
    """Per-layer table of the integer IR of MODEL (an .onnx path or a bundled model name)."""
    net = load_net(model, input_scale, mean, std, input_codes)
    d = net.describe()
    rows = fusion_report(net)
    if as_json:
        d["fusion"] = rows
        click.echo(json.dumps(d, indent=1))
        return
    hdr = f"{'layer':12s} {'op':15s} {'in (HxWxC)':>12s} {'out (HxWxC)':>12s} {'kernel':>7s} {'stride':>6s} {'types (in/w/acc/out)':>24s} {'MACs':>11s} {'params':>8s} {'scales (in -> out)':>22s} requant"
    click.echo(f"model {net.name} ({net.source_format}){'; trailing Softmax dropped (argmax unchanged)' if net.softmax else ''}")
    click.echo(hdr)
    click.echo("-" * len(hdr))
    for L, lay in zip(d["layers"], net.layers):
        shp = lambda s: "x".join(str(v) for v in s)  # noqa: E731
        k = "x".join(str(v) for v in L.get("kernel", [])) or "-"
        st = "x".join(str(v) for v in L.get("stride", [])) if isinstance(L.get("stride"), list) else str(L.get("stride", "-"))
        out_t = L["out"]["dtype"]
        if lay.kind in ("conv", "dense"):
            types = f"{L['in_dtype']}/int8/int{L['acc_bits']}/{out_t}"
            sc = f"{_fmt_scale(L['in_scale'])} -> {_fmt_scale(L['out'].get('scale'))}"
        else:
            types = out_t
            sc = _fmt_scale(L["out"].get("scale"))
        rq = L.get("requant")
        rqs = (rq["kind"] if rq else "-") if lay.kind != "add" else f"shift {L['shift']}"
        if lay.kind == "conv" and L.get("residual"):
            rqs += f" +skip({L['residual']})"
        click.echo(f"{L['name']:12s} {L['op']:15s} {shp(L['in_shape']):>12s} {shp(L['out_shape']):>12s} {k:>7s} {st:>6s} {types:>24s} {L['macs']:>11,d} {L['params']:>8,d} {sc:>22s} {rqs}")
    click.echo("-" * len(hdr))
    click.echo(f"total: {len(net.layers)} layers, {net.total_macs:,d} MACs per frame, {net.total_params:,d} parameters")
    if fusion:
        click.echo("")
        for line in fusion_lines(rows):
            click.echo(line)
