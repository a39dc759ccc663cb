"""Brevitas int8 ResNets for CIFAR-10 in the graph shape rtlgen's importer merges into hardware.

Every quantizer has a power-of-two per-tensor scale (requantization is a shift in hardware):

* input: ``QuantIdentity`` int8, fixed scale 2**-7. The model's float input is ``(pixel - 128) / 128``
  (``rtlgen.input_scale=1``, ``rtlgen.mean=128``, ``rtlgen.std=128``), so the int8 input is exactly
  ``pixel - 128``: every pixel value survives quantization.
* weights: int8 narrow range, per tensor, power-of-two scale (``Int8WeightPerTensorFixedPoint``).
* biases: int16 at the accumulator scale (``Int16Bias``: input scale x weight scale).
* activations: ``QuantReLU`` uint8 (``Uint8ActPerTensorFixedPoint``); projection shortcuts end in their own
  int8 ``QuantIdentity``.
* no BatchNormalization anywhere (the float seeds are BN-folded before quantization-aware training).

Residual block (the add merges into conv2's accumulator in hardware)::

    x (quantized) -> conv1 -> QuantReLU -> conv2 (output NOT quantized) -> + shortcut -> QuantReLU
    shortcut: x itself (identity), a 1x1 stride-2 QuantConv2d -> QuantIdentity int8 (projection, "B"), or the
    parameter-free stride-2 subsample + zero channel padding (option "A").

Head: AvgPool 8x8 -> QuantIdentity uint8 -> flatten -> QuantLinear (Int16Bias, float logits out).

The float (BatchNorm) He et al. CIFAR ResNets and the plain CNN the tests quantize with ONNX Runtime are here too, in
one definition (:class:`CifarResNet` with option-A or projection shortcuts, :class:`PlainCNN`): ``tests/zoo.py`` and
``tests/zoo_deep.py`` build every float model from them.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from brevitas.inject.enum import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
)
from brevitas.quant_tensor import QuantTensor

#: preprocessing of the exported models: float input = (pixel * INPUT_SCALE - MEAN) / STD
INPUT_SCALE = 1.0
MEAN = (128.0, 128.0, 128.0)
STD = (128.0, 128.0, 128.0)

RESNET8_ONNX = "/work/shared/models/resnet8-mlperf-tiny-float/pretrainedResnet_float.onnx"
RESNET20_TH = "/work/shared/models/resnet20-cifar10-float/resnet20-12fca82f.th"


class InputQuant(Int8ActPerTensorFixedPoint):
    """int8 input, constant scale 2**-7 (threshold 1.0): q = pixel - 128 exactly."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_init = 1.0


WQ = Int8WeightPerTensorFixedPoint
BQ = Int16Bias


def _val(t):
    return t.value if isinstance(t, QuantTensor) else t


def qconv(cin, cout, k, stride, pad):
    return QuantConv2d(
        cin, cout, k, stride=stride, padding=pad, bias=True, weight_quant=WQ, bias_quant=BQ, return_quant_tensor=False
    )


def qrelu():
    return QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, shortcut: str):
        super().__init__()
        self.conv1 = qconv(cin, cout, 3, stride, 1)
        self.relu1 = qrelu()
        self.conv2 = qconv(cout, cout, 3, 1, 1)
        self.kind = "identity" if (stride == 1 and cin == cout) else shortcut
        if self.kind == "B":
            self.sc_conv = qconv(cin, cout, 1, stride, 0)
            self.sc_quant = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        elif self.kind == "A":
            self.stride = stride
            self.pad_c = (cout - cin) // 2
        self.relu2 = qrelu()

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        y = _val(self.conv2(h))  # float accumulator: NOT quantized (merged with the add in hardware)
        if self.kind == "identity":
            s = _val(x)
        elif self.kind == "B":
            s = _val(self.sc_quant(self.sc_conv(x)))
        else:
            s = _val(x)[:, :, :: self.stride, :: self.stride]
            s = F.pad(s, (0, 0, 0, 0, self.pad_c, self.pad_c))
        return self.relu2(y + s)


class QResNet(nn.Module):
    """CIFAR ResNet: stem conv3x3 -> stages of basic blocks -> avgpool 8x8 -> dense."""

    def __init__(self, widths=(16, 32, 64), blocks=(1, 1, 1), shortcut="B", num_classes=10, input_quant=InputQuant,
                 pool=8):
        """``input_quant``: the input quantizer (default: int8 ``pixel - 128`` at scale 2**-7; tests use a calibrated
        one on normalized inputs); ``pool``: the average pool's kernel (the last stage's map size)."""
        super().__init__()
        self.inp = QuantIdentity(act_quant=input_quant, return_quant_tensor=True)
        self.stem = qconv(3, widths[0], 3, 1, 1)
        self.stem_relu = qrelu()
        layers = []
        cin = widths[0]
        for si, (w, n) in enumerate(zip(widths, blocks)):
            for bi in range(n):
                stride = 2 if (si > 0 and bi == 0) else 1
                layers.append(Block(cin, w, stride, shortcut))
                cin = w
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(pool)
        self.pool_quant = QuantIdentity(act_quant=Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.fc = QuantLinear(
            cin, num_classes, bias=True, weight_quant=WQ, bias_quant=BQ, return_quant_tensor=False
        )

    def forward(self, x):
        x = self.inp(x)
        x = self.stem_relu(self.stem(x))
        x = self.blocks(x)
        x = self.pool_quant(self.pool(_val(x)))
        x = x.flatten(1) if not isinstance(x, QuantTensor) else torch.flatten(x, 1)
        return _val(self.fc(x))


ARCHS = {
    "resnet8": dict(widths=(16, 32, 64), blocks=(1, 1, 1), shortcut="B"),
    "resnet20": dict(widths=(16, 32, 64), blocks=(3, 3, 3), shortcut="B"),
    "resnet20a": dict(widths=(16, 32, 64), blocks=(3, 3, 3), shortcut="A"),
    "tiny": dict(widths=(4, 8, 8), blocks=(1, 1, 1), shortcut="B"),  # smoke tests only
}


def build(arch: str) -> QResNet:
    return QResNet(**ARCHS[arch])


# --------------------------------------------------------------------------------------------------------------
# float seeds (BN folded) -> list of (weight, bias) in the module order of QResNet
# --------------------------------------------------------------------------------------------------------------


def _conv_modules(model: QResNet):
    """(name, module) of every conv/linear in seed order: stem, per block conv1, conv2, [sc_conv], fc."""
    mods = [("stem", model.stem)]
    for i, b in enumerate(model.blocks):
        mods += [(f"blocks.{i}.conv1", b.conv1), (f"blocks.{i}.conv2", b.conv2)]
        if b.kind == "B":
            mods.append((f"blocks.{i}.sc_conv", b.sc_conv))
    mods.append(("fc", model.fc))
    return mods


def _fold_input(w: np.ndarray, b: np.ndarray, a: np.ndarray, c: np.ndarray):
    """Seed stem expects u = a*x + c per input channel, where x is our model input; fold that into conv."""
    w2 = w * a[None, :, None, None]
    b2 = b + (w * c[None, :, None, None]).sum(axis=(1, 2, 3))
    return w2, b2


def seed_resnet8(path=RESNET8_ONNX):
    """MLPerf Tiny float ResNet8 (BN already folded in the ONNX; raw 0..255 input)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    params = [(init[n.input[1]].astype(np.float32), init[n.input[2]].astype(np.float32)) for n in convs]
    gemm = [n for n in m.graph.node if n.op_type == "Gemm"][0]
    fc = (init[gemm.input[1]].astype(np.float32), init[gemm.input[2]].astype(np.float32))
    # ONNX conv order: stem, b1c1, b1c2, b2c1, b2c2, b2sc, b3c1, b3c2, b3sc (same as ours)
    # The seed works on raw pixels u (0..255), so its activations are ~255x those of a normalised network: far too
    # large for SGD without BN. A ReLU network with biases is positively homogeneous, so feed it u/255 and divide
    # every bias by 255 (all activations shrink by 255, exactly), then multiply the dense weights by 255 to keep the
    # logits. With u = 128*x + 128: u/255 = (128/255) x + 128/255.
    w, b = params[0]
    params[0] = _fold_input(w, b, np.full(3, 128.0, np.float32), np.full(3, 128.0, np.float32))
    return params + [fc]


def rebalance(params, blocks, x, target=4.0, q=99.99):
    """Rescale a BN-free ReLU ResNet's parameters so every activation tensor peaks near ``target``, function unchanged.

    ``params`` in QResNet order; ``blocks`` a list of 'identity'/'B' per block; ``x`` a float NCHW sample batch.
    ReLU networks with biases are positively homogeneous: scaling a tensor by g (weights and bias of its producer by
    g / g_in and g) and the consumers' weights by 1 / g leaves the logits unchanged. A residual stream keeps one scale
    across identity blocks. Needed for the MLPerf ResNet8 seed, which works on raw 0..255 pixels with BN folded, so
    its activations and per-layer weight magnitudes are far from what SGD without BN tolerates.
    """
    P = [(torch.from_numpy(np.ascontiguousarray(w)), torch.from_numpy(np.ascontiguousarray(b))) for w, b in params]

    def conv(h, p, stride):
        return F.conv2d(h, p[0], p[1], stride=stride, padding=p[0].shape[-1] // 2)

    def peak(t):
        return float(np.percentile(t.numpy(), q))

    out = list(params)
    with torch.no_grad():
        h = F.relu(conv(x, P[0], 1))
        g_s = target / peak(h)
        out[0] = (params[0][0] * g_s, params[0][1] * g_s)
        i = 1
        for kind in blocks:
            stride = 1 if kind == "identity" else 2
            r = F.relu(conv(h, P[i], stride))
            y = conv(r, P[i + 1], 1)
            sc = h if kind == "identity" else conv(h, P[i + 2], stride)
            hn = F.relu(y + sc)
            g_r = target / peak(r)
            g_n = g_s if kind == "identity" else target / peak(hn)
            out[i] = (params[i][0] * (g_r / g_s), params[i][1] * g_r)
            out[i + 1] = (params[i + 1][0] * (g_n / g_r), params[i + 1][1] * g_n)
            if kind != "identity":
                out[i + 2] = (params[i + 2][0] * (g_n / g_s), params[i + 2][1] * g_n)
            i += 2 if kind == "identity" else 3
            h, g_s = hn, g_n
        out[i] = (params[i][0] / g_s, params[i][1])
    return [(w.astype(np.float32), b.astype(np.float32)) for w, b in out]


def _fold_bn(w, bn):
    g, beta, mu, var = bn["weight"], bn["bias"], bn["running_mean"], bn["running_var"]
    s = g / np.sqrt(var + 1e-5)
    return w * s[:, None, None, None], beta - mu * s


def seed_resnet20(path=RESNET20_TH, shortcut="B"):
    """He et al. float ResNet20 (option A), BN folded; option-A shortcuts become exact 1x1 projections."""
    sd = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    sd = {k.removeprefix("module."): v.float().numpy() for k, v in sd.items()}

    def bn(p):
        return {k: sd[f"{p}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}

    params = []
    w, b = _fold_bn(sd["conv1.weight"], bn("bn1"))
    # seed input u = (pixel/255 - mean)/std with pixel = 128*x + 128
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    params.append(_fold_input(w, b, 128.0 / 255.0 / std, (128.0 / 255.0 - mean) / std))
    cin = 16
    for li, cout in zip((1, 2, 3), (16, 32, 64)):
        for bi in range(3):
            p = f"layer{li}.{bi}"
            params.append(_fold_bn(sd[f"{p}.conv1.weight"], bn(f"{p}.bn1")))
            params.append(_fold_bn(sd[f"{p}.conv2.weight"], bn(f"{p}.bn2")))
            if cin != cout and shortcut == "B":
                ws = np.zeros((cout, cin, 1, 1), np.float32)
                pad = (cout - cin) // 2
                ws[pad + np.arange(cin), np.arange(cin), 0, 0] = 1.0
                params.append((ws, np.zeros(cout, np.float32)))
            cin = cout
    params.append((sd["linear.weight"], sd["linear.bias"]))
    return params


def load_seed(model: QResNet, arch: str):
    if arch == "resnet8":
        from rtlgen import data as rdata

        params = seed_resnet8()
        xs = rdata.load_train(os.environ.get(rdata.ENV_VAR) or rdata.default_shared_dir())[0][:500]  # stats only
        xs = (torch.from_numpy(xs.transpose(0, 3, 1, 2).astype(np.float32)) - 128.0) / 128.0
        params = rebalance(params, [b.kind for b in model.blocks], xs)
    elif arch in ("resnet20", "resnet20a"):
        params = seed_resnet20(shortcut=ARCHS[arch]["shortcut"])
    else:
        return False
    mods = _conv_modules(model)
    assert len(mods) == len(params), (len(mods), len(params))
    with torch.no_grad():
        for (name, mod), (w, b) in zip(mods, params):
            assert tuple(mod.weight.shape) == w.shape, (name, mod.weight.shape, w.shape)
            mod.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            mod.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
    return True


class SeedInput(nn.Module):
    """A float CIFAR network trained on ImageNet-normalized RGB, taking our model input ``(pixel - 128) / 128``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return self.net(((x * 128 + 128) / 255 - self.mean) / self.std)


def resnet20_teacher(path=RESNET20_TH) -> nn.Module:
    """The float option-A ResNet20 seed (:class:`CifarResNet` with the seed's parameter names, BatchNorms included),
    taking our model input: the distillation teacher."""
    net = CifarResNet(widths=(16, 32, 64), blocks=(3, 3, 3), shortcut="A", stages=True)
    sd = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    return SeedInput(net)


def float_forward(model: QResNet, x, bns: nn.ModuleDict | None = None):
    """Float (unquantized) forward through a QResNet's own weights and biases: the cheap pre-training stage.

    Same topology and zero padding as the quantized model, about 3x faster than Brevitas QAT on a CPU. With ``bns``
    (``make_bns``) a BatchNorm follows every convolution (train/eval mode follows ``model.training``).
    """
    if bns is not None:
        bns.train(model.training)

    def conv(name, h, mod, stride, pad):
        y = F.conv2d(h, mod.weight, mod.bias, stride=stride, padding=pad)
        return y if bns is None else bns[name](y)

    h = F.relu(conv("stem", x, model.stem, 1, 1))
    for i, b in enumerate(model.blocks):
        r = F.relu(conv(f"blocks_{i}_conv1", h, b.conv1, b.conv1.stride, 1))
        y = conv(f"blocks_{i}_conv2", r, b.conv2, 1, 1)
        if b.kind == "identity":
            sc = h
        elif b.kind == "B":
            sc = conv(f"blocks_{i}_sc_conv", h, b.sc_conv, b.sc_conv.stride, 0)
        else:
            sc = F.pad(h[:, :, :: b.stride, :: b.stride], (0, 0, 0, 0, b.pad_c, b.pad_c))
        h = F.relu(y + sc)
    return F.linear(F.avg_pool2d(h, 8).flatten(1), model.fc.weight, model.fc.bias)


def make_bns(model: QResNet) -> nn.ModuleDict:
    """One BatchNorm2d after every convolution (not the dense layer), for a float stage with BN (``--float-bn``).

    Keys are the conv module names with '.' -> '_'. ``fold_bns`` folds them into the convolutions afterwards, so the
    quantized model stays BN-free (what the hardware computes).
    """
    return nn.ModuleDict({n.replace(".", "_"): nn.BatchNorm2d(m.weight.shape[0])
                          for n, m in _conv_modules(model) if n != "fc"})


def fold_bns(model: QResNet, bns: nn.ModuleDict) -> None:
    """Fold the (eval-mode) BatchNorms into the convolutions' weights and biases, in place: after this
    ``float_forward(model, x)`` equals ``float_forward(model, x, bns)`` in eval mode (up to float rounding)."""
    with torch.no_grad():
        for n, m in _conv_modules(model):
            if n == "fc":
                continue
            bn = bns[n.replace(".", "_")]
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            m.weight.mul_(s.view(-1, 1, 1, 1))
            m.bias.copy_((m.bias - bn.running_mean) * s + bn.bias)


def float_params(model: QResNet) -> dict:
    """The trainable float weights and biases (no quantizer parameters)."""
    return {f"{n}.{k}": getattr(m, k).detach().clone() for n, m in _conv_modules(model) for k in ("weight", "bias")}


def load_float_params(model: QResNet, params: dict):
    with torch.no_grad():
        for n, m in _conv_modules(model):
            for k in ("weight", "bias"):
                getattr(m, k).copy_(params[f"{n}.{k}"])


# ---- float (BatchNorm) CIFAR networks for ONNX Runtime quantization (tests/zoo.py, tests/zoo_deep.py) ------------

class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    """He et al. CIFAR ResNet basic block (conv-BN-ReLU, conv-BN, + shortcut, ReLU). Down-sampling shortcut ``"A"``:
    the parameter-free stride-2 subsample + zero channel padding (as in ResNet20 code); ``"B"``: a 1x1 stride-2 conv +
    BN projection."""

    def __init__(self, in_planes, planes, stride=1, shortcut="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if shortcut == "A":
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
                )
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                              nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Float CIFAR ResNet: stem conv-BN-ReLU, ``blocks[i]`` basic blocks of ``widths[i]`` channels per stage (stride 2
    entering every stage but the first), global average pool, linear head. ``stages=True`` names the stages
    ``layer1``, ``layer2``, ... (the parameter names of the shared ResNet20 state dict), else one ``layers``."""

    def __init__(self, widths=(16, 32, 64), blocks=(3, 3, 3), shortcut="A", classes=10, stages=False, maxpool=False,
                 global_pool=False):
        """``maxpool``: a 2x2 max pool after the stem; ``global_pool``: the head's pool as ``GlobalAveragePool``
        (adaptive) instead of an ``AveragePool`` over the whole map (the same numbers; another ONNX op)."""
        super().__init__()
        self.maxpool, self.global_pool = maxpool, global_pool
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.stages = stages
        layers, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stage = []
            for j in range(n):
                stage.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1, shortcut))
                cin = w
            if stages:
                setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
            layers += stage
        if not stages:
            self.layers = nn.Sequential(*layers)
        self.n_stages = len(widths)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        if self.maxpool:
            out = F.max_pool2d(out, 2)
        if self.stages:
            for i in range(self.n_stages):
                out = getattr(self, f"layer{i + 1}")(out)
        else:
            out = self.layers(out)
        out = F.adaptive_avg_pool2d(out, 1) if self.global_pool else F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))


class PlainCNN(nn.Module):
    """A VGG-like plain CNN without skips: ``convs`` conv-BN-ReLU per stage of ``widths[i]`` channels, 2x2 max pools
    between stages, global average pool, linear head."""

    def __init__(self, widths=(16, 32, 64), convs=2, classes=10):
        super().__init__()
        layers, cin = [], 3
        for si, w in enumerate(widths):
            if si > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs):
                layers += [nn.Conv2d(cin, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
                cin = w
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = self.features(x)
        out = F.avg_pool2d(out, out.size()[3])
        return self.linear(out.view(out.size(0), -1))
