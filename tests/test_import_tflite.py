"""TFLite-converter-style graph: int8 NHWC graph input -> DequantizeLinear -> Transpose -> QDQ convs -> ... ->
MatMul + Add dense -> QuantizeLinear/DequantizeLinear -> Softmax (built with onnx.helper; see zoo.tflite_style).

The quantized logits (``logits_q``, int8, before the Softmax) are compared with the golden output integers with
the float-scale criterion (>= 99.9 % identical, rest within 1 LSB); top-1 of the Softmax output vs golden predict.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference as R
import zoo
from rtlgen import golden, ir
from rtlgen.frontend import load_model


@pytest.fixture(scope="module")
def tfl(zoo_dir):
    zm = zoo.tflite_style(zoo_dir, seed=0)
    net = load_model(zm.path, **zm.preprocess)
    return zm, net


def _int8_input(pixels):
    return (pixels.astype(np.int16) - 128).astype(np.int8)  # input scale 1, zero point -128, NHWC


def test_input_stage_is_pixel_minus_128(tfl):
    zm, net = tfl
    inp = net.input
    assert inp.layout == "NHWC"
    assert inp.out_q.signed and inp.out_q.zero_point == -128 and inp.out_q.scale == 1.0
    np.testing.assert_array_equal(inp.table, np.tile(np.arange(256) - 128, (3, 1)))


def test_structure(tfl):
    zm, net = tfl
    assert net.softmax, "the trailing Softmax must be recorded as dropped"
    kinds = [lay.kind for lay in net.layers]
    assert kinds.count("conv") == 3
    assert isinstance(net[net.output], ir.Dense) and net[net.output].out_q is not None
    assert net[net.output].out_q.zero_point == zm.meta["act_q"]["logits"][1]


def test_logits_and_top1(tfl, sample_pixels):
    zm, net = tfl
    ref = R.run_ort(zm.path, _int8_input(sample_pixels), outputs=["logits_q"])
    ref_q = ref["logits_q"].astype(np.int64)
    probs = ref["StatefulPartitionedCall:0"]
    q = golden.run(net, sample_pixels)
    diff = np.abs(q - ref_q)
    eq = float((diff == 0).mean())
    info = f"{eq:.5f} identical of {diff.size}, max diff {diff.max()}, first {np.argwhere(diff > 0)[:1].tolist()}"
    assert diff.max() <= 1, info
    assert eq >= 0.999, info
    pred = golden.predict(net, sample_pixels)
    assert float((pred == probs.argmax(1)).mean()) >= 0.999


def test_layers_isolated(tfl, sample_pixels):
    zm, net = tfl
    px = sample_pixels[:256]
    tens = R.layer_tensors(net, zm.path)
    assert len(tens) >= len(net.layers) - 2, (tens, [lay.name for lay in net.layers])  # all but the input stage
    ref = R.run_ort(zm.path, _int8_input(px), outputs=[t for t, _ in tens.values()])
    res = R.isolated_layers(net, zm.path, ref, px)
    bad = R.float_scale_layer_failures(res, 0.999, 1)  # exact rounding ties excluded from the identical-count
    assert not bad, f"{bad}; {R.ties_summary(res)}"
