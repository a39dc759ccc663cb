"""Deep CIFAR ResNets (20/32/56, option A or 1x1 projection) and a plain CNN, in both quantization styles:
power-of-two Brevitas QONNX (tools/resnets.py topology) and onnxruntime QDQ (float per-channel scales, uint8
activations with non-zero zero points). Random He-initialized weights, calibrated on random images; used by
sim_tests/test_deep_nets.py (whole networks in RTL) and tools/identical.py. Built on :mod:`zoo`'s helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo import (IMAGENET_MEAN, IMAGENET_STD, ZooModel, _center_head, _randomize_bn, _torch_export,
                 float_input, ort_quantize, preprocess_metadata, random_pixels, set_ir_version, _tools_resnets)


def cifar_resnet_blocks(depth: int) -> tuple:
    """He et al. CIFAR ResNet-``depth`` (6n + 2 layers): n basic blocks in each of the 3 stages."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
    n = (depth - 2) // 6
    return (n, n, n)


def _he_init(model, seed, branch_gain=0.4):
    """He-normal weights for every conv/linear, small random biases; each residual block's second conv is scaled by
    ``branch_gain`` so the residual stream grows moderately with depth (as BN-trained networks do), instead of
    doubling its variance per block."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if not isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):  # Brevitas Quant* layers subclass these
                continue
            w = mod.weight
            fan_in = w[0].numel()
            gain = branch_gain if name.endswith("conv2") else 1.0
            w.copy_(torch.randn(w.shape, generator=g) * (gain * np.sqrt(2.0 / fan_in)))
            b = getattr(mod, "bias", None)
            if b is not None:
                b.copy_(0.05 * torch.randn(b.shape, generator=g))


def _export_brevitas_qonnx(model, path, mean, std, input_scale):
    """QONNX export the way tools/train.py does it (initializers not graph inputs, rtlgen preprocessing metadata)."""
    from tools.train import export_brevitas

    export_brevitas(model, path, "qonnx")
    set_ir_version(path, metadata=preprocess_metadata(input_scale, mean, std))


def _brevitas_calibrate(model, x, batch=32):
    import torch
    from brevitas.graph.calibrate import calibration_mode

    model.eval()
    with torch.no_grad(), calibration_mode(model):
        for i in range(0, len(x), batch):
            model(x[i : i + batch])
    model.eval()


def brevitas_cifar_resnet(tmpdir, depth: int = 32, shortcut: str = "A", seed: int = 0, widths=(16, 32, 64),
                          calib_pixels=None) -> ZooModel:
    """He et al. CIFAR ResNet-``depth`` as rtlgen's own QAT models are built (tools/resnets.QResNet: int8 input
    ``pixel - 128`` at scale 2**-7, int8 per-tensor power-of-two weights, int16 biases, uint8 ReLUs, the residual add
    on conv2's unquantized accumulator), with ``shortcut`` "A" (parameter-free subsample + zero channel padding) or
    "B" (1x1 stride-2 projection + int8 QuantIdentity). Random He weights, activation scales calibrated on random
    images, head centred; exported as QONNX with preprocessing metadata."""
    import torch

    R = _tools_resnets()
    torch.manual_seed(seed)
    model = R.QResNet(widths=widths, blocks=cifar_resnet_blocks(depth), shortcut=shortcut)
    _he_init(model, seed)
    if calib_pixels is None:
        calib_pixels = random_pixels(64, seed=seed + 600)
    x = torch.from_numpy(float_input(calib_pixels, R.INPUT_SCALE, R.MEAN, R.STD))
    with torch.no_grad():
        from brevitas.graph.calibrate import calibration_mode

        with calibration_mode(model):
            _center_head(model, model.fc, x)
    _brevitas_calibrate(model, x)
    path = Path(tmpdir) / f"brevitas_resnet{depth}{shortcut.lower()}_{seed}.onnx"
    _export_brevitas_qonnx(model, path, R.MEAN, R.STD, R.INPUT_SCALE)
    return ZooModel(path, R.INPUT_SCALE, R.MEAN, R.STD, kind="qonnx", exact=True, meta={"torch_model": model})


def _brevitas_plain_module():
    import torch
    import torch.nn as nn
    from brevitas.nn import QuantIdentity, QuantLinear

    R = _tools_resnets()

    class QPlainCNN(nn.Module):
        """VGG-like plain CNN, no skips: [conv3x3-ReLU] x convs per stage with 2x2 max pooling between stages,
        global average pool, dense. ``widths`` per stage; quantized like tools/resnets.QResNet."""

        def __init__(self, widths=(16, 32, 64), convs=2, classes=10):
            super().__init__()
            self.inp = QuantIdentity(act_quant=R.InputQuant, return_quant_tensor=True)
            layers, cin = [], 3
            for si, w in enumerate(widths):
                if si > 0:
                    layers.append(nn.MaxPool2d(2))
                for _ in range(convs):
                    layers += [R.qconv(cin, w, 3, 1, 1), R.qrelu()]
                    cin = w
            self.features = nn.Sequential(*layers)
            hw = 32 >> (len(widths) - 1)
            self.pool = nn.AvgPool2d(hw)
            self.pool_quant = QuantIdentity(act_quant=R.Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
            self.fc = QuantLinear(cin, classes, bias=True, weight_quant=R.WQ, bias_quant=R.BQ, return_quant_tensor=False)

        def forward(self, x):
            x = self.features(self.inp(x))
            x = self.pool_quant(self.pool(R._val(x)))
            x = torch.flatten(x, 1)
            return R._val(self.fc(x))

    return QPlainCNN


def brevitas_plain_cnn(tmpdir, seed: int = 0, widths=(16, 32, 64), convs=2, calib_pixels=None) -> ZooModel:
    """Plain (skip-free) VGG-like CNN with power-of-two scales, QONNX (see :func:`_brevitas_plain_module`)."""
    import torch
    from brevitas.graph.calibrate import calibration_mode

    R = _tools_resnets()
    torch.manual_seed(seed)
    model = _brevitas_plain_module()(widths=widths, convs=convs)
    _he_init(model, seed)
    if calib_pixels is None:
        calib_pixels = random_pixels(64, seed=seed + 700)
    x = torch.from_numpy(float_input(calib_pixels, R.INPUT_SCALE, R.MEAN, R.STD))
    with torch.no_grad(), calibration_mode(model):
        _center_head(model, model.fc, x)
    _brevitas_calibrate(model, x)
    tag = "x".join(map(str, widths))
    path = Path(tmpdir) / f"brevitas_plain_{tag}_{convs}_{seed}.onnx"
    _export_brevitas_qonnx(model, path, R.MEAN, R.STD, R.INPUT_SCALE)
    return ZooModel(path, R.INPUT_SCALE, R.MEAN, R.STD, kind="qonnx", exact=True, meta={"torch_model": model})


def _ort_from_torch(model, tmpdir, stem, seed, calib_pixels, per_channel, activation):
    import torch

    mean, std = IMAGENET_MEAN, IMAGENET_STD
    model = model.eval()
    _randomize_bn(model, seed)
    _center_head(model, model.linear, torch.from_numpy(float_input(random_pixels(128, seed + 500), 1 / 255, mean, std)))
    fpath = Path(tmpdir) / f"{stem}_float_{seed}.onnx"
    _torch_export(model, torch.zeros(1, 3, 32, 32), fpath)
    set_ir_version(fpath, metadata=preprocess_metadata(1.0 / 255.0, mean, std))
    out = Path(tmpdir) / f"{stem}_qdq_{'ch' if per_channel else 't'}_{activation}_{seed}.onnx"
    if calib_pixels is None:
        calib_pixels = random_pixels(64, seed=seed + 800)
    ort_quantize(fpath, out, calib_pixels, input_scale=1.0 / 255.0, mean=mean, std=std, per_channel=per_channel,
                 activation=activation)
    return ZooModel(out, 1.0 / 255.0, mean, std, kind="qdq", exact=False, meta={"float_path": fpath, "torch_model": model})


def ort_cifar_resnet(tmpdir, depth: int = 32, shortcut: str = "A", seed: int = 0, widths=(16, 32, 64),
                     per_channel=True, activation="uint8", calib_pixels=None) -> ZooModel:
    """He et al. CIFAR ResNet-``depth`` (float, BN, random weights and BN statistics), quantized with onnxruntime
    ``quantize_static`` (QDQ, float per-channel weight scales, uint8 activations by default: the input and the
    pre-add tensors get non-zero zero points). Preprocessing: ImageNet mean/std on pixel/255 (metadata)."""
    import torch

    torch.manual_seed(seed)
    model = _tools_resnets().CifarResNet(widths=widths, blocks=cifar_resnet_blocks(depth), shortcut=shortcut)
    _he_init(model, seed, branch_gain=1.0)  # BN (randomized) sets the branch scale here
    return _ort_from_torch(model, tmpdir, f"ort_resnet{depth}{shortcut.lower()}", seed, calib_pixels, per_channel, activation)


def ort_plain_cnn(tmpdir, seed: int = 0, widths=(16, 32, 64), convs=2, per_channel=True, activation="uint8",
                  calib_pixels=None) -> ZooModel:
    """The VGG-like plain CNN (float, BN) quantized with onnxruntime QDQ (see :func:`ort_cifar_resnet`)."""
    import torch

    torch.manual_seed(seed)
    model = _tools_resnets().PlainCNN(widths=widths, convs=convs)
    _he_init(model, seed, branch_gain=1.0)
    tag = "x".join(map(str, widths))
    return _ort_from_torch(model, tmpdir, f"ort_plain_{tag}_{convs}", seed, calib_pixels, per_channel, activation)


# ----------------------------------------------------------------------------------------------------------------
# the networks of sim_tests/test_deep_nets.py (and tools/identical.py's deep builds)

#: small budgets: the planner's minimum for each network fits, and the Verilog stays small enough for Verilator
BUDGET_20 = "dsp=64,lut=40000,bram36=100,uram=0"
BUDGET_DEEP = "dsp=96,lut=90000,bram36=200,uram=0"
#: (lut 120000 / bram36 250 until the planner counted its stream adapters and yosys-fitted costs: too small since)
BUDGET_56 = "dsp=160,lut=160000,bram36=300,uram=0"

#: (kind, budget): bundled ResNet20 (option A / projections), then ``<pow2|qdq>_<resnetNx|plain>`` generated here
NETS = [
    ("resnet20a_bundled", BUDGET_20),
    ("resnet20_bundled", BUDGET_20),
    ("qdq_resnet20a", BUDGET_20),
    ("pow2_resnet32a", BUDGET_DEEP),
    ("qdq_resnet32b", BUDGET_DEEP),
    ("pow2_resnet56b", BUDGET_56),
    ("qdq_resnet56a", BUDGET_56),
    ("pow2_plain", BUDGET_20),
    ("qdq_plain", BUDGET_20),
]


def deep_model(kind: str, tmp) -> tuple:
    """kind (of :data:`NETS`) -> (ONNX path, quantization label); generated models are written into ``tmp``."""
    from rtlgen.models import resolve

    if kind == "resnet20a_bundled":
        return resolve("resnet20a"), "pow2 (Brevitas QONNX, bundled)"
    if kind == "resnet20_bundled":
        return resolve("resnet20"), "pow2 (Brevitas QONNX, bundled)"
    style, arch = kind.split("_", 1)
    if arch.startswith("resnet"):
        depth, sc = int(arch[6:-1]), arch[-1].upper()
        if style == "pow2":
            return brevitas_cifar_resnet(tmp, depth, sc, seed=depth).path, "pow2 (Brevitas QONNX, random He weights)"
        return ort_cifar_resnet(tmp, depth, sc, seed=depth).path, "qdq (onnxruntime, per-channel, uint8 act)"
    if arch == "plain":
        if style == "pow2":
            return brevitas_plain_cnn(tmp, seed=5).path, "pow2 (Brevitas QONNX, random He weights)"
        return ort_plain_cnn(tmp, seed=5).path, "qdq (onnxruntime, per-channel, uint8 act)"
    raise ValueError(kind)
