"""``rtlgen report DIR [--synth] [--json]``: per-layer balance of a build, a PNG chart, and optionally yosys resources.

The table comes from ``DIR/report.json`` (written by ``rtlgen build``): per layer the parallelism (och/ich/pix), the
predicted cycles per frame, the utilization relative to the slowest stage (cycles / bottleneck cycles: 100 % is the
bottleneck, lower means the stage idles), DSPs, weight storage, FIFO depths and skip-buffer bits. The chart
(``DIR/report.png``, matplotlib Agg) shows per-layer cycles and DSPs with the bottleneck marked.

``--synth`` runs Debian's yosys on ``DIR/rtl/rtlgen_top.v`` (see :mod:`rtlgen.verify.synth`) and compares LUT, FF, DSP48E2,
BRAM (RAMB18/RAMB36) and URAM with the board's capacity; the JSON gets ``"synth": {..., "fits": bool}``.
``--synth-per-module`` synthesizes every layer module out of context (cached) and adds them up, for designs whose
flat yosys run takes hours (:func:`rtlgen.verify.synth.synthesize`).

``--timing [--timing-jobs N]`` estimates the worst register-to-register path of every layer module (yosys per module,
cached in ``DIR/timing/``; :mod:`rtlgen.verify.timing`): a per-module table (Fmax, its range, the path's LUT levels, carry
chains, MUXF, DSPs, start and end register), the design's Fmax (the slowest module) against the build clock, and FPS at
min(clock, Fmax) beside FPS at the clock. With ``--json`` the report JSON gets a ``"timing"`` key:
``{"clock_mhz", "fmax_mhz", "fmax_mhz_optimistic", "fmax_mhz_congested", "meets", "limiting_module", "speed_grade",
"fps_at_clock", "fps_at_fmax", "modules": [{"name", "fmax_mhz", "fmax_mhz_optimistic", "fmax_mhz_congested",
"delay_ns", "path": {"start", "end", "lut_levels", "carry_chains", "muxf", "dsp", "cells", ...}, "io_path", ...}]}``.

The chart needs matplotlib (the ``dev`` extra); without it the report is printed and the chart skipped with a note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import OptionError
from ..figures import fmt_fps, fps


def load_report(build_dir) -> dict:
    d = Path(build_dir)
    if not d.is_dir():
        raise OptionError(f"build folder {str(d)!r} does not exist (run rtlgen build first)")
    f = d / "report.json"
    if not f.exists():
        raise OptionError(f"{str(d)!r} is not an rtlgen build folder (no report.json)")
    try:
        rep = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise OptionError(f"{str(f)!r} is not valid JSON (line {e.lineno})") from None
    if not isinstance(rep, dict) or not isinstance(rep.get("layers"), list) or "cycles_per_frame" not in rep:
        raise OptionError(f"{str(f)!r} is not an rtlgen report (no layers / cycles_per_frame)")
    return rep


def layer_rows(rep: dict) -> list[dict]:
    """One row per layer: the table's (and the JSON's) fields."""
    slow = max((L["cycles"] for L in rep["layers"]), default=0) or 1
    rows = []
    for L in rep["layers"]:
        p = L.get("parallelism", {})
        rows.append({
            "name": L["name"], "op": L["op"],
            "och_par": p.get("och_par"), "ich_par": p.get("ich_par"), "pix_par": p.get("pix_par"),
            "tap_par": p.get("tap_par", 1),
            "packing": bool(L.get("packing")), "mult": L.get("mult"),
            "cycles": int(L["cycles"]),
            "utilization": round(L["cycles"] / slow, 4),
            "bottleneck": L["name"] == rep.get("bottleneck"),
            "dsp": L.get("dsp", 0), "lut": L.get("lut", 0), "bram36": L.get("bram36", 0), "uram": L.get("uram", 0),
            "storage": L.get("storage"),
            "fifo_depth": L.get("fifo_depth"), "skip_fifo_depth": L.get("skip_fifo_depth", 0),
            "skip_buffer_bits": L.get("skip_buffer_bits", 0),
            "macs": L.get("macs", 0),
        })
    return rows


def format_table(rep: dict, rows: list[dict]) -> str:
    hdr = (f"{'layer':12s} {'op':14s} {'och/ich/pix':>11s} {'pack':>4s} {'mult':>4s} {'cycles':>9s} {'util':>6s} "
           f"{'DSP':>5s} {'storage':>7s} {'BRAM36':>6s} {'FIFO':>5s} {'skipFIFO':>8s} {'skip bits':>10s}")
    lines = [f"{rep['model']} on {rep['board']} @ {rep['clock_mhz']} MHz: {rep['cycles_per_frame']:,} cycles/frame "
             f"(bottleneck {rep['bottleneck']}), {fmt_fps(fps(rep['clock_mhz'], rep['cycles_per_frame']))} FPS predicted",
             hdr, "-" * len(hdr)]
    for r in rows:
        par = f"{r['och_par']}/{r['ich_par']}/{r['pix_par']}" + (f"/{r['tap_par']}" if r["tap_par"] > 1 else "")
        mark = " <- bottleneck" if r["bottleneck"] else ""
        lines.append(f"{r['name']:12s} {r['op']:14s} {par:>11s} {'yes' if r['packing'] else 'no':>4s} {r['mult'] if r['op'] in ('conv', 'dense') else '-':>4s} "
                     f"{r['cycles']:>9,d} {100 * r['utilization']:>5.0f}% {r['dsp']:>5g} {r['storage'] or '-':>7s} "
                     f"{r['bram36']:>6g} {r['fifo_depth'] if r['fifo_depth'] is not None else '-':>5} "
                     f"{r['skip_fifo_depth']:>8} {r['skip_buffer_bits']:>10,d}{mark}")
    lines.append("-" * len(hdr))
    res, bud = rep.get("resources", {}), rep.get("budget", {})
    lines.append("predicted: " + ", ".join(f"{k.upper()} {res.get(k, 0):,g}/{bud.get(k, 0):,g}" for k in ("dsp", "lut", "ff", "bram36", "uram"))
                 + f"; skip buffers {rep.get('skip_buffer_bits', 0):,} bits")
    return "\n".join(lines)


def format_synth(s: dict) -> str:
    r, c = s["resources"], s["capacity"]

    def cell(k, label):
        v, cap = r[k], c.get(k)
        if v is None:
            return f"{label} n/a"
        pct = f" ({100 * v / cap:.0f} %)" if cap else ""
        return f"{label} {v:,g}/{cap if cap is not None else '?':,}{pct}" if cap is not None else f"{label} {v:,g}"

    parts = [cell("lut", "LUT"), cell("ff", "FF"), cell("dsp48e2", "DSP48E2"),
             f"BRAM {r['ramb36']} RAMB36 + {r['ramb18']} RAMB18 = " + cell("bram36_equiv", "36Kb-equiv"), cell("uram", "URAM")]
    verdict = ("fits" if s["fits"] else f"does NOT fit ({', '.join(s['over'])} over capacity)") if s["fits"] is not None else "fit unknown (partial synthesis)"
    how = "cached" if s.get("cached") else f"{s['seconds']:.0f} s"
    if s.get("mode") == "per-module":
        how += f", {len(s['modules']) - 1} modules out of context + top glue"
    note = (f"\n  ({len(s['lut_mult_modules'])} modules of LUT-multiplier layers kept out of DSPs as planned; "
            "--synth-raw synthesizes the Verilog as is)") if s.get("lut_mult_modules") else ""
    return f"yosys synth_xilinx -family xcup ({how}): " + "; ".join(parts) + f" -> {verdict}" + note


def write_chart(rep: dict, rows: list[dict], path: Path) -> Path | None:
    """Per-layer cycles (bottleneck in red, dashed line at the bottleneck) and DSPs, as a PNG (None without
    matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in rows]
    x = list(range(len(rows)))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(rows) + 2), 6.5), sharex=True)
    colors = ["tab:red" if r["bottleneck"] else "tab:blue" for r in rows]
    a1.bar(x, [r["cycles"] for r in rows], color=colors)
    a1.axhline(rep["cycles_per_frame"], color="tab:red", ls="--", lw=1)
    b = next((i for i, r in enumerate(rows) if r["bottleneck"]), None)
    if b is not None:
        a1.annotate(f"bottleneck {rows[b]['name']}\n{rows[b]['cycles']:,} cycles", (b, rows[b]["cycles"]),
                    xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", fontsize=8, color="tab:red")
    a1.set_ylabel("cycles / frame")
    a1.set_ylim(0, rep["cycles_per_frame"] * 1.25 if rep["cycles_per_frame"] else 1)
    a1.set_title(f"{rep['model']} on {rep['board']} @ {rep['clock_mhz']} MHz\n"
                 f"{rep['cycles_per_frame']:,} cycles/frame, {fmt_fps(fps(rep['clock_mhz'], rep['cycles_per_frame']))} FPS (predicted)",
                 fontsize=9)
    a2.bar(x, [r["dsp"] for r in rows], color=["tab:red" if r["bottleneck"] else "tab:green" for r in rows])
    a2.set_ylabel("DSP48E2")
    a2.set_ylim(0, max([r["dsp"] for r in rows] + [1]) * 1.15)
    a2.set_xticks(x)
    a2.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    tot, bud = rep.get("resources", {}).get("dsp", 0), rep.get("budget", {}).get("dsp", 0)
    a2.set_title(f"DSPs: {tot:,g} of {bud:,g}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@click.command()
@click.argument("build_dir", type=click.Path())
@click.option("--synth", is_flag=True, help="estimate resources with yosys (synth_xilinx -family xcup) and check the board's capacity")
@click.option("--synth-timeout", type=click.FloatRange(min=1), default=1800, show_default=True, help="seconds before yosys is stopped")
@click.option("--synth-stop", type=click.Choice(["map_ffram"]), default=None,
              help="stop yosys before LUT mapping (fast: DSP/BRAM/URAM final, LUT/FF not reported)")
@click.option("--synth-per-module", is_flag=True,
              help="synthesize each layer module out of context (cached per module) and add them up: for big designs "
                   "whose flat yosys run takes hours")
@click.option("--synth-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="with --synth-per-module: yosys runs at once (one per core)")
@click.option("--synth-raw", is_flag=True, help="synthesize the Verilog as is (default: multipliers of LUT-mult layers kept out of DSPs, as planned)")
@click.option("--timing", is_flag=True,
              help="estimate each layer module's worst register-to-register path and Fmax (yosys per module, cached)")
@click.option("--timing-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="with --timing: yosys runs at once (one per core)")
@click.option("--timing-timeout", type=click.FloatRange(min=1), default=3600, show_default=True,
              help="with --timing: seconds before one module's yosys run is stopped")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--no-chart", is_flag=True, help="do not write DIR/report.png")
def report(build_dir, synth, synth_timeout, synth_stop, synth_per_module, synth_jobs, synth_raw, timing, timing_jobs,
           timing_timeout, as_json, no_chart):
    """Per-layer table of a build (parallelism, cycles, utilization, DSP, storage, FIFOs, skip bits) and a chart
    DIR/report.png; --synth adds yosys resources (LUT, FF, DSP48E2, BRAM, URAM) against the board; --timing an
    estimated Fmax per module and for the design."""
    rep = load_report(build_dir)
    rows = layer_rows(rep)
    chart = None
    if not no_chart:
        chart = write_chart(rep, rows, Path(build_dir) / "report.png")
        if chart is None:
            click.echo("note: chart skipped (matplotlib not installed: pip install matplotlib)", err=True)
    t = None
    if timing:  # first: --synth-per-module then takes the cells of the same yosys netlists
        from ..errors import YosysMissing
        from ..verify import timing as timing_mod

        def progress(name, r):  # on stderr, with --json too (a big design takes a while)
            f = r.get("fmax_mhz")
            click.echo(f"  timing {name}: {f if f else '-'} MHz"
                       + (" (cached)" if r.get("cached") else f" (yosys {r.get('yosys_seconds', 0):.0f} s)"), err=True)

        try:
            t = timing_mod.estimate_build(build_dir, jobs=timing_jobs, progress=progress, timeout=timing_timeout)
        except YosysMissing as e:
            click.echo(f"rtlgen: error: {e}", err=True)
            sys.exit(2)
    s = None
    if synth:
        from ..errors import YosysMissing
        from ..verify.synth import synthesize

        try:
            s = synthesize(build_dir, timeout=synth_timeout, stop=synth_stop, honor_plan=not synth_raw,
                           per_module=synth_per_module, jobs=synth_jobs)
        except YosysMissing as e:
            click.echo(f"rtlgen: error: {e}", err=True)
            sys.exit(2)
    if as_json:
        keys = ("model", "board", "clock_mhz", "cycles_per_frame", "bottleneck", "total_macs", "resources", "budget",
                "skip_buffer_bits")
        out = {k: rep.get(k) for k in keys}
        out["fps"] = fps(rep["clock_mhz"], rep["cycles_per_frame"])
        out["layers"] = rows
        out["chart"] = str(chart) if chart else None
        if s is not None:
            out["synth"] = {k: s[k] for k in ("resources", "capacity", "over", "fits", "complete", "seconds", "cached", "yosys", "script",
                                             "lut_mult_modules", "mode")}
            if "modules" in s:
                out["synth"]["modules"] = s["modules"]
            out["fits"] = s["fits"]
        if t is not None:
            out["timing"] = t
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(format_table(rep, rows))
    if s is not None:
        click.echo(format_synth(s))
    if t is not None:
        from ..verify.timing import format_table as format_timing

        click.echo(format_timing(t))
    if chart:
        click.echo(f"wrote {chart}")
