"""The RTL simulator of ``rtlgen sim``: a compiled Verilator C++ harness, frames sharded over processes.

cocotb runs Python on every clock cycle (15-22 s per ResNet8 frame); it stays for ``--waves`` and for users' own
cocotb suites (:mod:`rtlgen.verify.tb`). Every other run, whatever its frame count, goes through :func:`run_regression`:

1. :func:`build_harness` verilates ``rtl/rtlgen_top.v`` with the C++ driver ``rtlgen/harness/main.cpp`` and compiles
   it (cached in ``DIR/sim_build/harness``, rebuilt when the Verilog, the driver or the flags change; ccache, when
   installed, makes a rebuild of unchanged C++ nearly free). Verilation and the C++ compile are two steps, so the
   driver gets a generated ``rtlgen_probes.h`` that reads every layer's output stream (compose's
   ``probe_<layer>__*`` wires, made readable by a ``public_flat_rd`` Verilator config; they cost no simulation time
   unless recorded). ``--output-split`` spreads the model over several C++ files compiled by ``make -j``;
2. frames are packed into input beats (one pixel per beat, ``last`` on a frame's final beat; payloads of any width as
   little-endian 32-bit words, so ports wider than 64 bits work too);
3. the frames are split into ``shards`` contiguous ranges, one harness process per range, each from reset, run by
   local threads (the harness processes are the process pool: nothing to start) or, with ``scheduler``, as Dask
   tasks on a Dask cluster (:mod:`rtlgen.verify.shard`);
4. every output is compared with the NumPy golden model (computed while the shards run) and cycles are measured. On a
   mismatch the failing shard is re-run up to the first failing frame with the probes recording that frame, and the
   first layer whose output stream differs from the golden model is named.

The harness reproduces the cocotb bench (:mod:`rtlgen.verify.bench`) cycle for cycle (same reset, same handshake
sampling, same stamps): *steady-state cycles per frame* = mean spacing of the last output beats of consecutive frames
after the first two of each shard (pooled over shards), *latency* = cycles from the first frame's first input beat to
its last output beat. Stalls use the harness's own random generator (not Python's), so with ``stall > 0`` the exact
pause pattern differs from the cocotb bench.

Designs with URAM weights (manifest ``weights``): the harness is compiled with ``-DRTLGEN_WLOAD`` and every shard
first sends ``DIR/weights/weights.bin`` on ``wload`` (with the same stall probability), then its frames; cycle
figures are taken after the load, as in the cocotb bench.

Progress: ``log`` receives phase messages with elapsed times ("compiling the harness ... done in 71.3 s") and the
closing summary line; ``progress`` receives frame increments (default: a tqdm bar with ETA on stderr). See
:class:`rtlgen.progress.Reporter`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import golden, ir
from ..errors import OptionError, RtlgenError
from ..progress import Reporter
from . import score
from .beats import decode_output_words, input_words, words_for

HARNESS_DIR = Path(__file__).resolve().parent.parent / "harness"
EXE_NAME = "rtlgen_harness"
GOLDEN_BATCH = 500  # images per golden-model batch (the whole test set at once peaks at ~4 GB)
#: C++ optimisation of the Verilated model's hot code (OPT_FAST) and of its run-once code (OPT_SLOW, constructors and
#: initial blocks): measured on ResNet8 @ KV260 by tools/bench_sim.py (BENCHMARKS.md, "RTL simulator")
DEFAULT_CXX_OPT = "-O1"
DEFAULT_SLOW_OPT = "-O0"
#: Verilator ``--output-split`` (statements per C++ file): several files compile in parallel under ``make -j``
DEFAULT_OUTPUT_SPLIT = 20000


# ---------------------------------------------------------------------------------------------------------------
# the build folder


def load_design(build_dir) -> tuple[ir.Network, dict, dict]:
    """``(network, report.json, rtl/manifest.json)`` of an rtlgen build folder (one-line error when it is not one)."""
    from ..frontend import load_model

    d = Path(build_dir)
    if not d.is_dir():
        raise OptionError(f"build folder {str(d)!r} does not exist (run rtlgen build first)")
    for f in ("report.json", "model.onnx", "rtl/rtlgen_top.v", "rtl/manifest.json"):
        if not (d / f).exists():
            raise OptionError(f"build folder {str(d)!r} has no {f} (built with --no-rtl, or not an rtlgen build)")
    rep = json.loads((d / "report.json").read_text())
    pre = rep.get("preprocess", {})
    net = load_model(d / "model.onnx", input_scale=pre.get("input_scale"), mean=pre.get("mean"), std=pre.get("std"),
                     input_codes=bool(pre.get("codes")),
                     name=rep["model"])
    man = json.loads((d / "rtl" / "manifest.json").read_text())
    return net, rep, man


def first_differing_layer(net: ir.Network, man: dict, probes: dict, expect_all: dict) -> str | None:
    """The first layer (topological order) whose probed output stream differs from the golden model.

    ``probes``: layer name -> list of the stream's payload integers for one frame."""
    from rtlgen.cores.stream import beats_to_frame

    by = {p["layer"]: p for p in man.get("probes", [])}
    for lay in net.layers:
        if lay.name not in probes or lay.name not in by:
            continue
        p = by[lay.name]
        try:
            got = beats_to_frame(probes[lay.name], tuple(p["shape"]), p["lanes"], p["width"], p["signed"])
        except ValueError:
            return lay.name
        exp = expect_all[lay.name][0]
        if got.size == exp.size:  # a folded input stage streams the same bytes in wider beats
            got = got.reshape(exp.shape)
        if not np.array_equal(got, exp):
            return lay.name
    return None


# ---------------------------------------------------------------------------------------------------------------
# payload packing


# ---------------------------------------------------------------------------------------------------------------
# harness build


@dataclass
class Harness:
    """A compiled harness: the executable, whether it loads weights, and the probes it can record (in the order of
    its probe file: ``{"layer", "beats_per_frame", "words"}``)."""

    exe: Path
    wload: bool
    probes: list
    seconds: float | None = None  # compile time of this build (None: reused from the cache)
    detail: dict | None = None  # wall and CPU seconds of verilation and C++ compile (fresh builds)

    def __fspath__(self):  # usable where a path is expected (run_harness's historical ``exe`` argument)
        return str(self.exe)


def has_wload(build_dir) -> bool:
    """True when the build's ``rtlgen_top`` has URAM weights to load (manifest ``weights``)."""
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


PROBE_VLT = '`verilator_config\npublic_flat_rd -module "rtlgen_top" -var "probe_*"\n'
_MEMBER = re.compile(r"^\s*(?:CData|SData|IData|QData|VlWide<\d+>)\s*(?:/\*(\d+):0\*/)?\s*rtlgen_top__DOT__(\w+);", re.M)


def _unmangle(name: str) -> str:
    """Verilator's identifier escapes (``___05F`` = ``_``) undone: ``probe_conv0___05Fvalid`` -> ``probe_conv0__valid``."""
    return re.sub(r"___0([0-9A-Fa-f]{2})", lambda m: "_" + chr(int(m.group(1), 16)), name)


def _probe_header(mdir: Path, man: dict) -> tuple[str, list]:
    """``rtlgen_probes.h`` for the probes of ``man`` that the verilated model exposes, and their list."""
    from rtlgen.cores.stream import beats_per_pixel

    text = "\n".join(p.read_text() for p in sorted(mdir.glob("Vtop___024root*.h")))
    members = {}
    for m in _MEMBER.finditer(text):
        members[_unmangle(m.group(2))] = ("rtlgen_top__DOT__" + m.group(2), int(m.group(1)) + 1 if m.group(1) else None)
    rows, lines = [], []
    for p in man.get("probes", []):
        names = [members.get(f"{p['prefix']}__{k}") for k in ("valid", "ready", "payload")]
        if any(n is None for n in names):
            continue
        H, W, C = p["shape"]
        nw = words_for(p["lanes"] * p["width"] + 1)
        k = len(rows)
        rows.append({"layer": p["layer"], "beats_per_frame": H * W * beats_per_pixel(C, p["lanes"]), "words": nw})
        v, r, d = (n[0] for n in names)
        lines.append(f"    if (r->{v} && r->{r}) rec[{k}].beat(r->{d});")
    n = len(rows)
    src = ["// generated by rtlgen.verify.harness.build_harness: the design's probed layer output streams", "#pragma once",
           '#include "Vtop___024root.h"', f"#define RTLGEN_NPROBES {n}",
           f"static const long rtlgen_probe_bpf[{max(n, 1)}] = {{{', '.join(str(x['beats_per_frame']) for x in rows) or '0'}}};",
           f"static const int rtlgen_probe_words[{max(n, 1)}] = {{{', '.join(str(x['words']) for x in rows) or '1'}}};",
           "static inline void rtlgen_probe_sample(Vtop* top, ProbeRec* rec) {", "    auto* r = top->rootp;",
           *lines, "    (void)r; (void)rec;", "}", ""]
    return "\n".join(src), rows


def _verilator_cmd(root: Path, src: Path, mdir: Path, wload: bool, probes: bool, output_split: int) -> list[str]:
    from .runner import verilator_build_args

    cmd = [str(root / "bin" / "verilator"), "--cc", "--exe", *verilator_build_args(),
           *(["-CFLAGS", "-DRTLGEN_WLOAD"] if wload else []),
           *(["-CFLAGS", "-DRTLGEN_PROBES", str(mdir / "probes.vlt")] if probes else []),
           *(["--output-split", str(output_split)] if output_split else []),
           "--top-module", "rtlgen_top", "--prefix", "Vtop", "-Mdir", str(mdir), "-o", EXE_NAME,
           str(src), str(HARNESS_DIR / "main.cpp")]
    return cmd


def build_harness(build_dir, jobs: int = 2, cxx_opt: str = DEFAULT_CXX_OPT, log=None, probes: bool = True,
                  output_split: int = DEFAULT_OUTPUT_SPLIT, slow_opt: str = DEFAULT_SLOW_OPT, mdir=None,
                  info: bool = False, pgo: bool = False, arch: str = ""):
    """Compile (or reuse) the harness for ``build_dir/rtl/rtlgen_top.v``; returns the executable's path (``info``:
    a :class:`Harness`). ``jobs``: parallel C++ compiles (``make -j``); ``cxx_opt``/``slow_opt``: optimisation of the
    model's hot and run-once code; ``probes``: compile the per-layer probes in (needed to name the first differing
    layer); ``output_split``: Verilator ``--output-split`` (0: one file per class); ``log``: as in
    :class:`rtlgen.progress.Reporter`; ``mdir``: build folder (default ``DIR/sim_build/harness``).

    ``pgo``: profile-guided optimisation of the hot code: an instrumented compile (``-fprofile-generate``), a
    training run of :data:`PGO_FRAMES` random frames, then the optimised compile (``-fprofile-use``): about 2.5x the
    compile CPU time for a faster simulation (measured in BENCHMARKS.md, "RTL simulator"): worth it for long runs
    only. ``arch``: extra code-generation flags for the hot code (e.g. ``"-march=native"``: the executable then runs
    only on CPUs like this one, so not for Dask workers elsewhere)."""
    from .. import toolchain

    rep = log if isinstance(log, Reporter) else Reporter(log, False)
    d = Path(build_dir).resolve()
    src = d / "rtl" / "rtlgen_top.v"
    if not src.exists():
        raise OptionError(f"{src} does not exist (not an rtlgen build with RTL)")
    man_path = d / "rtl" / "manifest.json"
    man = json.loads(man_path.read_text()) if man_path.exists() else {}
    probes = probes and bool(man.get("probes"))
    mdir = Path(mdir).resolve() if mdir is not None else d / "sim_build" / "harness"
    exe = mdir / EXE_NAME
    env = toolchain.setup_env(dict(os.environ))
    root = Path(env["VERILATOR_ROOT"])
    wload = bool(man.get("weights"))
    cmd = _verilator_cmd(root, src, mdir, wload, probes, output_split)
    h = hashlib.sha256()
    for p in (src, HARNESS_DIR / "main.cpp"):
        h.update(p.read_bytes())
    h.update(json.dumps(man.get("probes", [])).encode())
    # location-independent: a copied build folder keeps its compiled harness
    h.update(" ".join(c.replace(str(mdir), "<MDIR>").replace(str(src), "<SRC>") for c in cmd[1:]).encode())
    h.update(f"{cxx_opt} {slow_opt}".encode())
    if pgo or arch:
        h.update(f" pgo={int(pgo)} {PGO_FRAMES} arch={arch}".encode())
    key = h.hexdigest()
    stamp = mdir / "rtlgen_harness.sha256"
    pfile = mdir / "rtlgen_probes.json"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == key:
        rep.say(f"harness up to date ({_rel(exe)})")
        pr = json.loads(pfile.read_text()) if probes and pfile.exists() else []
        return Harness(exe, wload, pr) if info else exe
    mdir.mkdir(parents=True, exist_ok=True)
    for stale in (stamp, exe):
        if stale.exists():
            stale.unlink()
    if probes:
        (mdir / "probes.vlt").write_text(PROBE_VLT)
    logf = mdir / "build.log"
    t = time.perf_counter()
    pr: list = []
    with open(logf, "w") as lf:
        lines = len(src.read_text(errors="replace").splitlines()) if src.stat().st_size < 200_000_000 else 0
        detail = {}
        c0 = _child_cpu()
        with rep.phase(f"verilating {src.name} ({lines:,} lines)") as ph:
            r = subprocess.run(cmd, cwd=mdir, env=env, stdout=lf, stderr=subprocess.STDOUT)
            _check(r, logf, "Verilator")
        detail["verilate_s"], detail["verilate_cpu_s"] = round(ph["seconds"], 1), round(_child_cpu() - c0, 1)
        if probes:
            hdr, pr = _probe_header(mdir, man)
            (mdir / "rtlgen_probes.h").write_text(hdr)
        pfile.write_text(json.dumps(pr))
        ncpp = len(list(mdir.glob("Vtop*.cpp")))
        fast = f"{cxx_opt} {arch}".strip()

        def make(opt_fast: str, ldflags: str = "", what: str = "", menv=env):
            mk = ["make", "-j", str(jobs), "-C", str(mdir), "-f", "Vtop.mk", f"OPT_FAST={opt_fast}",
                  f"OPT_SLOW={slow_opt}", f"OPT_GLOBAL={slow_opt}", f"USER_LDFLAGS={ldflags}", EXE_NAME]
            lf.write("\n$ " + " ".join(mk) + "\n")
            lf.flush()
            with rep.phase(f"compiling the harness{what} ({ncpp} C++ files, make -j{jobs}, {opt_fast}"
                           f"{', ccache' if menv.get('OBJCACHE') and not menv.get('CCACHE_DISABLE') else ''})"):
                r = subprocess.run(mk, cwd=mdir, env=menv, stdout=lf, stderr=subprocess.STDOUT)
                _check(r, logf, "harness C++")

        c0, t0 = _child_cpu(), time.perf_counter()
        if pgo:
            for old in list(mdir.glob("*.gcda")) + list(mdir.glob("*.o")) + list(mdir.glob("*.gch")):
                old.unlink()
            make(f"{fast} -fprofile-generate -fprofile-update=single", "-fprofile-generate", ", instrumented",
                 dict(env, CCACHE_DISABLE="1"))
            with rep.phase(f"profile training run ({PGO_FRAMES} random frames)"):
                _pgo_train(d, exe, wload)
            for old in list(mdir.glob("*.o")) + list(mdir.glob("*.a")) + list(mdir.glob("*.gch")) + [exe]:
                old.unlink()
            make(f"{fast} -fprofile-use -fprofile-partial-training -Wno-missing-profile "
                 "-Wno-error=coverage-mismatch", "", ", profile-guided")
        else:
            make(fast)
        detail["compile_s"], detail["compile_cpu_s"] = round(time.perf_counter() - t0, 1), round(_child_cpu() - c0, 1)
        detail["cpp_files"] = ncpp
    if not exe.exists():
        raise RtlgenError(f"Verilator harness build produced no {exe} (see {logf})")
    secs = time.perf_counter() - t
    stamp.write_text(key + "\n")
    (mdir / "build_seconds.txt").write_text(f"{secs:.1f}\n")
    (mdir / "build_times.json").write_text(json.dumps(detail))
    return Harness(exe, wload, pr, secs, detail) if info else exe


#: frames of the profile-guided build's training run (random pixels; every layer sees traffic from the second on)
PGO_FRAMES = 3


def _pgo_train(d: Path, exe: Path, wload: bool) -> None:
    """Run the instrumented harness on :data:`PGO_FRAMES` random frames (no stalls: the common case), so that the
    profile files (``*.gcda`` beside the objects) describe a simulation's hot paths."""
    net, rep, man = load_design(d)
    px = np.random.default_rng(0).integers(0, 256, size=(PGO_FRAMES, *net.input.out_shape), dtype=np.uint8)
    wl = weight_load_words(d, man) if wload else None
    res = run_harness(exe, input_words(px, man), man, rep["cycles_per_frame"], shards=1, workdir=exe.parent,
                      progress=lambda k: None, wload=wl)
    if res[0]["timeout"]:
        raise RtlgenError(f"profile training run: no complete output after {res[0]['cycles']} cycles")


def _child_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _check(r, logf: Path, what: str) -> None:
    if r.returncode != 0:
        tail = [ln for ln in logf.read_text(errors="replace").strip().splitlines() if ln.strip()][-4:]
        raise RtlgenError(f"{what} build of the simulation harness failed (see {logf}): {' | '.join(tail)}")


# ---------------------------------------------------------------------------------------------------------------
# one shard (runs here or on a Dask worker)


def _materialise(blob: bytes, sha: str) -> Path:
    """A harness executable shipped as bytes, written once per machine under the temp folder (keyed by its hash)."""
    d = Path(tempfile.gettempdir()) / "rtlgen-harness" / sha[:32]
    exe = d / EXE_NAME
    if not exe.exists():
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{EXE_NAME}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_bytes(blob)
        tmp.chmod(0o755)
        os.replace(tmp, exe)
    return exe


def run_shard(job: dict, on_frames=None) -> dict:
    """Run one harness process on ``job`` (built by :func:`shard_jobs`); ``on_frames(k)`` gets frame increments.

    ``job["exe"]`` is a local path, or ``job["exe_blob"]`` + ``job["exe_sha"]`` the executable's bytes (Dask workers:
    the binary travels in the task and is cached in the worker's temp folder). Returns ``outs`` (uint32
    ``[beats, W_out]``), ``first_in``/``last_out`` (int64 per frame), ``cycles``, ``timeout``, ``extra``,
    ``load_cycles`` and, with ``job["probe"]``, ``probes`` (per probe: uint32 ``[beats, words]``)."""
    exe = job.get("exe") or _materialise(job["exe_blob"], job["exe_sha"])
    words, n = job["words"], job["n"]
    _, beats, wi = words.shape
    with tempfile.TemporaryDirectory(dir=job.get("workdir"), prefix="rtlgen-shard-") as tmp:
        tmp = Path(tmp)
        fin = tmp / "in.bin"
        np.ascontiguousarray(words).astype("<u4").tofile(fin)
        args = [str(exe), str(fin), str(tmp / "out.bin"), str(tmp / "stamps.bin"), str(n), str(beats), str(wi),
                str(job["obpf"]), str(job["wo"]), repr(float(job["stall"])), str(job["seed"]), str(job["max_cycles"])]
        wl = job.get("wload")
        if wl is not None:
            np.ascontiguousarray(wl).astype("<u4").tofile(tmp / "wload.bin")
            args.append(f"wload={tmp / 'wload.bin'}:{wl.shape[0]}:{wl.shape[1]}")
        if job.get("probe"):
            first, count = job["probe"]
            args.append(f"probe={first}:{count}:{tmp / 'probes.bin'}")
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
        err_box: list = []
        et = threading.Thread(target=lambda: err_box.append(p.stderr.read()), daemon=True)
        et.start()
        final, load, done = None, None, 0
        try:
            for line in p.stdout:
                if line.startswith("F "):
                    k = int(line.split()[1])
                    if on_frames is not None:
                        on_frames(k - done)
                    done = k
                elif line.startswith("L "):
                    load = int(line.split()[1])
                elif line.startswith("DONE"):
                    final = line.strip()
            p.wait()
            et.join()
        except BaseException:
            if p.poll() is None:
                p.kill()
            raise
        err = (err_box[0] if err_box else "").strip()
        if p.returncode != 0 or final is None:
            a = job.get("start", 0)
            raise RtlgenError(f"harness shard {job.get('index', 0)} (frames {a}..{a + n - 1}) failed with exit code "
                              f"{p.returncode}: {err[-300:]}".replace("\n", " | "))
        kv = dict(item.split("=") for item in final.split()[1:])
        nout = int(kv["outs"])
        outs = np.fromfile(tmp / "out.bin", dtype="<u4").reshape(nout, job["wo"])
        st = np.fromfile(tmp / "stamps.bin", dtype="<u8").astype(np.int64)
        res = {"start": job.get("start", 0), "n": n, "outs": outs, "first_in": st[:n], "last_out": st[n:],
               "cycles": int(kv["cycles"]), "timeout": kv["timeout"] == "1", "extra": int(kv["extra"]),
               "load_cycles": load}
        if job.get("probe"):
            raw = np.fromfile(tmp / "probes.bin", dtype=np.uint8)
            pos, out = 0, []
            for nw in job["probe_words"]:
                nb = int(raw[pos:pos + 8].view("<u8")[0])
                pos += 8
                out.append(raw[pos:pos + 4 * nb * nw].view("<u4").reshape(nb, nw).copy())
                pos += 4 * nb * nw
            res["probes"] = out
        return res


def shard_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    shards = max(1, min(shards, n))
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


_shard_ranges = shard_ranges  # historical name


def shard_jobs(exe, words: np.ndarray, man: dict, cycles_per_frame: int, stall: float = 0.0, seed: int = 1,
               shards: int = 2, workdir=None, wload: np.ndarray | None = None) -> list[dict]:
    """The jobs of :func:`run_shard` for ``shards`` contiguous frame ranges of ``words`` ``[N, beats, W]``."""
    o = man["output"]
    jobs = []
    for s, (a, b) in enumerate(shard_ranges(len(words), shards)):
        jobs.append({"index": s, "start": a, "n": b - a, "exe": str(exe) if exe is not None else None,
                     "words": words[a:b], "obpf": o["beats_per_frame"], "wo": words_for(o["lanes"] * o["width"] + 1),
                     "stall": float(stall), "seed": seed * 1000 + s,
                     "max_cycles": int(50 * cycles_per_frame * (b - a + 4) + 200_000), "wload": wload,
                     "workdir": str(workdir) if workdir is not None else None})
    return jobs


def run_jobs_local(jobs: list[dict], progress=None) -> list[dict]:
    """Run the jobs at once, one harness process each (threads wait on them); results in job order."""
    lock = threading.Lock()

    def bump(k):
        if progress is not None:
            with lock:
                progress(k)

    results: list = [None] * len(jobs)
    errors: list = []

    def work(i):
        try:
            results[i] = run_shard(jobs[i], bump)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def run_harness(exe, words: np.ndarray, man: dict, cycles_per_frame: int, stall: float = 0.0, seed: int = 1,
                shards: int = 2, workdir=None, progress=None, wload: np.ndarray | None = None) -> list[dict]:
    """Run ``shards`` local harness processes on contiguous frame ranges of ``words`` ``[N, beats, W]``; with
    ``wload`` (uint32 ``[beats, W]``, a ``-DRTLGEN_WLOAD`` harness) each shard sends those weight beats first.

    Returns one dict per shard (see :func:`run_shard`). ``progress(k)`` is called with newly finished frames."""
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    jobs = shard_jobs(exe, words, man, cycles_per_frame, stall, seed, shards, workdir, wload)
    return run_jobs_local(jobs, progress)


def steady_cycles(last_outs: list[np.ndarray]) -> float:
    """Pooled steady-state cycles per frame over shards (each shard's spacing after its first two frames, as
    :func:`rtlgen.verify.sim.run_sim` computes it for one run)."""
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


def default_shards(n: int) -> int:
    """Local shards: one per CPU core, at least 4 frames each (the steady-state figure needs them)."""
    return max(1, min(os.cpu_count() or 1, n // 4))


# ---------------------------------------------------------------------------------------------------------------
# the regression


def run_regression(build_dir, pixels: np.ndarray, labels: np.ndarray | None = None, shards: int | None = 2,
                   stall: float = 0.0, seed: int = 1, progress=None, jobs: int = 2, log=None, scheduler=None,
                   probes: bool = True, cxx_opt: str = DEFAULT_CXX_OPT) -> dict:
    """Simulate ``pixels`` (uint8 NHWC) through the built design with the compiled harness.

    Result keys: ``images``, ``mismatches``, ``top1``, ``cycles_per_frame``, ``latency_cycles``, ``fps_at_clock``,
    ``predicted_cycles_per_frame``, ``stall``, ``seconds`` (``compile``, ``simulation``, ``golden``, ``wall``),
    ``shards``, ``engine`` (``"verilator-harness"`` locally, ``"dask"`` with a scheduler, then also ``scheduler``),
    ``summary`` (the closing line); on a mismatch ``first_mismatch_frame``, ``first_mismatch`` and
    ``first_differing_layer`` (``None``: no probed layer differs, i.e. the output stage; absent without probes).

    ``shards``: harness processes (``None``: :func:`default_shards` locally, 2 per Dask worker thread on a cluster);
    ``scheduler``: ``None`` (``$RTLGEN_DASK_SCHEDULER`` if set, else local processes), ``"local"`` (a
    ``distributed.LocalCluster`` started for this run), ``"tcp://HOST:PORT"`` (a running Dask scheduler) or a
    ``distributed.Client``; see :mod:`rtlgen.verify.shard`. ``jobs``: parallel C++ compiles; ``log``/``progress``: see
    :class:`rtlgen.progress.Reporter`; ``probes``: compile the per-layer probes in."""
    from . import shard as shard_mod

    t_wall = time.perf_counter()
    rep_ = Reporter(log, progress)
    d = Path(build_dir).resolve()
    net, rep, man = load_design(d)
    n = len(pixels)
    if n < 1:
        raise OptionError("no frames to simulate")
    sched = shard_mod.resolve_scheduler(scheduler)
    secs = {}
    t = time.perf_counter()
    hb = build_harness(d, jobs=jobs, log=rep_, probes=probes, cxx_opt=cxx_opt, info=True)
    secs["compile"] = round(time.perf_counter() - t, 2)
    words = input_words(pixels, man)
    wl = weight_load_words(d, man) if man.get("weights") else None
    golden_box: dict = {}

    def golden_job():
        t0 = time.perf_counter()
        local = golden._blas_set_threads_local()
        if local is not None:  # this thread only: the harness processes have the cores (a 2-thread BLAS spins)
            local(1)
        try:
            golden_box["expect"] = np.concatenate([golden.run(net, pixels[i : i + GOLDEN_BATCH])
                                                   for i in range(0, n, GOLDEN_BATCH)])
        except BaseException as e:  # re-raised in the caller's thread
            golden_box["error"] = e
        golden_box["seconds"] = time.perf_counter() - t0

    gt = threading.Thread(target=golden_job, daemon=True)
    gt.start()  # the golden model (NumPy, mostly GIL-free) runs while the shards simulate
    t1 = time.perf_counter()
    engine_info: dict = {}
    if sched is None:
        k = shards or default_shards(n)
        jobs_ = shard_jobs(hb.exe, words, man, rep["cycles_per_frame"], stall, seed, k, d / "sim_build", wl)
        (d / "sim_build").mkdir(exist_ok=True)
        with rep_.phase(f"simulating {n:,} frames of {rep['model']} ({len(jobs_)} harness process"
                        f"{'es' if len(jobs_) > 1 else ''}{f', stall {stall}' if stall else ''})") as ph:
            with rep_.frames(n, f"rtl {rep['model']}") as upd:
                res = run_jobs_local(jobs_, upd)
            ph["note"] = f"{n / max(time.perf_counter() - t1, 1e-9):,.1f} frames/s"
        engine_info = {"engine": "verilator-harness"}
    else:
        with rep_.phase(f"simulating {n:,} frames of {rep['model']} on Dask ({shard_mod.describe(sched)})") as ph:
            with rep_.frames(n, f"rtl {rep['model']} (dask)") as upd:
                def make_jobs(k):
                    return shard_jobs(None, words, man, rep["cycles_per_frame"], stall, seed, k, None, wl)

                res, engine_info = shard_mod.run_on_dask(sched, hb, make_jobs, run_shard, len(words), shards, upd, rep_)
            ph["note"] = f"{n / max(time.perf_counter() - t1, 1e-9):,.1f} frames/s"
    secs["simulation"] = round(time.perf_counter() - t1, 2)
    gt.join()
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
    cpf = steady_cycles([r["last_out"] for r in res])
    r0 = res[0]
    lat = int(r0["last_out"][0] - r0["first_in"][0] + 1)
    out, mism = score.result(net, rep, got, expect, cpf, lat, stall, secs, labels, shards=len(res), **engine_info)
    if len(mism):
        f = int(mism[0])
        if hb.probes:
            with rep_.phase(f"locating the first differing layer (frame {f} re-run with probes)"):
                out["first_differing_layer"] = locate_layer(hb, net, man, rep, pixels, words, wl, res, f, stall, seed,
                                                            d / "sim_build")
    secs["wall"] = round(time.perf_counter() - t_wall, 2)
    out["summary"] = summary = _summary(out, rep)
    rep_.say(summary)
    return out


def _summary(out: dict, rep: dict) -> str:
    from ..progress import summary_line

    return summary_line(out, rep.get("clock_mhz"))


def locate_layer(hb: Harness, net, man: dict, rep: dict, pixels, words, wl, res: list, f: int, stall: float, seed: int,
                 workdir) -> str | None:
    """Re-run the shard that holds frame ``f`` up to that frame (same seed, so the same stalls) with the probes
    recording frame ``f``; the first layer whose stream differs from the golden model."""
    s = next(i for i, r in enumerate(res) if r["start"] <= f < r["start"] + r["n"])
    a = res[s]["start"]
    job = shard_jobs(hb.exe, words[a:f + 1], man, rep["cycles_per_frame"], stall, seed, 1, workdir, wl)[0]
    job.update(seed=seed * 1000 + s, index=s, start=a, probe=(f - a, 1), probe_words=[p["words"] for p in hb.probes])
    r = run_shard(job)
    streams = {}
    for p, w in zip(hb.probes, r["probes"]):
        streams[p["layer"]] = [int(sum(int(x) << (32 * i) for i, x in enumerate(row))) for row in w]
    return first_differing_layer(net, man, streams, golden.run(net, pixels[f : f + 1], return_all=True))
