"""Smoke test of tools/train.py: a few batches of a tiny Brevitas ResNet, QONNX export, graph-shape checks."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from rtlgen import data

ROOT = Path(__file__).resolve().parent.parent


def _dataset() -> str:
    d = os.environ.get(data.ENV_VAR) or data.default_shared_dir()
    if not d:
        pytest.fail(f"CIFAR-10 not found: set ${data.ENV_VAR} or provide ../shared/data/cifar-10-batches-py")
    return str(d)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train")
    out = tmp / "tiny.onnx"
    cmd = [
        sys.executable, str(ROOT / "tools" / "train.py"), "--arch", "tiny", "--smoke", "--epochs", "1",
        "--threads", "1", "--no-progress", "--dataset", _dataset(), "--ckpt-dir", str(tmp / "ckpt"),
        "--export", str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "exported qonnx" in r.stdout
    return out


def _init(m):
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def test_export_is_valid_qonnx(tiny_onnx):
    m = onnx.load(str(tiny_onnx))
    onnx.checker.check_model(m)
    ops = [n.op_type for n in m.graph.node]
    assert "BatchNormalization" not in ops
    assert ops.count("Quant") >= 10
    assert {"Conv", "Add", "Relu", "AveragePool", "Gemm"} <= set(ops)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["rtlgen.input_scale"] and len(meta["rtlgen.mean"].split(",")) == 3
    assert len(meta["rtlgen.std"].split(",")) == 3
    assert [i.name for i in m.graph.input] == ["input"]


def test_export_graph_shape(tiny_onnx):
    """Power-of-two scales; residual Add = unquantized conv accumulator + quantized shortcut."""
    m = onnx.load(str(tiny_onnx))
    init = _init(m)
    producer = {o: n for n in m.graph.node for o in n.output}
    for n in m.graph.node:
        if n.op_type == "Quant":
            scale = init[n.input[1]]
            assert np.all(scale > 0)
            assert all(float(math.log2(s)).is_integer() for s in scale.reshape(-1)), n.name
            bits = float(init[n.input[3]])
            assert bits in (8.0, 16.0)
    adds = [n for n in m.graph.node if n.op_type == "Add"]
    assert len(adds) == 3
    for a in adds:
        kinds = sorted(producer[i].op_type for i in a.input)
        assert kinds == ["Conv", "Quant"], kinds
    first = m.graph.node[0]
    assert first.op_type == "Quant" and first.input[0] == "input"
    assert m.graph.node[-1].op_type == "Gemm" and m.graph.output[0].name == "logits"


def test_importer_accepts(tiny_onnx):
    importer = pytest.importorskip("rtlgen.frontend")
    net = importer.load_model(str(tiny_onnx))
    assert len(net.layers) > 5
    x, _ = data.load_test(_dataset(), limit=8)
    from rtlgen import golden

    assert golden.predict(net, x).shape == (8,)


def test_float_bn_stage_with_online_distillation(tmp_path):
    """--float-bn (BN after every conv, folded before calibration) with the online KD teacher: runs and exports a
    BN-free model the importer reads."""
    out = tmp_path / "tiny_bn.onnx"
    cmd = [
        sys.executable, str(ROOT / "tools" / "train.py"), "--arch", "tiny", "--smoke", "--no-seed", "--float-bn",
        "--float-epochs", "1", "--epochs", "1", "--kd-teacher", "resnet20", "--kd-online", "--threads", "1",
        "--no-progress", "--dataset", _dataset(), "--ckpt-dir", str(tmp_path / "ckpt"), "--export", str(out),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "folded BatchNorm into the convolutions" in r.stdout
    m = onnx.load(str(out))
    assert "BatchNormalization" not in [n.op_type for n in m.graph.node]
    from rtlgen.frontend import load_model

    assert len(load_model(str(out)).layers) > 5


@pytest.mark.parametrize("arch", ["tiny", "resnet8"])
def test_fold_bns_preserves_the_function(arch):
    """Folding eval-mode BatchNorms into the convolutions leaves the float network's logits unchanged."""
    torch = pytest.importorskip("torch")
    sys.path.insert(0, str(ROOT / "tools"))
    import resnets

    torch.manual_seed(0)
    model = resnets.build(arch).eval()
    bns = resnets.make_bns(model)
    for bn in bns.values():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = resnets.float_forward(model, x, bns)
        plain = resnets.float_forward(model, x)
        resnets.fold_bns(model, bns)
        folded = resnets.float_forward(model, x)
    assert torch.allclose(folded, ref, atol=1e-4), (folded - ref).abs().max()
    assert not torch.allclose(plain, ref, atol=1e-2)  # the BNs did change the function before folding
