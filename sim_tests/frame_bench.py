"""Generic cocotb bench for the stream cores (pooling, dense, argmax, input stage, add, shortcut, plumbing).

The pytest side (``sim_tests/test_*.py``) computes every input and expected output beat with the golden model and
:func:`rtlgen.cores.stream.frame_to_beats`, then calls :func:`run_bench`; the cocotb tests below only drive and
compare, so one compiled design serves many frames and checks:

* ``frames_with_stalls``: all frames back to back, random valid pauses on every input and random ready pauses on the
  output; the output must equal the expected beats exactly (nothing lost, duplicated or reordered).
* ``reset_mid_frame``: part of a frame, a reset in the middle, then a clean frame that must come out exactly.
* ``throughput``: frames back to back with no pauses; cycles between successive ``last`` beats (steady state) must
  equal the core's cycle model within 2 %. The measured value is written to ``result_path``.

Config keys: ``inputs`` (port names), ``output`` (port name), ``in_words`` ({port: [int]}), ``out_words`` ([int]),
``pause_in``, ``pause_out``, ``reset`` ({"partial": {port: [int]}, "clean": {port: [int]}, "out_words": [int]}),
``tp`` ({"in_words": {port: [int]}, "frames": int, "model": int}), ``last_bit``, ``timeout``, ``result_path``.
"""

from __future__ import annotations

import json
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from amaranth.hdl import Module
from amaranth.lib import wiring

from rtlgen.simulate import run_cocotb, sim_config, write_verilog


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0


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

    cfg = sim_config()
    await _start(dut)
    srcs = [StreamSource(dut, p, dut.clk, cfg["pause_in"], seed=11 + k) for k, p in enumerate(cfg["inputs"])]
    sink = StreamSink(dut, cfg["output"], dut.clk, cfg["pause_out"], seed=5)
    for s, p in zip(srcs, cfg["inputs"]):
        s.start(cfg["in_words"][p])
    exp = cfg["out_words"]
    got = await sink.wait_for(len(exp), cfg.get("timeout", 200_000))
    await ClockCycles(dut.clk, 50)
    _compare(list(sink.words), exp, "frames with random stalls")


@cocotb.test()
async def reset_mid_frame(dut):
    from streams import StreamSink, StreamSource

    cfg = sim_config()
    rc = cfg["reset"]
    await _start(dut)
    srcs = [StreamSource(dut, p, dut.clk, cfg["pause_in"], seed=21 + k) for k, p in enumerate(cfg["inputs"])]
    sink = StreamSink(dut, cfg["output"], dut.clk, cfg["pause_out"], seed=6)
    tasks = [s.start(rc["partial"][p]) for s, p in zip(srcs, cfg["inputs"])]
    for t in tasks:
        await t
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    sink.words.clear()
    for s, p in zip(srcs, cfg["inputs"]):
        s.start(rc["clean"][p])
    await sink.wait_for(len(rc["out_words"]), cfg.get("timeout", 200_000))
    await ClockCycles(dut.clk, 50)
    _compare(list(sink.words), rc["out_words"], "clean frame after a reset mid-frame")


@cocotb.test()
async def throughput(dut):
    from streams import StreamSink, StreamSource

    cfg = sim_config()
    if "tp" not in cfg:
        return
    tp = cfg["tp"]
    await _start(dut)
    srcs = [StreamSource(dut, p, dut.clk, 0.0) for p in cfg["inputs"]]
    sink = StreamSink(dut, cfg["output"], dut.clk, 0.0)
    for s, p in zip(srcs, cfg["inputs"]):
        s.start(tp["in_words"][p])
    n = tp["n_out"]
    await sink.wait_for(n, cfg.get("timeout", 200_000))
    lb = cfg["last_bit"]
    ends = [c for w, c in zip(sink.words, sink.cycles) if (w >> lb) & 1]
    F = tp["frames"]
    assert len(ends) == F, f"expected {F} frame ends, saw {len(ends)}"
    measured = (ends[-1] - ends[0]) / (F - 1)
    model = tp["model"]
    if cfg.get("result_path"):
        Path(cfg["result_path"]).write_text(json.dumps({"measured": measured, "model": model, "ends": ends}))
    assert abs(measured - model) <= 0.02 * model, f"cycles per frame: measured {measured}, model {model}"


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


def build(tmp_path, component, name: str) -> Path:
    """Verilog for ``component`` (or a :class:`Bundle` of a dict of components) under ``tmp_path``."""
    if isinstance(component, dict):
        component = Bundle(component)
    return write_verilog(component, name, tmp_path / f"{name}.v")


def run_bench(tmp_path, verilog: Path, name: str, inputs: dict, out_words_per_frame: list[list[int]], *,
              prefix: str = "", out_port: str = "o", last_bit: int, model: int | None, pause_in: float = 0.3,
              pause_out: float = 0.3, tp_frames: int = 4, reset_frame: int = 0, timeout: int = 200_000) -> dict:
    """Run the three checks on a built design (``prefix``: the core's port prefix inside a :class:`Bundle`).

    ``inputs``: {port: [[words of frame 0], [words of frame 1], ...]}; ``out_words_per_frame``: expected output words
    per frame. The throughput check uses ``tp_frames`` frames (cycled) and ``model`` cycles per frame (skipped if
    ``model`` is None). Returns the measured throughput dict (or {}).
    """
    here = Path(__file__).parent
    ports = list(inputs)
    nf = len(out_words_per_frame)
    flat = lambda frames: [w for f in frames for w in f]  # noqa: E731
    tag = prefix.rstrip("_") or name
    cfg = {
        "inputs": [prefix + p for p in ports],
        "output": prefix + out_port,
        "in_words": {prefix + p: flat(inputs[p]) for p in ports},
        "out_words": flat(out_words_per_frame),
        "pause_in": pause_in,
        "pause_out": pause_out,
        "last_bit": last_bit,
        "timeout": timeout,
        "result_path": str(tmp_path / f"throughput_{tag}.json"),
    }
    rf = reset_frame
    cfg["reset"] = {
        "partial": {prefix + p: inputs[p][rf][: max(1, len(inputs[p][rf]) * 2 // 3)] for p in ports},
        "clean": {prefix + p: inputs[p][rf] for p in ports},
        "out_words": out_words_per_frame[rf],
    }
    if model is not None:
        idx = [k % nf for k in range(max(tp_frames, 2))]
        cfg["tp"] = {
            "in_words": {prefix + p: flat(inputs[p][k] for k in idx) for p in ports},
            "n_out": sum(len(out_words_per_frame[k]) for k in idx),
            "frames": len(idx),
            "model": model,
        }
    run_cocotb([verilog], name, "frame_bench", here, tmp_path / "build", config=cfg)
    tp = Path(cfg["result_path"])
    return json.loads(tp.read_text()) if tp.exists() else {}
