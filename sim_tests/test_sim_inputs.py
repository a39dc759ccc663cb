"""``rtlgen sim DIR --inputs X.npy`` end to end: a user's graph-form float inputs (mapping exactly onto pixels) and
NCHW uint8 pixels through the RTL, every frame checked against the golden model; the golden model on those pixels is
what ``rtlgen run`` writes for the same graph-form inputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import badmodels  # noqa: E402

from rtlgen import golden  # noqa: E402
from rtlgen.cli import main  # noqa: E402
from rtlgen.verify.sim import load_design  # noqa: E402


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_sim_inputs_graph_form_and_pixels(tmp_path):
    src = tmp_path / "small.onnx"
    onnx.save(badmodels.G().good(), str(src))
    out = tmp_path / "b"
    # preprocessing whose table reaches many codes: pixel/8 - 16 at scale 1/32 -> codes -128..127 (clamped)
    r = cli("build", src, "--board", "generic", "--budget", "dsp=300,lut=40000,bram36=20", "--out", out,
            "--input-scale", 0.125, "--mean", 16)
    assert r.exit_code == 0, r.output
    net, _, _ = load_design(out)
    px = np.random.default_rng(3).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    x = (px.astype(np.float32) * np.float32(0.125) - np.float32(16)) / np.float32(1)
    np.save(tmp_path / "x.npy", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # the graph's float32 NCHW form
    r = cli("sim", out, "--inputs", tmp_path / "x.npy", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["images"] == 4 and res["mismatches"] == 0
    # rtlgen run on the same floats: the golden model on the pixels the RTL was fed
    r = cli("run", src, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), golden.run(net, px))
    # NCHW uint8 pixels
    np.save(tmp_path / "p.npy", np.ascontiguousarray(px.transpose(0, 3, 1, 2)))
    r = cli("sim", out, "--inputs", tmp_path / "p.npy", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["mismatches"] == 0
