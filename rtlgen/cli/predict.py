"""``rtlgen predict``: top-1 through the golden model on the CIFAR-10 test batch."""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from .common import load_net, preprocess_options


@click.command()
@click.argument("model")
@click.option("--dataset", type=click.Path(), default=None, help="cifar-10-batches-py folder (default: $RTLGEN_CIFAR10)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="first N test images only")
@click.option("--batch", type=click.IntRange(min=1), default=100, show_default=True, help="images per golden-model batch")
@click.option("--json", "as_json", is_flag=True, help='print {"images", "top1", "seconds"} as JSON')
@preprocess_options
def predict(model, dataset, limit, batch, as_json, input_scale, mean, std, input_codes):
    """Top-1 of MODEL through the bit-exact golden model on the CIFAR-10 test batch."""
    import time

    from tqdm import tqdm

    from .. import data, golden

    net = load_net(model, input_scale, mean, std, input_codes)
    x, y = data.load_test(dataset, limit)
    t0 = time.perf_counter()
    with tqdm(total=len(x), unit="img", desc=f"golden {net.name}", disable=as_json or None, file=sys.stderr) as bar:
        pred = golden.predict(net, x, batch=batch, progress=bar.update)
    secs = time.perf_counter() - t0
    top1 = float(np.mean(pred == y)) if len(y) else 0.0
    if as_json:
        click.echo(json.dumps({"images": int(len(x)), "top1": top1, "seconds": round(secs, 3)}))
    else:
        click.echo(f"{net.name}: top-1 {100 * top1:.2f} % on {len(x)} images ({secs:.1f} s, {len(x) / max(secs, 1e-9):.0f} img/s)")
