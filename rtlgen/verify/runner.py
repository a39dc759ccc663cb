"""Verilog export and cocotb + Verilator runs, shared by the test benches and ``rtlgen sim``.

Usage pattern (see ``sim_tests/test_toolchain.py``): a pytest function elaborates an Amaranth component to Verilog with
:func:`write_verilog`, then :func:`run_cocotb` compiles it with Verilator and runs the ``@cocotb.test`` coroutines of a
Python module. Parameters reach the cocotb side as a JSON file whose path is in ``$RTLGEN_SIM_CONFIG``
(:func:`sim_config` reads it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .. import toolchain
from ..errors import SimulationError

CONFIG_ENV = "RTLGEN_SIM_CONFIG"


def verilator_build_args(threads: int = 1) -> list[str]:
    args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNUSED", "-Wno-UNOPTFLAT", "-O3", "--x-assign", "fast", "--x-initial", "fast"]
    if threads > 1:
        args += ["--threads", str(threads)]
    return args


def run_cocotb(
    sources: list[Path],
    toplevel: str,
    test_module: str,
    test_dir: Path,
    build_dir: Path,
    config: dict | None = None,
    waves: bool = False,
    testcase: str | None = None,
    always: bool = False,
    timescale=("1ns", "1ps"),
    cxx_opt: str | None = None,
) -> tuple[int, int]:
    """Build ``sources`` with Verilator and run the cocotb tests in ``test_module`` (importable from ``test_dir``).

    ``cxx_opt`` (e.g. ``"-O0"``) sets the C++ optimisation of the Verilated model's hot code (its run-once code is then
    compiled at ``-O0``): ``-O0`` compiles a big design about three times faster and simulates slower (right for a few
    frames); the default (Verilator's ``-Os`` everywhere) suits long runs.

    Returns ``(tests, failures)``; raises :class:`SimulationError` if any test failed or none ran.
    """
    toolchain.setup_env()
    saved_flags = os.environ.get("MAKEFLAGS", "")
    if cxx_opt:
        # run-once code (constructors, the VPI symbol table of --public-flat-rw: huge for a whole network) at -O0
        os.environ["MAKEFLAGS"] = f"{saved_flags} OPT_FAST={cxx_opt} OPT_SLOW=-O0 OPT_GLOBAL={cxx_opt}".strip()
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    env = {}
    if config is not None:
        cfg = build_dir / "rtlgen_sim_config.json"
        cfg.write_text(json.dumps(config))
        env[CONFIG_ENV] = str(cfg)
    pypath = [str(Path(test_dir).resolve())] + [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(pypath)
    runner = get_runner("verilator")
    build_args = verilator_build_args()
    if waves:
        build_args.append("--trace-fst")
    try:
        runner.build(
            sources=[str(s) for s in sources],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            build_args=build_args,
            always=always,
            waves=waves,
            timescale=timescale,
            log_file=build_dir / "build.log",
        )
    finally:
        os.environ["MAKEFLAGS"] = saved_flags
    results = build_dir / "results.xml"
    if results.exists():
        results.unlink()
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=toplevel,
            test_dir=Path(test_dir).resolve(),
            build_dir=build_dir,
            extra_env=env,
            waves=waves,
            testcase=testcase,
            results_xml=str(results),
            log_file=build_dir / "sim.log",
        )
    except SystemExit as e:
        # under pytest (PYTEST_CURRENT_TEST set) cocotb's runner exits on a failing test instead of returning; the
        # results file below says what happened either way
        if not results.exists():
            raise SimulationError(f"the simulator exited with {e.code} before writing results (see {build_dir})") from None
    n, fails = get_results(results)
    if n == 0:
        raise SimulationError(f"no cocotb test ran in {test_module}")
    if fails:
        raise SimulationError(f"{fails} of {n} cocotb tests failed in {test_module} (see {build_dir})")
    return n, fails


def sim_config() -> dict:
    """Inside a cocotb test: the config dict passed to :func:`run_cocotb`."""
    p = os.environ.get(CONFIG_ENV)
    return json.loads(Path(p).read_text()) if p else {}
