"""Model factories for the importer tests: small quantized models built *inside* the tests (seeded, fast).

Every factory writes an ``.onnx`` file into the given directory and returns a :class:`ZooModel` with the path and
the preprocessing the model expects: float input = ``(pixel * input_scale - mean) / std`` per channel, computed
in float32 from uint8 pixels (see ``reference.float_input``).

Factories
---------
* :func:`brevitas_resnet` -- Brevitas, power-of-two scales, exported as QONNX or QCDQ (bit-exact arithmetic).
* :func:`ort_resnet` -- a float ResNet-like torch model quantized with ``onnxruntime.quantization.quantize_static``
  (QDQ per-tensor / per-channel, int8 / uint8 activations, QOperator).
* :func:`tflite_style` -- an int8 NHWC graph built with ``onnx.helper`` the way TFLite->ONNX converters write it.
* :func:`option_a_resnet` -- ResNet20-style "option A" shortcuts exported from torch (Shape/Gather/Pad arithmetic),
  quantized with ORT QDQ.

Versions measured here: Brevitas 0.13 exporters need ``onnxoptimizer``; onnx 1.23 writes IR version 14, which
onnxruntime and qonnx's executor refuse, so every factory lowers ``ir_version`` (to :data:`IR_VERSION`).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IR_VERSION = 10

#: preprocessing used by the synthetic models (CIFAR-like normalization, exact in float32 either way)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class ZooModel:
    path: Path
    input_scale: float = 1.0 / 255.0
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    layout: str = "NCHW"  # layout of the graph input
    kind: str = "qdq"  # qonnx | qcdq | qdq | qop | tflite
    exact: bool = False  # power-of-two scales: bit-exact comparison expected
    int_output: bool = False  # graph output is an 8-bit integer tensor (not float logits)
    meta: dict = field(default_factory=dict)

    @property
    def preprocess(self) -> dict:
        return {"input_scale": self.input_scale, "mean": list(self.mean), "std": list(self.std)}


# ----------------------------------------------------------------------------------------------------------------
# helpers


def cifar_dir() -> Path | None:
    """CIFAR-10 folder from $RTLGEN_CIFAR10 or ../shared beside the checkout; None if absent."""
    from rtlgen.data import ENV_VAR, default_shared_dir

    env = os.environ.get(ENV_VAR)
    if env and Path(env).is_dir():
        return Path(env)
    return default_shared_dir()


def need_shared(what: str):
    """Missing shared data: fail loudly in CI, skip on a developer machine."""
    msg = f"{what} not found (set $RTLGEN_CIFAR10 or provide ../shared beside the repository)"
    import pytest

    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def random_pixels(n: int, seed: int = 0, hw: int = 32) -> np.ndarray:
    """Smooth-ish random uint8 NHWC images (a blurred noise field plus a colour offset: not pure noise)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, hw // 4, hw // 4, 3)).astype(np.float32)
    img = base.repeat(4, axis=1).repeat(4, axis=2)
    img = img + rng.normal(0, 24, size=img.shape)
    img = img + rng.uniform(-60, 60, size=(n, 1, 1, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def float_input(pixels: np.ndarray, input_scale=1.0 / 255.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layout="NCHW"):
    """The documented preprocessing, in float32: ``(pixel * input_scale - mean) / std`` per channel.

    ``pixels``: uint8 NHWC. Returns float32 NCHW (or NHWC when ``layout == "NHWC"``).
    """
    x = pixels.astype(np.float32) * np.float32(input_scale)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    x = x.astype(np.float32)
    return x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def set_ir_version(path, version: int = IR_VERSION, metadata: dict | None = None):
    import onnx

    m = onnx.load(str(path))
    m.ir_version = version
    if metadata:
        for k, v in metadata.items():
            p = m.metadata_props.add()
            p.key, p.value = k, v
    onnx.save(m, str(path))


def preprocess_metadata(input_scale, mean, std) -> dict:
    return {
        "rtlgen.input_scale": repr(float(input_scale)),
        "rtlgen.mean": ",".join(repr(float(v)) for v in mean),
        "rtlgen.std": ",".join(repr(float(v)) for v in std),
    }


def _torch_export(model, x, path, opset=13, **kw):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            opset_version=opset,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            dynamo=False,
            **kw,
        )


def _center_head(model, linear, x):
    """Re-center the classifier on the features of ``x``: ``W' = W / std(f)``, ``b' = -W' mean(f)``.

    Random networks on random images otherwise predict one class for nearly every input, which would make
    top-1 comparisons meaningless. Works for torch.nn.Linear and Brevitas QuantLinear (float parameters).
    """
    import torch

    feats = []
    h = linear.register_forward_hook(lambda mod, inp, out: feats.append(_plain(inp[0]).detach()))
    with torch.no_grad():
        model(x)
    h.remove()
    f = torch.cat(feats)
    mu, sd = f.mean(0), f.std(0).mean() + 1e-6
    with torch.no_grad():
        linear.weight.copy_(linear.weight / sd)
        linear.weight -= linear.weight.mean(1, keepdim=True)
        linear.bias.copy_(-(linear.weight @ mu))


def _plain(t):
    return t.value if hasattr(t, "value") else t


# ----------------------------------------------------------------------------------------------------------------
# a) Brevitas, power-of-two scales


def _brevitas_module():
    """The small Brevitas residual CNN of these tests: tools/resnets.QResNet with two stages (8, 16 channels, one block
    each: an identity block, then a stride-2 block with a quantized 1x1 projection shortcut), a calibrated int8 input
    quantizer on normalized inputs, the 16x16 map average-pooled and quantized, a QuantLinear head."""
    from brevitas.quant import Int8ActPerTensorFixedPoint

    R = _tools_resnets()
    return lambda: R.QResNet(widths=(8, 16), blocks=(1, 1), shortcut="B", input_quant=Int8ActPerTensorFixedPoint,
                             pool=16)


def _brevitas_model(seed: int, mean, std, calib_pixels):
    import torch
    from brevitas.graph.calibrate import calibration_mode

    torch.manual_seed(seed)
    model = _brevitas_module()()
    # Spread weights and biases a bit so the int16 biases and residual adds matter
    with torch.no_grad():
        for mod in model.modules():
            if hasattr(mod, "bias") and mod.bias is not None and hasattr(mod, "weight"):
                mod.bias.uniform_(-0.2, 0.2)
    x = torch.from_numpy(float_input(calib_pixels, 1.0 / 255.0, mean, std))
    model.eval()
    with torch.no_grad(), calibration_mode(model):
        _center_head(model, model.fc, x)
    with torch.no_grad(), calibration_mode(model):
        for i in range(0, len(x), 32):
            model(x[i : i + 32])
    model.eval()
    return model


def brevitas_resnet(tmpdir, fmt: str = "qonnx", seed: int = 0, with_metadata: bool = False) -> ZooModel:
    """Brevitas residual CNN with power-of-two scales, exported as ``fmt`` = ``"qonnx"`` or ``"qcdq"``."""
    import torch
    from brevitas.export import export_onnx_qcdq, export_qonnx

    mean, std = CIFAR_MEAN, CIFAR_STD
    model = _brevitas_model(seed, mean, std, random_pixels(64, seed=seed + 100))
    path = Path(tmpdir) / f"brevitas_{fmt}_{seed}.onnx"
    x = torch.from_numpy(float_input(random_pixels(1, seed=7), 1.0 / 255.0, mean, std))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "qonnx":
            export_qonnx(model, x, export_path=str(path), dynamo=False)
        elif fmt == "qcdq":
            export_onnx_qcdq(model, x, export_path=str(path), dynamo=False)
        else:
            raise ValueError(fmt)
    md = preprocess_metadata(1.0 / 255.0, mean, std) if with_metadata else None
    set_ir_version(path, metadata=md)
    return ZooModel(path, 1.0 / 255.0, mean, std, kind=fmt, exact=True, meta={"torch_model": model})


# ----------------------------------------------------------------------------------------------------------------
# b) onnxruntime quantize_static on a float ResNet-like torch model (float scales)


def _randomize_bn(model, seed):
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.3 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))


class PixelReader:
    """onnxruntime CalibrationDataReader over uint8 NHWC pixels with the documented preprocessing."""

    def __init__(self, input_name, pixels, input_scale, mean, std, layout="NCHW", batch=16):
        self.input_name = input_name
        self.x = float_input(pixels, input_scale, mean, std, layout)
        self.batch = batch
        self.i = 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        b = self.x[self.i : self.i + self.batch]
        self.i += self.batch
        return {self.input_name: b}

    def rewind(self):
        self.i = 0


def ort_quantize(float_path, out_path, calib_pixels, *, input_scale, mean, std, per_channel=False,
                 activation="int8", fmt="qdq", layout="NCHW", extra_options=None):
    """``onnxruntime.quantization.quantize_static`` (MinMax calibration, int8 weights)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    m = onnx.load(str(float_path))
    iname = m.graph.input[0].name
    reader = PixelReader(iname, calib_pixels, input_scale, mean, std, layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(
            str(float_path),
            str(out_path),
            reader,
            quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=QuantType.QInt8 if activation == "int8" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=extra_options or {},
        )
    set_ir_version(out_path)


def float_resnet_onnx(tmpdir, seed: int = 0, maxpool: bool = False) -> Path:
    """The float ResNet-like model (BN folded by the exporter) as ONNX; cached per directory."""
    import torch

    path = Path(tmpdir) / f"float_resnet_{seed}{'_mp' if maxpool else ''}.onnx"
    if path.exists():
        return path
    torch.manual_seed(seed)
    model = _tools_resnets().CifarResNet(widths=(8, 16), blocks=(1, 1), shortcut="B", maxpool=maxpool,
                                         global_pool=True).eval()
    _randomize_bn(model, seed)
    _center_head(model, model.linear, torch.from_numpy(float_input(random_pixels(128, seed + 500), 1 / 255, CIFAR_MEAN, CIFAR_STD)))
    _torch_export(model, torch.zeros(1, 3, 32, 32), path)
    set_ir_version(path)
    return path


ORT_VARIANTS = {
    # name: (fmt, per_channel, activation)
    "qdq_tensor_s8": ("qdq", False, "int8"),
    "qdq_channel_s8": ("qdq", True, "int8"),
    "qdq_tensor_u8": ("qdq", False, "uint8"),
    "qdq_channel_u8": ("qdq", True, "uint8"),
    "qop_tensor_u8": ("qop", False, "uint8"),
    "qop_channel_s8": ("qop", True, "int8"),
}


def ort_resnet(tmpdir, variant: str = "qdq_channel_s8", seed: int = 0, calib_pixels=None, maxpool=False) -> ZooModel:
    """Float ResNet-like model quantized with ORT ``quantize_static`` (see :data:`ORT_VARIANTS`)."""
    fmt, per_channel, act = ORT_VARIANTS[variant]
    mean, std = CIFAR_MEAN, CIFAR_STD
    fpath = float_resnet_onnx(tmpdir, seed, maxpool)
    out = Path(tmpdir) / f"ort_{variant}_{seed}{'_mp' if maxpool else ''}.onnx"
    if calib_pixels is None:
        calib_pixels = random_pixels(64, seed=seed + 200)
    ort_quantize(fpath, out, calib_pixels, input_scale=1.0 / 255.0, mean=mean, std=std, per_channel=per_channel,
                 activation=act, fmt=fmt)
    return ZooModel(out, 1.0 / 255.0, mean, std, kind=fmt, exact=False, meta={"float_path": fpath})


# ----------------------------------------------------------------------------------------------------------------
# c) TFLite-converter-style int8 NHWC graph (built with onnx.helper; no TensorFlow here)


def _qparams(lo, hi, signed=True):
    """Asymmetric 8-bit scale / zero point covering [min(lo,0), max(hi,0)] (TFLite style)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max(hi - lo, 1e-6) / 255.0
    qmin = -128 if signed else 0
    zp = int(np.clip(round(qmin - lo / scale), qmin, qmin + 255))
    return np.float32(scale), zp


def tflite_style(tmpdir, seed: int = 0, calib_pixels=None) -> ZooModel:
    """int8 NHWC input -> DequantizeLinear -> Transpose(NCHW) -> QDQ convs (+ residual Add) -> AveragePool ->
    Transpose/Reshape -> MatMul + Add dense -> QuantizeLinear/DequantizeLinear -> Softmax.

    Preprocessing: raw pixels 0..255 (input_scale 1, mean 0, std 1); the graph input is int8 with scale 1 and
    zero point -128 (q = pixel - 128 exactly), as TFLite's int8 image models do.
    The quantized logits (before the Softmax) are the tensor named ``"logits_q"``.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto as TP
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    C1, C2, K = 8, 16, 10
    if calib_pixels is None:
        calib_pixels = random_pixels(64, seed=seed + 300)

    # float parameters (then int8 per-channel weights, int32 biases)
    def conv_w(o, c, k):
        w = rng.normal(0, np.sqrt(2.0 / (c * k * k)), size=(o, c, k, k)).astype(np.float32)
        s = (np.abs(w).reshape(o, -1).max(1) / 127.0).astype(np.float32)
        q = np.clip(np.round(w / s[:, None, None, None]), -127, 127).astype(np.int8)
        return q, s

    convs = {
        "conv1": (*conv_w(C1, 3, 3), rng.normal(0, 0.1, C1).astype(np.float32), 1),
        "conv2": (*conv_w(C2, C1, 3), rng.normal(0, 0.1, C2).astype(np.float32), 2),
        "conv3": (*conv_w(C2, C2, 3), rng.normal(0, 0.1, C2).astype(np.float32), 1),
    }
    head = {}

    def set_head(wd, bd):
        wd_s = np.float32(np.abs(wd).max() / 127.0)
        head.update(wd_s=wd_s, wd_q=np.clip(np.round(wd / wd_s), -127, 127).astype(np.int8), bd=bd.astype(np.float32))

    wd0 = rng.normal(0, 0.5, size=(C2, K)).astype(np.float32)
    set_head(wd0, np.zeros(K, np.float32))

    def build(act_q):
        """act_q: {tensor: (scale, zp)} for the QDQ'd activations, or None for the float calibration graph."""
        nodes, inits = [], []

        def init(name, arr):
            inits.append(numpy_helper.from_array(np.asarray(arr), name))
            return name

        def qdq(t):
            if act_q is None:
                return t
            s, z = act_q[t]
            init(t + "_s", np.float32(s))
            init(t + "_z", np.int8(z))
            nodes.append(helper.make_node("QuantizeLinear", [t, t + "_s", t + "_z"], [t + "_q"]))
            nodes.append(helper.make_node("DequantizeLinear", [t + "_q", t + "_s", t + "_z"], [t + "_dq"]))
            return t + "_dq"

        if act_q is None:
            nodes.append(helper.make_node("Cast", ["input"], ["in_i"], to=TP.FLOAT))
            nodes.append(helper.make_node("Sub", ["in_i", "in_zf"], ["in_f"]))
            init("in_zf", np.float32(-128.0))
        else:
            init("in_s", np.float32(1.0))
            init("in_z", np.int8(-128))
            nodes.append(helper.make_node("DequantizeLinear", ["input", "in_s", "in_z"], ["in_f"]))
        nodes.append(helper.make_node("Transpose", ["in_f"], ["x0"], perm=[0, 3, 1, 2]))
        in_scale = {"x0": np.float32(1.0)}
        cur = "x0"

        def conv(name, x, relu):
            q, s, b, stride = convs[name]
            init(name + "_wq", q)
            init(name + "_ws", s)
            init(name + "_wz", np.zeros(len(s), np.int8))
            nodes.append(helper.make_node("DequantizeLinear", [name + "_wq", name + "_ws", name + "_wz"], [name + "_w"], axis=0))
            if act_q is None:
                init(name + "_b", b)
            else:
                bs = (np.float32(act_scale(x)) * s).astype(np.float32)
                init(name + "_bq", np.round(b / bs).astype(np.int32))
                init(name + "_bs", bs)
                init(name + "_bz", np.zeros(len(s), np.int32))
                nodes.append(helper.make_node("DequantizeLinear", [name + "_bq", name + "_bs", name + "_bz"], [name + "_b"], axis=0))
            out = name + ("_pre" if relu else "")
            nodes.append(helper.make_node("Conv", [x, name + "_w", name + "_b"], [out], kernel_shape=[3, 3],
                                          pads=[1, 1, 1, 1], strides=[stride, stride]))
            if relu:
                nodes.append(helper.make_node("Relu", [out], [name]))
            return qdq(name)

        def act_scale(x):
            if x == "x0":
                return 1.0
            return act_q[x.removesuffix("_dq")][0]

        cur = conv("conv1", "x0", relu=True)
        a = conv("conv2", cur, relu=True)
        b = conv("conv3", a, relu=False)
        nodes.append(helper.make_node("Add", [b, a], ["add_pre"]))
        nodes.append(helper.make_node("Relu", ["add_pre"], ["add"]))
        cur = qdq("add")
        nodes.append(helper.make_node("AveragePool", [cur], ["pool"], kernel_shape=[16, 16], strides=[16, 16]))
        cur = qdq("pool")
        nodes.append(helper.make_node("Transpose", [cur], ["pool_nhwc"], perm=[0, 2, 3, 1]))
        init("flat_shape", np.array([-1, C2], np.int64))
        nodes.append(helper.make_node("Reshape", ["pool_nhwc", "flat_shape"], ["flat"]))
        wd_q, wd_s, bd = head["wd_q"], head["wd_s"], head["bd"]
        init("fc_wq", wd_q)
        init("fc_ws", wd_s)
        init("fc_wz", np.int8(0))
        nodes.append(helper.make_node("DequantizeLinear", ["fc_wq", "fc_ws", "fc_wz"], ["fc_w"]))
        if act_q is None:
            init("fc_b", bd)
        else:
            bs = np.float32(act_q["pool"][0] * wd_s)
            init("fc_bq", np.round(bd / bs).astype(np.int32))
            init("fc_bs", bs)
            init("fc_bz", np.int32(0))
            nodes.append(helper.make_node("DequantizeLinear", ["fc_bq", "fc_bs", "fc_bz"], ["fc_b"]))
        nodes.append(helper.make_node("MatMul", ["flat", "fc_w"], ["fc_mm"]))
        nodes.append(helper.make_node("Add", ["fc_mm", "fc_b"], ["logits"]))
        if act_q is not None:
            s, z = act_q["logits"]
            init("logits_s", np.float32(s))
            init("logits_z", np.int8(z))
            nodes.append(helper.make_node("QuantizeLinear", ["logits", "logits_s", "logits_z"], ["logits_q"]))
            nodes.append(helper.make_node("DequantizeLinear", ["logits_q", "logits_s", "logits_z"], ["logits_dq"]))
            nodes.append(helper.make_node("Softmax", ["logits_dq"], ["StatefulPartitionedCall:0"], axis=-1))
        else:
            nodes.append(helper.make_node("Softmax", ["logits"], ["StatefulPartitionedCall:0"], axis=-1))
        for k, nd in enumerate(nodes):
            nd.name = f"{nd.op_type.lower()}_{nd.output[0]}_{k}"
        g = helper.make_graph(
            nodes,
            "tflite_style",
            [helper.make_tensor_value_info("input", TP.INT8, ["N", 32, 32, 3])],
            [helper.make_tensor_value_info("StatefulPartitionedCall:0", TP.FLOAT, ["N", K])],
            inits,
        )
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx-style")
        m.ir_version = IR_VERSION
        onnx.checker.check_model(m)
        return m

    act_names = ["conv1", "conv2", "conv3", "add", "pool", "logits"]
    qin = (calib_pixels.astype(np.int16) - 128).astype(np.int8)

    def float_run():
        fm = build(None)
        for t in act_names:
            fm.graph.output.append(helper.make_tensor_value_info(t, TP.FLOAT, None))
        sess = ort.InferenceSession(fm.SerializeToString(), providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": qin})))

    # centre the head on the calibration features (else one class wins on random images), then calibrate
    f = float_run()["pool"].reshape(len(qin), -1)
    wd = wd0 / (f.std(0).mean() + 1e-6)
    wd -= wd.mean(1, keepdims=True)
    set_head(wd, -(f.mean(0) @ wd))
    outs = float_run()
    act_q = {t: _qparams(outs[t].min(), outs[t].max()) for t in act_names}
    m = build(act_q)
    path = Path(tmpdir) / f"tflite_style_{seed}.onnx"
    onnx.save(m, str(path))
    return ZooModel(path, 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), layout="NHWC", kind="tflite", exact=False,
                    meta={"input_q": (1.0, -128), "logits_q": "logits_q", "act_q": act_q})


# ----------------------------------------------------------------------------------------------------------------
# d) option-A shortcut model exported from torch (Shape/Gather/ConstantOfShape/Slice/Pad), ORT QDQ


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _tools_resnets():
    """tools/resnets.py: the one definition of the CIFAR networks (Brevitas QAT models and the float BN models)."""
    import sys

    tools = str(Path(__file__).resolve().parent.parent / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
    import resnets

    return resnets


def option_a_resnet(tmpdir, seed: int = 0, calib_pixels=None, per_channel=True, with_metadata=True) -> ZooModel:
    """Small option-A ResNet (8/16/32 channels, one block per stage) exported from torch, quantized with ORT QDQ."""
    import torch

    mean, std = IMAGENET_MEAN, IMAGENET_STD
    torch.manual_seed(seed)
    model = _tools_resnets().CifarResNet(widths=(8, 16, 32), blocks=(1, 1, 1), shortcut="A").eval()
    _randomize_bn(model, seed)
    _center_head(model, model.linear, torch.from_numpy(float_input(random_pixels(128, seed + 500), 1 / 255, mean, std)))
    fpath = Path(tmpdir) / f"option_a_float_{seed}.onnx"
    _torch_export(model, torch.zeros(1, 3, 32, 32), fpath)
    md = preprocess_metadata(1.0 / 255.0, mean, std) if with_metadata else None
    set_ir_version(fpath, metadata=md)
    out = Path(tmpdir) / f"option_a_qdq_{seed}.onnx"
    if calib_pixels is None:
        calib_pixels = random_pixels(64, seed=seed + 400)
    ort_quantize(fpath, out, calib_pixels, input_scale=1.0 / 255.0, mean=mean, std=std, per_channel=per_channel)
    # (quantize_static copies the float model's metadata_props, rtlgen.* keys included)
    return ZooModel(out, 1.0 / 255.0, mean, std, kind="qdq", exact=False, meta={"float_path": fpath, "torch_model": model})


# ----------------------------------------------------------------------------------------------------------------
# e) the float reference models in ../shared/models, prepared for onnxruntime quantization


def resnet20_torch(state_dict_path=None):
    """He et al. CIFAR ResNet-20 with option-A shortcuts (parameter names as in the shared state dict)."""
    import torch

    model = _tools_resnets().CifarResNet(widths=(16, 32, 64), blocks=(3, 3, 3), shortcut="A", stages=True)
    if state_dict_path is not None:
        sd = torch.load(str(state_dict_path), map_location="cpu", weights_only=False)["state_dict"]
        model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
    return model.eval()


def resnet20_float_onnx(tmpdir, state_dict_path) -> Path:
    import torch

    path = Path(tmpdir) / "resnet20_float.onnx"
    _torch_export(resnet20_torch(state_dict_path), torch.zeros(1, 3, 32, 32), path, opset=13)
    set_ir_version(path, metadata=preprocess_metadata(1.0 / 255.0, IMAGENET_MEAN, IMAGENET_STD))
    return path


def resnet8_float_onnx(tmpdir, onnx_path) -> Path:
    """The MLPerf Tiny float ResNet-8 ONNX with a dynamic batch dimension and opset 13 (for quantize_static)."""
    import onnx
    from onnx import version_converter

    m = onnx.load(str(onnx_path))
    if max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) < 13:
        m = version_converter.convert_version(m, 13)
    for vi in list(m.graph.input) + list(m.graph.output):
        d = vi.type.tensor_type.shape.dim
        if len(d):
            d[0].Clear()
            d[0].dim_param = "N"
    del m.graph.value_info[:]
    m.ir_version = min(m.ir_version, IR_VERSION)
    path = Path(tmpdir) / "resnet8_float.onnx"
    onnx.save(m, str(path))
    return path


def planned_small_resnet(tmp, board: str = "kv260", uram_layers=(), taps: bool = True):
    """``rtlgen.flow.Design`` of :func:`brevitas_resnet` (QONNX, seed 3, preprocessing in its metadata) planned for
    ``board``, with ``uram_layers`` forced to ``storage="uram"``: the small network of the board and URAM benches."""
    from rtlgen.flow import Design

    m = brevitas_resnet(tmp, "qonnx", seed=3, with_metadata=True)
    d = Design.load(str(m.path), board=board, input_scale=m.input_scale, mean=list(m.mean), std=list(m.std))
    d.plan(taps=taps)
    for name in uram_layers:
        d.set_layer(name, storage="uram")
    return d

