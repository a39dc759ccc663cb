"""MLPerf-Tiny-shaped test models, made here (never downloaded): PyTorch -> ONNX Runtime QDQ and Brevitas QONNX.

Four architectures in one definition each, built by either of two layer factories (:class:`FloatLayers`: plain
``torch.nn``, quantized afterwards by ONNX Runtime's ``quantize_static`` (QDQ, int8, per-channel weights, MinMax
calibration, float scales); :class:`BrevitasLayers`: quantization-aware Brevitas layers with power-of-two per-tensor
scales, exported as QONNX):

* ``mobilenet_v1``: visual wake words' MobileNetV1, width 0.25, 96x96x3, 2 classes: conv 3x3/2 then 13 depthwise-
  separable blocks (depthwise 3x3 + ReLU, pointwise 1x1 + ReLU), global average pool, dense (7.5 M MACs).
* ``ds_cnn``: keyword spotting's DS-CNN on a 49x10x1 MFCC input: conv 10x4/2 (padding 5x1: 25x5 out, as TF's 'same')
  with 64 channels, 4 depthwise-separable blocks, global average pool, dense to 12 classes (2.7 M MACs).
* ``autoencoder``: anomaly detection's fully connected autoencoder 640 -> 128 x4 -> 8 -> 128 x4 -> 640 (ReLU between,
  none after the last: 0.26 M MACs).
* ``mobilenet_v2``: a small MobileNetV2 (32x32x3, 10 classes): stem conv 3x3/2, inverted residual blocks (expand 1x1
  + ReLU6 -> depthwise 3x3 + ReLU6 -> linear 1x1 projection, identity add where the shape allows), global average pool,
  dense.

Every architecture takes keyword arguments that shrink it (``SMALL``: what the default test run builds). Weights are
random (He init, biases in [-0.1, 0.1]); activations are calibrated on random inputs of the model's form. Image
models take ``(pixel - 128) / 128`` (``rtlgen.input_scale/mean/std`` metadata, so ``rtlgen build`` maps pixels);
feature models (DS-CNN, autoencoder) take float features quantized by the graph's own first quantizer.

    python -m tools.tinyml OUT_DIR [--arch NAME ...] [--fmt qdq|qonnx] [--small] [--seed N]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

#: image preprocessing stored in the exported models (float input = (pixel * INPUT_SCALE - MEAN) / STD)
INPUT_SCALE, MEAN, STD = 1.0, 128.0, 128.0

# ---------------------------------------------------------------------------------------------------------- layers


class FloatLayers:
    """Plain torch layers (quantized after export by ONNX Runtime)."""

    name = "float"

    def input(self, image: bool):
        return nn.Identity()

    def conv(self, cin, cout, k, stride=1, pad=None, groups=1):
        k = (k, k) if isinstance(k, int) else tuple(k)
        pad = tuple(x // 2 for x in k) if pad is None else pad
        return nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=True)

    def linear(self, fin, fout):
        return nn.Linear(fin, fout, bias=True)

    def act(self, kind):
        return {"relu": nn.ReLU, "relu6": nn.ReLU6}[kind]()

    def linear_out(self):
        """After a layer without activation whose output feeds more layers (projection, bottleneck)."""
        return nn.Identity()

    def pool(self):
        """Global average pool of the dequantized values, then (Brevitas) requantized to int8."""
        return _Pool(self)

    def value(self, t):
        return t


class BrevitasLayers(FloatLayers):
    """Brevitas layers, power-of-two per-tensor scales: int8 narrow-range weights, int32 biases at the accumulator
    scale, uint8 ReLU outputs, int8 outputs of linear layers (QONNX export)."""

    name = "brevitas"

    def __init__(self):
        from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
        from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int32Bias
        from brevitas.quant import Uint8ActPerTensorFixedPoint

        self.QC, self.QI, self.QL, self.QR = QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
        self.W, self.B, self.A8, self.U8 = (Int8WeightPerTensorFixedPoint, Int32Bias, Int8ActPerTensorFixedPoint,
                                            Uint8ActPerTensorFixedPoint)

    def input(self, image: bool):
        if image:
            from tools.resnets import InputQuant  # constant 2**-7: q = pixel - 128 exactly

            return self.QI(act_quant=InputQuant, return_quant_tensor=True)
        return self.QI(act_quant=self.A8, return_quant_tensor=True)

    def conv(self, cin, cout, k, stride=1, pad=None, groups=1):
        k = (k, k) if isinstance(k, int) else tuple(k)
        pad = tuple(x // 2 for x in k) if pad is None else pad
        return self.QC(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=True, weight_quant=self.W,
                       bias_quant=self.B, return_quant_tensor=False)

    def linear(self, fin, fout):
        return self.QL(fin, fout, bias=True, weight_quant=self.W, bias_quant=self.B, return_quant_tensor=False)

    def act(self, kind):
        if kind == "relu6":  # the clip in float, then the uint8 quantizer (QONNX: Clip -> Quant)
            return nn.Sequential(nn.ReLU6(), self.QI(act_quant=self.U8, return_quant_tensor=True))
        return self.QR(act_quant=self.U8, return_quant_tensor=True)

    def linear_out(self):
        return self.QI(act_quant=self.A8, return_quant_tensor=True)

    def value(self, t):
        from tools.resnets import _val

        return _val(t)


class _Pool(nn.Module):
    def __init__(self, L):
        super().__init__()
        self.L, self.pool, self.q = L, nn.AdaptiveAvgPool2d(1), L.linear_out()

    def forward(self, x):
        return self.q(self.pool(self.L.value(x)))


# ----------------------------------------------------------------------------------------------------- architectures


def _dw_sep(L, cin, cout, stride, act="relu"):
    return [L.conv(cin, cin, 3, stride, groups=cin), L.act(act), L.conv(cin, cout, 1), L.act(act)]


class _Classifier(nn.Module):
    def __init__(self, L, body, c, classes, image):
        super().__init__()
        self.L = L
        self.inp = L.input(image)
        self.body = nn.Sequential(*body)
        self.pool = L.pool()
        self.fc = L.linear(c, classes)

    def forward(self, x):
        y = self.pool(self.body(self.inp(x)))
        return self.L.value(self.fc(y.flatten(1)))


V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))


def mobilenet_v1(L, width=0.25, hw=96, classes=2, blocks=13):
    """MobileNetV1 (visual wake words: width 0.25, 96x96x3, 2 classes); ``blocks`` < 13 keeps the first ones."""
    c = int(32 * width)
    body = [L.conv(3, c, 3, 2), L.act("relu")]
    for ch, s in V1_BLOCKS[:blocks]:
        body += _dw_sep(L, c, int(ch * width), s)
        c = int(ch * width)
    return _Classifier(L, body, c, classes, True), (3, hw, hw)


def ds_cnn(L, h=49, w=10, c=64, blocks=4, classes=12):
    """DS-CNN (keyword spotting: 49x10x1 MFCC, conv 10x4/2 with 5x1 padding, 64 channels, 4 blocks, 12 classes)."""
    body = [L.conv(1, c, (10, 4), 2, pad=(5, 1)), L.act("relu")]
    for _ in range(blocks):
        body += _dw_sep(L, c, c, 1)
    return _Classifier(L, body, c, classes, False), (1, h, w)


class _AE(nn.Module):
    def __init__(self, L, dims):
        super().__init__()
        self.inp = L.input(False)
        mods = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            mods.append(L.linear(a, b))
            mods.append(L.act("relu") if i < len(dims) - 2 else L.linear_out())
        self.body = nn.Sequential(*mods)
        self.L = L

    def forward(self, x):
        return self.L.value(self.body(self.inp(x)))


def autoencoder(L, dims=(640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)):
    """Fully connected autoencoder (anomaly detection: 640 -> 128 x4 -> 8 -> 128 x4 -> 640)."""
    return _AE(L, dims), (dims[0],)


class _InvRes(nn.Module):
    def __init__(self, L, cin, cout, t, stride):
        super().__init__()
        e = cin * t
        mods = ([L.conv(cin, e, 1), L.act("relu6")] if t != 1 else []) + [
            L.conv(e, e, 3, stride, groups=e), L.act("relu6"), L.conv(e, cout, 1), L.linear_out()]
        self.body = nn.Sequential(*mods)
        self.res = stride == 1 and cin == cout
        self.L = L
        self.add_q = L.linear_out() if self.res else None

    def forward(self, x):
        y = self.body(x)
        if not self.res:
            return y
        return self.add_q(self.L.value(y) + self.L.value(x))


V2_BLOCKS = ((1, 8, 1, 1), (4, 16, 2, 2), (4, 24, 2, 2))  # (expansion t, channels, repeats, first stride)


def mobilenet_v2(L, hw=32, classes=10, blocks=V2_BLOCKS, stem=8):
    """A small MobileNetV2: stem conv 3x3/2 + ReLU6, inverted residual blocks, global average pool, dense."""
    body, c = [L.conv(3, stem, 3, 2), L.act("relu6")], stem
    for t, ch, n, s in blocks:
        for i in range(n):
            body.append(_InvRes(L, c, ch, t, s if i == 0 else 1))
            c = ch
    return _Classifier(L, body, c, classes, True), (3, hw, hw)


ARCHS = {"mobilenet_v1": mobilenet_v1, "ds_cnn": ds_cnn, "autoencoder": autoencoder, "mobilenet_v2": mobilenet_v2}
IMAGE = {"mobilenet_v1", "mobilenet_v2"}
#: the shrunken variants the default test run builds (seconds to import and simulate)
SMALL = {
    "mobilenet_v1": dict(hw=32, blocks=4),
    "ds_cnn": dict(h=25, w=10, c=16, blocks=2),
    "autoencoder": dict(dims=(64, 32, 8, 32, 64)),
    "mobilenet_v2": dict(hw=16, blocks=((1, 8, 1, 1), (2, 8, 2, 1), (2, 16, 1, 2))),
}

# ---------------------------------------------------------------------------------------------------------- export


def calib_inputs(arch: str, shape, n=64, seed=0) -> np.ndarray:
    """Random inputs of the model's form: images ``(pixel - 128) / 128``, features standard normal."""
    g = np.random.default_rng(seed + 100)
    if arch in IMAGE:
        return ((g.integers(0, 256, (n, *shape)).astype(np.float32) - MEAN) / STD).astype(np.float32)
    return g.standard_normal((n, *shape)).astype(np.float32)


def build(arch: str, layers: FloatLayers, seed=0, **kw):
    """(model, input shape without batch) with random He-initialised weights."""
    torch.manual_seed(seed)
    model, shape = ARCHS[arch](layers, **kw)
    with torch.no_grad():
        for mod in model.modules():
            w = getattr(mod, "weight", None)
            if isinstance(w, torch.nn.Parameter) and w.dim() >= 2:
                nn.init.kaiming_normal_(w, nonlinearity="relu")
                mod.bias.uniform_(-0.1, 0.1)
    model.eval()
    return model, shape


def _metadata(path, image: bool, how: str):
    import onnx

    m = onnx.load(str(path))
    m.ir_version = min(m.ir_version, 10)
    kv = [("rtlgen.quantized_by", how)]
    if image:
        kv += [("rtlgen.input_scale", repr(INPUT_SCALE)), ("rtlgen.mean", ",".join([repr(MEAN)] * 3)),
               ("rtlgen.std", ",".join([repr(STD)] * 3))]
    for k, v in kv:
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(m, str(path))


def export_qdq(path, arch: str, seed=0, calib: int = 64, **kw):
    """PyTorch float model -> ONNX -> ONNX Runtime ``quantize_static`` (QDQ, int8 activations and weights,
    per-channel weights, MinMax calibration on ``calib`` random inputs). Returns the torch model."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model, shape = build(arch, FloatLayers(), seed, **kw)
    xs = calib_inputs(arch, shape, calib, seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(range(len(xs)))

        def get_next(self):
            i = next(self.it, None)
            return None if i is None else {"input": xs[i:i + 1]}

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = Path(tmp) / "float.onnx"
        torch.onnx.export(model, torch.from_numpy(xs[:1]), str(src), input_names=["input"], output_names=["output"],
                          opset_version=13, dynamo=False)
        m = onnx.load(str(src))
        m.ir_version = min(m.ir_version, 10)
        onnx.save(m, str(src))
        quantize_static(str(src), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    _metadata(path, arch in IMAGE, "tools/tinyml.py (onnxruntime quantize_static, QDQ, per-channel)")
    return model


def export_qonnx(path, arch: str, seed=0, calib: int = 64, **kw):
    """Brevitas model (power-of-two scales), activation quantizers calibrated on ``calib`` random inputs, exported as
    QONNX. Returns the torch model."""
    from brevitas.export import export_qonnx as _export
    from brevitas.graph.calibrate import calibration_mode

    model, shape = build(arch, BrevitasLayers(), seed, **kw)
    x = torch.from_numpy(calib_inputs(arch, shape, calib, seed))
    with torch.no_grad(), calibration_mode(model):
        for i in range(0, len(x), 32):
            model(x[i:i + 32])
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _export(model, x[:1], export_path=str(path), dynamo=False)
    _metadata(path, arch in IMAGE, "tools/tinyml.py (Brevitas QAT layers, power-of-two scales, QONNX)")
    return model


EXPORTERS = {"qdq": export_qdq, "qonnx": export_qonnx}


def export(path, arch: str, fmt: str = "qdq", small: bool = False, seed: int = 0):
    """Write ``arch`` in ``fmt`` (full size, or its :data:`SMALL` variant) to ``path``."""
    return EXPORTERS[fmt](path, arch, seed, **(SMALL[arch] if small else {}))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--arch", action="append", choices=sorted(ARCHS), help="default: all")
    ap.add_argument("--fmt", action="append", choices=sorted(EXPORTERS), help="default: both")
    ap.add_argument("--small", action="store_true", help="the shrunken test variants")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for arch in a.arch or ARCHS:
        for fmt in a.fmt or EXPORTERS:
            p = out / f"{arch}{'_small' if a.small else ''}_{fmt}.onnx"
            export(p, arch, fmt, a.small, a.seed)
            print(f"wrote {p}")


if __name__ == "__main__":
    main()
