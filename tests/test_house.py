"""The repository's structural rules (tools/house.py; .ci/run runs them too): the import-linter contracts of
pyproject.toml (the pipeline's layers; no Amaranth in the IR, golden model and plan), no import cycle, no module over
800 lines."""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import house  # noqa: E402


def test_no_import_cycles():
    pytest.importorskip("grimp")
    assert house.import_cycles() == []


def test_every_rtlgen_import_names_a_module():
    assert house.unresolved_imports() == []


def test_unresolved_import_check_catches_a_moved_module(tmp_path):
    """A test file that still imports a module by its old path (``from rtlgen import regress`` after the move to
    ``rtlgen.verify.harness``) or a name its package does not bind is reported with its line."""
    probe = house.ROOT / "tests" / f"_house_probe_{tmp_path.name}.py"
    probe.write_text("from rtlgen import regress\nfrom rtlgen.verify import synth, nothere\nimport rtlgen.sim\n")
    try:
        found = house.unresolved_imports()
    finally:
        probe.unlink()
    rel = f"tests/{probe.name}"
    assert f"{rel}:1 rtlgen.regress" in found
    assert f"{rel}:2 rtlgen.verify.nothere" in found
    assert f"{rel}:3 rtlgen.sim" in found
    assert not any("rtlgen.verify.synth" in f for f in found)


def test_no_two_test_modules_share_a_name():
    assert house.clashing_test_names() == []


def test_no_module_over_800_lines():
    assert house.long_modules() == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed (dev extra)")
def test_import_contracts():
    rc, text = house.lint_imports()
    assert rc == 0, text
