"""Fast whole-network RTL regression: a compiled Verilator C++ harness, frames sharded over worker processes.

cocotb runs Python on every clock cycle, which is fine for tens of frames and far too slow for a full test set
(10,000 CIFAR-10 frames x ~8,000 cycles). :func:`run_regression` instead

1. builds ``rtl/rtlgen_top.v`` once with ``verilator --cc --exe --build`` and the C++ driver ``rtlgen/harness/main.cpp``
   (cached in ``DIR/sim_build/harness``, rebuilt when the Verilog, the driver or the flags change);
2. packs the frames into input beats exactly as the cocotb bench does (one pixel per beat, ``last`` on a frame's final
   beat; payloads of any width as little-endian 32-bit words, so ports wider than 64 bits work too);
3. splits the frames into ``shards`` contiguous ranges and runs one harness process per range (each from reset);
4. compares every output with the NumPy golden model (computed while the shards run) and measures cycles.

The harness reproduces the cocotb bench cycle for cycle (same reset, same handshake sampling, same stamps), so the
figures equal :func:`rtlgen.sim.run_sim`'s: *steady-state cycles per frame* = mean spacing of the last output beats
of consecutive frames after the first two of each shard (pooled over shards), *latency* = cycles from the first
frame's first input beat to its last output beat. Stalls use the harness's own random generator (not Python's), so
with ``stall > 0`` the exact pause pattern differs from the cocotb bench.

``rtlgen sim`` uses this path automatically for runs of 200 frames or more without ``--waves``.

Designs with URAM weights (manifest ``weights``): the harness is compiled with ``-DRTLGEN_WLOAD`` and every shard
first sends ``DIR/weights/weights.bin`` on ``wload`` (with the same stall probability), then its frames; cycle
figures are taken after the load, as in the cocotb bench.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import golden
from .errors import RtlgenError

HARNESS_DIR = Path(__file__).resolve().parent / "harness"
EXE_NAME = "rtlgen_harness"
GOLDEN_BATCH = 500  # images per golden-model batch (the whole test set at once peaks at ~4 GB)


# ---------------------------------------------------------------------------------------------------------------
# payload packing


def words_for(bits: int) -> int:
    return max(1, (bits + 31) // 32)


def pack_beats(values: np.ndarray, width: int, last: np.ndarray) -> np.ndarray:
    """``values[..., lanes]`` (ints, taken modulo 2**width) and ``last[...]`` (bool) -> uint32 words ``[..., W]`` with
    lane ``l`` at bits ``[l*width, (l+1)*width)`` and ``last`` at bit ``lanes*width`` (Verilator's word order)."""
    *lead, lanes = values.shape
    nw = words_for(lanes * width + 1)
    words = np.zeros((*lead, nw), dtype=np.uint64)
    mask = np.uint64((1 << width) - 1)

    def place(v: np.ndarray, bit: int):
        w, s = divmod(bit, 32)
        words[..., w] |= (v << np.uint64(s)) & np.uint64(0xFFFFFFFF)
        rest = v >> np.uint64(32 - s) if s else v >> np.uint64(32)
        while np.any(rest) and w + 1 < nw:  # a lane straddling word boundaries (or wider than 32 bits)
            w += 1
            words[..., w] |= rest & np.uint64(0xFFFFFFFF)
            rest = rest >> np.uint64(32)

    if width > 64:
        raise RtlgenError(f"lane width {width} > 64 bits is not supported by the harness packer")
    vals = values.astype(np.int64).view(np.uint64) & mask if width < 64 else values.astype(np.int64).view(np.uint64)
    for ln in range(lanes):
        place(np.ascontiguousarray(vals[..., ln]), ln * width)
    place(last.astype(np.uint64), lanes * width)
    return words.astype(np.uint32)


def unpack_beats(words: np.ndarray, lanes: int, width: int, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_beats`: uint32 ``[..., W]`` -> (int64 ``[..., lanes]``, bool ``last[...]``)."""
    w64 = words.astype(np.uint64)
    nw = w64.shape[-1]

    def field(bit: int, n: int) -> np.ndarray:
        out = np.zeros(w64.shape[:-1], dtype=np.uint64)
        got = 0
        while got < n:
            w, s = divmod(bit + got, 32)
            take = min(32 - s, n - got)
            if w < nw:
                chunk = (w64[..., w] >> np.uint64(s)) & np.uint64((1 << take) - 1)
                out |= chunk << np.uint64(got)
            got += take
        return out

    vals = np.zeros((*w64.shape[:-1], lanes), dtype=np.int64)
    for ln in range(lanes):
        v = field(ln * width, width).view(np.int64)  # 64-bit lanes: two's complement as is
        if signed and width < 64:
            v = np.where(v >> (width - 1) & 1, v - (1 << width), v)
        vals[..., ln] = v
    last = field(lanes * width, 1).astype(bool)
    return vals, last


def input_words(pixels: np.ndarray, man: dict) -> np.ndarray:
    """uint8 NHWC frames -> uint32 input beats ``[N, beats, W]`` (one pixel per beat, as :func:`rtlgen.sim.frame_beats`)."""
    i = man["input"]
    N, H, W, C = pixels.shape
    if i["lanes"] != C or i["beats_per_frame"] != H * W:
        raise RtlgenError(f"input port has {i['lanes']} lanes x {i['beats_per_frame']} beats; frames are {H}x{W}x{C}")
    vals = pixels.reshape(N, H * W, C).astype(np.int64)
    last = np.zeros((N, H * W), dtype=bool)
    last[:, -1] = True
    return pack_beats(vals, i["width"], last)


def decode_output_words(words: np.ndarray, man: dict, n: int) -> np.ndarray:
    """uint32 output beats ``[n * beats, W]`` -> int64 ``[n, values]``; checks the ``last`` flags."""
    o = man["output"]
    lanes, width, values, bpf = o["lanes"], o["width"], o["values"], o["beats_per_frame"]
    vals, last = unpack_beats(words.reshape(n, bpf, -1), lanes, width, o["signed"])
    want = np.zeros((n, bpf), dtype=bool)
    want[:, -1] = True
    bad = np.argwhere(last != want)
    if len(bad):
        f, b = bad[0]
        raise RtlgenError(f"frame {f}: 'last' flag misplaced on output beat {b}")
    return vals.reshape(n, bpf * lanes)[:, :values]


# ---------------------------------------------------------------------------------------------------------------
# harness build


def _verilator_cmd(root: Path, src: Path, mdir: Path, jobs: int, wload: bool = False) -> list[str]:
    from .simulate import verilator_build_args

    return [str(root / "bin" / "verilator"), "--cc", "--exe", "--build", "-j", str(jobs), *verilator_build_args(),
            *(["-CFLAGS", "-DRTLGEN_WLOAD"] if wload else []),
            "--top-module", "rtlgen_top", "--prefix", "Vtop", "-Mdir", str(mdir), "-o", EXE_NAME,
            str(src), str(HARNESS_DIR / "main.cpp")]


def has_wload(build_dir) -> bool:
    """True when the build's ``rtlgen_top`` has URAM weights to load (manifest ``weights``)."""
    import json

    man = Path(build_dir) / "rtl" / "manifest.json"
    return man.exists() and bool(json.loads(man.read_text()).get("weights"))


def weight_load_words(build_dir, man: dict) -> np.ndarray:
    """``DIR/weights/weights.bin`` as harness beats: uint32 ``[words, words_for(width)]`` (little-endian)."""
    w = man["weights"]
    data = np.fromfile(Path(build_dir) / "weights" / "weights.bin", dtype="<u4")
    wb = w["word_bytes"]
    if data.size * 4 != w["words"] * wb:
        raise RtlgenError(f"weights/weights.bin holds {data.size * 4} bytes, the manifest expects {w['words']} x {wb}")
    return np.ascontiguousarray(data.reshape(w["words"], wb // 4)[:, : words_for(w["width"])])


def build_harness(build_dir, jobs: int = 2, cxx_opt: str = "-O2", log=None) -> Path:
    """Compile (or reuse) the harness for ``build_dir/rtl/rtlgen_top.v``; returns the executable's path."""
    from . import toolchain

    d = Path(build_dir).resolve()
    src = d / "rtl" / "rtlgen_top.v"
    mdir = d / "sim_build" / "harness"
    exe = mdir / EXE_NAME
    env = toolchain.setup_env(dict(os.environ))
    root = Path(env["VERILATOR_ROOT"])
    cmd = _verilator_cmd(root, src, mdir, jobs, wload=has_wload(d))
    h = hashlib.sha256()
    for p in (src, HARNESS_DIR / "main.cpp"):
        h.update(p.read_bytes())
    h.update(" ".join(cmd[1:]).encode())
    h.update(cxx_opt.encode())
    key = h.hexdigest()
    stamp = mdir / "rtlgen_harness.sha256"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == key:
        return exe
    mdir.mkdir(parents=True, exist_ok=True)
    if stamp.exists():
        stamp.unlink()
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} OPT_FAST={cxx_opt} OPT_SLOW={cxx_opt} OPT_GLOBAL={cxx_opt}".strip()
    logf = mdir / "build.log"
    t = time.perf_counter()
    with open(logf, "w") as lf:
        r = subprocess.run(cmd, cwd=mdir, env=env, stdout=lf, stderr=subprocess.STDOUT)
    if r.returncode != 0 or not exe.exists():
        tail = logf.read_text(errors="replace").strip().splitlines()[-5:]
        raise RtlgenError(f"Verilator harness build failed (see {logf}): {' | '.join(tail)}")
    stamp.write_text(key + "\n")
    (mdir / "build_seconds.txt").write_text(f"{time.perf_counter() - t:.1f}\n")
    return exe


# ---------------------------------------------------------------------------------------------------------------
# running


def _shard_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    shards = max(1, min(shards, n))
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run_harness(exe: Path, words: np.ndarray, man: dict, cycles_per_frame: int, stall: float = 0.0, seed: int = 1,
                shards: int = 2, workdir=None, progress=None, wload: np.ndarray | None = None) -> list[dict]:
    """Run ``shards`` harness processes on contiguous frame ranges of ``words`` ``[N, beats, W]``; with ``wload``
    (uint32 ``[beats, W]``, a ``-DRTLGEN_WLOAD`` harness) each shard sends those weight beats first.

    Returns one dict per shard: ``start``, ``n``, ``outs`` (uint32 ``[beats, W_out]``), ``first_in``, ``last_out``
    (int64 per frame), ``cycles``, ``timeout``, ``extra``, ``load_cycles`` (weight load, None without one).
    ``progress(k)`` is called with newly finished frames."""
    n, beats, wi = words.shape
    o = man["output"]
    wo = words_for(o["lanes"] * o["width"] + 1)
    obpf = o["beats_per_frame"]
    ranges = _shard_ranges(n, shards)
    lock = threading.Lock()
    with tempfile.TemporaryDirectory(dir=workdir, prefix="regress-") as tmp:
        tmp = Path(tmp)
        procs = []
        wargs = []
        if wload is not None:
            wl = tmp / "wload.bin"
            np.ascontiguousarray(wload).astype("<u4").tofile(wl)
            wargs = [str(wl), str(wload.shape[0]), str(wload.shape[1])]
        for s, (a, b) in enumerate(ranges):
            fin = tmp / f"in{s}.bin"
            np.ascontiguousarray(words[a:b]).astype("<u4").tofile(fin)
            max_cycles = int(50 * cycles_per_frame * (b - a + 4) + 200_000)
            args = [str(exe), str(fin), str(tmp / f"out{s}.bin"), str(tmp / f"stamps{s}.bin"), str(b - a), str(beats),
                    str(wi), str(obpf), str(wo), repr(float(stall)), str(seed * 1000 + s), str(max_cycles), *wargs]
            p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
            procs.append(p)
        finals: list[str | None] = [None] * len(procs)
        errs: list[str] = [""] * len(procs)
        loads: list[int | None] = [None] * len(procs)

        def reader(s, p):
            done = 0
            for line in p.stdout:
                if line.startswith("F "):
                    k = int(line.split()[1])
                    if progress is not None:
                        with lock:
                            progress(k - done)
                    done = k
                elif line.startswith("L "):
                    loads[s] = int(line.split()[1])
                elif line.startswith("DONE"):
                    finals[s] = line.strip()
            errs[s] = p.stderr.read()

        threads = [threading.Thread(target=reader, args=(s, p), daemon=True) for s, p in enumerate(procs)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
            for p in procs:
                p.wait()
        except BaseException:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            raise
        results = []
        for s, ((a, b), p) in enumerate(zip(ranges, procs)):
            if p.returncode != 0 or finals[s] is None:
                raise RtlgenError(f"harness shard {s} (frames {a}..{b - 1}) failed with exit code {p.returncode}: "
                                  f"{errs[s].strip()[-300:]}")
            kv = dict(item.split("=") for item in finals[s].split()[1:])
            nout = int(kv["outs"])
            outs = np.fromfile(tmp / f"out{s}.bin", dtype="<u4").reshape(nout, wo)
            st = np.fromfile(tmp / f"stamps{s}.bin", dtype="<u8").astype(np.int64)
            results.append({"start": a, "n": b - a, "outs": outs, "first_in": st[: b - a], "last_out": st[b - a :],
                            "cycles": int(kv["cycles"]), "timeout": kv["timeout"] == "1", "extra": int(kv["extra"]),
                            "load_cycles": loads[s]})
        return results


def steady_cycles(last_outs: list[np.ndarray]) -> float:
    """Pooled steady-state cycles per frame over shards (each shard's spacing after its first two frames, as
    :func:`rtlgen.sim.run_sim` computes it for one run)."""
    num = den = 0.0
    for last in last_outs:
        m = len(last)
        if m >= 4:
            num += float(last[-1] - last[1])
            den += m - 2
    if den:
        return num / den
    for last in last_outs:  # short shards: spacing after the first frame
        m = len(last)
        if m >= 2:
            num += float(last[-1] - last[0])
            den += m - 1
    return num / den if den else float("nan")


def run_regression(build_dir, pixels: np.ndarray, labels: np.ndarray | None = None, shards: int = 2,
                   stall: float = 0.0, seed: int = 1, progress=None, jobs: int = 2) -> dict:
    """Simulate ``pixels`` (uint8 NHWC) through the built design with the compiled harness; same result keys as
    :func:`rtlgen.sim.run_sim` (``images``, ``mismatches``, ``top1``, ``cycles_per_frame``, ``latency_cycles``,
    ``fps_at_clock``, ``predicted_cycles_per_frame``, ``stall``, ``seconds``; ``first_mismatch*`` and
    ``first_differing_layer`` on a mismatch) plus ``shards`` and ``engine``.

    ``progress``: ``None`` shows a tqdm bar on stderr when it is a terminal; a callable receives frame increments."""
    from .sim import load_design

    d = Path(build_dir).resolve()
    net, rep, man = load_design(d)
    n = len(pixels)
    if n < 1:
        from .errors import OptionError

        raise OptionError("no frames to simulate")
    secs = {}
    t = time.perf_counter()
    exe = build_harness(d, jobs=jobs)
    secs["compile"] = round(time.perf_counter() - t, 2)
    words = input_words(pixels, man)

    bar = None
    if progress is None:
        from tqdm import tqdm

        bar = tqdm(total=n, unit="frame", desc=f"rtl {rep['model']} x{shards}", disable=None, file=sys.stderr)
        progress = bar.update
    golden_box: dict = {}

    def golden_job():
        t0 = time.perf_counter()
        try:
            golden_box["expect"] = np.concatenate([golden.run(net, pixels[i : i + GOLDEN_BATCH])
                                                   for i in range(0, n, GOLDEN_BATCH)])
        except BaseException as e:  # re-raised in the caller's thread
            golden_box["error"] = e
        golden_box["seconds"] = time.perf_counter() - t0

    gt = threading.Thread(target=golden_job, daemon=True)
    t1 = time.perf_counter()
    try:
        gt.start()  # the golden model (NumPy, mostly GIL-free) runs while the shards simulate
        wl = weight_load_words(d, man) if man.get("weights") else None
        res = run_harness(exe, words, man, rep["cycles_per_frame"], stall=stall, seed=seed, shards=shards,
                          workdir=d / "sim_build", progress=progress, wload=wl)
        secs["simulation"] = round(time.perf_counter() - t1, 2)
        gt.join()
    finally:
        if bar is not None:
            bar.close()
    if "error" in golden_box:
        raise golden_box["error"]
    expect = golden_box["expect"]
    secs["golden"] = round(golden_box["seconds"], 2)
    obpf = man["output"]["beats_per_frame"]
    for s, r in enumerate(res):
        if r["timeout"] or len(r["outs"]) < r["n"] * obpf:
            raise RtlgenError(f"simulation stalled: shard {s} got {len(r['outs'])} of {r['n'] * obpf} output beats "
                              f"after {r['cycles']} cycles (deadlock?)")
        if r["extra"]:
            raise RtlgenError(f"shard {s}: {r['extra']} output beats after the last expected one")
    got = np.concatenate([decode_output_words(r["outs"], man, r["n"]) for r in res])
    mism = np.nonzero(np.any(got != expect, axis=1))[0]
    cpf = steady_cycles([r["last_out"] for r in res])
    r0 = res[0]
    lat = int(r0["last_out"][0] - r0["first_in"][0] + 1)
    out = {
        "images": int(n),
        "mismatches": int(len(mism)),
        "top1": None,
        "cycles_per_frame": int(round(cpf)) if not math.isnan(cpf) else None,
        "latency_cycles": lat,
        "fps_at_clock": round(rep["clock_mhz"] * 1e6 / cpf, 1) if not math.isnan(cpf) else None,
        "predicted_cycles_per_frame": rep["cycles_per_frame"],
        "stall": stall,
        "seconds": secs,
        "shards": len(res),
        "engine": "verilator-harness",
    }
    if labels is not None:
        logits = golden.logits(net, got)
        out["top1"] = float(np.mean(np.argmax(logits, axis=1) == labels))
    if len(mism):
        from .sim import _simulate, first_differing_layer

        f = int(mism[0])
        out["first_mismatch_frame"] = f
        out["first_mismatch"] = {"expected": expect[f].tolist(), "got": got[f].tolist()}
        # re-run the failing frame alone in the cocotb bench with every layer's output stream probed
        r2 = _simulate(d, rep, man, pixels[f : f + 1], 0.0, seed, False, probes=man.get("probes", []), opt="O0")
        out["first_differing_layer"] = first_differing_layer(net, man, r2["probes"], golden.run(net, pixels[f : f + 1], return_all=True))
    return out
