"""A runnable cocotb test of an rtlgen build with :class:`rtlgen.verify.tb.RtlgenTB` (the example of :mod:`rtlgen.verify.tb`).

    python -m rtlgen.verify.tb_example BUILD_DIR [FRAMES]

compiles ``BUILD_DIR/rtl/rtlgen_top.v`` with Verilator through cocotb's runner (in ``BUILD_DIR/sim_build/tb_example``)
and runs :func:`run_frames`: FRAMES random frames back to back, then a few with input idle cycles and output
backpressure, every output scored against the golden model. Copy this file next to your own tests as a start.
The results (cycles per frame, latency, simulated cycles and the wall time of the frame phase) are written to
``$RTLGEN_TB_RESULTS`` when set.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time

import cocotb
import numpy as np

from rtlgen.verify.tb import RtlgenTB, random_pauses


@cocotb.test()
async def run_frames(dut):
    tb = RtlgenTB(dut)  # the build folder from $RTLGEN_BUILD_DIR
    await tb.reset()  # reset, then the weight image if the design has URAM weights
    frames = int(os.environ.get("RTLGEN_TB_FRAMES", "4"))
    pixels = np.random.default_rng(0).integers(0, 256, size=(frames, *tb.input_shape), dtype=np.uint8)
    t, c = time.perf_counter(), time.process_time()
    res = await tb.run(pixels)  # driver + monitor + scoreboard, frames back to back
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    assert res.mismatches == [], f"frames {res.mismatches} differ from the golden model"
    assert res.extra_beats == 0
    dut._log.info("%d frames: %s cycles/frame, latency %d cycles, %d cycles in %.1f s (%.0f cycles/s)", frames,
                  res.cycles_per_frame, res.latency_cycles, res.cycles, wall, res.cycles / wall)
    tb.set_idle_generator(random_pauses(0.3, seed=1))  # 30 % input idle cycles
    tb.set_backpressure_generator(itertools.cycle([0, 1, 1]))  # ready low 2 cycles of 3
    res2 = await tb.run(pixels[:2])
    assert res2.mismatches == [] and res2.extra_beats == 0
    out = os.environ.get("RTLGEN_TB_RESULTS")
    if out:
        with open(out, "w") as f:
            json.dump({"frames": frames, "cycles_per_frame": res.cycles_per_frame, "latency_cycles": res.latency_cycles,
                       "cycles": res.cycles, "seconds": wall, "cycles_per_s": res.cycles / wall, "cpu_seconds": cpu,
                       "cycles_per_cpu_s": res.cycles / cpu,
                       "stalled_frames_ok": len(res2.outputs)}, f)


def run(build_dir, frames: int = 4, results=None, cxx_opt: str = "-O1", golden_dir=None,
        ports_only: bool = True) -> tuple[int, int]:
    """Compile and run :func:`run_frames` on ``build_dir`` with cocotb's runner (in ``BUILD_DIR/sim_build/
    tb_example``); returns ``(tests, failures)``, raises :class:`rtlgen.errors.SimulationError` on a failure.
    ``golden_dir``: another build folder whose model the scoreboard uses (default ``build_dir``); ``ports_only``:
    only the top's ports visible to cocotb (:func:`rtlgen.verify.tb.verilator_args`: a much faster model), else every
    signal (cocotb's default ``--public-flat-rw``, in ``tb_example_all``); ``cxx_opt``: C++ optimisation of the
    model's hot code (its run-once code at ``-O0``)."""
    from pathlib import Path

    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from rtlgen import toolchain
    from rtlgen.errors import SimulationError
    from rtlgen.verify.runner import verilator_build_args
    from rtlgen.verify.tb import verilator_args

    d = Path(build_dir).resolve()
    sim_dir = d / "sim_build" / ("tb_example" if ports_only else "tb_example_all")
    sim_dir.mkdir(parents=True, exist_ok=True)
    toolchain.setup_env()
    saved = os.environ.get("MAKEFLAGS", "")
    if cxx_opt:
        os.environ["MAKEFLAGS"] = f"{saved} OPT_FAST={cxx_opt} OPT_SLOW=-O0 OPT_GLOBAL={cxx_opt}".strip()
    runner = get_runner("verilator")
    try:
        runner.build(sources=[str(d / "rtl" / "rtlgen_top.v")], hdl_toplevel="rtlgen_top", build_dir=sim_dir,
                     build_args=verilator_build_args() + (verilator_args(sim_dir) if ports_only else []),
                     timescale=("1ns", "1ps"), log_file=sim_dir / "build.log")
    finally:
        os.environ["MAKEFLAGS"] = saved
    env = {"RTLGEN_BUILD_DIR": str(Path(golden_dir or d).resolve()), "RTLGEN_TB_FRAMES": str(frames),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent)] + [p for p in sys.path if p])}
    if results is not None:
        env["RTLGEN_TB_RESULTS"] = str(Path(results).resolve())
    res_xml = sim_dir / "results.xml"
    if res_xml.exists():
        res_xml.unlink()
    try:
        runner.test(test_module="rtlgen.verify.tb_example", hdl_toplevel="rtlgen_top", test_dir=Path(__file__).parent,
                    build_dir=sim_dir, extra_env=env, results_xml=str(res_xml), log_file=sim_dir / "sim.log")
    except SystemExit as e:  # cocotb's runner exits on a failing test under pytest; the results file says what ran
        if not res_xml.exists():
            raise SimulationError(f"the simulator exited with {e.code} before writing results (see {sim_dir})") \
                from None
    n, fails = get_results(res_xml)
    if n == 0:
        raise SimulationError("no cocotb test ran in rtlgen.verify.tb_example")
    if fails:
        raise SimulationError(f"{fails} of {n} cocotb tests failed in rtlgen.verify.tb_example (see {sim_dir})")
    return n, fails


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m rtlgen.verify.tb_example BUILD_DIR [FRAMES]")
    n, fails = run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 4)
    print(f"{n} cocotb tests, {fails} failures")
