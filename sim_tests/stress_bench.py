"""One cocotb bench for many independent stream jobs in ONE Verilator model (fuzzed networks, protocol stress).

The design under test is a :class:`frame_bench.Bundle` (ports ``<part>_<port>``); a *job* drives one part: input
words on one or more ports, expected words on one output port. All jobs run concurrently from ONE coroutine (one
``await`` per clock for the whole bundle: the cocotb cost per cycle is a few signal accesses per active job).

Pause patterns (per job and per port, seeded; :func:`rtlgen.verify.tb.pause_pattern`): ``("none",)``, ``("bern", p)`` (pause each cycle with probability
``p``), ``("burst", p_start, p_stay)`` (a pause starts with probability ``p_start`` and continues with probability
``p_stay``: long idle runs), ``("hold", start, length, p)`` (Bernoulli ``p`` except ready held low for ``length``
cycles from cycle ``start`` -- only meaningful on outputs).

cocotb tests (each enabled by ``cfg["tests"]``):

* ``stream_jobs``: every job's frames under its pause patterns; the output must equal the expected words exactly
  (nothing lost, duplicated or reordered), no extra beat may follow.
* ``reset_mid_frame``: every job gets the first two thirds of its first frame, a reset hits in the middle of the
  stream (some beats may be inside the design), then clean frames must come out exactly.
* ``long_backpressure``: inputs at full rate, output ready held low for ``hold`` cycles twice (at the start and in
  the middle of the run); every output afterwards must be exact (no internal FIFO overflows or drops a beat). Uses
  the job's ``bp_inputs``/``bp_expected`` when present (a shorter run), else its inputs/expected.

Results (beats moved, mismatches, first mismatch, cycles) go to ``cfg["results"]`` as JSON, one entry per test and
job; the pytest side asserts on them (so a failure names the job).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from rtlgen.verify.runner import sim_config
from rtlgen.verify.tb import pause_pattern

# URAM weight-load words of wide plans exceed Python's default 4,300-digit int <-> str limit in the jobs JSON
sys.set_int_max_str_digits(0)

_LOG = logging.getLogger("cocotb.stress_bench")


class _Port:
    def __init__(self, dut, name):
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")


class _Job:
    def __init__(self, dut, job, inputs: dict, expected: list, pauses_in, pause_out, seed):
        self.name = job["name"]
        self.ins = [(_Port(dut, p), list(words), pause_pattern(pauses_in, seed + 7 * k).__next__) for k, (p, words) in enumerate(inputs.items())]
        self.pos = [0] * len(self.ins)
        self.presenting = [False] * len(self.ins)
        self.out = _Port(dut, job["output"])
        self.out_pause = pause_pattern(pause_out, seed + 1000).__next__
        self.exp = expected
        self.got = 0
        self.bad = 0
        self.first_bad = None
        self.extra = 0
        self.rdy = 0
        self.done_cycle = None
        for port, _, _ in self.ins:
            port.valid.value = 0
        self.out.ready.value = 0

    @property
    def done(self):
        return self.got >= len(self.exp)

    def drive(self):
        for k, (port, words, pz) in enumerate(self.ins):
            if not self.presenting[k] and self.pos[k] < len(words) and not pz():
                port.payload.value = words[self.pos[k]]
                port.valid.value = 1
                self.presenting[k] = True
        self.rdy = 0 if self.out_pause() else 1
        self.out.ready.value = self.rdy

    def sample(self, cycle) -> bool:
        """Account the handshakes of the clock edge just passed; True if any beat moved."""
        moved = False
        for k, (port, words, pz) in enumerate(self.ins):
            if self.presenting[k] and int(port.ready.value):
                self.pos[k] += 1
                self.presenting[k] = False
                port.valid.value = 0
                moved = True
        if self.rdy and int(self.out.valid.value):
            moved = True
            w = int(self.out.payload.value)
            if self.got < len(self.exp):
                if w != self.exp[self.got]:
                    self.bad += 1
                    if self.first_bad is None:
                        self.first_bad = {"beat": self.got, "got": hex(w), "expected": hex(self.exp[self.got])}
            else:
                self.extra += 1
            self.got += 1
            if self.got == len(self.exp):
                self.done_cycle = cycle
        return moved

    def stop(self):
        for port, _, _ in self.ins:
            port.valid.value = 0

    def result(self):
        return {"in_beats": sum(self.pos), "out_beats": self.got, "expected_beats": len(self.exp),
                "mismatches": self.bad, "first_mismatch": self.first_bad, "extra_beats": self.extra,
                "done": self.got >= len(self.exp), "done_cycle": self.done_cycle}


async def _reset(dut, cycles=3):
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _run(dut, jobs: list[_Job], max_cycles: int, tail: int = 64, idle_limit: int = 20_000) -> int:
    """Clock all jobs until every expected beat arrived, ``max_cycles`` passed, or no beat moved on any unfinished
    job for ``idle_limit`` cycles (a deadlock: the stuck jobs are reported not done); then ``tail`` idle cycles with
    ready high (extra beats are counted). Returns the cycles used."""
    clk = dut.clk
    cyc = 0
    last_move = 0
    active = [j for j in jobs if not j.done]
    while active and cyc < max_cycles and cyc - last_move < idle_limit:
        for j in active:
            j.drive()
        await RisingEdge(clk)
        cyc += 1
        for j in active:
            if j.sample(cyc):
                last_move = cyc
        if cyc % 20_000 == 0:
            _LOG.info("cycle %d: %d jobs running, %d/%d output beats", cyc, len(active),
                            sum(j.got for j in jobs), sum(len(j.exp) for j in jobs))
        if any(j.done for j in active):
            for j in active:
                if j.done:  # ready stays low: a surplus beat waits at the port and is counted below
                    j.stop()
                    j.out.ready.value = 0
            active = [j for j in active if not j.done]
    for j in jobs:
        j.stop()
        j.out.ready.value = 1
    for _ in range(tail):
        await RisingEdge(clk)
        for j in jobs:
            if int(j.out.valid.value):
                j.extra += 1
    return cyc


def _load(cfg):
    return json.loads(Path(cfg["jobs_file"]).read_text())


def _write(cfg, test, data):
    p = Path(cfg["results"])
    res = json.loads(p.read_text()) if p.exists() else {}
    res[test] = data
    p.write_text(json.dumps(res))


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
    await _reset(dut)


@cocotb.test()
async def stream_jobs(dut):
    cfg = sim_config()
    if "stream" not in cfg["tests"]:
        return
    await _start(dut)
    jobs_cfg = _load(cfg)
    jobs = [_Job(dut, j, j["inputs"], j["expected"], j["pause_in"], j["pause_out"], j.get("seed", 1)) for j in jobs_cfg]
    cyc = await _run(dut, jobs, cfg["max_cycles"])
    _write(cfg, "stream", {"cycles": cyc, "jobs": {j.name: j.result() for j in jobs}})


@cocotb.test()
async def reset_mid_frame(dut):
    cfg = sim_config()
    if "reset" not in cfg["tests"]:
        return
    await _start(dut)
    jobs_cfg = _load(cfg)
    # 1: two thirds of the first frame (no check), with pauses; 2: reset while beats are in flight
    part = [_Job(dut, j, j["reset_partial"], [], j["pause_in"], ("bern", 0.5), j.get("seed", 1) + 3) for j in jobs_cfg]
    for _ in range(cfg.get("reset_after", 400)):
        for j in part:
            j.drive()
            j.out.ready.value = j.rdy
        await RisingEdge(dut.clk)
        for j in part:
            for k, (port, words, pz) in enumerate(j.ins):
                if j.presenting[k] and int(port.ready.value):
                    j.pos[k] += 1
                    j.presenting[k] = False
                    port.valid.value = 0
    for j in part:
        j.stop()
    await _reset(dut)
    # 3: clean frames must come out exactly
    jobs = [_Job(dut, j, j["reset_clean"], j["reset_expected"], j["pause_in"], j["pause_out"], j.get("seed", 1) + 5)
            for j in jobs_cfg]
    cyc = await _run(dut, jobs, cfg["max_cycles"])
    _write(cfg, "reset", {"cycles": cyc, "partial_in_beats": {j.name: sum(j.pos) for j in part},
                          "jobs": {j.name: j.result() for j in jobs}})


@cocotb.test()
async def long_backpressure(dut):
    cfg = sim_config()
    if "backpressure" not in cfg["tests"]:
        return
    await _start(dut)
    hold = int(cfg.get("hold", 3000))
    jobs_cfg = _load(cfg)
    jobs = [_Job(dut, j, j.get("bp_inputs", j["inputs"]), j.get("bp_expected", j["expected"]), ("none",),
                 ("hold", 50, hold, 0.2), j.get("seed", 1) + 9) for j in jobs_cfg]
    cyc = await _run(dut, jobs, cfg["max_cycles"] + 3 * hold)
    _write(cfg, "backpressure", {"cycles": cyc, "hold": hold, "jobs": {j.name: j.result() for j in jobs}})


# ---------------------------------------------------------------------------------------------------------- pytest side


def run(verilog: Path, top: str, build_dir: Path, jobs: list[dict], tests=("stream",), max_cycles: int = 2_000_000,
        hold: int = 3000, reset_after: int = 400, opt: str = "-O0") -> dict:
    """Run the enabled tests over ``jobs`` (dicts: name, inputs {port: words}, output, expected, pause_in, pause_out,
    seed; for the reset test also reset_partial, reset_clean, reset_expected) in one simulation of ``verilog``.
    Returns the results dict {test: {cycles, jobs: {name: result}}}. Simulation failures other than the checks
    (e.g. a crash) raise."""
    from rtlgen.errors import SimulationError
    from rtlgen.verify.runner import run_cocotb

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    jf = build_dir / "jobs.json"
    jf.write_text(json.dumps(jobs))
    res = build_dir / "stress_results.json"
    if res.exists():
        res.unlink()
    cfg = {"jobs_file": str(jf), "results": str(res), "tests": list(tests), "max_cycles": max_cycles, "hold": hold,
           "reset_after": reset_after}
    try:
        run_cocotb([verilog], top, "stress_bench", Path(__file__).parent, build_dir / "verilator", config=cfg, cxx_opt=opt)
    except SimulationError:
        if not res.exists():
            raise
    return json.loads(res.read_text())


def failures(results: dict) -> list[str]:
    """Human-readable problems in a :func:`run` result (empty when everything was exact)."""
    out = []
    for test, r in results.items():
        for name, j in r["jobs"].items():
            if j["mismatches"] or j["extra_beats"] or not j["done"]:
                out.append(f"{test}/{name}: {j['out_beats']}/{j['expected_beats']} beats, {j['mismatches']} mismatches "
                           f"(first {j['first_mismatch']}), {j['extra_beats']} extra, done={j['done']}")
    return out
