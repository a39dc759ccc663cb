#!/usr/bin/env python3
"""Record the opt-in runs (deep networks, fuzzing, protocol stress) in BENCHMARKS.md.

``python tools/bench_optin.py [--deep-json F] [--fuzz-report F] [--stress-report F]``

The opt-in tests write their figures to JSON files named by environment variables (``RTLGEN_DEEP_JSON`` for
``sim_tests/test_deep_nets.py``, ``RTLGEN_FUZZ_REPORT`` for ``test_fuzz.py::test_fuzz_opt_in``,
``RTLGEN_STRESS_REPORT`` for ``test_stress.py::test_stress_opt_in_million_beats``), kept outside the repository
because the runs take hours and resume across sessions. This script turns whichever of those files it is given into
the ``extra_deep_nets`` and ``extra_optin_robustness`` sections of ``tools/bench_results.json`` and regenerates
BENCHMARKS.md and the README's results block; sections whose file is not given are left as they are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import bench  # noqa: E402

DEEP_NOTE = ("Small `generic` budgets keep the Verilog small enough to compile in minutes; every frame bit-exact against "
             "the golden model. Networks of the test list not in this table did not run (time: pow2_resnet56b, whose "
             "Verilator build + simulation takes ~1.5 h on this machine, and resnet20_bundled, verified on "
             "kv260/ultra96v2 by tools/bench.py). qdq_resnet32b and qdq_resnet56a ran on the generator of commit "
             "33e714c (before the LUT-multiplier and planner-calibration changes of 2026-11-23; their budgets are the "
             "test's at that time), the others on earlier commits of 2026-11-22.")
FUZZ_CMD = "RTLGEN_FUZZ_REPORT=... RTLGEN_FUZZ_RESUME=1 python3 -m pytest --runslow sim_tests/test_fuzz.py::test_fuzz_opt_in"
STRESS_CMD = "RTLGEN_STRESS_REPORT=... python3 -m pytest --runslow sim_tests/test_stress.py::test_stress_opt_in_million_beats"


def deep_section(path: Path) -> dict:
    nets = json.loads(path.read_text())["networks"]
    rows = ["| network | quantization | layers | budget | frames (stall 0.2) | mismatches | cycles/frame measured | "
            "predicted | engine |", "|---|---|---:|---|---:|---:|---:|---:|---|"]
    for k, v in nets.items():
        if v.get("mismatches") is None:
            continue
        rows.append(f"| {k} | {v.get('quantization')} | {v.get('layers')} | {v.get('budget') or v.get('board')} | "
                    f"{v.get('frames')} | {v.get('mismatches')} | {v.get('cycles_per_frame_measured'):,} | "
                    f"{v.get('cycles_per_frame_predicted'):,} | {v.get('engine')} |")
    return {"title": "Deeper and other networks end to end in RTL (opt-in tests)",
            "command": "RTLGEN_DEEP_JSON=deep_nets.json python3 -m pytest --runslow sim_tests/test_deep_nets.py",
            "machine": bench.machine(), "date": time.strftime("%Y-%m-%d"), "body": "\n".join(rows) + "\n\n" + DEEP_NOTE}


def robustness_rows(fuzz: Path | None, stress: Path | None) -> list[str]:
    parts = []
    if fuzz is not None:
        t = json.loads(fuzz.read_text())["totals"]
        secs = sum(b.get("seconds", 0) for b in t.get("batches", []))
        parts.append(f"| fuzz (`{FUZZ_CMD}`) | {t['networks']} of {t.get('target', 200)} networks ({t['built']} built, "
                     f"seed {t.get('seed', 7)}, {len(t.get('batches', []))} batches, {secs / 3600:.1f} h) | "
                     f"{t['in_beats']:,} in / {t['out_beats']:,} out beats | {t['mismatched_networks']} networks, "
                     f"{t['mismatched_beats']} beats | {t['lint_messages']} lint messages |")
    if stress is not None:
        s = json.loads(stress.read_text())
        for kind in ("stream", "reset", "backpressure"):
            if kind in s:
                r = s[kind]
                parts.append(f"| stress {kind} (`{STRESS_CMD}`) | {r['jobs']} jobs (every core kind + 2 networks) | "
                             f"{r['beats']:,} beats, {r['cycles']:,} cycles | {r['mismatches']} | - |")
    return parts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deep-json", type=Path, help="RTLGEN_DEEP_JSON file of sim_tests/test_deep_nets.py")
    ap.add_argument("--fuzz-report", type=Path, help="RTLGEN_FUZZ_REPORT file of test_fuzz.py::test_fuzz_opt_in")
    ap.add_argument("--stress-report", type=Path, help="RTLGEN_STRESS_REPORT file of test_stress.py")
    args = ap.parse_args(argv)
    for p in (args.deep_json, args.fuzz_report, args.stress_report):
        if p is not None and not p.is_file():
            ap.error(f"no such file: {p}")
    res = bench.load_results()
    sections = []
    if args.deep_json:
        res["extra_deep_nets"] = deep_section(args.deep_json)
        sections.append("extra_deep_nets")
    if args.fuzz_report or args.stress_report:
        old = res.get("extra_optin_robustness", {}).get("body", "").splitlines()
        new = robustness_rows(args.fuzz_report, args.stress_report)

        def pick(prefix):  # the rows of a report given now replace the stored ones of its kind
            return [r for r in new if r.startswith(prefix)] or [r for r in old if r.startswith(prefix)]
        rows = pick("| fuzz") + pick("| stress")
        res["extra_optin_robustness"] = {
            "title": "Opt-in robustness runs (issue 9)", "command": "see each row", "machine": bench.machine(),
            "date": time.strftime("%Y-%m-%d"),
            "body": "\n".join(["| run | networks / jobs | beats | mismatches | lint |", "|---|---|---|---|---|", *rows])
                    + "\n\nThe fuzz run is deterministic per batch of 20 networks and resumable "
                      "(`RTLGEN_FUZZ_RESUME=1`); a batch takes 30-60 min of one core on this loaded 2-core machine "
                      "(Verilator build of a 15 MB bundle + cocotb), so the 200 networks span sessions."}
        sections.append("extra_optin_robustness")
    if not sections:
        ap.error("give at least one of --deep-json, --fuzz-report, --stress-report")
    res = bench.save_results(res, sections=sections)
    bench.BENCH_MD.write_text(bench.render(res))
    bench.update_readme(res)
    print("\n".join(res[s]["body"] for s in sections))


if __name__ == "__main__":
    main()
