"""tools/bench_optin.py: the opt-in runs' JSON reports become BENCHMARKS rows (no file written by these tests)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import bench_optin  # noqa: E402


def test_fuzz_and_stress_rows(tmp_path):
    fz = tmp_path / "fuzz.json"
    fz.write_text(json.dumps({"totals": {"networks": 40, "built": 39, "in_beats": 12345, "out_beats": 678,
                                         "mismatched_networks": 1, "mismatched_beats": 3, "lint_messages": 0,
                                         "seed": 7, "target": 200,
                                         "batches": [{"seconds": 1800.0}, {"seconds": 1800.0}]}, "problems": []}))
    st = tmp_path / "stress.json"
    st.write_text(json.dumps({"stream": {"jobs": 32, "beats": 1_000_001, "cycles": 5, "mismatches": 0}}))
    rows = bench_optin.robustness_rows(fz, st)
    assert len(rows) == 2
    assert "40 of 200 networks (39 built, seed 7, 2 batches, 1.0 h)" in rows[0]
    assert "12,345 in / 678 out beats" in rows[0] and "1 networks, 3 beats" in rows[0]
    assert rows[1].startswith("| stress stream") and "1,000,001 beats" in rows[1]


def test_deep_section_skips_networks_not_run(tmp_path):
    d = tmp_path / "deep.json"
    d.write_text(json.dumps({"networks": {
        "a": {"quantization": "qdq", "layers": 5, "budget": "dsp=8", "frames": 3, "mismatches": 0,
              "cycles_per_frame_measured": 1000, "cycles_per_frame_predicted": 999, "engine": "verilator"},
        "b": {"quantization": "pow2", "layers": 9, "mismatches": None}}}))
    body = bench_optin.deep_section(d)["body"]
    assert "| a | qdq | 5 | dsp=8 | 3 | 0 | 1,000 | 999 | verilator |" in body and "| b |" not in body


def test_missing_file_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        bench_optin.main(["--fuzz-report", str(tmp_path / "nope.json")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench_optin.main([])
    assert e.value.code == 2


def test_bench_save_keeps_rows_of_a_concurrent_run(tmp_path, monkeypatch):
    """Two bench commands at once (say ResNet8 and ResNet20 synthesis): each writes back only the rows it measured,
    so the one that finishes last does not put the other's stale row back."""
    import bench

    monkeypatch.setattr(bench, "RESULTS", tmp_path / "r.json")
    monkeypatch.setattr(bench, "FRESH", set())
    stale = {"synth": {"runs": {"a@x": {"lut": 1}, "b@x": {"lut": 2}}, "command": "old"}, "golden": {"n": 1}}
    bench.RESULTS.write_text(json.dumps(stale))
    mine = bench.load_results()  # loaded at start; meanwhile the other run stores a fresh a@x
    other = bench.load_results()
    other["synth"]["runs"]["a@x"] = {"lut": 10}
    bench.RESULTS.write_text(json.dumps(other))
    bench.put_run(mine, "synth", "b@x", {"lut": 20})
    mine["synth"]["command"] = "new"
    out = bench.save_results(mine, sections=["synth"])
    disk = json.loads(bench.RESULTS.read_text())
    assert disk == out
    assert disk["synth"]["runs"] == {"a@x": {"lut": 10}, "b@x": {"lut": 20}}
    assert disk["synth"]["command"] == "new" and disk["golden"] == {"n": 1}
