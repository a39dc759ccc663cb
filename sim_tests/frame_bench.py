"""Generic cocotb bench for the stream cores (pooling, dense, argmax, input stage, add, shortcut, plumbing).

The pytest side (``sim_tests/test_*.py``) computes every input and expected output beat with the golden model and
:func:`rtlgen.cores.stream.frame_to_beats` and describes each core's check as a :func:`job`; the cocotb tests below
only drive and compare. Every core of a test group is registered (:func:`register`) into ONE shared design (a
:class:`Bundle`, ports ``<core>_<port>``) built once per pytest session (:func:`shared_design`), and all jobs of a
test function run in one simulation (:func:`run_jobs`). For each job:

* ``frames_with_stalls``: all frames back to back, random valid pauses on every input and random ready pauses on the
  output; the output must equal the expected beats exactly (nothing lost, duplicated or reordered).
* ``reset_mid_frame``: two thirds of a frame, a reset in the middle of it, then a clean frame that must come out
  exactly.
* ``throughput``: frames back to back with no pauses; cycles between successive ``last`` beats (steady state) must
  equal the core's cycle model within 2 %. Measured values are written to the config's ``result_path``.

Malformed framing (``last`` early or late) needs nothing special: a job's input frames are plain word lists, so
:func:`short_frame` / :func:`long_frame` place ``last`` anywhere (use ``reset_frame=None, model=None`` to run only
``frames_with_stalls`` on them); :func:`fill_after` gives the frame a core completes a short one to.
"""

from __future__ import annotations

import json
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from amaranth.hdl import Module
from amaranth.lib import wiring

from rtlgen.verify.runner import run_cocotb, sim_config

from rtlgen.emit.verilog import write_verilog


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
    await _reset(dut)


async def _reset(dut):
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def _fmt(words, n=6):
    return "[" + ", ".join(hex(w) for w in words[:n]) + (", ..." if len(words) > n else "") + "]"


def _compare(got, exp, what):
    if got != exp:
        bad = next((i for i, (g, e) in enumerate(zip(got, exp)) if g != e), min(len(got), len(exp)))
        raise AssertionError(
            f"{what}: {len(got)} beats vs {len(exp)} expected; first difference at beat {bad}: "
            f"got {_fmt(got[bad:])} expected {_fmt(exp[bad:])}"
        )


@cocotb.test()
async def frames_with_stalls(dut):
    from streams import StreamSink, StreamSource

    await _start(dut)
    for job in sim_config()["jobs"]:
        srcs = [StreamSource(dut, p, dut.clk, job["pause_in"], seed=11 + k) for k, p in enumerate(job["inputs"])]
        sink = StreamSink(dut, job["output"], dut.clk, job["pause_out"], seed=5)
        for s, p in zip(srcs, job["inputs"]):
            s.start(job["in_words"][p])
        exp = job["out_words"]
        try:
            await sink.wait_for(len(exp), job["timeout"])
        except TimeoutError as e:
            raise AssertionError(f"{job['name']}: {e}") from None
        await ClockCycles(dut.clk, 30)
        _compare(list(sink.words), exp, f"{job['name']}: frames with random stalls")


@cocotb.test()
async def reset_mid_frame(dut):
    from streams import StreamSink, StreamSource

    await _start(dut)
    for job in sim_config()["jobs"]:
        rc = job["reset"]
        if rc is None:
            continue
        srcs = [StreamSource(dut, p, dut.clk, job["pause_in"], seed=21 + k) for k, p in enumerate(job["inputs"])]
        sink = StreamSink(dut, job["output"], dut.clk, job["pause_out"], seed=6)
        tasks = [s.start(rc["partial"][p]) for s, p in zip(srcs, job["inputs"])]
        for t in tasks:
            await t
        await ClockCycles(dut.clk, 5)
        await _reset(dut)
        sink.words.clear()
        for s, p in zip(srcs, job["inputs"]):
            s.start(rc["clean"][p])
        try:
            await sink.wait_for(len(rc["out_words"]), job["timeout"])
        except TimeoutError as e:
            raise AssertionError(f"{job['name']} after reset: {e}") from None
        await ClockCycles(dut.clk, 30)
        _compare(list(sink.words), rc["out_words"], f"{job['name']}: clean frame after a reset mid-frame")


@cocotb.test()
async def throughput(dut):
    from streams import StreamSink, StreamSource

    await _start(dut)
    results = {}
    cfg = sim_config()
    for job in cfg["jobs"]:
        if "tp" not in job:
            continue
        tp = job["tp"]
        srcs = [StreamSource(dut, p, dut.clk, 0.0) for p in job["inputs"]]
        sink = StreamSink(dut, job["output"], dut.clk, 0.0)
        for s, p in zip(srcs, job["inputs"]):
            s.start(tp["in_words"][p])
        await sink.wait_for(tp["n_out"], job["timeout"])
        lb = job["last_bit"]
        ends = [c for w, c in zip(sink.words, sink.cycles) if (w >> lb) & 1]
        F = tp["frames"]
        assert len(ends) == F, f"{job['name']}: expected {F} frame ends, saw {len(ends)}"
        results[job["name"]] = {"measured": (ends[-1] - ends[0]) / (F - 1), "model": tp["model"]}
        await ClockCycles(dut.clk, 10)
    Path(cfg["result_path"]).write_text(json.dumps(results))
    bad = {n: r for n, r in results.items() if abs(r["measured"] - r["model"]) > 0.02 * r["model"]}
    assert not bad, f"cycles per frame off the model by more than 2 %: {bad}"


# ---------------------------------------------------------------- pytest side


class Bundle(wiring.Component):
    """Several independent cores in one top (ports ``<name>_<port>``), so one Verilator build serves many checks."""

    def __init__(self, cores: dict):
        self.cores = cores
        members = {}
        for n, c in cores.items():
            for p, mem in c.signature.members.items():
                if mem.is_signature:
                    members[f"{n}_{p}"] = mem
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for n, c in self.cores.items():
            m.submodules[n] = c
            for p, mem in c.signature.members.items():
                if not mem.is_signature:
                    continue
                outer = getattr(self, f"{n}_{p}")
                if mem.flow == wiring.In:
                    wiring.connect(m, wiring.flipped(outer), getattr(c, p))
                else:
                    wiring.connect(m, getattr(c, p), wiring.flipped(outer))
        return m


class Design:
    """A built top: Verilog path, top module name, Verilator build folder (shared by every run on it)."""

    def __init__(self, verilog: Path, name: str, build_dir: Path):
        self.verilog, self.name, self.build_dir = verilog, name, build_dir


def build(tmp_path, component, name: str) -> Design:
    """Verilog for ``component`` (or a :class:`Bundle` of a dict of components) under ``tmp_path``."""
    if isinstance(component, dict):
        component = Bundle(component)
    v = write_verilog(component, name, Path(tmp_path) / f"{name}.v")
    return Design(v, name, Path(tmp_path) / "build")


_REGISTRY: dict[str, dict] = {}
_BUILT: dict[str, Design] = {}


def register(group: str, name: str, factory):
    """Declare a core (``factory()`` builds it) for the group's shared design; call at import (collection) time."""
    _REGISTRY.setdefault(group, {})[name] = factory


def shared_design(group: str, tmp_path_factory) -> Design:
    """One Verilator build per pytest session holding every core registered in ``group`` (ports ``<name>_<port>``):
    Verilator's fixed C++ cost (~30-60 s here) is paid once for all test files of the group."""
    if group not in _BUILT:
        d = tmp_path_factory.mktemp(f"design_{group}")
        _BUILT[group] = build(d, {n: f() for n, f in _REGISTRY[group].items()}, f"bench_{group}")
    return _BUILT[group]


def job(name: str, inputs: dict, out_words_per_frame: list[list[int]], *, prefix: str = "", out_port: str = "o",
        last_bit: int, model: int | None, pause_in: float = 0.3, pause_out: float = 0.3, tp_frames: int = 4,
        reset_frame: int = 0, timeout: int = 200_000) -> dict:
    """One check job for :func:`run_jobs`.

    ``inputs``: {port: [[words of frame 0], [words of frame 1], ...]}; ``out_words_per_frame``: expected output words
    per frame. The throughput check uses ``tp_frames`` frames (cycled) and ``model`` cycles per frame (skipped if
    ``model`` is None); the reset check uses frame ``reset_frame`` (skipped if None).
    """
    ports = list(inputs)
    nf = len(out_words_per_frame)
    flat = lambda frames: [w for f in frames for w in f]  # noqa: E731
    j = {
        "name": name,
        "inputs": [prefix + p for p in ports],
        "output": prefix + out_port,
        "in_words": {prefix + p: flat(inputs[p]) for p in ports},
        "out_words": flat(out_words_per_frame),
        "pause_in": pause_in,
        "pause_out": pause_out,
        "last_bit": last_bit,
        "timeout": timeout,
    }
    rf = reset_frame
    j["reset"] = None if rf is None else {
        "partial": {prefix + p: inputs[p][rf][: max(1, len(inputs[p][rf]) * 2 // 3)] for p in ports},
        "clean": {prefix + p: inputs[p][rf] for p in ports},
        "out_words": out_words_per_frame[rf],
    }
    if model is not None:
        idx = [k % nf for k in range(max(tp_frames, 2))]
        j["tp"] = {
            "in_words": {prefix + p: flat(inputs[p][k] for k in idx) for p in ports},
            "n_out": sum(len(out_words_per_frame[k]) for k in idx),
            "frames": len(idx),
            "model": model,
        }
    return j


def run_jobs(tmp_path, design: Design, jobs: list[dict]) -> dict:
    """Run the three checks for every job in ONE simulation of ``design``; returns {job: {measured, model}}."""
    here = Path(__file__).parent
    cfg = {"jobs": jobs, "result_path": str(Path(tmp_path) / "throughput.json")}
    run_cocotb([design.verilog], design.name, "frame_bench", here, design.build_dir, config=cfg)
    tp = Path(cfg["result_path"])
    return json.loads(tp.read_text()) if tp.exists() else {}


# ---------------------------------------------------------------- malformed frames


def short_frame(words: list[int], k: int, last_bit: int) -> list[int]:
    """The first ``k`` beats of a frame's words, ``last`` on the k-th (a frame cut short)."""
    out = list(words[:k])
    out[-1] |= 1 << last_bit
    return out


def long_frame(words: list[int], extra: list[int], last_bit: int) -> list[int]:
    """A frame's words without ``last`` on its final beat, then ``extra`` beats, ``last`` on the final one."""
    out = [w & ~(1 << last_bit) for w in words] + [w & ~(1 << last_bit) for w in extra]
    out[-1] |= 1 << last_bit
    return out


def fill_after(frame, lanes: int, k: int, value: int):
    """``frame`` ([H, W, C]) with every value carried by beats ``k, k+1, ...`` (``lanes`` channels per beat, NHWC)
    replaced by ``value``: what a core completes a frame cut after ``k`` beats to."""
    import numpy as np

    H, W, C = frame.shape
    bpp = -(-C // lanes)
    out = np.array(frame, copy=True).reshape(H * W, C)
    for b in range(k, H * W * bpp):
        px, g = divmod(b, bpp)
        out[px, g * lanes:min(C, (g + 1) * lanes)] = value
    return out.reshape(H, W, C)
