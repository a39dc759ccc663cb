"""A seed-paper-style Brevitas export in RTL (issue 22 item 1): every conv ``Conv -> Quant(int8) -> Relu -> Quant(uint8)``
and every residual ``Add -> Quant -> Relu -> Quant`` folded by the graph optimizer into the conv's / add's one
requantization, including the exact output shift of a ReLU quantizer at half (or a quarter) of the conv's scale, saturating at the
second clamp
(:attr:`rtlgen.ir.Requant.out_shift` in :class:`~rtlgen.cores.requant.RequantStage` and
:class:`~rtlgen.cores.add.AddCore`), simulated with the compiled Verilator harness under 30 % random input pauses and
output back-pressure (the adds slimmed to fewer lanes than channels, behind lane converters): every frame bit-exact against the golden model (which equals QONNX's executor, tests/test_fusion.py),
and without stalls the measured cycles per frame equal the plan's prediction (within 1).
"""

from __future__ import annotations

import numpy as np
import pytest

from rtlgen import golden
from rtlgen.flow import Design
from rtlgen.verify.sim import run_sim

pytest.importorskip("brevitas")


def test_seed_style_tiny_resnet_in_rtl(tmp_path):
    from tools import seedstyle

    src = tmp_path / "seed_tiny.onnx"
    seedstyle.export(src, "tiny", "qonnx", seed=1, hw=16)
    d = Design.load(str(src), board="generic", budget="dsp=64,lut=40000,bram36=100,uram=0")
    kept = [lay.name for lay in d.net.layers if lay.kind == "requant"]
    folded = [n for n in d.net.fusion_notes if n["action"] == "fused"]
    assert len(folded) >= 10, folded  # 7 convs + 3 adds, each with its Relu and a second Quant
    assert all(any(n["layer"] == k and "not folded" in n["text"] for n in d.net.fusion_notes) for k in kept), kept
    shifted = [lay.name for lay in d.net.layers if getattr(getattr(lay, "requant", None), "out_shift", 0)
               or getattr(lay, "out_shift", 0)]
    assert shifted, "no output shift in the build: the test would not cover it"
    saturated = [lay.name for lay in d.net.layers if getattr(getattr(lay, "requant", None), "out_hi", None) is not None
                 or getattr(lay, "out_hi", None) is not None]
    assert saturated, "no saturating output shift (x4 past the clamp) in the build: the test would not cover it"
    d.plan()
    # standalone adds/requants get the fewest lanes that keep up with the slowest stage (plan.cost.slim_lanes)
    slim = [lp.name for lp in d.plan_.layers if lp.kind in ("add", "requant")
            and lp.lanes_out < d.net[lp.name].in_shape[2]]
    assert slim, "no slimmed add/requant core: the test would not cover its lane converters"
    out = tmp_path / "build"
    pred = d.build(out)["cycles_per_frame"]
    px = np.random.default_rng(1).integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8)
    g = golden.run(d.net, px)
    assert len({r.tobytes() for r in g}) == 6, "golden outputs constant across frames (dead network)"
    res = run_sim(out, px, stall=0.3, seed=5, progress=False, log=False, shards=1)
    assert res["mismatches"] == 0, res["summary"]
    res0 = run_sim(out, px, stall=0.0, progress=False, log=False, shards=1)
    assert res0["mismatches"] == 0 and abs(res0["cycles_per_frame"] - pred) <= 1, (res0["summary"], pred)
    print(f"seed-style tiny: output shift in {shifted} (saturating in {saturated}); {res['summary']} | no stalls: {res0['summary']}")
