"""``rtlgen run``: the golden model on your own inputs."""

from __future__ import annotations

import json

import click
import numpy as np

from .common import load_net


@click.command("run")
@click.argument("model")
@click.option("--inputs", "inputs_file", type=click.Path(), required=True,
              help="input samples (.npy) exactly as the ONNX graph input takes them: its dtype and layout (e.g. float32 "
                   "N x 3 x 32 x 32 for the bundled models; int8 NHWC for a TFLite-style graph); one sample without the "
                   "batch axis too")
@click.option("--out", "out_file", type=click.Path(), required=True,
              help="output .npy: the integer codes of the hardware's output per sample (int8/uint8; int32 for raw "
                   "accumulators), in the hardware's NHWC order")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
def run_cmd(model, inputs_file, out_file, as_json):
    """The bit-exact golden model of MODEL on your own inputs (--inputs X.npy) -> --out Y.npy.

    The inputs are quantized by the model's own first quantizer (float graph inputs) or taken as codes (integer graph
    inputs); the output holds the hardware's output integers: the logits feeding a trailing Softmax, otherwise the
    last layer's integers (real value = scale * (q - zero_point), printed with --json)."""
    from .. import golden, userdata
    from ..models import resolve

    x = userdata.load(inputs_file)
    path = resolve(model)
    net = load_net(str(path))
    gi = userdata.graph_input(net, path)
    codes, batched = userdata.graph_codes(gi, x)
    q = golden.run_codes(net, codes)
    out = net[net.output]
    dt = np.int32 if out.out_q is None else (np.int8 if out.out_q.signed else np.uint8)
    y = q.astype(dt)
    userdata.save_atomic(out_file, y if batched else y[0])
    classes = np.argmax(golden.logits(net, q), axis=1)
    scale = None if net.output_scale is None else [float(v) for v in np.ravel(net.output_scale)]
    summary = {
        "model": net.name, "samples": int(len(q)),
        "input": {"name": gi.name, "shape": list(x.shape), "dtype": gi.dtype.name, "layout": gi.layout,
                  "quantizer": {"scale": gi.q.scale, "zero_point": gi.q.zero_point, "range": [gi.q.lo, gi.q.hi],
                                "rounding": gi.rounding} if not gi.is_int else None},
        "output": {"file": str(out_file), "layer": net.output, "shape": list(y.shape if batched else y.shape[1:]),
                   "dtype": np.dtype(dt).name, "order": "NHWC flatten (the hardware's output stream)",
                   "scale": scale[0] if scale and len(set(scale)) == 1 else scale,
                   "zero_point": int(net.output_zero_point), "softmax_dropped": bool(net.softmax)},
        "argmax": classes.tolist(),
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    what = "raw int32 accumulators" if out.out_q is None else np.dtype(dt).name + " codes"
    shown = " ".join(str(int(c)) for c in classes[:20]) + (" ..." if len(classes) > 20 else "")
    click.echo(f"{net.name}: {len(q)} sample(s) ({gi.dtype.name} {gi.layout}) -> {out_file}: {what} of {net.output}, "
               f"shape {tuple(summary['output']['shape'])}" + (" (logits before the dropped Softmax)" if net.softmax else ""))
    click.echo(f"argmax: {shown}")
