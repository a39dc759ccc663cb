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
