"""The float reference models in ../shared/models quantized with onnxruntime inside the test (QDQ, per-channel,
MinMax calibration on 300 CIFAR-10 training images).

* Issue 3's criterion: golden ``predict`` top-1 on the full 10,000-image test set within 1.0 point of the float
  figure in ../shared/README.md. ResNet-8 runs it by default. ResNet-20's full-set run costs ~60 s of golden model
  on an idle 2-core machine (4+ minutes when the machine is shared), so it is opt-in (``--runslow``); by default
  ResNet-20 runs on the first 2,000 test images against the *float model's own top-1 on the same images* (ORT on the
  float ONNX), a like-for-like comparison that does not suffer the subset's sampling noise (+-0.6 points).
* Agreement with ONNX Runtime on the same quantized model: top-1 identical on >= 99.5 % of the images, and every
  quantized logit within ``LOGIT_MAX_DIFF`` LSB of ORT's. Not the per-value 99.9 % of the small zoo models: both
  networks end in an 8x8 average pool whose exact means are ties k + 1/2 on ~1.5 % of the outputs (and ResNet-20's
  residual Adds have exact ties too), which ORT's float32 arithmetic resolves either way; each flip moves all ten
  logits of that image (see tests/test_import_ort.py). The per-layer check with ties excluded lives in
  ``test_layers_isolated_resnet20``.

  Reference chosen by measurement (10,000 test images, onnxruntime 1.32, single thread): ORT *with* its default
  graph optimizations (fused QLinearConv / QLinearAveragePool / QGemm where ORT fuses) is the more faithful one:

  ==========  ===============  ====================  ==============  =============
  model       ORT              top-1 agreement       logits equal    max |diff|
  ==========  ===============  ====================  ==============  =============
  ResNet-8    optimized        99.98 % (2 images)    97.5 %          6 LSB
  ResNet-8    node by node     99.85 % (15 images)   86.1 %          6 LSB
  ResNet-20   optimized        99.61 % (39 images)   59.0 %          4 LSB
  ResNet-20   node by node     99.60 % (40 images)   58.5 %          4 LSB
  ==========  ===============  ====================  ==============  =============

  ResNet-20 gains little because ORT leaves its residual Adds and 10 of its 19 convs unfused (float32); its residual
  Adds produce exact ties that ORT rounds away from the half-to-even result almost every time (per layer, add4: 941 of
  953 ties differ on 256 images), ~4 flips per image, hence only ~59 % identical logits. On the default 2,000 images
  ResNet-20 agrees on 99.55 % (9 images; the 99.5 % bound allows 10), node-by-node ORT on 99.60 %.

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
from rtlgen.frontend import load_model

FLOAT_TOP1 = {"resnet8": 87.19, "resnet20": 91.73}  # ../shared/README.md, full test set
CALIB_IMAGES = 300
SUBSET = 2000  # ResNet-20's default (non-slow) image count
MIN_TOP1_AGREEMENT = 0.995
LOGIT_MAX_DIFF = {"resnet8": 8, "resnet20": 6}  # LSB; measured max 6 / 4 on 10,000 images (+2 for other CPUs' MLAS kernels)


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
    """name -> (quantized model path, preprocessing, float model path), built lazily."""
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
        cache[name] = (qpath, pp, fpath)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def golden_outputs(cifar, quantized):
    """(name, images) -> golden output integers of the first ``images`` test images (computed once per module)."""
    cache = {}

    def get(name, n):
        key = (name, n)
        if key not in cache:
            full = next((v for (nm, k), v in cache.items() if nm == name and k >= n), None)
            if full is not None:
                cache[key] = full[:n]
            else:
                qpath, pp, _ = quantized(name)
                net = load_model(qpath, **pp)
                cache[key] = np.concatenate([golden.run(net, cifar[0][i : min(i + 500, n)]) for i in range(0, n, 500)])
        return cache[key]

    return get


def _net(quantized, name):
    qpath, pp, _ = quantized(name)
    return load_model(qpath, **pp)


def _golden_top1(name, n, cifar, quantized, golden_outputs):
    net = _net(quantized, name)
    pred = golden.logits(net, golden_outputs(name, n)).argmax(1)
    return 100.0 * float((pred == cifar[1][:n]).mean())


def test_top1_full_test_set_resnet8(cifar, quantized, golden_outputs):
    top1 = _golden_top1("resnet8", 10000, cifar, quantized, golden_outputs)
    assert abs(top1 - FLOAT_TOP1["resnet8"]) <= 1.0, f"resnet8: golden int8 top-1 {top1:.2f} % vs float {FLOAT_TOP1['resnet8']} %"


@pytest.mark.slow
def test_top1_full_test_set_resnet20(cifar, quantized, golden_outputs):
    """Issue 3's criterion on the full test set (opt-in: --runslow)."""
    top1 = _golden_top1("resnet20", 10000, cifar, quantized, golden_outputs)
    assert abs(top1 - FLOAT_TOP1["resnet20"]) <= 1.0, f"resnet20: golden int8 top-1 {top1:.2f} % vs float {FLOAT_TOP1['resnet20']} %"


def test_top1_subset_resnet20(cifar, quantized, golden_outputs):
    """Default-run stand-in: int8 golden top-1 within 1.0 point of the float model's top-1 on the same 2,000 images."""
    _, pp, fpath = quantized("resnet20")
    x = zoo.float_input(cifar[0][:SUBSET], **pp)
    float_top1 = 100.0 * float((R.ort_output(fpath, x).argmax(1) == cifar[1][:SUBSET]).mean())
    top1 = _golden_top1("resnet20", SUBSET, cifar, quantized, golden_outputs)
    assert abs(top1 - float_top1) <= 1.0, f"resnet20, {SUBSET} images: golden int8 top-1 {top1:.2f} % vs float {float_top1:.2f} %"


@pytest.mark.parametrize("name,images", [("resnet8", 10000), ("resnet20", SUBSET),
                                         pytest.param("resnet20", 10000, marks=pytest.mark.slow)])
def test_agrees_with_onnxruntime(name, images, cifar, quantized, golden_outputs):
    """Golden vs ORT (graph optimizations on) on the same quantized model: top-1 identical on >= 99.5 % of the images,
    every quantized logit within LOGIT_MAX_DIFF LSB (the images are those of the top-1 tests: golden outputs reused)."""
    qpath, pp, _ = quantized(name)
    net = _net(quantized, name)
    px = cifar[0][:images]
    # the quantized logits tensor itself (ResNet-8's graph output is the Softmax of it); fetching it keeps it unfused
    tname, is_float = R.layer_tensors(net, qpath)[net.output]
    out = R.run_ort(qpath, zoo.float_input(px, **pp), outputs=[tname], optimize=True)
    rec = R.to_int_nhwc(out[tname], net[net.output].out_q, is_float)
    q = golden_outputs(name, images)
    diff = np.abs(q - rec)
    eq = float((diff == 0).mean())
    top1 = float((golden.logits(net, q).argmax(1) == rec.argmax(1)).mean())
    info = (f"{name}, {images} images: {eq:.4f} of the int8 logits identical, max |diff| {diff.max():.0f}, "
            f"top-1 agreement {top1:.4f}")
    assert top1 >= MIN_TOP1_AGREEMENT, info
    assert diff.max() <= LOGIT_MAX_DIFF[name], info


def test_layers_isolated_resnet20(cifar, quantized):
    """Per-layer float-scale criterion (issue 3's) on a real network: every golden layer fed (unfused) ORT's own
    input integers, >= 99.9 % identical outside exact rounding ties, all within 1 LSB (256 test images)."""
    qpath, pp, _ = quantized("resnet20")
    net = _net(quantized, "resnet20")
    px = cifar[0][:256]
    tens = R.layer_tensors(net, qpath)
    ref = R.run_ort(qpath, zoo.float_input(px, **pp), outputs=[t for t, _ in tens.values()])
    res = R.isolated_layers(net, qpath, ref, px)
    mapped = {lay.name for lay in net.layers if lay.out_q is not None and lay.kind != "shortcut_a"}
    assert mapped <= set(res), f"layers not compared: {mapped - set(res)}"
    bad = R.float_scale_layer_failures(res, 0.999, 1)
    assert not bad, f"{bad}; {R.ties_summary(res)}"
