#!/usr/bin/env python3
"""Other people's model shapes on the boards (issue 22): MLPerf-Tiny-shaped networks and a seed-paper-style ResNet20.

    python tools/bench_models.py [--work DIR] [--arch NAME ...] [--fmt qdq|qonnx ...] [--boards kv260,ultra96v2]
                                 [--sim N] [--stall P] [--synth] [--timing] [--render-only]

Per (model, form, board): the model is made by :mod:`tools.tinyml` (PyTorch -> ONNX Runtime QDQ per-channel, or
Brevitas QONNX) or :mod:`tools.seedstyle` into ``--work`` (outside the repository; reused when present), built with
``rtlgen build`` (plan only unless a later stage needs the RTL) and, on request, simulated (``rtlgen sim --random N``
once without stalls for the cycle count, once with ``--stall P`` on the input and output for bit-exactness under
back-pressure), synthesized (``rtlgen report --synth --synth-per-module``) and timed (``rtlgen report --timing``).
Rows accumulate in the ``extra_tinyml`` section of tools/bench_results.json (a later run adds or replaces its own
rows), which is re-rendered into BENCHMARKS.md. Targets are issue 22's, in FPS at the board clock.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

import bench  # noqa: E402

SECTION = "extra_tinyml"
#: issue 22's targets (FPS at 250 MHz on kv260 / 214.29 MHz on ultra96v2); seed-style ResNet20: the bundled ResNet20's
#: cycles per frame on the same board
TARGETS = {"mobilenet_v1": {"kv260": 20_000, "ultra96v2": 8_000}, "ds_cnn": {"kv260": 100_000, "ultra96v2": 40_000},
           "autoencoder": {"kv260": 500_000, "ultra96v2": 200_000}, "mobilenet_v2": {}}
SEED_R20_CYCLES = {"kv260": 18_433, "ultra96v2": 59_905}  # bundled ResNet20, measured in RTL (BENCHMARKS.md)
MODELS = ("mobilenet_v1", "ds_cnn", "autoencoder", "mobilenet_v2", "seed_resnet20")


def model_path(work: Path, arch: str, fmt: str) -> Path:
    """The exported model (made once)."""
    p = work / "models" / f"{arch}_{fmt}.onnx"
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(".tmp.onnx")
        if arch == "seed_resnet20":
            from tools.seedstyle import export
            export(tmp, "resnet20", "qonnx" if fmt == "qonnx" else "qcdq")
        else:
            from tools.tinyml import export
            export(tmp, arch, fmt)
        tmp.rename(p)
    return p


def _run(cmd: list[str]) -> tuple[dict, float]:
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    return bench.run_json(cmd, stream_stderr=True)


def measure(args, arch: str, fmt: str, board: str) -> dict:
    m = model_path(args.work, arch, fmt)
    d = args.work / "builds" / f"{arch}_{fmt}_{board}"
    rtl = bool(args.sim or args.synth or args.timing)
    have_rtl = (d / "rtl").is_dir() or any(d.glob("*.v"))
    row = {"date": time.strftime("%Y-%m-%d"), "rtlgen": bench.rtlgen_rev(), "model_file": f"{arch}_{fmt}.onnx"}
    stamp, digest = d.with_name(d.name + ".sources"), bench.source_digest()  # beside the build folder, not in it
    stale = not stamp.exists() or stamp.read_text() != digest
    if not (d / "report.json").exists() or (rtl and not have_rtl) or stale:
        cmd = ["rtlgen", "build", str(m), "--board", board, "--out", str(d), "--json"] + ([] if rtl else ["--no-rtl"])
        _, dt = _run(cmd)
        row["build_seconds"] = round(dt, 1)
        stamp.write_text(digest)
    rep = json.loads((d / "report.json").read_text())
    row.update(clock_mhz=rep["clock_mhz"], predicted_cycles=rep["cycles_per_frame"], fps_at_clock=rep["fps"],
               macs=rep["total_macs"], layers=len(rep["layers"]), bottleneck=rep["bottleneck"],
               input_fold=rep.get("input_fold", 1),
               plan=rep["resources"], board_budget=rep["budget"])
    if args.sim:
        r, dt = _run(["rtlgen", "sim", str(d), "--random", str(args.sim), "--json"])
        row.update(frames=r["images"], mismatches=r["mismatches"], measured_cycles=r["cycles_per_frame"],
                   latency_cycles=r.get("latency_cycles"), sim_seconds=round(dt, 1),
                   fps_measured_at_clock=round(rep["clock_mhz"] * 1e6 / r["cycles_per_frame"], 1))
        r2, dt2 = _run(["rtlgen", "sim", str(d), "--random", str(args.sim), "--stall", str(args.stall), "--seed", "2",
                        "--json"])
        row.update(stall=args.stall, stall_frames=r2["images"], stall_mismatches=r2["mismatches"])
    # the timing estimate first: its per-module netlists carry the cell counts --synth-per-module then reuses
    if args.timing:
        r, dt = _run(["rtlgen", "report", str(d), "--timing", "--json", "--no-chart", "--timing-timeout",
                      str(args.synth_timeout)])
        t = r.get("timing") or {}
        row.update(fmax_mhz=t.get("fmax_mhz"), meets=t.get("meets"), limiting_module=t.get("limiting_module"),
                   timing_seconds=round(dt, 1))
    if args.synth:
        r, dt = _run(["rtlgen", "report", str(d), "--synth", "--synth-per-module", "--json", "--no-chart",
                      "--synth-timeout", str(args.synth_timeout)])
        y = (r.get("synth") or {}).get("resources") or {}
        row["yosys"] = {"lut": y.get("lut"), "ff": y.get("ff"), "dsp": y.get("dsp48e2"), "bram36": y.get("bram36_equiv"),
                        "uram": y.get("uram"), "fits": (r.get("synth") or {}).get("fits")}
        row["synth_seconds"] = round(dt, 1)
    return row


def target(arch: str, board: str, clock_mhz: float):
    if arch == "seed_resnet20":
        return clock_mhz * 1e6 / SEED_R20_CYCLES[board]
    return TARGETS.get(arch, {}).get(board)


def render_rows(runs: dict) -> str:
    L = ["| model | form | board | MACs | layers | DSP (plan) | cycles/frame predicted | measured (RTL) | FPS at clock | "
         "target | frames bit-exact (no stall / stall) | yosys LUT / FF / DSP / BRAM36 | est. Fmax |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|"]
    for key in sorted(runs):
        r = runs[key]
        arch, fmt, board = key.split("|")
        cyc = r.get("measured_cycles") or r["predicted_cycles"]
        fps = r["clock_mhz"] * 1e6 / cyc
        tg = target(arch, board, r["clock_mhz"])
        ok = "" if tg is None else (" (meets)" if fps >= tg * 0.9999 else " (**below**)")
        bits = "-" if "frames" not in r else (f"{r['frames'] - r['mismatches']}/{r['frames']} / "
                                              f"{r['stall_frames'] - r['stall_mismatches']}/{r['stall_frames']} "
                                              f"(p={r['stall']})")
        y = r.get("yosys")
        ys = "-" if not y or y.get("lut") is None else (f"{y['lut']:,} / {y['ff']:,} / {y['dsp']} / {y['bram36']}"
                                                         + ("" if y.get("fits", True) else " (**over**)"))
        fm = "-" if r.get("fmax_mhz") is None else f"{r['fmax_mhz']:.1f} MHz ({r.get('limiting_module')})"
        px = f" ({r['input_fold']} px/beat)" if r.get("input_fold", 1) > 1 else ""
        L.append(f"| {arch}{px} | {fmt} | {board} | {r['macs']:,} | {r['layers']} | {r['plan']['dsp']:,} | "
                 f"{r['predicted_cycles']:,} | {r.get('measured_cycles', '-') if 'measured_cycles' not in r else format(r['measured_cycles'], ',')} | "
                 f"{fps:,.0f}{ok} | {'-' if tg is None else format(round(tg), ',')} | {bits} | {ys} | {fm} |")
    return "\n".join(L)


NOTE = ("Models made by tools/tinyml.py (random He-initialised weights, activations calibrated on random inputs of "
        "the model's form; full size: MobileNetV1 0.25 96x96x3 2 classes, DS-CNN 49x10x1 64 channels 4 blocks 12 "
        "classes, FC autoencoder 640-128x4-8-128x4-640, MobileNetV2 32x32x3) and tools/seedstyle.py (ResNet20, "
        "seed-paper-style Brevitas export). `qdq`: ONNX Runtime quantize_static, per-channel weights, float scales "
        "(24-bit multiplier requantization); `qonnx`: Brevitas, power-of-two scales. FPS at clock uses the measured "
        "cycles where the row was simulated, else the planner's prediction; '2 px/beat': the input stream bounded the frame "
        "and the planner folded pixel pairs into the stem's channels (rtlgen/plan/fold.py). The seed-style ResNet20's target is the "
        "bundled ResNet20's measured cycles/frame on the same board. Yosys rows of builds before 26fc50d (rtlgen "
        "9115ee7) were planned with 2 DSPs per requant lane and none for the average pool's multipliers: their "
        "'DSP (plan)' differs from what the RTL holds (MobileNetV1 @ ultra96v2 then: yosys 365 on a 360-DSP part); plans "
        "since count each core's own products (tests/test_dsp_as_built.py). MobileNetV1 @ ultra96v2 was rerun on "
        "rtlgen e991ac0: yosys 350 DSP = plan 350; the MobileNetV1 @ kv260 and MobileNetV2 yosys rows are still of the "
        "old builds. DS-CNN has no yosys row yet: its 11x11 stem window (121 tap slots) was one memory with 121 read "
        "ports, which yosys 0.23 could not map; since 8eb1fe9 each slot has its own copy (DS-CNN @ ultra96v2 conv0: "
        "224 s, est. 373.7 MHz) and since c97a44a small copies are planned and built as LUTRAM.")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/rtlgen_bench_models"), help="models and builds (outside "
                    "the repository)")
    ap.add_argument("--arch", action="append", choices=MODELS, help="default: all")
    ap.add_argument("--fmt", action="append", choices=("qdq", "qonnx"), help="default: both")
    ap.add_argument("--boards", default="kv260,ultra96v2")
    ap.add_argument("--sim", type=int, default=0, help="RTL-simulate N random frames (twice: without and with stalls)")
    ap.add_argument("--stall", type=float, default=0.3)
    ap.add_argument("--synth", action="store_true", help="yosys per-module resources")
    ap.add_argument("--timing", action="store_true", help="rtlgen report --timing")
    ap.add_argument("--synth-timeout", type=int, default=3600)
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args(argv)
    res = bench.load_results()
    sec = res.get(SECTION) or {"runs": {}}
    runs = sec.setdefault("runs", {})
    cmds = sec.setdefault("commands", [])
    if not args.render_only:
        args.work.mkdir(parents=True, exist_ok=True)
        for arch in args.arch or MODELS:
            for fmt in args.fmt or ("qdq", "qonnx"):
                if arch == "seed_resnet20" and fmt == "qdq":
                    continue  # the seed paper's export is QONNX (tools/seedstyle.py also writes QCDQ)
                for board in args.boards.split(","):
                    key = f"{arch}|{fmt}|{board}"
                    row = measure(args, arch, fmt, board)
                    old = runs.get(key, {})
                    if not args.sim:  # a plan-only rerun keeps the simulated/synthesized figures of the same build
                        row = {**{k: v for k, v in old.items() if k not in row}, **row}
                    runs[key] = row
                    bench.FRESH.add((SECTION, key))
                    print(f"{key}: {row['predicted_cycles']:,} cycles predicted"
                          + (f", {row['measured_cycles']:,} measured, {row['mismatches']} + {row['stall_mismatches']} "
                             f"mismatches" if "measured_cycles" in row else ""), flush=True)
        cmd = "python tools/bench_models.py " + shlex.join(sys.argv[1:] if argv is None else argv)
        if cmd not in cmds:
            cmds.append(cmd)
    res[SECTION] = {"title": "Other model shapes: MLPerf-Tiny-shaped networks and a seed-paper-style ResNet20 "
                             "(issue 22)", "command": "; ".join(cmds) or "python tools/bench_models.py",
                    "machine": bench.machine(), "date": time.strftime("%Y-%m-%d"),
                    "body": render_rows(runs) + "\n\n" + NOTE, "runs": runs, "commands": cmds}
    res = bench.save_results(res, sections=[SECTION])  # merged with rows another run stored meanwhile
    res[SECTION]["body"] = render_rows(res[SECTION]["runs"]) + "\n\n" + NOTE
    res[SECTION]["command"] = "; ".join(res[SECTION].get("commands") or []) or res[SECTION]["command"]
    res = bench.save_results(res)
    bench.BENCH_MD.write_text(bench.render(res))
    bench.update_readme(res)
    print(res[SECTION]["body"])


if __name__ == "__main__":
    main()
