"""Stream-protocol stress (issue 9, item 3): every core and whole small networks under random valid/ready pauses.

ONE Verilator model (a :class:`frame_bench.Bundle`, -O0) holds

* two whole residual networks (``RtlgenTop`` of :data:`NET_SPECS`: identity block with temporal reuse, projection
  block with loop merging, option-A shortcut with a standalone add, max/avg pooling, an elementwise requant, global
  pooling and dense heads with 8-bit and raw int32 outputs; power-of-two and float scales), and
* every core standalone, instantiated from those networks' layers with their planned parallelism: input stage,
  convolutions (with the merged-residual ``skip`` port driven separately), pools, adds, the option-A shortcut, the
  requant core, dense cores; plus the plumbing cores: FIFO, skid buffer, lane converters (gather / split / pack)
  and the argmax;

driven by :mod:`stream_bench`-style jobs (:mod:`stress_bench`), all concurrently, each with its own pause pattern
(Bernoulli, bursty, none) on every input and on the output. Checks, each on every job:

* ``stream``: frames back to back under the pauses; the output must equal the golden beats exactly (no beat lost,
  duplicated or reordered), nothing extra afterwards. Default run: :data:`FRAMES_DEFAULT` frames per job (about
  :data:`BEATS_HINT` beats in all); opt-in (``--runslow``): enough frames for >= 10**6 beats (counted: input beats
  accepted + output beats checked).
* ``reset``: two thirds of a frame with pauses, a reset while beats are in flight, then clean frames exactly.
* ``backpressure``: inputs at full rate while the output ``ready`` is held low for :data:`HOLD` cycles, twice (at
  the start and mid-run): afterwards every beat must still be exact (no FIFO overflows or drops, the stall propagates
  back to the input).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fuzz_nets  # noqa: E402
import netbundle  # noqa: E402
import stress_bench  # noqa: E402

FRAMES_DEFAULT = 3
HOLD = 2000
BEATS_TARGET_SLOW = 1_000_000
BEATS_HINT = "8,000"

_B = lambda kind, k, s, c, merge=True, relu=True: {"kind": kind, "k": k, "s": s, "c": c, "merge": merge, "relu": relu}  # noqa: E731

NET_SPECS = {
    "netA": {"H": 8, "W": 8, "blocks": [_B("plain", 3, 1, 8), _B("identity", 3, 1, 8), _B("proj", 3, 2, 12),
                                        _B("optA", 3, 1, 16, merge=False)],
             "scales": "pow2", "in_signed": False, "head": "gap", "classes": 10, "raw_out": False, "seed": 11},
    "netB": {"H": 9, "W": 7, "blocks": [_B("plain", 5, 1, 6, relu=False), _B("maxpool", 3, 2, 6), _B("requant", 1, 1, 6),
                                        _B("optA", 1, 2, 10), _B("avgpool", 1, 1, 1)],
             "scales": "float", "in_signed": True, "head": "gmp", "classes": 7, "raw_out": True, "seed": 12},
}

PAUSES = [(("bern", 0.3), ("bern", 0.3)), (("burst", 0.05, 0.9), ("bern", 0.5)), (("none",), ("burst", 0.02, 0.95)),
          (("bern", 0.7), ("none",)), (("burst", 0.2, 0.6), ("burst", 0.2, 0.6)), (("bern", 0.1), ("bern", 0.8))]


def _nets():
    out = {}
    for name, spec in NET_SPECS.items():
        net = fuzz_nets.import_net(spec, name)
        # no URAM here: the standalone per-layer cores below have no weight-image driver (URAM: test_uram.py)
        plan = fuzz_nets.random_plan(net, spec["seed"], max_cycles=3000, uram=False)
        out[name] = (net, plan)
    return out


def _core_for(lay, lp):
    """(core, {input port: (source layer or None, lanes)}, out lanes, out width) for one IR layer, standalone."""
    from rtlgen import ir
    from rtlgen.cores.add import AddCore
    from rtlgen.cores.conv import Conv
    from rtlgen.cores.dense import DenseCore
    from rtlgen.cores.input_stage import InputStageCore
    from rtlgen.cores.pool import PoolCore
    from rtlgen.cores.requant_core import RequantCore
    from rtlgen.cores.shortcut_a import ShortcutACore

    if isinstance(lay, ir.InputStage):
        return InputStageCore.from_layer(lay), {"i": ("pixels", 3)}, 3, 8
    if isinstance(lay, ir.Conv):
        core = Conv(lay, ich_par=lp.ich_par, och_par=lp.och_par, pix_par=lp.pix_par, packing=lp.packing, storage=lp.storage)
        ins = {"i": (lay.inputs[0], lp.ich_par)}
        if lay.residual is not None:
            ins["skip"] = (lay.residual, lp.och_par)
        return core, ins, lp.och_par, 8
    if isinstance(lay, ir.Dense):
        lanes_in = min(lp.ich_par, lay.in_shape[2])  # as rtlgen.emit.compose wires it: pixels of C values
        core = DenseCore.from_layer(lay, lanes_in=lanes_in, och_par=lp.och_par, ich_par=lp.ich_par, lanes_out=lp.lanes_out)
        return core, {"i": (lay.inputs[0], lanes_in)}, lp.lanes_out, 32 if lay.out_q is None else 8
    if isinstance(lay, ir.Pool):
        return PoolCore.from_layer(lay, lanes=lp.lanes_out), {"i": (lay.inputs[0], lp.lanes_out)}, lp.lanes_out, 8
    if isinstance(lay, ir.Add):
        return (AddCore.from_layer(lay, lanes=lp.lanes_out), {"a": (lay.inputs[0], lp.lanes_out), "b": (lay.inputs[1], lp.lanes_out)},
                lp.lanes_out, 8)
    if isinstance(lay, ir.ShortcutA):
        return ShortcutACore.from_layer(lay, lanes_in=lp.lanes_out, lanes_out=lp.lanes_out), {"i": (lay.inputs[0], lp.lanes_out)}, lp.lanes_out, 8
    if isinstance(lay, ir.Requantize):
        return RequantCore.from_layer(lay, lanes=lp.lanes_out), {"i": (lay.inputs[0], lp.lanes_out)}, lp.lanes_out, 8
    raise TypeError(lay.kind)


def _words(frame, lanes, width=8):
    from rtlgen.cores.stream import frame_to_beats

    return frame_to_beats(np.asarray(frame, dtype=np.int64), lanes, width)


DISTINCT = 4  # distinct frames per job, cycled


def _est_cycles(core, words_per_frame: int) -> int:
    """Rough cycles per frame of a part without stalls (its cycle model when it has one)."""
    f = getattr(core, "cycles_per_frame", None)
    try:
        c = int(f()) if callable(f) else 0
    except TypeError:  # plumbing models take the beat count
        c = int(f(words_per_frame))
    if hasattr(core, "plan"):
        c = core.plan.cycles_per_frame
    return max(c, words_per_frame, 1)


def build_jobs(frames, reset_frames: int = 2):
    """-> (parts, jobs): the bundle's components and one job per part. ``frames``: frames per job (int), or a
    function ``(job name, estimated cycles per frame, beats per frame) -> frames`` (balanced long runs)."""
    from rtlgen import golden
    from rtlgen.emit.compose import RtlgenTop
    from rtlgen.cores.adapters import LaneConverter
    from rtlgen.cores.argmax import ArgmaxCore
    from rtlgen.cores.fifo import SkidBuffer, StreamFIFO

    parts, jobs = {}, []
    k = 0

    def add_job(name, ins: dict, out_frames: list, seed):
        """``ins``: {port: [words of each distinct frame]}, ``out_frames``: expected words per distinct frame."""
        nonlocal k
        pin, pout = PAUSES[k % len(PAUSES)]
        k += 1
        nd = len(out_frames)
        bpf = sum(len(fr[0]) for fr in ins.values()) + len(out_frames[0])
        nf = frames if isinstance(frames, int) else max(1, int(frames(name, _est_cycles(parts[name], bpf), bpf)))
        order = [i % nd for i in range(nf)]
        j = {"name": name, "inputs": {f"{name}_{p}": [w for i in order for w in fr[i]] for p, fr in ins.items()},
             "output": f"{name}_o", "expected": [w for i in order for w in out_frames[i]], "pause_in": list(pin),
             "pause_out": list(pout), "seed": seed, "frames": nf,
             "reset_partial": {f"{name}_{p}": fr[0][: max(1, len(fr[0]) * 2 // 3)] for p, fr in ins.items()},
             "reset_clean": {f"{name}_{p}": [w for f in fr[:reset_frames] for w in f] for p, fr in ins.items()},
             "reset_expected": [w for f in out_frames[:reset_frames] for w in f]}
        nb = min(nf, 3)  # the backpressure test: three frames (or fewer)
        j["bp_inputs"] = {f"{name}_{p}": [w for i in order[:nb] for w in fr[i]] for p, fr in ins.items()}
        j["bp_expected"] = [w for i in order[:nb] for w in out_frames[i]]
        jobs.append(j)

    for nname, (net, plan) in _nets().items():
        top = RtlgenTop(net, plan)
        parts[nname] = top
        px = netbundle.pixels_for(net, DISTINCT, 101 + k)
        allv = golden.run(net, px, return_all=True)
        iw = netbundle.input_words(px)
        ow = netbundle.expected_words(net, top, px)
        add_job(nname, {"i": iw}, ow, 200 + k)
        P = {lp.name: lp for lp in plan.layers}
        for lay in net.layers:
            core, ins, lanes_out, width = _core_for(lay, P[lay.name])
            cname = f"{nname}_{lay.name}"
            parts[cname] = core
            in_frames = {}
            for port, (src, lanes) in ins.items():
                in_frames[port] = iw if src == "pixels" else [_words(allv[src][i], lanes) for i in range(DISTINCT)]
            out = allv[lay.name]
            add_job(cname, in_frames, [_words(out[i], lanes_out, width) for i in range(DISTINCT)], 300 + k)
        # argmax on the network output
        out = allv[net.output]
        n_cls = out.shape[-1]
        width = 32 if net[net.output].out_q is None else 8
        am = parts[f"{nname}_argmax"] = ArgmaxCore(n_cls, lanes=2, width=width, is_signed=True)
        idx = [np.array([[[int(np.argmax(out[i].reshape(-1)))]]]) for i in range(DISTINCT)]
        add_job(f"{nname}_argmax", {"i": [_words(out[i].reshape(1, 1, -1), 2, width) for i in range(DISTINCT)]},
                [_words(idx[i], 1, am.index_width) for i in range(DISTINCT)], 400 + k)

    # plumbing: FIFO, skid buffer, lane converters (pack, gather, split) on random 5x4xC frames
    rng = np.random.default_rng(5)
    plumbing = {
        "fifo": (StreamFIFO(5, lanes=3), 3, 3, 3),
        "skid": (SkidBuffer(lanes=2), 4, 2, 2),
        "lanes_pack": (LaneConverter(5, 2, 3), 5, 2, 3),
        "lanes_slots": (LaneConverter(11, 4, 3, slots=True), 11, 4, 3),
        "lanes_gather": (LaneConverter(6, 2, 6), 6, 2, 6),
        "lanes_split": (LaneConverter(8, 8, 2), 8, 8, 2),
    }
    for name, (core, C, li, lo) in plumbing.items():
        parts[name] = core
        fr = rng.integers(-128, 128, (DISTINCT, 5, 4, C))
        add_job(name, {"i": [_words(f, li) for f in fr]}, [_words(f, lo) for f in fr], 500 + k)
    return parts, jobs


def _beats(res: dict) -> int:
    return sum(j["in_beats"] + j["out_beats"] for j in res["jobs"].values())


@pytest.fixture(scope="module")
def stress_design(tmp_path_factory):
    from rtlgen.verify.lint import lint

    d = tmp_path_factory.mktemp("stress")
    parts, jobs = build_jobs(FRAMES_DEFAULT)
    v = netbundle.write_bundle(parts, "stress_bundle", d)
    return {"dir": d, "verilog": v, "jobs": jobs, "lint": lint(v, "stress_bundle")}


@pytest.fixture(scope="module")
def stress_results(stress_design):
    d = stress_design
    return stress_bench.run(d["verilog"], "stress_bundle", d["dir"] / "sim", d["jobs"],
                            tests=("stream", "reset", "backpressure"), max_cycles=400_000, hold=HOLD)


def test_every_core_kind_is_stressed(stress_design):
    names = {j["name"] for j in stress_design["jobs"]}
    for kind in ("input", "conv", "maxpool", "avgpool", "add", "shortcut", "requant", "dense", "gavgpool", "gmaxpool",
                 "argmax", "fifo", "skid", "lanes_pack", "lanes_gather", "lanes_split"):
        assert any(kind in n for n in names), kind
    assert {"netA", "netB"} <= names
    # a conv with a merged residual (its skip port driven on its own) is among them
    assert any("skip" in p for j in stress_design["jobs"] for p in j["inputs"])


def test_stress_bundle_lint_clean(stress_design):
    assert stress_design["lint"] == [], "\n".join(stress_design["lint"][:10])


def test_random_pauses_no_beat_lost_duplicated_or_reordered(stress_results):
    bad = stress_bench.failures({"stream": stress_results["stream"]})
    assert not bad, "\n".join(bad)
    assert _beats(stress_results["stream"]) > 5_000


def test_reset_mid_frame_then_correct_frames(stress_results):
    r = stress_results["reset"]
    bad = stress_bench.failures({"reset": r})
    assert not bad, "\n".join(bad)
    # the reset really hit with beats in flight: every job had accepted part of its first frame
    assert all(v > 0 for v in r["partial_in_beats"].values()), r["partial_in_beats"]


def test_long_output_backpressure_no_overflow(stress_results):
    r = stress_results["backpressure"]
    bad = stress_bench.failures({"backpressure": r})
    assert not bad, "\n".join(bad)
    assert r["hold"] >= 2000


@pytest.mark.slow
def test_stress_opt_in_million_beats(tmp_path):
    """>= 10**6 beats (input beats accepted + output beats checked, all jobs) under random pauses, bit-exact. Frames
    per job are balanced so every job runs for about the same number of cycles (fast plumbing cores get many more
    frames than the whole networks), which keeps the simulated cycles near 10**5."""
    _, probe = build_jobs(1)
    est = {j["name"]: None for j in probe}
    seen = {}

    def count(name, cycles, bpf):
        seen[name] = (cycles, bpf)
        return 1

    build_jobs(count)
    # beats per cycle of each job ~ bpf / (3 * cycles) (pauses slow a job down ~3x): choose T cycles for 1.1e6 beats
    rate = sum(b / (3.0 * c) for c, b in seen.values())
    T = 1.1 * BEATS_TARGET_SLOW / rate
    del est
    parts, jobs = build_jobs(lambda name, cycles, bpf: int(np.ceil(T / (3.0 * cycles))))
    v = netbundle.write_bundle(parts, "stress_bundle", tmp_path)
    res = stress_bench.run(v, "stress_bundle", tmp_path / "sim", jobs, tests=("stream", "reset", "backpressure"),
                           max_cycles=int(20 * T) + 200_000, hold=HOLD)
    summary = {t: {"beats": _beats(r), "cycles": r["cycles"], "jobs": len(r["jobs"]),
                   "mismatches": sum(j["mismatches"] for j in r["jobs"].values())} for t, r in res.items()}
    summary["frames_per_job"] = {j["name"]: j["frames"] for j in jobs}
    print("STRESS OPT-IN:", json.dumps(summary))
    if os.environ.get("RTLGEN_STRESS_REPORT"):
        Path(os.environ["RTLGEN_STRESS_REPORT"]).write_text(json.dumps(summary, indent=1))
    bad = stress_bench.failures(res)
    assert not bad, "\n".join(bad[:10])
    assert summary["stream"]["beats"] >= BEATS_TARGET_SLOW
