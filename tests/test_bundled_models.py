"""Bundled int8 models: structure, and full-test-set top-1 through the golden model equal to their model cards."""

import re
from pathlib import Path

import numpy as np
import pytest

from conftest import cifar_dir, need_shared
from rtlgen import golden, ir
from rtlgen.frontend import load_model
from rtlgen.models import HERE, available, resolve

EXPECTED = {"resnet8": (9, 1), "resnet20": (21, 1), "resnet20a": (19, 1)}  # convs, dense layers


def card_top1(name: str) -> float:
    text = (HERE / f"{name}.md").read_text()
    m = re.search(r"\*\*top-1 \(int8\)\*\*\s*\|\s*\*\*([0-9.]+) %\*\*", text)
    assert m, f"{name}.md has no '**top-1 (int8)** | **NN.NN %**' row"
    return float(m.group(1))


def test_bundled_set():
    assert {"resnet8", "resnet20"} <= set(available())


@pytest.mark.parametrize("name", available())
def test_structure(name):
    net = load_model(resolve(name))
    convs = [lay for lay in net.layers if isinstance(lay, ir.Conv)]
    dense = [lay for lay in net.layers if isinstance(lay, ir.Dense)]
    if name in EXPECTED:
        assert (len(convs), len(dense)) == EXPECTED[name]
    assert net.input.out_shape == (32, 32, 3)
    assert net[net.output].out_shape == (1, 1, 10)
    for lay in convs:
        assert lay.acc_bits <= 32
        assert np.all(np.abs(lay.weights) <= 127)  # int8, narrow range
    if net.source_format == "qonnx":  # rtlgen's own QAT/PTQ models: power-of-two scales, merged residual adds
        assert all(lay.requant.kind == "shift" for lay in convs)
        assert any(lay.residual is not None for lay in convs)


@pytest.mark.parametrize("name", available())
def test_top1_equals_model_card(name):
    d = cifar_dir()
    if d is None:
        need_shared("CIFAR-10")
    from rtlgen.data import load_test

    x, y = load_test(d)
    net = load_model(resolve(name))
    top1 = 100 * float(np.mean(golden.predict(net, x) == y))
    assert round(top1, 2) == card_top1(name), (name, top1)
