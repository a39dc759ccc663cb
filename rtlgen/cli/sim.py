"""``rtlgen sim``: RTL simulation of a build against the golden model (:mod:`rtlgen.verify.sim`)."""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from ..figures import fmt_fps


@click.command()
@click.argument("build_dir", type=click.Path())
@click.option("--dataset", type=click.Path(), default=None, help="cifar-10-batches-py folder (default: $RTLGEN_CIFAR10)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="number of CIFAR-10 test images (default 10)")
@click.option("--random", "n_random", type=click.IntRange(min=1), default=None, help="N random uint8 images instead of CIFAR-10")
@click.option("--inputs", "inputs_file", type=click.Path(), default=None,
              help="your own frames (.npy): uint8 pixels N x H x W x C (or N x C x H x W for an NCHW model), or the "
                   "graph input's own form where it maps exactly onto pixels")
@click.option("--stall", type=click.FloatRange(0.0, 0.95), default=0.0, show_default=True, help="probability of an input/output stall per cycle")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--waves", is_flag=True, help="dump an FST waveform into BUILD_DIR/sim_build")
@click.option("--scheduler", default=None, metavar="ADDR",
              help="shard the frames over a running Dask cluster (tcp://HOST:PORT; default: $RTLGEN_DASK_SCHEDULER, "
                   "else local processes; needs pip install \"dask[distributed]\")")
@click.option("--shards", type=click.IntRange(min=1), default=None,
              help="harness processes / Dask tasks (default: one per core)")
def sim(build_dir, dataset, limit, n_random, inputs_file, stall, seed, as_json, waves, scheduler, shards):
    """RTL-simulate a built design (Verilator) on N frames back to back; check every output against the golden model."""
    from .. import data
    from ..verify.sim import run_sim

    if n_random is not None and (dataset is not None or limit is not None):
        raise click.UsageError("--random excludes --dataset/--limit")
    if inputs_file is not None and (n_random is not None or dataset is not None or limit is not None):
        raise click.UsageError("--inputs excludes --random/--dataset/--limit")
    labels = None
    if inputs_file is not None:
        from pathlib import Path

        from .. import userdata
        from ..verify.sim import load_design

        x = userdata.load(inputs_file)  # before the design: a bad file is named first
        net, _, _ = load_design(build_dir)
        pixels = userdata.pixels(net, userdata.graph_input(net, Path(build_dir) / "model.onnx"), x)
    elif n_random is not None:
        rng = np.random.default_rng(seed)
        from ..verify.sim import load_design

        net, _, _ = load_design(build_dir)
        pixels = rng.integers(0, 256, size=(n_random, *net.input.out_shape), dtype=np.uint8)
    else:
        pixels, labels = data.load_test(dataset, limit or 10)
    extra = {k: v for k, v in (("scheduler", scheduler), ("shards", shards)) if v is not None}
    res = run_sim(build_dir, pixels, labels, stall=stall, waves=waves, seed=seed, **extra)
    if as_json:
        keys = ("images", "mismatches", "top1", "cycles_per_frame", "latency_cycles", "fps_at_clock")
        click.echo(json.dumps({k: res[k] for k in keys} | {k: v for k, v in res.items() if k not in keys}))
    else:
        n = lambda v: "-" if v is None else f"{v:,}"  # noqa: E731
        click.echo(f"{res['images']} frames, {res['mismatches']} mismatches; {n(res['cycles_per_frame'])} cycles/frame "
                   f"measured (predicted {n(res['predicted_cycles_per_frame'])}), latency {n(res['latency_cycles'])} "
                   f"cycles, {fmt_fps(res['fps_at_clock'])} FPS at clock"
                   + (f", top-1 {100 * res['top1']:.2f} %" if res["top1"] is not None else ""))
    if res["mismatches"]:
        click.echo(f"MISMATCH: first in frame {res['first_mismatch_frame']}; first differing layer: "
                   f"{res.get('first_differing_layer') or 'none of the probed layers (output stage)'}", err=True)
        sys.exit(1)
