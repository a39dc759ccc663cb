#!/usr/bin/env python3
"""rtlgen benchmarks: one command that measures and writes BENCHMARKS.md.

    python tools/bench.py                      # everything (long: RTL simulations of ResNet8/ResNet20 on both boards)
    python tools/bench.py --only golden        # golden-model accuracy and speed of the bundled models
    python tools/bench.py --only build,sim --models resnet8 --boards kv260 --frames 20

Every section stores its figures, the exact command and the machine in ``tools/bench_results.json`` and BENCHMARKS.md
is regenerated from all stored sections, so sections can be refreshed one at a time. Cycle counts come from RTL
simulation (Verilator); FPS = clock / measured cycles per frame; timing closure is not verified (no Vivado here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rtlgen.figures import fmt_fps, fps

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "tools" / "bench_results.json"
BENCH_MD = ROOT / "BENCHMARKS.md"

#: the seed paper (best published HLS flow): FPS and int8 accuracy
PAPER = {
    ("resnet8", "ultra96v2"): 12_971, ("resnet20", "ultra96v2"): 3_254,
    ("resnet8", "kv260"): 30_153, ("resnet20", "kv260"): 7_601,
}
PAPER_ACC = {"resnet8": 0.887, "resnet20": 0.913}
TARGETS = {  # (must reach, aim) from the whole-network issue
    ("resnet20", "kv260"): (10_000, 14_000), ("resnet8", "kv260"): (36_000, 45_000),
    ("resnet20", "ultra96v2"): (3_400, 4_500), ("resnet8", "ultra96v2"): (13_000, 15_000),
}


def machine() -> str:
    return f"{platform.node() or 'host'}: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


#: (section, row) pairs this process measured: save_results merges only those rows of a ``runs`` table into what
#: is on disk, so that two bench commands running at once (e.g. two boards' synthesis) keep each other's rows
FRESH: set[tuple[str, str]] = set()


def put_run(res: dict, section: str, key: str, row: dict) -> None:
    res[section].setdefault("runs", {})[key] = row
    FRESH.add((section, key))


def save_results(res: dict, sections=None):
    """Write the stored figures; with ``sections``, merge only those into what is on disk (several bench runs at once):
    a section with a ``runs`` table takes this process's fresh rows over the rows on disk."""
    if sections is not None:
        disk = load_results()
        for k in sections:
            if k not in res:
                continue
            if isinstance(res[k], dict) and "runs" in res[k] and isinstance(disk.get(k), dict):
                runs = dict(disk[k].get("runs", {}))
                runs.update({key: row for key, row in res[k]["runs"].items() if (k, key) in FRESH})
                on_disk = list(disk[k].get("commands") or [])
                disk[k] = res[k] | {"runs": runs}
                if isinstance(res[k].get("commands"), list):  # every run's command (runs at once), in order
                    disk[k]["commands"] = on_disk + [c for c in res[k]["commands"] if c not in on_disk]
            else:
                disk[k] = res[k]
        res = disk
    RESULTS.write_text(json.dumps(res, indent=1, sort_keys=True))
    return res


def build_id(d: Path) -> str | None:
    """The identity of a build folder's design: sha256 (12 hex) of its ``rtl/rtlgen_top.v`` (of ``plan.json`` when it was
    built without RTL). Every row records the build it measured, so that rows of one model @ board measured on
    different builds are marked (:func:`mixed_builds`)."""
    import hashlib

    for f in (d / "rtl" / "rtlgen_top.v", d / "plan.json"):
        if f.exists():
            return hashlib.sha256(f.read_bytes()).hexdigest()[:12]
    return None


def rtlgen_rev() -> str:
    """The rtlgen revision measured: ``git describe --always --dirty`` of this checkout."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


#: sections whose rows describe one build of a model @ board (the order of the marks' footnotes)
BUILD_SECTIONS = ("build", "sim", "synth", "timing")


def mixed_builds(res: dict, key: str) -> str | None:
    """None when every stored row of ``key`` (model@board) was measured on the same build, else a note naming the
    build of each section (``not recorded`` for rows measured before builds were recorded)."""
    ids = {sec: res[sec]["runs"][key].get("build_id") for sec in BUILD_SECTIONS
           if key in res.get(sec, {}).get("runs", {})}
    if len(set(ids.values())) <= 1 and None not in ids.values():
        return None
    return ", ".join(f"{sec} {v or 'not recorded'}" for sec, v in ids.items())


def run_json(cmd: list[str], stream_stderr: bool = False) -> tuple[dict, float]:
    """Run an rtlgen command with ``--json``: (its JSON, wall seconds). ``stream_stderr``: its progress lines go to
    this process's stderr as they come (long runs)."""
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if stream_stderr else subprocess.PIPE, text=True)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):
        raise SystemExit(f"command failed ({p.returncode}): {shlex.join(cmd)}\n{(p.stderr or '')[-2000:]}")
    text = p.stdout.strip()
    try:
        return json.loads(text), dt
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1]), dt


def section_golden(args, res):
    from rtlgen import data, golden
    from rtlgen.frontend import load_model
    from rtlgen.models import available, resolve

    ds = args.dataset
    x, y = data.load_test(ds)
    out = {}
    for name in tqdm(available(), desc="golden"):
        net = load_model(resolve(name))
        t = time.perf_counter()
        c0 = time.process_time()
        pred = golden.predict(net, x)
        dt = time.perf_counter() - t
        cpu = time.process_time() - c0
        out[name] = {"cpu_seconds": round(cpu, 1),"top1": float(np.mean(pred == y)), "images": int(len(x)), "seconds": round(dt, 1),
                     "images_per_s": round(len(x) / dt, 1), "macs": int(net.total_macs)}
    # the shared float reference models, quantized here with onnxruntime (float scales, per-channel weights)
    import tempfile

    float_r8 = ROOT.parent / "shared/models/resnet8-mlperf-tiny-float/pretrainedResnet_float.onnx"
    if float_r8.exists():
        with tempfile.TemporaryDirectory() as tmp:
            q = Path(tmp) / "resnet8_ort.onnx"
            subprocess.run([sys.executable, str(ROOT / "tools/quantize_ort.py"), str(float_r8), str(q)], check=True,
                           capture_output=True)
            net = load_model(q)
            t = time.perf_counter()
            pred = golden.predict(net, x)
            dt = time.perf_counter() - t
            out["shared resnet8 float (87.19 %) -> tools/quantize_ort.py"] = {
                "top1": float(np.mean(pred == y)), "images": int(len(x)), "seconds": round(dt, 1),
                "images_per_s": round(len(x) / dt, 1), "macs": int(net.total_macs)}
    res["golden"] = {"command": f"python tools/bench.py --only golden --dataset {ds}", "machine": machine(),
                     "date": time.strftime("%Y-%m-%d"), "models": out,
                     "note": "seconds are wall time on this (shared, 2-core) machine; CPU time is lower under load"}


def section_build(args, res):
    out = res.setdefault("build", {"runs": {}})
    for model in args.models:
        for board in args.boards:
            d = ROOT / "out" / f"bench_{model}_{board}"
            opts = shlex.split(args.build_opts)
            cmd = ["rtlgen", "build", model, "--board", board, "--out", str(d), "--json", *opts]
            rep, dt = run_json(cmd)
            if not opts:  # the default build: what the other sections measure
                d.with_name(d.name + ".sources").write_text(source_digest())
            put_run(res, "build", f"{model}@{board}", {
                "options": shlex.join(opts), "command": shlex.join(cmd), "build_id": build_id(d), "rtlgen": rtlgen_rev(),
                "build_seconds": round(dt, 1), "cycles_per_frame": rep["cycles_per_frame"], "fps": rep["fps"],
                "resources": rep["resources"], "budget": rep["budget"], "skip_buffer_bits": rep["skip_buffer_bits"],
                "total_macs": rep["total_macs"], "clock_mhz": rep["clock_mhz"],
                "skip_bits_paper": _paper_skip_bits(d), "skip_bits_naive": _naive_skip_bits(d),
                "layers": [{"name": L["name"], "op": L["op"], "cycles": L["cycles"], "dsp": L["dsp"], "lut": L["lut"]}
                           for L in json.loads((d / "report.json").read_text())["layers"]],
            })
    out["command"] = (f"python tools/bench.py --only build --models {','.join(args.models)} --boards {','.join(args.boards)}"
                      + (f" --build-opts {shlex.quote(args.build_opts)}" if args.build_opts else ""))
    out["machine"] = machine()
    out["date"] = time.strftime("%Y-%m-%d")


def _paper_skip_bits(d: Path) -> int:
    """Skip storage of the same network with the paper's rule: (fh-1)*W*C + (fw-1)*C + och + 1 per merged add."""
    ir_ = json.loads((d / "ir.json").read_text())
    plan = {L["name"]: L for L in json.loads((d / "plan.json").read_text())["layers"]}
    bits = 0
    for L in ir_["layers"]:
        if L["op"] == "conv" and L.get("residual"):
            kh, kw = L["kernel"]
            _, W, C = L["out_shape"]
            bits += ((kh - 1) * W * C + (kw - 1) * C + plan[L["name"]]["och_par"] + 1) * 8
        if L["op"] == "add":
            H, W, C = L["out_shape"]
            bits += (2 * W * C + 2 * C + C + 1) * 8
    return bits


def _naive_skip_bits(d: Path) -> int:
    """A naive full-latency skip FIFO: the whole block input frame (H*W*C bytes) per residual add."""
    ir_ = json.loads((d / "ir.json").read_text())
    bits = 0
    for L in ir_["layers"]:
        if (L["op"] == "conv" and L.get("residual")) or L["op"] == "add":
            H, W, C = L["out_shape"]
            bits += H * W * C * 8
    return bits


def sim_row(r: dict, d: Path, command: str) -> dict:
    """One throughput row from ``rtlgen sim --json`` output ``r`` and the build's report.json."""
    rep = json.loads((d / "report.json").read_text())
    return {
        "frames": r["images"], "mismatches": r["mismatches"], "cycles_per_frame": r["cycles_per_frame"],
        "latency_cycles": r["latency_cycles"], "fps_at_clock": r["fps_at_clock"], "clock_mhz": rep["clock_mhz"],
        "predicted_cycles_per_frame": rep["cycles_per_frame"], "dsp": rep["resources"]["dsp"],
        "board_dsp": rep["budget"]["dsp"], "total_macs": rep["total_macs"], "command": command,
        "sim_seconds": r.get("seconds", {}).get("simulation"), "build_id": build_id(d), "rtlgen": rtlgen_rev(),
    }


def section_sim(args, res):
    out = res.setdefault("sim", {"runs": {}})
    for model in args.models:
        for board in args.boards:
            d = _ensure_build(model, board)
            cmd = ["rtlgen", "sim", str(d), "--random", str(args.frames), "--json"]
            r, dt = run_json(cmd)
            put_run(res, "sim", f"{model}@{board}", {**sim_row(r, d, shlex.join(cmd)), "wall_seconds": round(dt, 1)})
    out["command"] = (f"python tools/bench.py --only sim --models {','.join(args.models)} --boards {','.join(args.boards)} "
                      f"--frames {args.frames}")
    out["machine"] = machine()
    out["date"] = time.strftime("%Y-%m-%d")


def source_digest() -> str:
    """SHA-256 of the generator's sources (rtlgen/, cores/, boards/): a build made from other sources is rebuilt."""
    import hashlib

    h = hashlib.sha256()
    for top in ("rtlgen", "cores", "boards"):
        for f in sorted((ROOT / top).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _ensure_build(model: str, board: str) -> Path:
    """The bench build of ``model`` @ ``board``, (re)built where missing or made from other generator sources (a
    stamp beside the build folder)."""
    d = ROOT / "out" / f"bench_{model}_{board}"
    stamp, digest = d.with_name(d.name + ".sources"), source_digest()
    if not (d / "rtl" / "rtlgen_top.v").exists() or not stamp.exists() or stamp.read_text() != digest:
        subprocess.run(["rtlgen", "build", model, "--board", board, "--out", str(d)], check=True, capture_output=True)
        stamp.write_text(digest)
    return d


def section_regress(args, res):
    """Full-dataset RTL regression: every CIFAR-10 test image through the RTL of one build, compared with the golden
    model (``rtlgen sim DIR --dataset ... --limit N``: the compiled Verilator harness, sharded over 2 processes)."""
    model, board = args.regress.split("@")
    d = _ensure_build(model, board)
    cmd = ["rtlgen", "sim", str(d), "--dataset", args.dataset, "--limit", str(args.limit), "--json"]
    c0 = os.times()
    r, dt = run_json(cmd)
    c1 = os.times()
    cpu = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
    g, _ = run_json(["rtlgen", "predict", str(d / "model.onnx"), "--dataset", args.dataset, "--limit", str(args.limit),
                     "--json"])
    res["regress"] = {
        "command": shlex.join(cmd), "machine": machine(), "date": time.strftime("%Y-%m-%d"), "target": args.regress,
        "images": r["images"], "mismatches": r["mismatches"], "top1_rtl": r["top1"], "top1_golden": g.get("top1"),
        "cycles_per_frame": r["cycles_per_frame"], "wall_seconds": round(dt, 1), "cpu_seconds": round(cpu, 1),
        "sim_seconds": r.get("seconds", {}).get("simulation"), "compile_seconds": r.get("seconds", {}).get("compile"),
        "shards": r.get("shards"), "engine": r.get("engine"), "load_before": round(os.getloadavg()[0], 1),
        "build_id": build_id(d), "rtlgen": rtlgen_rev(),
    }


def section_synth(args, res):
    """yosys (``synth_xilinx -family xcup``) resource estimate of every benchmarked build (``rtlgen report --synth``)."""
    out = res.setdefault("synth", {"runs": {}})
    for model in args.models:
        for board in args.boards:
            d = _ensure_build(model, board)
            cmd = ["rtlgen", "report", str(d), "--synth", "--json", "--synth-timeout", str(args.synth_timeout)]
            if args.synth_per_module:
                cmd.append("--synth-per-module")
                if args.synth_jobs > 1:
                    cmd += ["--synth-jobs", str(args.synth_jobs)]
            r, dt = run_json(cmd)
            s = r.get("synth") or {}
            put_run(res, "synth", f"{model}@{board}", {"seconds": round(dt, 1), "command": shlex.join(cmd),
                                               "resources": s.get("resources"), "capacity": s.get("capacity"),
                                               "fits": s.get("fits"), "over": s.get("over"),
                                               "complete": s.get("complete"), "error": r.get("synth_error"),
                                               "mode": s.get("mode", "flat"), "yosys_seconds": s.get("seconds"),
                                               "script": s.get("script"), "build_id": build_id(d),
                                               "rtlgen": rtlgen_rev(), "date": time.strftime("%Y-%m-%d")})
    mode = "per-module" if args.synth_per_module else "flat"
    cmds = out.setdefault("commands", {"flat": out["command"]} if out.get("command") else {})
    cmds[mode] = (f"python tools/bench.py --only synth --models {','.join(args.models)} --boards {','.join(args.boards)}"
                  + (" --synth-per-module" if args.synth_per_module else ""))
    out["command"] = "` ; `".join(cmds[k] for k in sorted(cmds))  # flat rows, then per-module rows
    out["machine"] = machine()
    out["date"] = time.strftime("%Y-%m-%d")


def section_timing(args, res):
    """Timing estimate of every benchmarked build (``rtlgen report DIR --timing``: yosys per layer module, the worst
    register-to-register path walked with UltraScale+ delays; rtlgen/verify/timing.py states each figure and its source)."""
    out = res.setdefault("timing", {"runs": {}})
    for model in args.models:
        for board in args.boards:
            d = _ensure_build(model, board)
            cmd = ["rtlgen", "report", str(d), "--timing", "--timing-jobs", str(args.synth_jobs), "--timing-timeout",
                   str(args.synth_timeout), "--json", "--no-chart"]
            r, dt = run_json(cmd, stream_stderr=True)
            t = r.get("timing") or {}
            mods = t.get("modules", [])
            target = TIMING_TARGET_MHZ.get(board)
            put_run(res, "timing", f"{model}@{board}", {
                "command": shlex.join(cmd), "seconds": round(dt, 1), "build_id": build_id(d), "rtlgen": rtlgen_rev(),
                "date": time.strftime("%Y-%m-%d"), "load_before": round(os.getloadavg()[0], 1),
                **{k: t.get(k) for k in ("clock_mhz", "fmax_mhz", "fmax_mhz_optimistic", "fmax_mhz_congested", "meets",
                                         "limiting_module", "fps_at_clock", "fps_at_fmax", "speed_grade", "cached")},
                "target_mhz": target,
                "limiting_path": next((m.get("path") for m in mods if m["name"] == t.get("limiting_module")), None),
                "modules": [{"name": m["name"], "fmax_mhz": m.get("fmax_mhz"), "path": m.get("path"),
                             "yosys_seconds": m.get("yosys_seconds")} for m in mods],
                "below_target": [m["name"] for m in mods if target and m.get("fmax_mhz") and m["fmax_mhz"] < target],
                "yosys_seconds": round(sum(m.get("yosys_seconds") or 0 for m in mods), 1),
            })
    out["command"] = (f"python tools/bench.py --only timing --models {','.join(args.models)} --boards "
                      f"{','.join(args.boards)} --synth-jobs {args.synth_jobs}")
    out["machine"] = machine()
    out["date"] = time.strftime("%Y-%m-%d")


#: issue 19's per-module targets: >= 20 % margin over the board clock
TIMING_TARGET_MHZ = {"kv260": 300.0, "ultra96v2": 260.0}


FIG_DIR = ROOT / "docs" / "figures"


def plots(res: dict) -> list[str]:
    """PNG charts from the stored figures: FPS against the seed paper per board, and the per-layer balance of every
    benchmarked build (cycles per layer against the frame period, DSPs per layer). Returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIG_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    runs = res.get("sim", {}).get("runs", {})
    if runs:
        boards = sorted({k.split("@")[1] for k in runs})
        fig, axes = plt.subplots(1, len(boards), figsize=(5.2 * len(boards), 4.2), squeeze=False)
        for ax, board in zip(axes[0], boards):
            models = sorted(k.split("@")[0] for k in runs if k.endswith("@" + board))
            xs = np.arange(len(models))
            ours = [runs[f"{m}@{board}"]["fps_at_clock"] for m in models]
            paper = [PAPER.get((m, board), 0) for m in models]
            roof = [roofline_fps(runs[f"{m}@{board}"]) for m in models]
            ax.bar(xs - 0.2, paper, 0.4, label="seed paper (HLS)", color="#999999")
            ax.bar(xs + 0.2, ours, 0.4, label="rtlgen (measured cycles)", color="#1f77b4")
            ax.scatter(xs + 0.2, roof, marker="_", s=900, color="#d62728", label="packed-DSP roofline", zorder=3)
            for x, o, p in zip(xs, ours, paper):
                ax.annotate(f"{o:,.0f}\n({o / p:.2f}x)" if p else f"{o:,.0f}", (x + 0.2, o / 2), ha="center",
                            va="center", fontsize=8, color="white")
            clock = runs[f"{models[0]}@{board}"]["clock_mhz"]
            ax.set_xticks(xs, models)
            ax.set_ylim(0, 1.25 * max(ours + paper + roof))
            ax.set_ylabel("frames per second")
            ax.set_title(f"{board} @ {clock} MHz")
            ax.legend(fontsize=7, loc="upper left")
        fig.suptitle("CIFAR-10 throughput: rtlgen vs the seed paper")
        fig.tight_layout()
        path = FIG_DIR / "fps_vs_paper.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    for key, r in sorted(res.get("build", {}).get("runs", {}).items()):
        layers = [L for L in r.get("layers", []) if L["cycles"]]
        if not layers:
            continue
        model, board = key.split("@")
        period = max(L["cycles"] for L in layers)
        fig, (a1, a2) = plt.subplots(2, 1, figsize=(max(6, 0.32 * len(layers) + 2), 5.5), sharex=True)
        xs = np.arange(len(layers))
        colors = ["#d62728" if L["cycles"] == period else "#1f77b4" for L in layers]
        a1.bar(xs, [L["cycles"] for L in layers], color=colors)
        a1.axhline(period, color="#d62728", lw=0.8, ls="--")
        a1.set_ylabel("cycles / frame")
        a1.set_title(f"{model} @ {board}: per-layer balance (bottleneck red; frame period {period:,} cycles)")
        a2.bar(xs, [L["dsp"] for L in layers], color="#2ca02c")
        a2.set_ylabel("DSP48E2")
        a2.set_xticks(xs, [L["name"] for L in layers], rotation=90, fontsize=7)
        fig.tight_layout()
        path = FIG_DIR / f"balance_{model}_{board}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def section_cores(args, res):
    """yosys (synth_xilinx -family xcup) DSP/BRAM inference of single cores: the packing claim of the core issue."""
    import tempfile

    from rtlgen.verify.yosys_probe import sample_conv_layer, yosys_cells, yosys_memories  # what the tests assert on

    from rtlgen.cores.conv import Conv
    from rtlgen.cores.linebuffer import WindowGen
    from rtlgen.emit.verilog import write_verilog

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for packing, storage in ((True, "bram"), (False, "lut")):
            layer = sample_conv_layer()
            v = write_verilog(Conv(layer, ich_par=9, och_par=8, pix_par=2, packing=packing, storage=storage),
                              "conv", Path(tmp) / f"conv_{packing}.v")
            cells = yosys_cells(v, "conv")
            rows.append(f"| conv K=3, C=9, O=8, ich_par=9, och_par=8, pix_par=2, packing {'on' if packing else 'off'}, "
                        f"weights in {storage} | {cells.get('DSP48E2', 0)} | {cells.get('RAMB36E2', 0)} RAMB36E2, "
                        f"{cells.get('RAMB18E2', 0)} RAMB18E2 |")
        wg = WindowGen(H=32, W=32, C=32, lanes=8, K=3)
        v = write_verilog(wg, "window_gen", Path(tmp) / "wg.v")
        cells = yosys_cells(v, "window_gen")
        mems = yosys_memories(v, "window_gen")
        bits = sum(w * d for w, d in mems)
        rows.append(f"| line buffer W=32, C=32, lanes=8, K=3 ({bits:,} bits = {wg.depth} pixels x {wg.G} words x 64 bits) | "
                    f"{cells.get('DSP48E2', 0)} | {cells.get('RAMB36E2', 0)} RAMB36E2, {cells.get('RAMB18E2', 0)} RAMB18E2 |")
    body = "\n".join(["| core | DSP48E2 | block RAM |", "|---|---:|---|", *rows,
                      "", "yosys 0.23 `synth_xilinx -family xcup -run :map_ffram` (mapping stops after memory/DSP inference)."])
    res["extra_cores_synth"] = {"title": "Single cores through yosys: DSP packing and line-buffer BRAM",
                                "command": "python tools/bench.py --only cores", "machine": machine(),
                                "date": time.strftime("%Y-%m-%d"), "body": body}


def roofline_fps(r: dict) -> float:
    """Packed-DSP roofline of a throughput row: board DSPs x 2 MACs x clock / MACs per frame."""
    return r.get("board_dsp", r["dsp"]) * 2 * r["clock_mhz"] * 1e6 / r["total_macs"]


def _section(title: str, sec: dict) -> list[str]:
    """Heading of a BENCHMARKS.md section: title, then the command that measured it, the machine and the date."""
    return [f"## {title}", "", f"Command: `{sec['command']}` — {sec.get('machine', '')}, {sec.get('date', '')}", ""]


def _render_sim(res: dict) -> list[str]:
    """BENCHMARKS.md section: throughput against the seed paper (``res["sim"]``)."""
    L = []
    s = res["sim"]
    L += _section("Throughput against the seed paper (measured in RTL simulation)", s) + [
          "| model @ board | clock MHz | frames | mismatches | cycles/frame (measured) | predicted | FPS at clock | est. Fmax MHz | FPS at min(clock, est. Fmax) | seed paper | ratio | target (must/aim) | DSP used | packed-DSP roofline FPS (board DSPs x 2 x f / MACs) | of roofline | latency (cycles) | measured by |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for key, r in sorted(s["runs"].items()):
        model, board = key.split("@")
        paper = PAPER.get((model, board))
        roof = roofline_fps(r)
        tgt = TARGETS.get((model, board))
        fmax, fps_f = timing_fps(res, key, r)
        L.append(f"| {model} @ {board}{mark(res, key)} | {r['clock_mhz']} | {r['frames']} | {r['mismatches']} | {r['cycles_per_frame']:,} | "
                 f"{r['predicted_cycles_per_frame']:,} | {fmt_fps(r['fps_at_clock'])} | {fmax} | {fps_f} | {paper or '-':,} | "
                 f"{(r['fps_at_clock'] / paper) if paper else float('nan'):.2f}x | "
                 f"{'%s / %s' % tgt if tgt else '-'} | {r['dsp']} | {roof:,.0f} | {r['fps_at_clock'] / roof:.0%} | {r['latency_cycles']:,} | "
                 f"`{r.get('command', 'tools/bench.py --only sim')}` |")
    L.append("")
    L += [f"* {key.replace('@', ' @ ')}: {r['note']}" for key, r in sorted(s["runs"].items()) if r.get("note")]
    L += mixed_notes(res, s["runs"])
    L.append("")
    return L


def _render_build(res: dict) -> list[str]:
    """BENCHMARKS.md section: builds: predicted resources (``res["build"]``)."""
    L = []
    b = res["build"]
    L += ["## Builds: predicted resources, skip buffers, flow time", "", f"Command: `{b['command']}` — {b['machine']}, {b['date']}", "",
          "| model @ board | build s | predicted cycles/frame | DSP | LUT | FF | BRAM36 | URAM | skip bits (ours) | paper's rule | naive full-frame FIFO |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, r in sorted(b["runs"].items()):
        rs, bu = r["resources"], r["budget"]
        opts = f" (`{r['options']}`)" if r.get("options") else ""
        L.append(f"| {key.replace('@', ' @ ')}{opts} | {r['build_seconds']} | {r['cycles_per_frame']:,} | {rs['dsp']}/{bu['dsp']} | "
                 f"{rs['lut']:,}/{bu['lut']:,} | {rs['ff']:,}/{bu['ff']:,} | {rs['bram36']}/{bu['bram36']} | {rs['uram']}/{bu['uram']} | "
                 f"{r['skip_buffer_bits']:,} | {r['skip_bits_paper']:,} | {r['skip_bits_naive']:,} |")
    L.append("")
    return L


def _render_golden(res: dict) -> list[str]:
    """BENCHMARKS.md section: the golden model over CIFAR-10 (``res["golden"]``)."""
    L = []
    g = res["golden"]
    L += _section("Bundled models through the golden model (full CIFAR-10 test set)", g) + [
          "| model | top-1 | seed paper int8 | images | wall seconds | CPU seconds (both cores) | images/s | MACs/frame |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in sorted(g["models"].items()):
        p = PAPER_ACC.get(name)
        L.append(f"| {name} | {100 * r['top1']:.2f} % | {f'{100 * p:.1f} %' if p else '-'} | {r['images']:,} | {r['seconds']} | "
                 f"{r.get('cpu_seconds', '-')} | {r['images_per_s']:,} | {r['macs']:,} |")
    L.append("")
    return L


def _render_regress(res: dict) -> list[str]:
    """BENCHMARKS.md section: the full-dataset RTL regression (``res["regress"]``)."""
    L = []
    g = res["regress"]
    L += _section("Full-dataset RTL regression", g) + [
          "| build | images | mismatches | top-1 (RTL) | top-1 (golden model) | cycles/frame | wall s | CPU s (all processes) | engine |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---|",
          f"| {g['target'].replace('@', ' @ ')} | {g['images']:,} | {g['mismatches']} | {100 * g['top1_rtl']:.2f} % | "
          f"{100 * g['top1_golden']:.2f} % | {g['cycles_per_frame']:,} | {g['wall_seconds']:,} | {g['cpu_seconds']:,} | "
          f"{g.get('engine')} x{g.get('shards')} |", "",
          f"Load average when it started: {g.get('load_before')} (other jobs shared the 2 cores); the CPU seconds are the "
          "machine-independent cost: wall time on 2 free cores is about half of them." + (f" {g['note']}" if g.get("note") else ""), ""]
    return L


def _render_synth(res: dict) -> list[str]:
    """BENCHMARKS.md section: resources by yosys (``res["synth"]``)."""
    L = []
    y = res["synth"]
    L += _section("Resources by yosys (whole designs)", y) + [
          "| model @ board | LUT | FF | DSP48E2 | BRAM36 (equiv.) | URAM | fits | planner's prediction (LUT / DSP / BRAM36) | yosys run | yosys s (all modules) |",
          "|---|---:|---:|---:|---:|---:|---|---|---|---:|"]
    from rtlgen.verify.synth import MERGE_DUPLICATES

    stale = False
    for key, r in sorted(y["runs"].items()):
        rs, cap = r.get("resources") or {}, r.get("capacity") or {}

        def f(k):
            v = rs.get(k)
            return "-" if v is None else f"{v:,}/{cap.get(k) if cap.get(k) is not None else '-':,}"
        pr = res.get("build", {}).get("runs", {}).get(key, {}).get("resources", {})
        pred = f"{pr['lut']:,} / {pr['dsp']} / {pr['bram36']}" if pr else "-"
        old = MERGE_DUPLICATES not in (r.get("script") or "")
        stale = stale or old
        L.append(f"| {key.replace('@', ' @ ')}{' (*)' if old else ''} | {f('lut')} | {f('ff')} | {f('dsp48e2')} | "
                 f"{f('bram36_equiv')} | {f('uram')} | {r.get('fits')} | {pred} | {r.get('mode', 'flat')} | "
                 f"{r.get('yosys_seconds') or r['seconds']} |")
    L += ["", "yosys `synth_xilinx -family xcup` (Debian 0.23) estimates, not Vivado results (`rtlgen/verify/synth.py`: "
          "multipliers of LUT-mult layers kept out of DSPs as planned, adder trees mapped to carry chains "
          "(`maccmap -unmap`), LUT-stored tables kept in LUTs (`proc -norom`), identical cells on the same nets "
          "merged after mapping (`opt_merge -share_all`: ABC gave flip-flops private copies of one clock-enable LUT; "
          "Vivado shares such logic)). \"flat\": the whole design in one run; "
          "\"per-module\": each child of `rtlgen_top` out of context plus the top's glue, summed (`--synth-per-module`: "
          "for designs whose flat run takes hours here; nothing crosses a module boundary but streams). The planner's prediction is the "
          "model of `rtlgen/plan/cost.py`, fitted to per-layer yosys runs (`tools/calibrate.py`); a design that yosys finds "
          "over capacity is NOT claimed to fit."
          + (" (*): synthesized before the merge step was added (an over-count of LUTs: the step only removes "
             "cells); rerun the row's command to refresh it." if stale else ""), ""]
    return L


def _render_timing(res: dict) -> list[str]:
    """BENCHMARKS.md section: the timing estimate (``res["timing"]``)."""
    L = []
    tm = res["timing"]
    L += _section("Timing estimate (yosys netlist per module, UltraScale+ delays)", tm) + [
          "| model @ board | clock MHz | target MHz | est. Fmax MHz (range) | meets clock | modules below target | "
          "limiting module | its worst register-to-register path | FPS at clock | FPS at min(clock, est. Fmax) | "
          "yosys s (all modules) |", "|---|---:|---:|---:|---|---|---|---|---:|---:|---:|"]
    for key, r in sorted(tm["runs"].items()):
        rng = (f" ({r['fmax_mhz_congested']:.0f}-{r['fmax_mhz_optimistic']:.0f})"
               if r.get("fmax_mhz_congested") and r.get("fmax_mhz_optimistic") else "")
        below = r.get("below_target") or []
        L.append(f"| {key.replace('@', ' @ ')}{mark(res, key)} | {r.get('clock_mhz')} | {r.get('target_mhz') or '-'} | "
                 f"{_mhz(r.get('fmax_mhz'))}{rng} | {'yes' if r.get('meets') else 'NO'} | "
                 f"{len(below)} of {len(r.get('modules') or [])}{': ' + ', '.join(below[:6]) if below else ''}"
                 f"{' ...' if len(below) > 6 else ''} | {r.get('limiting_module') or '-'} | {_path(r.get('limiting_path'))} | "
                 f"{fmt_fps(r['fps_at_clock']) if r.get('fps_at_clock') else '-'} | "
                 f"{fmt_fps(r['fps_at_fmax']) if r.get('fps_at_fmax') else '-'} | {r.get('yosys_seconds')} |")
    L += ["", "Each child module of `rtlgen_top` synthesized out of context by Debian yosys 0.23 (`synth_xilinx "
          "-family xcup`, the `--synth` script) and its netlist walked register to register with the delays "
          "`rtlgen/verify/timing.py` documents (routed Vivado reports of the same silicon, DS925); est. Fmax is the "
          "midpoint net model, the range optimistic .. congested nets. An estimate, not a Vivado result: expect "
          "real results at or below the midpoint. The top's own wiring is not timed."]
    L += mixed_notes(res, tm["runs"]) + [""]
    return L


def _render_calibration(res: dict) -> list[str]:
    """BENCHMARKS.md section: the planner's cost model against yosys (``res["calibration"]``)."""
    L = []
    from results import calibration_table as calib_table

    c = res["calibration"]
    L += _section("Planner cost model against yosys, layer by layer", c) + [
        "Each child module of `rtlgen_top` synthesized on its own with the `rtlgen report --synth` script; a layer "
        "is its core plus the FIFOs and lane converters in front of it (a loop-merged projection counts inside its "
        "host conv). The planner's constants (`rtlgen/plan/cost.py`) are fitted to these figures.", ""]
    for b in c["builds"]:
        L += calib_table(b) + [""]
    return L

#: BENCHMARKS.md sections in their order: results key -> renderer
SECTIONS = [("sim", _render_sim), ("build", _render_build), ("golden", _render_golden), ("regress", _render_regress),
            ("synth", _render_synth), ("timing", _render_timing), ("calibration", _render_calibration)]


def render(res: dict) -> str:
    L = ["# BENCHMARKS", "",
         "Generated by `tools/bench.py` from `tools/bench_results.json`; every table names the command that measured it.",
         "Cycle counts are measured in RTL simulation (Verilator); FPS = clock / measured cycles per frame. No Vivado and no",
         "board exist here: timing closure at the clock and on-board figures are NOT claimed. Resources are the planner's",
         "predictions unless a table says yosys.", ""]
    for key, part in SECTIONS:
        if key in res:
            L += part(res)
    figs = sorted(FIG_DIR.glob("*.png")) if FIG_DIR.exists() else []
    if figs:
        L += ["## Plots", "", "Regenerated by every `tools/bench.py` run from the stored figures.", ""]
        L += [f"![{f.stem}](docs/figures/{f.name})" for f in figs]
        L.append("")
    for key in sorted(k for k in res if k.startswith("extra_")):
        e = res[key]
        L += _section(e["title"], e) + [e["body"], ""]
    return "\n".join(L)


def mark(res: dict, key: str) -> str:
    """" (†)" after a row name whose figures (build, sim, synth, timing) come from different builds."""
    return " (†)" if mixed_builds(res, key) else ""


def mixed_notes(res: dict, runs: dict) -> list[str]:
    notes = [f"(†) {k.replace('@', ' @ ')}: figures from different builds ({mixed_builds(res, k)}); rerun its rows "
             "to refresh" for k in sorted(runs) if mixed_builds(res, k)]
    return [""] + notes if notes else []


def timing_fps(res: dict, key: str, sim: dict) -> tuple[str, str]:
    """(estimated Fmax, FPS at min(clock, Fmax) from the measured cycles) of a throughput row, '-' without a timing
    estimate of that model @ board."""
    t = res.get("timing", {}).get("runs", {}).get(key)
    if not t or not t.get("fmax_mhz"):
        return "-", "-"
    f = min(sim["clock_mhz"], t["fmax_mhz"])
    return _mhz(t["fmax_mhz"]), fmt_fps(fps(f, sim["cycles_per_frame"]))


def _mhz(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def _path(p: dict | None) -> str:
    if not p:
        return "-"
    return (f"{p.get('lut_levels', 0)} LUT, {p.get('carry_chains', 0)} carry chains"
            + (f", {p['muxf']} MUXF" if p.get("muxf") else "") + (f", {p['dsp']} DSP" if p.get("dsp") else "")
            + f" ({p.get('delay_ns', '-')} ns)")


def readme_results(res: dict) -> str:
    """The short README "Results" section, generated from the same stored figures as BENCHMARKS.md."""
    L = ["## Results", "", "Measured by `python tools/bench.py` (details, commands and machine in BENCHMARKS.md). Cycle counts",
         "from RTL simulation; FPS = clock / measured cycles per frame; timing closure is not verified without Vivado.", ""]
    if "sim" in res:
        L += ["| model @ board | FPS at clock (measured cycles) | est. Fmax MHz | FPS at min(clock, est. Fmax) | seed paper | ratio | bit-exact frames | fits the device (yosys LUT / DSP) |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
        synth = res.get("synth", {}).get("runs", {})
        for key, r in sorted(res["sim"]["runs"].items()):
            model, board = key.split("@")
            p = PAPER.get((model, board))
            y = synth.get(key) or {}
            rs, cap = y.get("resources") or {}, y.get("capacity") or {}
            fit = (f"{'yes' if y.get('fits') else 'NO'} ({rs.get('lut', 0):,}/{cap.get('lut', 0):,} / "
                   f"{rs.get('dsp48e2', 0)}/{cap.get('dsp48e2', 0)})") if rs.get("lut") is not None else "not synthesized"
            fmax, fps_f = timing_fps(res, key, r)
            L.append(f"| {model} @ {board} ({r['clock_mhz']} MHz){mark(res, key)} | {fmt_fps(r['fps_at_clock'])} | {fmax} | "
                     f"{fps_f} | {p or '-':,} | "
                     f"{(r['fps_at_clock'] / p) if p else float('nan'):.2f}x | {r['frames'] - r['mismatches']}/{r['frames']} | {fit} |")
        L += mixed_notes(res, res["sim"]["runs"])
        L.append("")
    if (FIG_DIR / "fps_vs_paper.png").exists():
        L += ["![FPS against the seed paper](docs/figures/fps_vs_paper.png)", ""]
    if "regress" in res:
        g = res["regress"]
        L += [f"Full-dataset RTL regression ({g['target'].replace('@', ' @ ')}): {g['images']:,} CIFAR-10 test images through "
              f"the RTL, {g['mismatches']} mismatches, top-1 {100 * g['top1_rtl']:.2f} % (golden model "
              f"{100 * g['top1_golden']:.2f} %)." + (f" {g['note']}" if g.get("note") else ""), ""]
    if "golden" in res:
        L += ["| bundled model | int8 top-1 (golden model, 10,000 images) | seed paper |", "|---|---:|---:|"]
        for name, r in sorted(res["golden"]["models"].items()):
            p = PAPER_ACC.get(name)
            L.append(f"| {name} | {100 * r['top1']:.2f} % | {f'{100 * p:.1f} %' if p else '-'} |")
        L.append("")
    L += ["### How we measure", "",
          "Cycles per frame are measured in Verilator simulation of the generated RTL with frames streamed back to back;",
          "FPS is the board clock divided by that count. Every simulated frame is compared bit for bit with the NumPy golden",
          "model. Resources are the planner's predictions (and yosys estimates where stated); no Vivado run, timing closure",
          "or on-board measurement is claimed.", ""]
    return "\n".join(L)


def update_readme(res: dict):
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    block = f"{start}\n{readme_results(res)}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="golden,cores,build,sim,timing,synth,regress",
                    help="comma-separated sections: golden, cores, build, sim, timing, synth, regress (timing before "
                         "synth: --synth-per-module then reuses the timing run's yosys netlists)")
    ap.add_argument("--models", default="resnet8,resnet20")
    ap.add_argument("--boards", default="ultra96v2,kv260")
    ap.add_argument("--frames", type=int, default=20, help="frames per RTL simulation (back to back)")
    ap.add_argument("--dataset", default=os.environ.get("RTLGEN_CIFAR10") or str(ROOT.parent / "shared/data/cifar-10-batches-py"))
    ap.add_argument("--regress", default="resnet8@kv260", help="regress section: MODEL@BOARD of the full-dataset run")
    ap.add_argument("--limit", type=int, default=10_000, help="regress section: test images")
    ap.add_argument("--synth-timeout", type=int, default=3600, help="synth/timing sections: seconds per yosys run")
    ap.add_argument("--synth-jobs", type=int, default=1, help="timing section, synth with --synth-per-module: yosys "
                                                              "runs at once")
    ap.add_argument("--build-opts", default="",
                    help="build section: extra `rtlgen build` options for these rows, e.g. \"--taps --search knapsack\" "
                         "(recorded with each row)")
    ap.add_argument("--synth-per-module", action="store_true",
                    help="synth section: each layer module out of context, summed (rtlgen report --synth-per-module)")
    ap.add_argument("--render-only", action="store_true", help="rewrite BENCHMARKS.md from the stored results")
    ap.add_argument("--record-sim", nargs=3, metavar=("MODEL@BOARD", "BUILD_DIR", "SIM_JSON"),
                    help="store the JSON printed by an `rtlgen sim BUILD_DIR ... --json` run made by hand (long runs)")
    ap.add_argument("--record-command", default=None, help="with --record-sim: the exact rtlgen sim command that was run")
    args = ap.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.boards = [b for b in args.boards.split(",") if b]
    res = load_results()
    if args.record_sim:
        key, bdir, js = args.record_sim
        r = json.loads(Path(js).read_text())
        res.setdefault("sim", {"runs": {}, "command": "(per row)", "machine": machine(), "date": time.strftime("%Y-%m-%d")})
        put_run(res, "sim", key, sim_row(r, Path(bdir), args.record_command or f"rtlgen sim {bdir} --json"))
        res = save_results(res, sections=["sim"])
        args.render_only = True
    if not args.render_only:
        for sec in [s for s in args.only.split(",") if s]:
            fn = {"golden": section_golden, "build": section_build, "sim": section_sim, "cores": section_cores,
                  "synth": section_synth, "timing": section_timing, "regress": section_regress}.get(sec)
            if fn is None:
                ap.error(f"unknown section {sec!r}")
            fn(args, res)
            res = save_results(res, sections=[k for k in res if k == sec or (sec == "cores" and k == "extra_cores_synth")])
            BENCH_MD.write_text(render(res))
    for path in plots(res):
        print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    BENCH_MD.write_text(render(res))
    update_readme(res)
    print(render(res))


if __name__ == "__main__":
    sys.exit(main())
