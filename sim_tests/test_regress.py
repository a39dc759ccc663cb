"""The compiled Verilator harness (rtlgen/verify/harness.py), the one simulator of ``rtlgen sim``.

* a small residual network built with ``rtlgen build``: 50 frames over 2 shards with random stalls, bit-exact; without
  stalls its cycles per frame and latency equal the cocotb bench's (``run_sim(engine="cocotb")``) on the same frames;
* ``rtlgen sim --random 10`` (any frame count) goes through the harness;
* a tampered model: the probes compiled into the harness name the first differing layer, also for a frame in the
  middle of the second shard (the shard is re-run up to that frame with the same stalls);
* phase messages, frame progress and the closing summary reach the ``log``/``progress`` callables;
* Dask: a real ``distributed.LocalCluster`` with 2 worker processes (the harness shipped to them as bytes) gives the
  same outputs and cycle figures as the local run, via ``scheduler=ADDRESS`` and ``$RTLGEN_DASK_SCHEDULER``;
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
from rtlgen.verify.beats import pack_beats, unpack_beats, words_for  # noqa: E402
from rtlgen.verify.harness import build_harness, run_harness, run_regression  # noqa: E402


def _pixels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    from netbundle import small_resnet_build

    return small_resnet_build(tmp_path_factory, "regress")


def test_harness_bit_exact_with_stalls_and_cycle_exact_with_cocotb(small_build):
    from rtlgen.verify.sim import run_sim

    px = _pixels(50, 1)
    res = run_regression(small_build, px, shards=2, stall=0.3, seed=4, progress=lambda k: None, log=False)
    assert res["mismatches"] == 0 and res["images"] == 50 and res["shards"] == 2, res
    # no stalls: the same frames through cocotb (a few) and the harness -> identical cycle figures
    few = _pixels(6, 2)
    ref = run_sim(small_build, few, engine="cocotb", log=False)
    assert ref["engine"] == "cocotb" and ref["mismatches"] == 0
    for shards in (1, 2):
        h = run_regression(small_build, few, shards=shards, progress=lambda k: None, log=False)
        assert h["mismatches"] == 0 and h["engine"] == "verilator-harness"
        assert h["cycles_per_frame"] == ref["cycles_per_frame"], (h, ref)
        assert h["latency_cycles"] == ref["latency_cycles"], (h, ref)
    # 50 frames in 1 and in 2 shards: bit-exact, the same first-frame latency (each shard starts from reset)
    h1 = run_regression(small_build, px, shards=1, progress=False, log=False)
    h2 = run_regression(small_build, px, shards=2, progress=False, log=False)
    assert h1["mismatches"] == h2["mismatches"] == 0 and h1["shards"] == 1 and h2["shards"] == 2
    assert h1["latency_cycles"] == h2["latency_cycles"] == ref["latency_cycles"]


def test_rtlgen_sim_uses_the_harness_for_every_run(small_build):
    r = CliRunner().invoke(main, ["sim", str(small_build), "--random", "10", "--json"])
    assert r.exit_code == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["engine"] == "verilator-harness" and j["images"] == 10 and j["mismatches"] == 0
    assert j["cycles_per_frame"] == json.loads((small_build / "report.json").read_text())["cycles_per_frame"]


def _tamper_conv1(src: Path, out: Path) -> None:
    """A copy of the build whose model.onnx has conv1's largest weight negated (the RTL keeps the original)."""
    import shutil

    import onnx
    from onnx import numpy_helper

    shutil.copytree(src, out)  # the compiled harness comes along (its cache key does not depend on the folder)
    m = onnx.load(str(out / "model.onnx"))
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    wname = convs[1].input[1]
    producer = {o: n for n in m.graph.node for o in n.output}.get(wname)
    init_name = producer.input[0] if producer is not None else wname
    init = next(t for t in m.graph.initializer if t.name == init_name)
    w = numpy_helper.to_array(init).copy()
    i = np.unravel_index(np.argmax(np.abs(w)), w.shape)
    w[i] = -w[i]
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(m, str(out / "model.onnx"))


def test_probes_name_the_first_differing_layer(small_build, tmp_path):
    from rtlgen.verify import harness as regress

    out = tmp_path / "tampered"
    _tamper_conv1(small_build, out)
    msgs = []
    px = _pixels(9, 3)
    res = run_regression(out, px, shards=2, stall=0.2, seed=3, progress=lambda k: None, log=msgs.append)
    assert res["mismatches"] > 0 and res["first_differing_layer"] == "conv1", res.get("first_differing_layer")
    assert not any("verilating" in m for m in msgs), msgs  # reused the copied build's harness
    # a frame in the middle of the second shard: the shard is re-run up to it, probes record only that frame
    hb = regress.build_harness(out, info=True, log=False)
    assert len(hb.probes) == len(regress.load_design(out)[2]["probes"])
    net, rep, man = regress.load_design(out)
    words = regress.input_words(px, man)
    shards = regress.run_harness(hb.exe, words, man, rep["cycles_per_frame"], stall=0.2, seed=3, shards=2)
    assert shards[1]["start"] < 7 < shards[1]["start"] + shards[1]["n"]
    assert regress.locate_layer(hb, net, man, rep, px, words, None, shards, 7, 0.2, 3, None) == "conv1"
    # the untampered build: same frame, no layer differs
    net0, rep0, man0 = regress.load_design(small_build)
    hb0 = regress.build_harness(small_build, info=True, log=False)
    assert regress.locate_layer(hb0, net0, man0, rep0, px, words, None, shards, 7, 0.2, 3, None) is None


def test_progress_log_and_summary(small_build):
    msgs, frames = [], []
    res = run_regression(small_build, _pixels(12, 5), shards=2, log=msgs.append, progress=frames.append)
    assert sum(frames) == 12 and all(k > 0 for k in frames)
    assert any(m.startswith("simulating 12 frames") and " done in " in m for m in msgs), msgs
    assert msgs[-1] == res["summary"]
    assert res["summary"].startswith("12 frames; 0 mismatches; ") and "cycles/frame" in res["summary"]
    assert "FPS at" in res["summary"] and "wall" in res["summary"]


@pytest.fixture(scope="module")
def dask_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_dask_cluster_shards_bit_exact(small_build, dask_cluster, monkeypatch):
    px = _pixels(16, 6)
    local = run_regression(small_build, px, shards=2, stall=0.1, seed=2, progress=False, log=False)
    frames = []
    res = run_regression(small_build, px, shards=2, stall=0.1, seed=2, progress=frames.append, log=False,
                         scheduler=dask_cluster.scheduler_address)
    assert res["engine"] == "dask" and res["scheduler"] == dask_cluster.scheduler_address and res["dask_workers"] == 2
    assert res["mismatches"] == 0 and res["images"] == 16 and res["shards"] == 2
    for k in ("cycles_per_frame", "latency_cycles"):
        assert res[k] == local[k], (k, res, local)
    # through the environment variable and run_sim, more shards than workers
    monkeypatch.setenv("RTLGEN_DASK_SCHEDULER", dask_cluster.scheduler_address)
    from rtlgen.verify.sim import run_sim

    res4 = run_sim(small_build, px, shards=4, log=False, progress=False)
    assert res4["engine"] == "dask" and res4["shards"] == 4 and res4["mismatches"] == 0


def test_bad_scheduler_is_one_line():
    from rtlgen.errors import OptionError, RtlgenError
    from rtlgen.verify.shard import resolve_scheduler
    from rtlgen.errors import SimulationError

    with pytest.raises(OptionError, match="expected 'local' or a Dask address"):
        resolve_scheduler("localhost:8786")
    assert resolve_scheduler("tcp://127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert issubclass(SimulationError, RtlgenError)


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
