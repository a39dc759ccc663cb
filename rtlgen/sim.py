"""``rtlgen sim``: compile a built design with Verilator (cocotb runner), stream frames, check bit-exactness.

Measured figures: *steady-state cycles per frame* = mean spacing of the last output beats of consecutive frames after
the first two (back-to-back input, no stalls unless ``--stall``), *latency* = cycles from the first frame's first
input beat to its last output beat. On a mismatch the first differing layer is named by re-running the failing frame
alone with monitors on every core's output stream and comparing each with the golden model's per-layer output.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from . import golden, ir
from .errors import OptionError, RtlgenError
from .importer import load_model


def load_design(build_dir) -> tuple[ir.Network, dict, dict]:
    d = Path(build_dir)
    if not d.is_dir():
        raise OptionError(f"build folder {str(d)!r} does not exist (run rtlgen build first)")
    for f in ("report.json", "model.onnx", "rtl/rtlgen_top.v", "rtl/manifest.json"):
        if not (d / f).exists():
            raise OptionError(f"build folder {str(d)!r} has no {f} (built with --no-rtl, or not an rtlgen build)")
    rep = json.loads((d / "report.json").read_text())
    pre = rep.get("preprocess", {})
    net = load_model(d / "model.onnx", input_scale=pre.get("input_scale"), mean=pre.get("mean"), std=pre.get("std"),
                     name=rep["model"])
    man = json.loads((d / "rtl" / "manifest.json").read_text())
    return net, rep, man


def frame_beats(pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> input payloads, one pixel per beat (lanes = C), ``last`` on each frame's final beat."""
    N, H, W, C = pixels.shape
    p = pixels.reshape(N, H * W, C).astype(np.uint64)
    words = np.zeros((N, H * W), dtype=np.uint64)
    for c in range(C):
        words |= p[:, :, c] << np.uint64(8 * c)
    words[:, -1] |= np.uint64(1) << np.uint64(8 * C)
    return words


def decode_outputs(outs: list[int], man: dict, n: int) -> np.ndarray:
    o = man["output"]
    lanes, width, values, bpf = o["lanes"], o["width"], o["values"], o["beats_per_frame"]
    mask = (1 << width) - 1
    res = np.zeros((n, bpf * lanes), dtype=np.int64)
    for f in range(n):
        for b in range(bpf):
            w = outs[f * bpf + b]
            if ((w >> (lanes * width)) & 1) != (b == bpf - 1):
                raise RtlgenError(f"frame {f}: 'last' flag misplaced on output beat {b}")
            for ln in range(lanes):
                v = (w >> (ln * width)) & mask
                if o["signed"] and v >> (width - 1):
                    v -= 1 << width
                res[f, b * lanes + ln] = v
    return res[:, :values]


def _simulate(d: Path, rep, man, pixels, stall, seed, waves, probes=(), opt="auto"):
    from .simulate import SimulationError, run_cocotb

    n = len(pixels)
    sim_dir = d / "sim_build"
    sim_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sim_dir) as tmp:
        tmp = Path(tmp)
        np.save(tmp / "frames.npy", frame_beats(pixels))
        results = tmp / "results.json"
        cfg = {"frames": str(tmp / "frames.npy"), "out_beats": man["output"]["beats_per_frame"],
               "pause_in": stall, "pause_out": stall, "seed": seed, "results": str(results),
               "max_cycles": int(50 * rep["cycles_per_frame"] * (n + 4) + 200_000), "probes": list(probes)}
        if opt == "auto":  # a fast compile for a few frames, an optimised model for long runs
            opt = "O0" if n * rep["cycles_per_frame"] < 2_000_000 else "Os"
        try:
            run_cocotb([d / "rtl" / "rtlgen_top.v"], "rtlgen_top", "rtlgen.sim_bench", Path(__file__).parent,
                       sim_dir / f"verilator_{opt}", config=cfg, waves=waves, cxx_opt=f"-{opt}")
        except SimulationError:
            if not results.exists():
                raise
        return json.loads(results.read_text())


def first_differing_layer(net: ir.Network, man: dict, probes: dict, expect_all: dict) -> str | None:
    """The first layer (topological order) whose probed output stream differs from the golden model."""
    from .cores.stream import beats_to_frame

    by = {p["layer"]: p for p in man.get("probes", [])}
    for lay in net.layers:
        if lay.name not in probes or lay.name not in by:
            continue
        p = by[lay.name]
        try:
            got = beats_to_frame(probes[lay.name], tuple(p["shape"]), p["lanes"], p["width"], p["signed"])
        except ValueError:
            return lay.name
        if not np.array_equal(got, expect_all[lay.name][0]):
            return lay.name
    return None


def run_sim(build_dir, pixels: np.ndarray, labels: np.ndarray | None = None, stall: float = 0.0, waves: bool = False,
            seed: int = 1, progress=None, opt: str = "auto") -> dict:
    # --- issue 8 item 3: large runs go to the compiled Verilator harness (rtlgen/regress.py), sharded over 2 processes
    if len(pixels) >= 200 and not waves:
        from .regress import run_regression

        return run_regression(build_dir, pixels, labels, shards=2, stall=stall, seed=seed, progress=progress)
    # --- end of the regression branch
    d = Path(build_dir).resolve()
    net, rep, man = load_design(d)
    n = len(pixels)
    if n < 1:
        raise OptionError("no frames to simulate")
    t0 = time.perf_counter()
    expect = golden.run(net, pixels)
    t_golden = time.perf_counter() - t0
    t1 = time.perf_counter()
    r = _simulate(d, rep, man, pixels, stall, seed, waves, opt=opt)
    t_sim = time.perf_counter() - t1
    if r["timeout"]:
        raise RtlgenError(f"simulation stalled: {len(r['outs'])} of {n * man['output']['beats_per_frame']} output beats "
                          f"after {r['cycles']} cycles (deadlock?)")
    got = decode_outputs(r["outs"], man, n)
    mism = np.nonzero(np.any(got != expect, axis=1))[0]
    last = np.array(r["last_out"], dtype=np.float64)
    if n >= 4:
        cpf = (last[-1] - last[1]) / (n - 2)
    elif n >= 2:
        cpf = (last[-1] - last[0]) / (n - 1)
    else:
        cpf = float("nan")
    lat = int(r["last_out"][0] - r["first_in"][0] + 1)
    out = {
        "images": int(n),
        "mismatches": int(len(mism)),
        "top1": None,
        "cycles_per_frame": int(round(cpf)) if not math.isnan(cpf) else None,
        "latency_cycles": lat,
        "fps_at_clock": round(rep["clock_mhz"] * 1e6 / cpf, 1) if not math.isnan(cpf) else None,
        "predicted_cycles_per_frame": rep["cycles_per_frame"],
        "stall": stall,
        "seconds": {"golden": round(t_golden, 2), "simulation": round(t_sim, 2)},
    }
    if labels is not None:
        logits = golden.logits(net, got)
        out["top1"] = float(np.mean(np.argmax(logits, axis=1) == labels))
    if len(mism):
        f = int(mism[0])
        out["first_mismatch_frame"] = f
        out["first_mismatch"] = {"expected": expect[f].tolist(), "got": got[f].tolist()}
        # re-run the failing frame alone with every layer's output stream probed
        r2 = _simulate(d, rep, man, pixels[f : f + 1], 0.0, seed, False, probes=man.get("probes", []), opt=opt if opt != "auto" else "O0")
        out["first_differing_layer"] = first_differing_layer(net, man, r2["probes"], golden.run(net, pixels[f : f + 1], return_all=True))
    return out
