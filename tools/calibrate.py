#!/usr/bin/env python3
"""Planner cost model against yosys, layer by layer.

``python tools/calibrate.py BUILD_DIR [BUILD_DIR ...] [--modules conv1,conv5] [--write]``

For every build folder (``rtlgen build ... --out DIR``) each child module of ``rtlgen_top`` is synthesized on its own
with the same yosys script as ``rtlgen report --synth`` (:func:`rtlgen.verify.synth.synthesize_layers`, cached in
``DIR/synth/layers/``). A layer's figure is its core plus the FIFOs and lane converters the composition puts in
front of it (``<layer>_i_fifo``, ``<layer>_i_lanes``, ``<layer>_skip_*``); a loop-merged projection's resources are
inside its host conv's module, so the plan's figures of host and projection are added up the same way. The table
shows the planner's prediction next to yosys' count per layer and in total; ``--write`` stores it in
``tools/bench_results.json`` (section ``calibration``) and regenerates BENCHMARKS.md. The planner's constants
(:mod:`rtlgen.plan.cost`) were fitted to these tables; rerun after changing a core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtlgen.verify.synth import layer_modules, synthesize_layers  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from results import calibration_table  # noqa: E402

KEYS = ("lut", "ff", "dsp", "bram36")


def layer_of(module: str, layers: set[str]) -> str:
    """``rtlgen_top__conv5_skip_fifo`` -> ``conv5`` (the longest layer name that prefixes the module's name)."""
    name = module.split("__", 1)[1]
    best = max((L for L in layers if name == L or name.startswith(L + "_")), key=len, default=None)
    return best or name


def compare(build_dir: Path, modules: list[str] | None = None, progress=None) -> dict:
    plan = json.loads((build_dir / "plan.json").read_text())
    man_f = build_dir / "rtl" / "manifest.json"
    merged = json.loads(man_f.read_text()).get("merged", {}).get("loop_merged_projections", {}) if man_f.exists() else {}
    host_of = {proj: host for host, proj in merged.items()}
    layers = {L["name"]: L for L in plan["layers"]}
    text = (build_dir / "rtl" / "rtlgen_top.v").read_text(errors="replace")
    mods = layer_modules(text)
    if modules:
        mods = [m for m in mods if layer_of(m, set(layers)) in modules]
    res = synthesize_layers(build_dir, modules=mods, progress=progress)
    rows = {}
    for m, r in res.items():
        L = layer_of(m, set(layers))
        row = rows.setdefault(L, {"yosys": dict.fromkeys(KEYS, 0.0), "modules": []})
        rr = r["resources"]
        for k, v in (("lut", rr["lut"]), ("ff", rr["ff"]), ("dsp", rr["dsp48e2"]), ("bram36", rr["bram36_equiv"])):
            row["yosys"][k] += v or 0
        row["modules"].append(m.split("__", 1)[1])
    for name, row in rows.items():
        pl = dict.fromkeys(KEYS, 0.0)
        for L in [name] + [p for p, h in host_of.items() if h == name]:
            if L in layers:
                for k in KEYS:
                    pl[k] += layers[L].get(k, 0) or 0
        row["planner"] = pl
        lp = layers.get(name, {})
        row["config"] = (f"{lp.get('kind')} o{lp.get('och_par')} i{lp.get('ich_par')} p{lp.get('pix_par')}"
                         f"{' packed' if lp.get('packing') else ''} mult={lp.get('mult')} weights={lp.get('storage')}")
        if name in merged:
            pp = layers.get(merged[name], {})
            row["config"] += f" + projection {merged[name]} (o{pp.get('och_par')} mult={pp.get('mult')})"
    tot = {s: {k: sum(r[s][k] for r in rows.values()) for k in KEYS} for s in ("planner", "yosys")}
    return {"build": str(build_dir), "model": plan.get("model"), "board": plan.get("board"), "layers": rows,
            "total": tot}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("builds", nargs="+", type=Path)
    ap.add_argument("--modules", default=None, help="comma-separated layer names (default: every layer)")
    ap.add_argument("--write", action="store_true", help="store in tools/bench_results.json and regenerate BENCHMARKS.md")
    args = ap.parse_args(argv)
    mods = args.modules.split(",") if args.modules else None
    out = []
    for b in args.builds:
        c = compare(b.resolve(), mods, progress=lambda m, r: print(f"  {m}: {r['seconds']} s{' (cached)' if r['cached'] else ''}",
                                                               file=sys.stderr, flush=True))
        out.append(c)
        print("\n".join(calibration_table(c)) + "\n")
    if args.write:
        import bench

        res = bench.load_results()
        res["calibration"] = {"command": "python tools/calibrate.py " + " ".join(str(b) for b in args.builds) + " --write",
                              "machine": bench.machine(), "date": time.strftime("%Y-%m-%d"), "builds": out}
        res = bench.save_results(res, sections=["calibration"])
        bench.BENCH_MD.write_text(bench.render(res))


if __name__ == "__main__":
    main()
