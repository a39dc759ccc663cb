"""One FPS figure on screen (issue 20, item 4): every printed FPS is the stored figure through
:func:`rtlgen.figures.fmt_fps` — the closing summary line of a simulation, ``rtlgen sim``'s result line and the
timing table print ``40,683.5`` for a stored 40683.5, never ``40,684`` (a second rounding) in one place and the
stored value in another. No build, no simulator: ``run_sim`` is replaced by a stub returning a stored result."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rtlgen import figures
from rtlgen.progress import summary_line

FPS_TEXT = re.compile(r"([0-9][0-9,]*(?:\.[0-9]+)?) FPS")


def result(fps_value):
    return {"images": 12, "mismatches": 0, "top1": None, "cycles_per_frame": 6145, "latency_cycles": 20000,
            "fps_at_clock": fps_value, "predicted_cycles_per_frame": 6144, "stall": 0.0,
            "seconds": {"wall": 3.2}, "engine": "harness"}


@pytest.mark.parametrize("stored,shown", [(40683.5, "40,683.5"), (40684.0, "40,684"), (999.9, "999.9")])
def test_fps_rounding_rule_and_text(stored, shown):
    assert figures.fmt_fps(stored) == shown
    assert FPS_TEXT.findall(summary_line(result(stored), 250.0)) == [shown]


def test_fps_is_the_one_rounding():
    assert figures.fps(250.0, 6145) == 40683.5  # 40,683.48... -> 0.1 FPS
    assert figures.fps(250.0, 6144) == 40690.1


@pytest.mark.parametrize("stored", [40683.5, 40684.0])
def test_sim_cli_prints_one_fps_figure(monkeypatch, stored):
    """The CLI's result line (stdout) and the closing summary (stderr, printed by run_sim) show the same text."""
    import rtlgen.verify.sim as sim_mod
    from rtlgen.cli import main

    class Net:
        class input:  # noqa: N801
            out_shape = (4, 4, 3)

    def fake_run_sim(build_dir, pixels, labels=None, **kw):
        res = result(stored)
        res["images"] = len(pixels)
        res["summary"] = summary_line(res, 250.0)
        print("rtlgen: " + res["summary"], file=__import__("sys").stderr)
        return res

    monkeypatch.setattr(sim_mod, "run_sim", fake_run_sim)
    monkeypatch.setattr(sim_mod, "load_design", lambda d: (Net, {}, {}))
    r = CliRunner().invoke(main, ["sim", "unused_dir", "--random", "12"])
    assert r.exit_code == 0, r.output
    shown = FPS_TEXT.findall(r.stdout) + FPS_TEXT.findall(r.stderr)
    assert len(shown) == 2 and set(shown) == {figures.fmt_fps(stored)}, (r.stdout, r.stderr)


def test_timing_table_prints_stored_fps():
    from rtlgen.verify.timing import format_table

    t = {"speed_grade": "-1", "modules": [], "limiting_module": None, "fmax_mhz": 310.2, "fmax_mhz_congested": 280.0,
         "fmax_mhz_optimistic": 340.0, "meets": True, "clock_mhz": 250, "fps_at_clock": 40683.5,
         "fps_at_fmax": 40683.5}
    line = [ln for ln in format_table(t).splitlines() if ln.startswith("FPS")]
    assert line == ["FPS 40,683.5 at 250 MHz; 40,683.5 at min(clock, Fmax) = 250.0 MHz"]


def test_no_fps_formatted_outside_figures():
    """No module of the package formats an FPS value with its own format spec (``{...fps...:,.0f}``, or a
    ``clock * 1e6 / cycles`` computed in place): they call fmt_fps / fps."""
    src = Path(figures.__file__).parent
    bad = []
    for p in sorted(src.rglob("*.py")):
        if p.name == "figures.py":
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if (re.search(r"\{[^{}]*fps[^{}]*:[^{}]*\}", line, re.IGNORECASE)
                    or re.search(r"\{[^{}]*1e6 / [^{}]*cycles[^{}]*:[^{}]*\}", line)):
                bad.append(f"{p.name}:{i}: {line.strip()}")
    assert not bad, bad
