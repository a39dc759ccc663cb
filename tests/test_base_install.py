"""The main job runs from a base install (``pip install -e .``, no extras): build, report, run, inspect (and the
simulation modules import) with the extras' packages made unimportable; the base dependencies hold none of them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnx

import badmodels

ROOT = Path(__file__).resolve().parent.parent
EXTRAS_ONLY = ("torch", "brevitas", "onnxruntime", "qonnx", "matplotlib", "onnxscript", "cocotbext", "pytest",
               "hypothesis", "onnxoptimizer")

_BLOCKER = """
import importlib.abc, sys
BLOCK = set(sys.argv[1].split(","))
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCK:
            raise ImportError(f"{name} is not in the base install", name=name)
sys.meta_path.insert(0, _Block())
for m in sys.argv[2].split(","):
    if m:
        __import__(m)
if len(sys.argv) > 3:
    from rtlgen.cli import main
    sys.argv = ["rtlgen", *sys.argv[3:]]
    main()
"""


def _base(cwd, *args, imports=()):
    blocked = ",".join(p for p in EXTRAS_ONLY if p != "pytest")  # pytest may be what runs us; rtlgen never imports it
    return subprocess.run([sys.executable, "-c", _BLOCKER, blocked, ",".join(imports), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_base_dependencies_hold_no_extra():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for d in deps}
    assert not names & set(EXTRAS_ONLY), names & set(EXTRAS_ONLY)


def test_main_job_commands_without_extras(tmp_path):
    src = tmp_path / "small.onnx"
    onnx.save(badmodels.G().good(), str(src))
    r = _base(tmp_path, imports=["rtlgen.verify.sim", "rtlgen.verify.runner", "rtlgen.verify.harness", "rtlgen.verify.bench", "rtlgen.verify.tb",
                                 "rtlgen.verify.synth", "rtlgen.cli.report", "rtlgen.userdata", "rtlgen.boards"])
    assert r.returncode == 0, r.stderr
    for args in (("inspect", src), ("build", src, "--board", "kv260", "--out", tmp_path / "b"),
                 ("report", tmp_path / "b")):
        r = _base(tmp_path, *args)
        assert r.returncode == 0, f"rtlgen {' '.join(map(str, args))}: {r.stderr[-2000:]}"
    assert (tmp_path / "b" / "rtl" / "rtlgen_top.v").exists()
    np.save(tmp_path / "x.npy", np.zeros((2, 3, 8, 8), np.float32))
    r = _base(tmp_path, "run", src, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "y.npy").shape == (2, 10)
