"""``rtlgen build``: plan and generate an accelerator (:mod:`rtlgen.flow`)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import click

from ..errors import RtlgenError
from ..figures import fmt_fps
from ..plan import SEARCHES
from .common import _floats, preprocess_options, resource_line


@click.command()
@click.argument("model", required=False)
@click.option("--board", default="kv260", show_default=True, help="kv260, ultra96v2 or generic (with --budget)")
@click.option("--clock-mhz", type=click.FloatRange(min=0.0, min_open=True), default=None, help="clock for FPS figures (default 250 for kv260, 214.29 for ultra96v2)")
@click.option("--budget", default=None, help="resource budget dsp=…,lut=…,ff=…,bram36=…,uram=… (overrides the board's)")
@click.option("--plan", "plan_file", type=click.Path(), default=None, help="use this plan.json instead of planning")
@click.option("--out", "out_dir", type=click.Path(), default="build", show_default=True, help="output folder: new, empty or an earlier rtlgen build (replaced atomically; anything else is refused)")
@click.option("--no-lut-mult", is_flag=True, help="never implement multipliers in LUTs")
@click.option("--no-packing", is_flag=True, help="never pack two int8 MACs into one DSP48E2")
@click.option("--search", type=click.Choice(SEARCHES), default="greedy", show_default=True,
              help="planner search: knapsack also spends the DSPs by dynamic programming (faster plans where DSPs and "
                   "LUTs both bind; slower to plan)")
@click.option("--taps/--no-taps", default=True, show_default=True,
              help="let the planner use tap parallelism (several kernel taps per cycle: finer steps between "
                   "configurations, at the cost of line-buffer copies)")
@click.option("--input-fold/--no-input-fold", default=True, show_default=True,
              help="let the planner take two pixels per input beat (pixel pairs folded into the stem convolution's "
                   "channels, rtlgen.plan.fold) where the input stream bounds the frame")
@click.option("--no-rtl", is_flag=True, help="plan and report only (skip composition and Verilog)")
@click.option("--tdata-width", type=click.Choice(["32", "64", "128"]), default="64", show_default=True,
              help="board-level AXI4-Stream input width (kv260/ultra96v2 builds write DIR/vivado and DIR/driver)")
@click.option("--timing", is_flag=True, default=False,
              help="after the build, the pre-Vivado timing estimate (yosys per layer module, one per core; minutes "
                   "for big designs; the same as rtlgen report DIR --timing). Without it the estimate is printed when "
                   "yosys is here and every module's is cached (a rebuild into the same folder keeps the cache)")
@click.option("--json", "as_json", is_flag=True, help="print report.json")
@preprocess_options
def build(model, board, clock_mhz, budget, plan_file, out_dir, no_lut_mult, no_packing, search, taps, input_fold,
          no_rtl, timing, tdata_width, as_json, input_scale, mean, std, input_codes):
    """Plan and generate the accelerator for MODEL (default: the bundled ResNet8) into --out DIR."""
    from ..flow import STEPS, BuildConfig, Design
    from ..outdir import check_out_dir

    check_out_dir(out_dir)  # before any work: never replaces what rtlgen did not write
    if timing:
        from ..toolchain import yosys_path

        if no_rtl:
            raise click.UsageError("--timing needs the RTL (drop --no-rtl)")
        if _timing_module() is None:
            raise click.UsageError("--timing: this rtlgen has no timing estimate (rtlgen.verify.timing)")
        if not yosys_path():
            raise click.UsageError("--timing needs yosys on PATH (apt-get install yosys)")
    cfg = BuildConfig(board=board, clock_mhz=clock_mhz, budget=budget, input_scale=input_scale,
                      mean=_floats(mean, "--mean"), std=_floats(std, "--std"), input_codes=input_codes, plan_file=plan_file,
                      allow_lut_mult=not no_lut_mult, allow_packing=not no_packing, search=search, taps=taps,
                      input_fold=input_fold, tdata_width=int(tdata_width),
                      steps=tuple(s for s in STEPS if not (no_rtl and s in ("compose", "verilog"))))
    d = Design.load(model, cfg)
    d.plan()
    rep = d.build(out_dir)
    if as_json:
        t = _timing_after_build(out_dir, timing, quiet=True)
        click.echo(json.dumps(rep | ({"timing": t} if t is not None else {}), indent=1))
        return
    # every figure below is report.json's (DIR/report.json): printed as stored, never re-rounded
    click.echo(f"{rep['model']} on {rep['board']} @ {rep['clock_mhz']} MHz: {rep['cycles_per_frame']:,} cycles/frame "
               f"(bottleneck {rep['bottleneck']}), {fmt_fps(rep['fps'])} FPS predicted")
    click.echo(f"resources (planner) / {rep['board']} budget: {resource_line(rep['resources'], rep.get('budget', {}))}; "
               f"skip buffers {rep['skip_buffer_bits']:,} bits")
    if rep.get("input_fold", 1) > 1:
        click.echo(f"input: {rep['input_fold']} pixels per beat (the input stream bounded the frame: pixel pairs folded "
                   f"into {rep['input_fold_stem']}'s channels, rtlgen.plan.fold; --no-input-fold keeps one)")
    if rep.get("fusion"):
        f = rep["fusion"]
        left = [r["layer"] for r in f["layers"] if r["op"] in ("requant", "add")]
        click.echo(f"graph optimizer: {f['folded']} requantizations/adds folded, {f['kept']} kept"
                   + (f" ({', '.join(left)} stay cores)" if left else "") + "; per layer: report.md, rtlgen inspect --fusion")
    rtl = not no_rtl
    vivado = rtl and (Path(out_dir) / "vivado" / "build.tcl").exists()
    extra = (", rtl/" if rtl else "") + (", vivado/, driver/" if vivado else "")
    click.echo(f"wrote {out_dir}/ (plan.json, report.json, report.md{extra})")
    t = _timing_after_build(out_dir, timing) if rtl else None
    click.echo("next:")
    q = shlex.quote(str(out_dir))
    steps = []
    if rtl:
        steps.append((f"rtlgen sim {q} --random 10", "RTL simulation, every output checked against the golden model"))
    timed = rtl and _timing_module() is not None and t is None
    steps.append((f"rtlgen report {q}" + (" --timing" if timed else ""),
                  "per-layer table" + (" and the pre-Vivado timing estimate (yosys; minutes)" if timed else "")))
    if vivado:
        steps.append((f"vivado -mode batch -source {shlex.quote(str(Path(out_dir) / 'vivado' / 'build.tcl'))}",
                      "bitstream (needs Vivado; the flow is untested in Vivado)"))
    w = max(len(c) for c, _ in steps)
    for c, why in steps:
        click.echo(f"  {c:{w}s}  # {why}")


def _timing_module():
    """rtlgen.verify.timing (the pre-Vivado timing estimate) if this install has it, else None."""
    try:
        from ..verify import timing
    except ImportError as e:
        if e.name != "rtlgen.verify.timing":
            raise
        return None
    return timing if hasattr(timing, "estimate_build") else None


def _timing_after_build(out_dir, wanted: bool, quiet: bool = False) -> dict | None:
    """``build --timing``: the timing estimate through rtlgen.verify.timing's public API, printed as ``report --timing``
    (``quiet``: returned only). The build is complete by then: a failing estimate is reported on stderr, not fatal."""
    timing = _timing_module()
    if timing is None:
        return None
    if not wanted:
        # without --timing: printed when yosys is here and every module's estimate is cached (a rebuild keeps
        # DIR/timing, keyed by each module's Verilog); never a yosys run
        from ..toolchain import yosys_path

        if not yosys_path():
            return None
        try:
            t = timing.estimate_build(out_dir, only_cached=True)
        except RtlgenError:
            return None
        if t is not None and not quiet:
            click.echo(timing.format_table(t))
        return t
    if not quiet:
        click.echo("timing estimate (yosys, each layer module out of context; minutes for big designs)...", err=True)
    try:
        t = timing.estimate_build(out_dir, jobs=os.cpu_count() or 1)
    except RtlgenError as e:
        click.echo(f"rtlgen: timing estimate failed (the build is complete): {e}", err=True)
        return None
    if not quiet:
        click.echo(timing.format_table(t))
    return t
