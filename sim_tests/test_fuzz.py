"""Randomized whole-network fuzzing (issue 9, items 4 and 5).

hypothesis draws small residual networks (:mod:`fuzz_nets`: H, W 4-16, channels 1-24, kernels 1/3/5, stride 1/2,
identity / 1x1-projection / option-A shortcuts merged into the conv or as a standalone Add, max/avg pooling,
requant layers, global pooling and a dense head with 8-bit or raw int32 output), built as QDQ ONNX graphs with
power-of-two or float per-channel scales and imported with :func:`rtlgen.frontend.load_model`. Each gets a random
legal plan (och_par / ich_par / pix_par / tap_par / packing / storage / mult / FIFO depths). ALL networks of a run go into ONE
Verilator model (a :class:`frame_bench.Bundle` of ``RtlgenTop`` instances, compiled at -O0) and are driven together
by :mod:`stress_bench` with random valid/ready pause patterns (Bernoulli and bursty), 3 frames each (random, all
255, random); every output beat must equal the golden model's. The bundle's Verilog (every network's modules) must be
lint-clean under Verilator ``-Wall`` with the documented waivers (:func:`rtlgen.verify.lint.lint`).

* Default run: :data:`N_DEFAULT` networks of the ``small`` profile (H, W <= 8, channels <= 8, <= 2 blocks) plus the
  kept regression cases (``sim_tests/regressions/*.json``; ``"xfail"`` ones are strict xfails naming the bug).
* Opt-in (``--runslow``): :data:`N_SLOW` networks (``$RTLGEN_FUZZ_SLOW_N`` overrides) of the full ranges in bundles
  of :data:`BATCH`; the counts
  (networks, beats, mismatches) are printed and written to ``$RTLGEN_FUZZ_REPORT`` when set (after every batch);
  with ``$RTLGEN_FUZZ_RESUME=1`` a run cut short continues after the batches that report already holds. Failing specs are
  written next to it (or into the test's tmp folder) as regression-case JSON, ready to copy into
  ``sim_tests/regressions/``.

A regression case is ``{"spec": {...}, "plan_overrides": {layer: {field: value}}, "xfail": "reason"}`` (the last two
optional); ``spec`` as produced by :func:`fuzz_nets.spec_strategy`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fuzz_nets  # noqa: E402
import netbundle  # noqa: E402
import stress_bench  # noqa: E402

N_DEFAULT = 20
SEED_DEFAULT = 20240901
N_SLOW = 200
BATCH = 20
SEED_SLOW = 7
FRAMES = 3
REG_DIR = HERE / "regressions"

PAUSES = [  # (input pauses, output pauses)
    (("bern", 0.3), ("bern", 0.3)),
    (("burst", 0.05, 0.9), ("bern", 0.5)),
    (("none",), ("burst", 0.02, 0.95)),
    (("bern", 0.7), ("none",)),
    (("burst", 0.2, 0.6), ("burst", 0.2, 0.6)),
]

DEFAULT_SPECS = fuzz_nets.draw_specs(N_DEFAULT, SEED_DEFAULT, "small")
REGRESSIONS = fuzz_nets.load_regressions(REG_DIR)


def _prepare(cases: list[tuple[str, dict, dict | None]], max_cycles: int = 6000):
    """-> (parts, jobs, info): ``info[name]`` has the spec, a layer summary, the plan, and ``error`` if the network
    could not be imported/planned/composed (a generator or rtlgen bug: reported per network)."""
    from rtlgen.emit.compose import RtlgenTop

    parts, jobs, info = {}, [], {}
    for k, (name, spec, overrides) in enumerate(cases):
        d = info[name] = {"spec": spec, "plan_overrides": overrides}
        try:
            net = fuzz_nets.import_net(spec, name)
            plan = fuzz_nets.random_plan(net, spec["seed"], max_cycles=max_cycles, overrides=overrides)
            d["layers"] = fuzz_nets.describe(net)
            d["plan"] = fuzz_nets.plan_summary(net, plan)
            d["cycles_per_frame"] = plan.cycles_per_frame
            top = RtlgenTop(net, plan)
            pin, pout = PAUSES[spec["seed"] % len(PAUSES)]
            jobs.append(netbundle.make_job(name, net, top, FRAMES, spec["seed"] % 100_000, pin, pout))
            parts[name] = top
        except Exception as e:  # noqa: BLE001 -- reported per network
            d["error"] = f"{type(e).__name__}: {e}"
    return parts, jobs, info


def run_batch(folder: Path, cases, top_name="fuzz_bundle", lint=True, max_cycles: int = 6000,
              lint_timeout: float = 600) -> dict:
    """Build one bundle of every case, lint it, simulate all jobs with stalls; returns a summary dict."""
    from rtlgen.verify.lint import lint as vlint

    folder = Path(folder)
    t0 = time.perf_counter()
    parts, jobs, info = _prepare(cases, max_cycles)
    summary = {"info": info, "lint": None, "results": {}, "seconds": {}}
    if not parts:
        return summary
    v = netbundle.write_bundle(parts, top_name, folder)
    summary["seconds"]["verilog"] = round(time.perf_counter() - t0, 1)
    if lint:
        t = time.perf_counter()
        summary["lint"] = vlint(v, top_name, timeout=lint_timeout)
        summary["seconds"]["lint"] = round(time.perf_counter() - t, 1)
    worst = max(info[j["name"]]["cycles_per_frame"] for j in jobs)
    t = time.perf_counter()
    res = stress_bench.run(v, top_name, folder / "sim", jobs, tests=("stream",),
                           max_cycles=int(30 * worst * FRAMES + 50_000))
    summary["seconds"]["build_and_sim"] = round(time.perf_counter() - t, 1)
    summary["results"] = res["stream"]["jobs"]
    summary["cycles"] = res["stream"]["cycles"]
    return summary


def problem(summary: dict, name: str) -> str | None:
    d = summary["info"][name]
    if "error" in d:
        return f"{name} was not built: {d['error']}"
    r = summary["results"].get(name)
    if r is None:
        return f"{name}: no simulation result"
    if r["mismatches"] or r["extra_beats"] or not r["done"]:
        return (f"{name}: {r['out_beats']}/{r['expected_beats']} output beats, {r['mismatches']} mismatches (first "
                f"{r['first_mismatch']}), {r['extra_beats']} extra, done={r['done']}; layers: {d['layers']}; "
                f"plan (och,ich,pix,packing,storage,fifo,tap): {d['plan']}; spec: {json.dumps(d['spec'])}")
    return None


def _default_cases():
    cases = [(f"f{k}", s, None) for k, s in enumerate(DEFAULT_SPECS)]
    cases += [(f"r{k}", r["spec"], r.get("plan_overrides")) for k, r in enumerate(REGRESSIONS)]
    return cases


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    return run_batch(tmp_path_factory.mktemp("fuzz_default"), _default_cases(), max_cycles=2500)


@pytest.mark.parametrize("k", range(N_DEFAULT))
def test_fuzzed_network_bit_exact(default_run, k):
    msg = problem(default_run, f"f{k}")
    assert msg is None, msg


def test_fuzzed_networks_lint_clean(default_run):
    assert default_run["lint"] == [], "\n".join(default_run["lint"][:10])


def _reg_params():
    out = []
    for k, r in enumerate(REGRESSIONS):
        marks = [pytest.mark.xfail(strict=True, reason=r["xfail"])] if r.get("xfail") else []
        out.append(pytest.param(k, id=r["_file"].removesuffix(".json"), marks=marks))
    return out


@pytest.mark.parametrize("k", _reg_params())
def test_regression_case(default_run, k):
    msg = problem(default_run, f"r{k}")
    assert msg is None, msg


def test_fuzz_specs_are_diverse():
    """The default corpus covers every block kind, both scale kinds, every head and both shortcut merge modes."""
    f = set().union(*(fuzz_nets.features(s) for s in DEFAULT_SPECS))
    kinds = {x[0] for x in f if len(x) == 3 and x[0] in fuzz_nets.KINDS}
    assert kinds == set(fuzz_nets.KINDS)
    assert {("scales", "pow2"), ("scales", "float")} <= f
    assert {("head", h) for h in ("gap", "gmp", "flatten", "none")} <= f


@pytest.mark.slow
def test_fuzz_opt_in(tmp_path):
    """N_SLOW networks of the full ranges, BATCH per Verilator build; records networks / beats / mismatches."""
    n_slow = int(os.environ.get("RTLGEN_FUZZ_SLOW_N", N_SLOW))
    specs = fuzz_nets.draw_specs(n_slow, SEED_SLOW, "full")
    report_path = os.environ.get("RTLGEN_FUZZ_REPORT")
    out_dir = Path(report_path).parent if report_path else tmp_path
    totals = {"networks": 0, "built": 0, "in_beats": 0, "out_beats": 0, "mismatched_networks": 0,
              "mismatched_beats": 0, "lint_messages": 0, "batches": [], "seed": SEED_SLOW, "target": n_slow}
    problems = []
    if report_path and os.environ.get("RTLGEN_FUZZ_RESUME") and Path(report_path).exists():
        # continue a run that was cut short: its batches are deterministic (same seed, same specs), skip those done
        prev = json.loads(Path(report_path).read_text())
        if prev["totals"].get("seed", SEED_SLOW) == SEED_SLOW:
            totals.update({k: v for k, v in prev["totals"].items() if k not in ("target",)})
            problems = prev["problems"]
    for b in range(0, n_slow, BATCH):
        if b // BATCH < len(totals["batches"]):
            continue
        cases = [(f"s{k}", specs[k], None) for k in range(b, min(b + BATCH, n_slow))]
        t = time.perf_counter()
        summ = run_batch(tmp_path / f"batch{b // BATCH}", cases, lint_timeout=3600)
        totals["networks"] += len(cases)
        totals["lint_messages"] += len(summ["lint"] or [])
        for name, _, _ in cases:
            r = summ["results"].get(name)
            if r:
                totals["built"] += 1
                totals["in_beats"] += r["in_beats"]
                totals["out_beats"] += r["out_beats"]
                totals["mismatched_beats"] += r["mismatches"]
            msg = problem(summ, name)
            if msg:
                totals["mismatched_networks"] += 1
                problems.append(msg)
                case = {"spec": summ["info"][name]["spec"], "found_by": f"test_fuzz_opt_in seed {SEED_SLOW}", "symptom": msg[:300]}
                (out_dir / f"fuzz_fail_{name}.json").write_text(json.dumps(case, indent=1))
        totals["batches"].append({"networks": len(cases), "seconds": round(time.perf_counter() - t, 1), **summ["seconds"]})
        if summ["lint"]:
            problems.append(f"batch {b // BATCH} lint: " + "; ".join(summ["lint"][:5]))
        if report_path:  # after every batch: a long run that is cut short still leaves its counts
            Path(report_path).write_text(json.dumps({"totals": totals, "problems": problems}, indent=1))
    print("FUZZ OPT-IN:", json.dumps(totals))
    assert not problems, "\n".join(problems[:10])


#: opt-in fuzz network s167 (seed 7): a flatten head dense 1520 -> 10; its random plan drew och_par 10 x ich_par 1520,
#: a 121,600-bit weight word that Amaranth refused at Verilog export (OverflowError, no clear message)
S167 = {"scales": "pow2", "H": 10, "W": 8, "seed": 3881191, "raw_out": False, "head": "flatten", "classes": 10,
        "in_signed": False,
        "blocks": [{"s": 1, "merge": False, "c": 7, "relu": True, "k": 1, "kind": "optA"},
                   {"merge": True, "k": 5, "s": 1, "c": 15, "relu": True, "kind": "identity"},
                   {"k": 3, "kind": "plain", "merge": True, "relu": True, "c": 19, "s": 1},
                   {"k": 5, "relu": True, "kind": "optA", "c": 3, "merge": False, "s": 1}]}


def test_weight_word_limit_is_a_clear_error_and_random_plans_respect_it():
    """A plan whose weight word exceeds the widest signal the generator emits is refused with a one-line error naming
    the layer (not an exception deep in the Verilog export); random fuzz plans and the planner stay under it."""
    from rtlgen.plan import data, geometry, search
    from rtlgen.errors import OptionError

    net = fuzz_nets.import_net(S167, "s167")
    dense = [lay.name for lay in net.layers if lay.kind == "dense"][0]
    with pytest.raises(OptionError, match=rf"layer '{dense}'.*121,600 bits.*lower och_par or ich_par"):
        fuzz_nets.random_plan(net, seed=1, overrides={dense: {"och_par": 10, "ich_par": 1520}})
    for seed in range(40):
        plan = fuzz_nets.random_plan(net, seed=seed)
        for lp in plan.layers:
            assert geometry.weight_word_bits(lp.och_par, lp.ich_par, lp.tap_par) <= geometry.MAX_SIGNAL_BITS, (seed, lp)
    plan = search.plan_network(net, "generic", data.parse_budget("dsp=100000,lut=100000000,bram36=100000,uram=0"))
    assert all(geometry.weight_word_bits(lp.och_par, lp.ich_par, lp.tap_par) <= geometry.MAX_SIGNAL_BITS
               for lp in plan.layers)


def test_random_plans_draw_tap_parallelism():
    """The default corpus's random plans use tap parallelism on some convs and not on others (tap_par is drawn from
    its own random stream: the other draws are those of the earlier runs)."""
    from rtlgen import ir

    taps = []
    for k, spec in enumerate(DEFAULT_SPECS[:8]):
        net = fuzz_nets.import_net(spec, f"t{k}")
        plan = fuzz_nets.random_plan(net, spec["seed"], max_cycles=2500)
        taps += [plan.layer(lay.name).tap_par for lay in net.layers
                 if isinstance(lay, ir.Conv) and lay.kernel[0] * lay.kernel[1] > 1]
    assert 1 in taps and any(t > 1 for t in taps), taps
