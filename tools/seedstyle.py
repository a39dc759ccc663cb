"""A Brevitas CIFAR ResNet exported the way the seed paper (NN2FPGA) exported its own models.

Not rtlgen's own graph shape (:mod:`tools.resnets`), but the one users arrive with:

* every conv has an output quantizer: QONNX ``Quant`` (int8) on its output, then ``Relu``, then a second ``Quant``
  (uint8) after the ReLU: two requantizations around one conv;
* the residual add takes two *quantized* branches (conv2's int8 output and the shortcut) and is followed by its own
  ``Quant`` -> ``Relu`` -> ``Quant``;
* int16 biases (``Int16Bias``), listed as graph inputs too (``keep_initializers_as_inputs``-style export);
* power-of-two per-tensor scales everywhere (``*FixedPoint`` quantizers);
* head: MaxPool 8x8 -> 1x1-conv classifier (raw accumulator logits).

rtlgen's graph optimizer (:mod:`rtlgen.frontend.optimize`) folds what it can of this into the conv layers; the fusion
report says what. ``python -m tools.seedstyle OUT.onnx [--arch resnet20] [--fmt qonnx|qcdq]`` writes one.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
import torch.nn as nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias, Uint8ActPerTensorFixedPoint

from tools.resnets import ARCHS, InputQuant, MEAN, STD, INPUT_SCALE, _val


def _conv(cin, cout, k, stride, out_quant=True):
    return QuantConv2d(cin, cout, k, stride=stride, padding=k // 2, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                       bias_quant=Int16Bias, output_quant=Int8ActPerTensorFixedPoint if out_quant else None,
                       return_quant_tensor=out_quant)


def _relu():
    return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)


class SeedBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.relu1 = _conv(cin, cout, 3, stride), _relu()
        self.conv2 = _conv(cout, cout, 3, 1)
        self.down = _conv(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None
        self.add_q = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.relu2 = _relu()

    def forward(self, x):
        y = self.conv2(self.relu1(self.conv1(x)))
        s = self.down(x) if self.down is not None else x
        return self.relu2(self.add_q(_val(y) + _val(s)))


class SeedStyleResNet(nn.Module):
    """stem -> basic blocks (quantized branches, quantized add) -> MaxPool 8x8 -> 1x1-conv classifier."""

    def __init__(self, widths=(16, 32, 64), blocks=(3, 3, 3), num_classes=10, hw=32):
        super().__init__()
        self.inp = QuantIdentity(act_quant=InputQuant, return_quant_tensor=True)
        self.stem, self.stem_relu = _conv(3, widths[0], 3, 1), _relu()
        layers, cin = [], widths[0]
        for si, (w, n) in enumerate(zip(widths, blocks)):
            for bi in range(n):
                layers.append(SeedBlock(cin, w, 2 if (si > 0 and bi == 0) else 1))
                cin = w
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.MaxPool2d(hw // 4)
        self.classifier = _conv(cin, num_classes, 1, 1, out_quant=False)

    def forward(self, x):
        x = self.stem_relu(self.stem(self.inp(x)))
        x = self.blocks(x)
        x = self.pool(x)
        return torch.flatten(_val(self.classifier(x)), 1)


def build(arch="resnet20", seed=0, calib=None, hw=32) -> SeedStyleResNet:
    """The model with He et al.-style random weights, its activation quantizers calibrated on ``calib`` (float NCHW
    inputs ``(pixel - 128) / 128``; random pixels when None)."""
    from brevitas.graph.calibrate import calibration_mode

    a = ARCHS[arch]
    torch.manual_seed(seed)
    model = SeedStyleResNet(a["widths"], a["blocks"], hw=hw)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, QuantConv2d):
                mod.bias.uniform_(-0.1, 0.1)
    if calib is None:
        g = np.random.default_rng(seed + 100)
        calib = (g.integers(0, 256, (64, 3, hw, hw)).astype(np.float32) - 128.0) / 128.0
    x = torch.from_numpy(np.asarray(calib, np.float32))
    model.eval()
    with torch.no_grad(), calibration_mode(model):
        for i in range(0, len(x), 32):
            model(x[i:i + 32])
    model.eval()
    return model


def initializers_as_inputs(path):
    """List every initializer as a graph input too (older exporters' ``keep_initializers_as_inputs``)."""
    import onnx

    m = onnx.load(str(path))
    have = {i.name for i in m.graph.input}
    for t in m.graph.initializer:
        if t.name not in have:
            m.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    onnx.save(m, str(path))


def export(path, arch="resnet20", fmt="qonnx", seed=0, calib=None, metadata=True, hw=32):
    """Write the seed-style model to ``path`` (QONNX or QCDQ) with rtlgen's preprocessing metadata; returns the torch
    model."""
    import onnx
    from brevitas.export import export_onnx_qcdq, export_qonnx

    model = build(arch, seed, calib, hw)
    x = torch.zeros(1, 3, hw, hw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (export_qonnx if fmt == "qonnx" else export_onnx_qcdq)(model, x, export_path=str(path), dynamo=False)
    initializers_as_inputs(path)
    m = onnx.load(str(path))
    if m.ir_version > 10:
        m.ir_version = 10
    if metadata:
        for k, v in (("rtlgen.input_scale", INPUT_SCALE), ("rtlgen.mean", list(MEAN)), ("rtlgen.std", list(STD))):
            e = m.metadata_props.add()
            e.key, e.value = k, str(v) if not isinstance(v, list) else ",".join(str(t) for t in v)
    onnx.save(m, str(path))
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--arch", default="resnet20", choices=sorted(ARCHS))
    ap.add_argument("--fmt", default="qonnx", choices=("qonnx", "qcdq"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    export(a.out, a.arch, a.fmt, a.seed)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
