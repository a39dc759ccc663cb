"""Graph optimizer (rtlgen/frontend/optimize.py): requantization chains folded only where exact, the fusion report.

* a seed-paper-style Brevitas export (tools/seedstyle.py: ``Conv -> Quant -> Relu -> Quant`` per conv, quantized
  residual adds followed by ``Quant -> Relu -> Quant``, int16 biases also listed as graph inputs, MaxPool head, 1x1-conv
  classifier): after folding, the golden model's logits still equal QONNX's executor / ONNX Runtime bit for bit, the
  chains are gone, and the report has a line per layer naming what it absorbed and why anything stayed;
* random requantization chains: whatever :func:`compose` folds equals the chain on every input code (the golden model
  is the judge), refusals name the first differing value, and known cases fold or refuse as they must.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import reference as R
import zoo
from rtlgen import golden, ir
from rtlgen.cli import main
from rtlgen.frontend import load_model
from rtlgen.frontend.optimize import _Unfoldable, compose, fold_requants, fusion_lines, fusion_report

pytest.importorskip("brevitas")

HW = 16


@pytest.fixture(scope="module", params=["qonnx", "qcdq"])
def seed_style(request, tmp_path_factory):
    from tools import seedstyle

    path = tmp_path_factory.mktemp("seed") / f"seed_{request.param}.onnx"
    seedstyle.export(path, "tiny", request.param, seed=0, hw=HW)
    return request.param, path, load_model(str(path))


def test_seed_style_logits_bit_exact_after_folding(seed_style):
    fmt, path, net = seed_style
    px = zoo.random_pixels(48, seed=3, hw=HW)
    x = zoo.float_input(px, 1.0, (128.0,) * 3, (128.0,) * 3)
    out = onnx.load(str(path)).graph.output[0].name
    ref = (R.run_qonnx(path, x) if fmt == "qonnx" else R.run_ort(path, x))[out]
    lg = golden.logits(net, golden.run(net, px))
    assert lg.shape == ref.shape
    assert np.array_equal(lg, ref.astype(np.float64)), f"{fmt}: {int((lg != ref).sum())} logits differ"
    assert np.std(lg) > 0 and len({r.tobytes() for r in lg}) > 40  # a live network


def test_seed_style_chains_folded_and_reported(seed_style):
    fmt, _, net = seed_style
    fused = [n for n in net.fusion_notes if n["action"] == "fused"]
    # every conv and add had a Relu and a second quantizer after its first: those fold (exactly) where they can
    assert len(fused) >= 2 * 7, [n["text"] for n in net.fusion_notes]
    for lay in net.layers:
        if lay.kind == "requant":  # what stays says why
            assert any(n["layer"] == lay.name and "not folded" in n["text"] for n in net.fusion_notes), lay.name
        if lay.kind == "add":  # the source rounds the conv output before the add: not merged, and said so
            assert any(n["layer"] == lay.name and "rounds" in n["text"] for n in net.fusion_notes), lay.name
    rows = fusion_report(net)
    assert [r["layer"] for r in rows] == [lay.name for lay in net.layers if lay.kind != "input"]
    conv0 = next(r for r in rows if r["layer"] == "conv0")
    assert any("Relu" in s for s in conv0["source_nodes"]) and len(conv0["notes"]) >= 1
    lines = fusion_lines(rows)
    assert len(lines) >= len(rows) + 2 and "standalone" in lines[-1]
    # the classifier (1x1 conv on the pooled 1x1 frame, raw accumulators) became a dense layer
    assert net.layers[-1].kind == "dense" and net.layers[-1].requant is None


def test_inspect_prints_the_fusion_report(seed_style):
    _, path, net = seed_style
    r = CliRunner().invoke(main, ["inspect", str(path), "--fusion"])
    assert r.exit_code == 0, r.output
    assert "fusion report" in r.output and "folded into conv0" in r.output
    r = CliRunner().invoke(main, ["inspect", str(path), "--json"])
    d = json.loads(r.output)
    assert [f["layer"] for f in d["fusion"]] == [lay.name for lay in net.layers if lay.kind != "input"]


# ------------------------------------------------------------------------------------------------------------------
# random chains: the fold equals the chain on every code


def _rq(name, src, in_q, out_q, m, sh, mode):
    return ir.Requantize(name, [src], (1, 1, 1), (1, 1, 1), out_q, [name], in_q=in_q, m=m, sh=sh, rounding=mode)


def _qt(signed, lo=None, hi=None, zp=0):
    dlo, dhi = (-128, 127) if signed else (0, 255)
    return ir.QType(1.0, zp, signed, 8, dlo if lo is None else lo, dhi if hi is None else hi)


def _chain(rng):
    s1, s2 = bool(rng.integers(2)), bool(rng.integers(2))
    q0 = _qt(True)
    zp1 = 0 if s1 else int(rng.integers(0, 8))
    lo1 = int(rng.choice([-128 if s1 else 0, zp1]))
    q1 = _qt(s1, lo1, zp=zp1)
    zp2 = 0 if s2 else int(rng.integers(0, 4))
    q2 = _qt(s2, zp=zp2)
    modes = ["half_even", "half_up", "floor"]
    r1 = _rq("r1", "input", q0, q1, int(rng.choice([1, 3, 5, 2])), int(rng.integers(0, 4)), str(rng.choice(modes)))
    r2 = _rq("r2", "r1", q1, q2, int(rng.choice([1, 2, 4, 3])), int(rng.integers(0, 3)), str(rng.choice(modes)))
    return r1, r2


def test_random_requant_chains_fold_only_when_exact():
    rng = np.random.default_rng(0)
    x = np.arange(-128, 128).reshape(-1, 1, 1, 1)
    folded = refused = 0
    for _ in range(300):
        r1, r2 = _chain(rng)
        want = golden.run_requant(r2, golden.run_requant(r1, x))
        try:
            compose(r1, r2)
        except _Unfoldable as e:
            refused += 1
            assert "not exact" in str(e) or "zero points" in str(e), e
            continue
        layers, out = fold_requants([r1, r2], "r2", [])
        assert [lay.name for lay in layers] == ["r1"] and out == "r1"
        got = golden.run_requant(layers[0], x)
        assert np.array_equal(got, want), (r1, r2)
        folded += 1
    assert folded > 30 and refused > 30, (folded, refused)


def test_double_rounding_is_refused_with_the_value():
    # round_half_up(round_half_up(v/2)/2) != round_half_up(v/4) (v = 1: 1 through both, 0 in one step); the reason
    # names a value where the two differ, and it does
    import re

    q = _qt(True)
    r1 = _rq("r1", "input", q, q, 1, 1, "half_up")
    r2 = _rq("r2", "r1", q, q, 1, 1, "half_up")
    with pytest.raises(_Unfoldable, match="double rounding") as e:
        compose(r1, r2)
    v, both, one = (int(t) for t in re.search(r"at input (-?\d+): (-?\d+) through both, (-?\d+) in one step",
                                              str(e.value)).groups())
    x = np.array([[[[v]]]])
    assert int(golden.run_requant(r2, golden.run_requant(r1, x)).ravel()[0]) == both
    assert int(golden.run_requant(_rq("r", "input", q, q, 1, 2, "half_up"), x).ravel()[0]) == one != both


def test_pure_shifts_and_clamps_fold():
    q = _qt(True)
    r1 = _rq("r1", "input", q, q, 1, 0, "half_even")  # identity
    r2 = _rq("r2", "r1", q, _qt(False, 0, 255), 1, 2, "half_even")  # ReLU + /4 to uint8
    chans, lo, hi, k, sat = compose(r1, r2)
    assert k == 0 and sat is None and chans == [([1], 2)] and (lo, hi) == (0, 32)


def test_build_reports_the_fusion(seed_style, tmp_path):
    _, path, net = seed_style
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["build", str(path), "--board", "generic", "--budget", "dsp=64,lut=40000,bram36=100,uram=0",
                                  "--out", str(out), "--no-rtl"])
    assert r.exit_code == 0, r.output
    assert "graph optimizer:" in r.output and "folded" in r.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["fusion"]["folded"] == sum(n["action"] == "fused" for n in net.fusion_notes) > 0
    assert [x["layer"] for x in rep["fusion"]["layers"]] == [lay.name for lay in net.layers if lay.kind != "input"]
    assert "## Graph optimizer" in (out / "report.md").read_text()


def test_int16_bias_convs_get_dsp_packing(seed_style):
    """DSP packing (two pixels per DSP48E2) does not depend on the bias width: the seed-style convs carry int16 biases
    (Int16Bias, listed as graph inputs) and plan packed like the bundled models."""
    from rtlgen.plan import search

    _, _, net = seed_style
    convs = [lay for lay in net.layers if isinstance(lay, ir.Conv)]
    assert sum(lay.bias_bits == 16 for lay in convs) >= len(convs) - 1
    plan = search.plan_network(net, "kv260")
    packed = [lp.name for lp in plan.layers if lp.kind == "conv" and lp.pix_par == 2 and lp.packing]
    assert any(net[name].bias_bits == 16 for name in packed), [(lp.name, lp.pix_par, lp.packing) for lp in plan.layers]


def test_bundled_merged_residuals_are_reported():
    """rtlgen's own models add the skip to the un-requantized conv output: the importer merges those adds, the report
    says so on the conv's line, and nothing is left for the optimizer (no notes: the build report is unchanged)."""
    from rtlgen.flow import Design

    d = Design.load("resnet8")
    assert d.net.fusion_notes == []
    rows = {r["layer"]: r for r in fusion_report(d.net)}
    merged = [n for n, r in rows.items() if any("merged at the accumulator" in t for t in r["notes"])]
    assert merged == [lay.name for lay in d.net.layers if isinstance(lay, ir.Conv) and lay.residual is not None]
    assert merged


def test_requant_after_max_pool_is_kept_with_the_reason():
    # a max pool has no requantization of its own: the requant after it stays, and the report says why (this raised
    # AttributeError inside the optimizer on the fuzz nets of sim_tests/test_stress.py)
    q = _qt(False, zp=3)
    pool = ir.Pool("maxpool0", ["input"], (4, 4, 2), (2, 2, 2), q, ["mp"], in_q=q)
    r = _rq("r1", "maxpool0", q, _qt(False), 3, 2, "half_even")
    with pytest.raises(_Unfoldable, match="maxpool0 .maxpool. has no requantization"):
        compose(pool, r)
    notes = []
    layers, out = fold_requants([pool, r], "r1", notes)
    assert [lay.name for lay in layers] == ["maxpool0", "r1"] and out == "r1"
    assert any(n["layer"] == "r1" and "no requantization" in n["text"] for n in notes), notes
