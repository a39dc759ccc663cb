#!/usr/bin/env python3
"""Measure the RTL simulator (issue 20): harness build time by compile option, simulation speed, regression time.

    python tools/bench_sim.py --build DIR [--variants default,o2-nosplit,...] [--frames 40] [--write]

``DIR`` is an rtlgen build (e.g. ``rtlgen build --board kv260 --out /tmp/r8kv``). Each variant compiles the harness
into its own folder ``DIR/sim_build/bench_<variant>`` from scratch (ccache disabled, except the ``ccache-hit``
variant, which primes ccache in one folder and measures a second, fresh folder), then simulates ``--frames`` random
frames with 2 harness processes. Figures: wall seconds, CPU seconds of the compiler processes, the load average when
the variant started (other jobs share this machine's cores), simulated frames/s and cycles/s. ``--write`` stores
the table as the "RTL simulator" section of BENCHMARKS.md (tools/bench_results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

#: name -> build_harness keyword arguments
VARIANTS = {
    "default": {},
    "no-probes": {"probes": False},
    "no-split": {"output_split": 0},
    "O2-nosplit-noprobes (before)": {"cxx_opt": "-O2", "slow_opt": "-O2", "output_split": 0, "probes": False},
    "Os": {"cxx_opt": "-Os"},
    "O2": {"cxx_opt": "-O2"},
    "O0": {"cxx_opt": "-O0"},
    "ccache-hit": {},
    # issue 20, simulator speed: code generation for this CPU and profile-guided optimisation (build_harness's
    # arch= and pgo=: an instrumented compile, a 3-frame training run, the optimised compile)
    "O1-native": {"arch": "-march=native"},
    "pgo": {"pgo": True},
    "pgo-O2-native": {"pgo": True, "cxx_opt": "-O2", "arch": "-march=native"},
}


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure(build: Path, name: str, kw: dict, frames: int, jobs: int) -> dict:
    from rtlgen.verify import harness as regress

    mdir = build / "sim_build" / f"bench_{name.split()[0]}"
    shutil.rmtree(mdir, ignore_errors=True)
    env_saved = dict(os.environ)
    try:
        if name == "ccache-hit":
            prime = build / "sim_build" / "bench_ccache-prime"
            shutil.rmtree(prime, ignore_errors=True)
            os.environ.pop("CCACHE_DISABLE", None)
            regress.build_harness(build, jobs=jobs, mdir=prime, log=False, **kw)
        else:
            os.environ["CCACHE_DISABLE"] = "1"
        load = os.getloadavg()[0]
        c0, t0 = _cpu_children(), time.perf_counter()
        hb = regress.build_harness(build, jobs=jobs, mdir=mdir, log=print, info=True, **kw)
        wall, cpu = time.perf_counter() - t0, _cpu_children() - c0
    finally:
        os.environ.clear()
        os.environ.update(env_saved)
    net, rep, man = regress.load_design(build)
    px = np.random.default_rng(5).integers(0, 256, size=(frames, *net.input.out_shape), dtype=np.uint8)
    words = regress.input_words(px, man)
    wl = regress.weight_load_words(build, man) if man.get("weights") else None
    load_sim = os.getloadavg()[0]
    t1, c1 = time.perf_counter(), _cpu_children()
    res = regress.run_harness(hb.exe, words, man, rep["cycles_per_frame"], shards=2, workdir=build / "sim_build",
                              wload=wl)
    sim_s, sim_cpu = time.perf_counter() - t1, _cpu_children() - c1
    cycles = sum(r["cycles"] for r in res)
    row = {"variant": name, "options": kw, "build_wall_s": round(wall, 1), "build_cpu_s": round(cpu, 1),
           "load_at_build": round(load, 2), "frames": frames, "sim_wall_s": round(sim_s, 2),
           "frames_per_s": round(frames / sim_s, 2), "cycles_per_s": round(cycles / sim_s),
           "sim_cpu_s": round(sim_cpu, 2), "frames_per_cpu_s": round(frames / sim_cpu, 2),
           "load_at_sim": round(load_sim, 2), "exe_mb": round(hb.exe.stat().st_size / 1e6, 1),
           "probes": len(hb.probes), **(hb.detail or {})}
    print(json.dumps(row), flush=True)
    return row


def remeasure(build: Path, rows: dict, frames: int, rounds: int) -> None:
    """Simulation speed of every variant already built, measured again in ``rounds`` interleaved rounds (A B C A B C
    ...): on a shared machine a variant's CPU seconds per frame drift with the load (the other jobs' use of the
    caches and of the cores' sibling threads), so only interleaved runs compare variants; each row gets the median
    and every round's figure."""
    from rtlgen.verify import harness as regress

    net, rep, man = regress.load_design(build)
    px = np.random.default_rng(5).integers(0, 256, size=(frames, *net.input.out_shape), dtype=np.uint8)
    words = regress.input_words(px, man)
    wl = regress.weight_load_words(build, man) if man.get("weights") else None
    runs: dict = {name: [] for name in rows}
    loads = []
    for _ in range(rounds):
        for name in rows:
            exe = build / "sim_build" / f"bench_{name.split()[0]}" / regress.EXE_NAME
            if not exe.exists():
                continue
            loads.append(os.getloadavg()[0])
            c = _cpu_children()
            regress.run_harness(exe, words, man, rep["cycles_per_frame"], shards=2, workdir=build / "sim_build",
                                wload=wl, progress=lambda k: None)
            runs[name].append(round(frames / (_cpu_children() - c), 2))
    for name, r in runs.items():
        if r:
            rows[name].update(frames_per_cpu_s=float(np.median(r)), frames_per_cpu_s_best=max(r),
                              frames_per_cpu_s_rounds=r,
                              interleaved_frames=frames, load_interleaved=[round(min(loads), 1), round(max(loads), 1)])
            print(name, r, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, required=True)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_sim.json"))
    ap.add_argument("--write", action="store_true", help="store the rows (--out) as the BENCHMARKS.md section")
    ap.add_argument("--note", default="")
    ap.add_argument("--rounds", type=int, default=0,
                    help="instead of building: re-measure the built variants' speed in this many interleaved rounds")
    args = ap.parse_args(argv)
    rows = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.rounds:
        remeasure(args.build.resolve(), rows, args.frames, args.rounds)
        args.out.write_text(json.dumps(rows, indent=1))
        return
    if not args.write:
        for name in args.variants.split(","):
            if name not in VARIANTS:
                ap.error(f"unknown variant {name!r}: {', '.join(VARIANTS)}")
            rows[name] = measure(args.build.resolve(), name, VARIANTS[name], args.frames, args.jobs)
            args.out.write_text(json.dumps(rows, indent=1))
        return
    write(rows, args)


def write(rows: dict, args) -> None:
    import bench

    rounds = max((len(r.get("frames_per_cpu_s_rounds", [])) for r in rows.values()), default=0)
    cmd = (f"python tools/bench_sim.py --build {args.build} --frames {args.frames} --variants ... --out FILE"
           + (f"; then --rounds {rounds} (interleaved re-measurement of the built variants)" if rounds else ""))
    L = ["| harness variant | options (build_harness) | build wall s | build CPU s | of which verilation CPU s | "
         "C++ files | load avg | frames/s (2 processes, wall) | frames per CPU s | frames per CPU s, interleaved: "
         "median / best | load avg | binary MB | probes |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows.values():
        inter = (f"{r['frames_per_cpu_s']:.2f} / {r['frames_per_cpu_s_best']:.2f} ({len(r['frames_per_cpu_s_rounds'])} "
                 f"rounds of {r['interleaved_frames']} frames)" if r.get("frames_per_cpu_s_rounds") else "-")
        first = round(r["frames"] / r["sim_cpu_s"], 2) if r.get("sim_cpu_s") else "-"
        load = (f"{r['load_at_sim']}" + (f"; {r['load_interleaved'][0]}-{r['load_interleaved'][1]}"
                                          if r.get("load_interleaved") else ""))
        L.append(f"| {r['variant']} | `{json.dumps(r['options'])}` | {r['build_wall_s']} | {r['build_cpu_s']} | "
                 f"{r.get('verilate_cpu_s', '-')} | {r.get('cpp_files', '-')} | {r['load_at_build']} | "
                 f"{r['frames_per_s']} | {first} | {inter} | {load} | {r['exe_mb']} | {r['probes']} |")
    body = "\n".join(L) + ("\n\n" + args.note if args.note else "")
    res = bench.load_results()
    res["extra_sim_harness"] = {"title": "RTL simulator: harness build and speed (issue 20)", "command": cmd,
                                "machine": bench.machine(), "date": time.strftime("%Y-%m-%d"), "body": body}
    res = bench.save_results(res, sections=["extra_sim_harness"])
    bench.BENCH_MD.write_text(bench.render(res))
    print(body)


if __name__ == "__main__":
    main()
