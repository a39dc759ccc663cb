"""Two pixels per input beat (issue 22 item 3): the input fold of :mod:`rtlgen.plan.fold`.

* the folded stem convolution computes the original's accumulators exactly (random kernels, pads, pad values);
* a folded network's golden outputs equal the original's on the same bytes;
* the planner folds only where the input stream bounds the frame and the fold is faster, records it in plan.json /
  report.json, and a ``--plan`` rebuild folds again; ``input_fold=False`` keeps one pixel per beat;
* the input port's frames: the image's pixel shape and the folded port shape are the same bytes.

The RTL run (bit-exact under stalls, measured = predicted cycles): sim_tests/test_input_shapes.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import badmodels as B
from rtlgen import golden, ir
from rtlgen.flow import Design
from rtlgen.frontend import load_model
from rtlgen.plan.fold import apply_fold, fold_conv, fold_input, fold_pixels, why_not_foldable
from rtlgen.verify.beats import as_input_frames


def _conv(kh, kw, pads, C=3, O=4, H=9, W=10, stride=(2, 2), seed=0):
    rng = np.random.default_rng(seed)
    wts = rng.integers(-128, 128, size=(O, kh, kw, C))
    Ho = (H + pads[0] + pads[2] - kh) // stride[0] + 1
    Wo = (W + pads[1] + pads[3] - kw) // stride[1] + 1
    q = ir.QType(scale=0.05, zero_point=-3, signed=True, bits=8, lo=-128, hi=127)
    return ir.Conv(name="c", inputs=["input"], in_shape=(H, W, C), out_shape=(Ho, Wo, O), out_q=q, weights=wts,
                   bias=rng.integers(-1000, 1000, O), stride=stride, pads=pads, pad_value=-3, in_q=q)


@pytest.mark.parametrize("kh,kw,pads", [(3, 3, (1, 1, 1, 1)), (3, 3, (1, 1, 1, 0)), (3, 3, (0, 0, 0, 0)),
                                        (5, 5, (2, 2, 2, 2)), (10, 4, (5, 1, 4, 2)), (2, 2, (0, 0, 0, 0)),
                                        (3, 1, (1, 0, 1, 0)), (7, 7, (3, 3, 3, 3))])
def test_folded_conv_accumulators_equal_the_original(kh, kw, pads):
    c = _conv(kh, kw, pads, seed=kh * 10 + kw)
    f = fold_conv(c)
    H, W, C = c.in_shape
    assert f.in_shape == (H, W // 2, 2 * C) and f.stride == (2, 1)
    x = np.random.default_rng(1).integers(-128, 128, size=(5, H, W, C))
    a = golden.conv_acc(x, c.weights, c.bias, c.stride, c.pads, c.pad_value, c.in_q)
    b = golden.conv_acc(x.reshape(5, H, W // 2, 2 * C), f.weights, f.bias, f.stride, f.pads, f.pad_value, f.in_q)
    np.testing.assert_array_equal(a, b)
    assert np.count_nonzero(f.weights) == np.count_nonzero(c.weights)  # every tap placed once, the rest zero


def _stem_model(W=16, stride=2):
    g = B.G(shape=(1, 3, 12, W))
    x = g.q(g.x, 1 / 32, 0, name="q_in")
    h = g.q(g.relu(g.conv(x, 3, 8, k=3, stride=stride, name="stem")), 1 / 32, 0, name="q_stem")
    g.head(h, c=8)
    return g.model()


def test_folded_network_equals_the_original_on_the_same_bytes():
    net = load_model(_stem_model())
    f = fold_input(net)
    assert f.input.out_shape == (12, 8, 6) and f.pixel_shape == (12, 16, 3) and f.input_fold == 2
    px = np.random.default_rng(2).integers(0, 256, size=(16, 12, 16, 3), dtype=np.uint8)
    np.testing.assert_array_equal(golden.run(net, px), golden.run(f, fold_pixels(f, px)))
    np.testing.assert_array_equal(golden.run(net, px), golden.run(f, px))  # image-shaped frames: the same bytes
    assert apply_fold(net, None) is net and apply_fold(net, 1) is net


def test_why_not_foldable_names_the_reason():
    assert why_not_foldable(load_model(_stem_model())) is None
    assert "horizontal stride 1" in why_not_foldable(load_model(_stem_model(stride=1)))
    assert "width 15" in why_not_foldable(load_model(_stem_model(W=15)))
    with pytest.raises(ValueError, match="horizontal stride"):
        fold_input(load_model(_stem_model(stride=1)))


BUDGET = "dsp=400,lut=60000,bram36=100,uram=0"


def test_planner_folds_an_input_bound_stem_and_a_plan_file_folds_again(tmp_path):
    d = Design.load(_stem_model(W=32), board="generic", budget=BUDGET, steps=("plan", "report"))
    plan = d.plan()
    assert getattr(d.net, "input_fold", 1) == 2 and plan.options["input_fold"] == 2
    assert plan.layer("input").cycles == 12 * 16  # two pixels per beat
    d0 = Design.load(_stem_model(W=32), board="generic", budget=BUDGET, input_fold=False)
    p0 = d0.plan()
    assert p0.layer("input").cycles == 12 * 32 and p0.cycles_per_frame - 12 * 32 <= 1
    assert plan.cycles_per_frame < p0.cycles_per_frame
    rep = d.build(tmp_path / "b")
    assert rep["input_fold"] == 2
    saved = json.loads((tmp_path / "b" / "plan.json").read_text())
    assert saved["options"]["input_fold"] == 2
    d2 = Design.load(_stem_model(W=32), board="generic", budget=BUDGET)
    p2 = d2.plan(plan_file=tmp_path / "b" / "plan.json")
    assert d2.net.input_fold == 2 and p2.cycles_per_frame == plan.cycles_per_frame


def test_no_fold_where_the_input_does_not_bound_the_frame():
    d = Design.load(_stem_model(W=32), board="generic", budget="dsp=8,lut=4000,bram36=20,uram=0")
    plan = d.plan()
    assert plan.layer("input").cycles < plan.cycles_per_frame
    assert getattr(d.net, "input_fold", 1) == 1 and "input_fold" not in plan.options


def test_input_frames_pixel_shape_and_port_shape_are_the_same_bytes():
    man = {"input": {"shape": [4, 3, 6], "pixel_shape": [4, 6, 3], "lanes": 6}}
    px = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    got = as_input_frames(px, man)
    assert got.shape == (2, 4, 3, 6) and got.tobytes() == px.tobytes()
    assert as_input_frames(got, man) is got
