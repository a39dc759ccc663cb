"""Whole networks in RTL: build with the planner, simulate back-to-back frames with random stalls, bit-exact vs golden.

Default run: a small residual network (identity block with temporal reuse + projection block with loop merging) and the
bundled ResNet8. Opt-in (``--runslow``): ResNet20 (projection and option A), a deeper ResNet, a plain CNN and a float-scale
onnxruntime model.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from rtlgen.flow import Design  # noqa: E402
from rtlgen.verify.sim import run_sim  # noqa: E402


def _pixels(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _build(model, out, board="kv260", **pre):
    d = Design.load(str(model), board=board, **pre)
    d.plan()
    return d.build(out)


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    import zoo

    tmp = tmp_path_factory.mktemp("small_net")
    m = zoo.brevitas_resnet(tmp, "qonnx", seed=3, with_metadata=True)
    rep = _build(m.path, tmp / "build", board="ultra96v2")
    return tmp / "build", rep


def test_small_residual_network_bit_exact_under_stalls(small_build):
    out, rep = small_build
    man = json.loads((out / "rtl" / "manifest.json").read_text())
    assert man["merged"]["temporal_reuse"] and man["merged"]["loop_merged_projections"]
    res = run_sim(out, _pixels(10, 1), stall=0.3, seed=5)
    assert res["mismatches"] == 0, res
    # measured steady-state cycles (no stalls) within 3 % of the planner's prediction
    res0 = run_sim(out, _pixels(6, 2), stall=0.0)
    assert res0["mismatches"] == 0
    assert abs(res0["cycles_per_frame"] - rep["cycles_per_frame"]) <= 0.03 * rep["cycles_per_frame"], (res0, rep["cycles_per_frame"])


def test_small_network_with_tap_parallelism(tmp_path):
    """Tap parallelism (several kernel taps per window beat) through the whole flow: the planner with ``taps=True``,
    then every 3x3 conv forced to a tap count (9 = the whole window, 4 = a partial last tap group, 2), including the
    host of a loop-merged projection and the block whose skip is the forwarded window centre; 10 frames bit-exact under
    stalls, steady-state cycles within 3 % of the prediction."""
    import zoo

    m = zoo.brevitas_resnet(tmp_path, "qonnx", seed=3, with_metadata=True)
    d = Design.load(str(m.path), board="ultra96v2")
    d.plan(taps=True)
    convs = [lay.name for lay in d.net.layers if lay.kind == "conv" and lay.kernel == (3, 3)]
    assert len(convs) >= 3
    for name, t in zip(convs, [9, 4, 2] * len(convs)):
        d.set_layer(name, tap_par=t)
    rep = d.build(tmp_path / "build")
    taps = {L["name"]: L["parallelism"]["tap_par"] for L in rep["layers"]}
    assert sorted({taps[c] for c in convs}) == [2, 4, 9]
    out = tmp_path / "build"
    res = run_sim(out, _pixels(10, 11), stall=0.3, seed=13)
    assert res["mismatches"] == 0, res
    res0 = run_sim(out, _pixels(6, 12), stall=0.0)
    assert res0["mismatches"] == 0
    assert abs(res0["cycles_per_frame"] - rep["cycles_per_frame"]) <= 0.03 * rep["cycles_per_frame"], (res0, rep["cycles_per_frame"])


def test_mismatch_names_first_differing_layer(small_build, tmp_path):
    """Corrupt one weight of conv1 in the build's copy of the model: the RTL (built from the original) now differs
    from the golden model from conv1 on, and the report must name conv1."""
    from test_regress import _tamper_conv1

    src, _ = small_build
    out = tmp_path / "tampered"
    _tamper_conv1(src, out)  # the compiled simulator comes along (same RTL)
    res = run_sim(out, _pixels(2, 3))
    assert res["mismatches"] > 0
    assert res["first_differing_layer"] == "conv1", res.get("first_differing_layer")


def test_resnet8_bit_exact_under_stalls(tmp_path):
    from rtlgen.models import resolve
    from rtlgen.errors import ModelError

    try:
        path = resolve("resnet8")
    except ModelError:
        pytest.fail("bundled ResNet8 missing")
    rep = _build(path, tmp_path / "r8", board="kv260")
    res = run_sim(tmp_path / "r8", _pixels(10, 4), stall=0.2, seed=7)
    assert res["mismatches"] == 0, res
