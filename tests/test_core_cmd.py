# amaranth: UnusedElaboratable=no
"""``rtlgen core NAME [--param value ...] -o FILE.v``: standalone Verilog for single cores, and its errors."""

import re

import numpy as np
import pytest
from click.testing import CliRunner

from rtlgen.cli import main
from rtlgen.cli.core import build_core
from rtlgen.cores.registry import CORES
from rtlgen.errors import OptionError


def _run(*args):
    return CliRunner().invoke(main, ["core", *[str(a) for a in args]])


def _modules(path):
    return re.findall(r"^module (\w+)", path.read_text(), re.M)


def test_fifo(tmp_path):
    out = tmp_path / "f.v"
    r = _run("fifo", "--depth", 64, "--lanes", 4, "-o", out)
    assert r.exit_code == 0, r.output
    assert "rtlgen_fifo" in _modules(out)
    assert "i__payload" in out.read_text() and "o__valid" in out.read_text()


def test_pool_avg_custom_name(tmp_path):
    out = tmp_path / "sub" / "p.v"
    r = _run("pool", "--mode", "avg", "--k=3", "--stride", 2, "--pad", 1, "--lanes", 4, "--no-signed", "--name",
             "my_pool", "-o", out)
    assert r.exit_code == 0, r.output
    assert "my_pool" in _modules(out)


def test_dense_weights_file(tmp_path):
    w = np.random.default_rng(0).integers(-128, 128, size=(10, 64))
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "d.v"
    r = _run("dense", "--c", 64, "--cout", 10, "--och-par", 3, "--ich-par", 5, "--weights", tmp_path / "w.npy", "-o", out)
    assert r.exit_code == 0, r.output
    assert "rtlgen_dense" in _modules(out)
    r = _run("dense", "--c", 32, "--cout", 10, "--weights", tmp_path / "w.npy", "-o", out)
    assert r.exit_code == 2 and "shape" in r.output


def test_conv_example(tmp_path):
    pytest.importorskip("rtlgen.cores.conv")
    out = tmp_path / "conv.v"
    r = _run("conv", "--k", 3, "--cin", 16, "--cout", 16, "--och-par", 8, "--pix-par", 2, "--packing", "-o", out)
    assert r.exit_code == 0, r.output
    assert "rtlgen_conv" in _modules(out)


@pytest.mark.parametrize(
    "args,msg",
    [
        (["nope", "-o", "x.v"], "unknown core 'nope'"),
        (["pool", "--bogus", "3", "-o", "x.v"], "unknown parameter --bogus"),
        (["pool", "--k", "x", "-o", "x.v"], "--k needs int"),
        (["pool", "--mode", "median", "-o", "x.v"], "must be one of max, avg"),
        (["pool", "--k", "3", "--pad", "5", "-o", "x.v"], "padding"),
        (["fifo", "--depth"], "needs a value"),
        (["fifo"], "missing -o"),
        ([], "missing core NAME"),
        (["dense", "-o", "x.v", "--sim-model", "m.v"], "--sim-model: only with --family ecp5"),
        (["dense", "--family", "virtex", "-o", "x.v"], "virtex"),
    ],
)
def test_errors(tmp_path, args, msg):
    r = CliRunner().invoke(main, ["core", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rtlgen: error:") and msg in lines[0], r.output


def test_ecp5_family_instantiates_registered_mult18x18d(tmp_path):
    """--family ecp5: every hard product a MULT18X18D with its input and output registers, and --sim-model writes
    the model (a module of that name); the default family instantiates nothing."""
    out, model, plain = tmp_path / "d.v", tmp_path / "m.v", tmp_path / "p.v"
    r = _run("dense", "--c", "16", "--cout", "4", "--ich-par", "4", "--och-par", "2", "--family", "ecp5",
             "--sim-model", str(model), "-o", str(out))
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.count("MULT18X18D #(") == 8 and text.count('.REG_OUTPUT_CLK("CLK0")') == 8
    assert "module MULT18X18D(" in model.read_text() and "module MULT18X18D" not in text
    r = _run("dense", "--c", "16", "--cout", "4", "--ich-par", "4", "--och-par", "2", "-o", str(plain))
    assert r.exit_code == 0 and "MULT18X18D" not in plain.read_text()


def test_list_and_help():
    r = _run("--list")
    assert r.exit_code == 0
    for name in ("fifo", "skid", "lanes", "pool", "dense", "argmax", "input", "add", "shortcut_a"):
        assert name in r.output
    r = _run("conv", "--help")
    assert r.exit_code == 0 and "--och-par" in r.output and "--no-packing" in r.output


def test_every_core_builds_with_defaults():
    import importlib.util

    for name in CORES:
        if name in ("conv", "linebuffer") and importlib.util.find_spec(f"rtlgen.cores.{name}") is None:
            continue  # the other engineer's cores, registered ahead of their arrival
        comp = build_core(name, [])
        assert comp.signature.members, name
    with pytest.raises(OptionError):
        build_core("pool", ["--lanes"])
