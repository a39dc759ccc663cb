"""The compiled Verilator harness (rtlgen/regress.py): bit-exact and cycle-exact with the cocotb bench.

* a small residual network built with ``rtlgen build``: 50 frames over 2 shards with random stalls, bit-exact; without
  stalls its cycles per frame and latency equal ``rtlgen.sim.run_sim``'s (cocotb) on the same frames;
* ``rtlgen sim --random 200`` goes through the harness (the ``>= 200 frames`` branch of run_sim);
* payload packing of any width: a hand-written stream stage with 97-bit input and 121-bit output beats (Verilator
  ``VlWide`` ports, lanes straddling 32-bit words, signed lanes) round-trips through the harness.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from rtlgen.cli import main  # noqa: E402
from rtlgen.regress import (  # noqa: E402
    build_harness,
    pack_beats,
    run_harness,
    run_regression,
    unpack_beats,
    words_for,
)


def _pixels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    import zoo

    tmp = tmp_path_factory.mktemp("regress")
    m = zoo.brevitas_resnet(tmp, "qonnx", seed=3, with_metadata=True)
    out = tmp / "build"
    r = CliRunner().invoke(main, ["build", str(m.path), "--board", "ultra96v2", "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    return out


def test_harness_bit_exact_with_stalls_and_cycle_exact_with_cocotb(small_build):
    from rtlgen.sim import run_sim

    rep = json.loads((small_build / "report.json").read_text())
    px = _pixels(50, 1)
    res = run_regression(small_build, px, shards=2, stall=0.3, seed=4, progress=lambda k: None)
    assert res["mismatches"] == 0 and res["images"] == 50 and res["shards"] == 2, res
    # no stalls: the same frames through cocotb (a few) and the harness -> identical cycle figures
    few = _pixels(6, 2)
    ref = run_sim(small_build, few)  # < 200 frames: the cocotb bench
    assert "engine" not in ref and ref["mismatches"] == 0
    for shards in (1, 2):
        h = run_regression(small_build, few, shards=shards, progress=lambda k: None)
        assert h["mismatches"] == 0
        assert h["cycles_per_frame"] == ref["cycles_per_frame"], (h, ref)
        assert h["latency_cycles"] == ref["latency_cycles"], (h, ref)
    h = run_regression(small_build, px, shards=2, progress=lambda k: None)
    assert h["mismatches"] == 0 and h["cycles_per_frame"] == ref["cycles_per_frame"] == rep["cycles_per_frame"]


def test_rtlgen_sim_uses_the_harness_for_large_runs(small_build):
    r = CliRunner().invoke(main, ["sim", str(small_build), "--random", "200", "--json"])
    assert r.exit_code == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["engine"] == "verilator-harness" and j["images"] == 200 and j["mismatches"] == 0
    assert j["cycles_per_frame"] == json.loads((small_build / "report.json").read_text())["cycles_per_frame"]


def test_pack_unpack_roundtrip():
    rng = np.random.default_rng(0)
    for lanes, width, signed in ((3, 8, False), (12, 8, False), (5, 24, True), (3, 32, True), (2, 40, True), (1, 64, True)):
        lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if signed else (0, 1 << width)
        v = rng.integers(lo, hi, size=(7, 11, lanes), dtype=np.int64) if width < 64 else rng.integers(-(1 << 62), 1 << 62, size=(7, 11, lanes))
        last = rng.random((7, 11)) < 0.3
        w = pack_beats(v, width, last)
        assert w.shape == (7, 11, words_for(lanes * width + 1)) and w.dtype == np.uint32
        v2, last2 = unpack_beats(w, lanes, width, signed)
        assert np.array_equal(v2, v) and np.array_equal(last2, last), (lanes, width)


WIDE_V = """
// 12 x 8-bit lanes + last in (97 bits), 5 x 24-bit signed lanes + last out (121 bits): lane j = in lane j - 128
module rtlgen_top(input clk, input rst, input i__valid, output i__ready, input [96:0] i__payload,
                  output reg o__valid, input o__ready, output reg [120:0] o__payload);
  assign i__ready = !o__valid || o__ready;
  integer j;
  always @(posedge clk) begin
    if (rst) o__valid <= 1'b0;
    else if (i__ready) begin
      o__valid <= i__valid;
      for (j = 0; j < 5; j = j + 1)
        o__payload[24 * j +: 24] <= {16'b0, i__payload[8 * j +: 8]} - 24'd128;
      o__payload[120] <= i__payload[96];
    end
  end
endmodule
"""


def test_wide_payloads_through_the_harness(tmp_path):
    d = tmp_path / "wide"
    (d / "rtl").mkdir(parents=True)
    (d / "rtl" / "rtlgen_top.v").write_text(WIDE_V)
    exe = build_harness(d)
    n, beats = 9, 16
    rng = np.random.default_rng(3)
    vals = rng.integers(0, 256, size=(n, beats, 12))
    last = np.zeros((n, beats), dtype=bool)
    last[:, -1] = True
    words = pack_beats(vals, 8, last)
    assert words.shape[-1] == 4
    man = {"output": {"lanes": 5, "width": 24, "values": 5 * beats, "beats_per_frame": beats, "signed": True}}
    for stall, shards in ((0.0, 1), (0.4, 2), (0.2, 3)):
        res = run_harness(exe, words, man, cycles_per_frame=beats, stall=stall, seed=7, shards=shards)
        assert len(res) == shards and sum(r["n"] for r in res) == n
        outs = np.concatenate([r["outs"] for r in res])
        assert outs.shape == (n * beats, 4)
        got, glast = unpack_beats(outs, 5, 24, True)
        assert np.array_equal(got, vals.reshape(n * beats, 12)[:, :5] - 128)
        assert np.array_equal(glast, last.reshape(-1))
        for r in res:
            assert not r["timeout"] and r["extra"] == 0
            if stall == 0.0:  # one beat per cycle after the first: frame k ends beats*k cycles after frame 0
                assert np.array_equal(np.diff(r["last_out"]), np.full(r["n"] - 1, beats))
