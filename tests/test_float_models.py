"""The float reference models in ../shared/models quantized with onnxruntime inside the test (QDQ, per-channel,
MinMax calibration on 300 CIFAR-10 training images): golden ``predict`` top-1 on the full 10,000-image test set
within 1.0 point of the float figure in ../shared/README.md.

Needs the shared data ($RTLGEN_CIFAR10 or ../shared beside the checkout): fails in CI (``CI`` set) when missing,
skips otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as R
import zoo
from zoo import cifar_dir, need_shared
from rtlgen import golden
from rtlgen.importer import load_model

FLOAT_TOP1 = {"resnet8": 87.19, "resnet20": 91.73}  # ../shared/README.md, full test set
CALIB_IMAGES = 300


def _shared_models_dir():
    d = cifar_dir()
    if d is None:
        return None
    m = d.parent.parent / "models"
    return m if m.is_dir() else None


@pytest.fixture(scope="module")
def cifar():
    d = cifar_dir()
    if d is None:
        need_shared("CIFAR-10 (cifar-10-batches-py)")
    from rtlgen.data import load_test, load_train

    xt, yt = load_test(d)
    xtr, _ = load_train(d)
    rng = np.random.default_rng(0)
    calib = xtr[rng.choice(len(xtr), CALIB_IMAGES, replace=False)]
    return xt, yt, calib


def _models_dir():
    m = _shared_models_dir()
    if m is None:
        need_shared("../shared/models")
    return m


@pytest.fixture(scope="module")
def quantized(cifar, tmp_path_factory):
    """name -> (quantized model path, preprocessing), built lazily."""
    cache = {}
    tmp = tmp_path_factory.mktemp("float_models")

    def get(name):
        if name in cache:
            return cache[name]
        models = _models_dir()
        if name == "resnet8":
            src = models / "resnet8-mlperf-tiny-float" / "pretrainedResnet_float.onnx"
            if not src.exists():
                need_shared(str(src))
            fpath = zoo.resnet8_float_onnx(tmp, src)
            pp = {"input_scale": 1.0, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
        else:
            src = models / "resnet20-cifar10-float" / "resnet20-12fca82f.th"
            if not src.exists():
                need_shared(str(src))
            fpath = zoo.resnet20_float_onnx(tmp, src)
            pp = {"input_scale": 1.0 / 255.0, "mean": zoo.IMAGENET_MEAN, "std": zoo.IMAGENET_STD}
        qpath = tmp / f"{name}_qdq_pc.onnx"
        zoo.ort_quantize(fpath, qpath, cifar[2], per_channel=True, **pp)
        cache[name] = (qpath, pp)
        return cache[name]

    return get


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
def test_top1_full_test_set(name, cifar, quantized):
    xt, yt, _ = cifar
    qpath, pp = quantized(name)
    net = load_model(qpath, **pp)
    pred = golden.predict(net, xt)
    top1 = 100.0 * float((pred == yt).mean())
    assert abs(top1 - FLOAT_TOP1[name]) <= 1.0, f"{name}: golden int8 top-1 {top1:.2f} % vs float {FLOAT_TOP1[name]} %"


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
def test_agrees_with_onnxruntime(name, cifar, quantized):
    """Float-scale criterion against ORT on the same quantized model: >= 99.9 % of the int8 logits identical, the
    rest within 1 LSB, top-1 identical on >= 99.9 % of 500 test images."""
    xt, _, _ = cifar
    px = xt[:500]
    qpath, pp = quantized(name)
    net = load_model(qpath, **pp)
    # compare the quantized logits tensor itself (ResNet-8's graph output is the Softmax of it)
    tname, is_float = R.layer_tensors(net, qpath)[net.output]
    out = R.run_ort(qpath, zoo.float_input(px, **pp), outputs=[tname])
    ref = out[next(iter(out))]  # graph output (probabilities or logits): top-1
    rec = R.to_int_nhwc(out[tname], net[net.output].out_q, is_float)
    q = golden.run(net, px)
    diff = np.abs(q - rec)
    eq = float((diff == 0).mean())
    top1 = float((golden.logits(net, q).argmax(1) == ref.argmax(1)).mean())
    info = f"{name}: {eq:.4f} of int8 logits identical, max |diff| {diff.max():.0f}, top-1 agreement {top1:.4f}"
    assert diff.max() <= 1 and eq >= 0.999 and top1 >= 0.999, info
