"""Rendering of measured results shared by the benchmark scripts (``tools/bench.py`` renders BENCHMARKS.md,
``tools/calibrate.py`` measures the calibration tables): neither imports the other for it."""

from __future__ import annotations


def calibration_table(c: dict) -> list[str]:
    """Markdown rows of one build's per-layer planner-vs-yosys comparison (``tools/calibrate.py``'s ``compare``)."""
    lines = [f"**{c['model']} @ {c['board']}** (`{c['build']}`)", "",
             "| layer | configuration | LUT planner | LUT yosys | ratio | FF planner | FF yosys | DSP planner | DSP yosys "
             "| BRAM36 planner | BRAM36 yosys |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(r, name, cfg):
        p, y = r["planner"], r["yosys"]
        ratio = f"{y['lut'] / p['lut']:.2f}" if p["lut"] else "-"
        return (f"| {name} | {cfg} | {p['lut']:,.0f} | {y['lut']:,.0f} | {ratio} | {p['ff']:,.0f} | {y['ff']:,.0f} | "
                f"{p['dsp']:,.0f} | {y['dsp']:,.0f} | {p['bram36']:g} | {y['bram36']:g} |")

    for name, r in c["layers"].items():
        lines.append(fmt(r, name, r["config"]))
    lines.append(fmt(c["total"], "**total**", "sum of the layers above"))
    return lines


