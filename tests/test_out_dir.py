"""``--out`` never deletes what rtlgen did not write (rtlgen/outdir.py).

Scenarios: the current folder, a folder above it, ``$HOME``, ``/``, a non-empty foreign folder, a symlink to one, an
earlier build with a user's file added, an earlier build with rtlgen's own derived folders (replaced), an empty
folder (used), a failed build over an earlier one (old build intact), and ``rtlgen core -o`` over a user's file.
Every refusal: exit 2, one line naming ``--out``, nothing touched, no temporary folder left.
"""

from __future__ import annotations

import json
import os

import onnx
import pytest
from click.testing import CliRunner

import badmodels as B
from rtlgen.cli import main
from rtlgen.outdir import MARKER, foreign_entries, read_marker


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_refused(r, *needles):
    assert r.exc_info is None or r.exc_info[0] is SystemExit, f"exception escaped: {r.exception!r}"
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for n in ("--out", *needles):
        assert n in lines[0], (n, lines[0])


def user_files(folder):
    """A user's folder: a note and a Verilog file in a sub-folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "keep.txt").write_text("mine")
    (folder / "sub").mkdir()
    (folder / "sub" / "my.v").write_text("module my; endmodule\n")
    return folder


def intact(folder):
    assert (folder / "keep.txt").read_text() == "mine"
    assert (folder / "sub" / "my.v").read_text() == "module my; endmodule\n"


def no_tmp_left(parent):
    left = [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert not left, left


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "good.onnx"
    onnx.save(B.G().good(), str(p))
    return p


def build(model, out, *extra):
    return cli("build", model, "--board", "kv260", "--out", out, "--no-rtl", *extra)


def test_current_folder_is_refused(model, tmp_path, monkeypatch):
    user_files(tmp_path / "proj")
    monkeypatch.chdir(tmp_path / "proj")
    assert_refused(build(model, "."), "current folder")
    intact(tmp_path / "proj")
    assert not list((tmp_path).glob(".proj.tmp-*")) and not list((tmp_path / "proj").glob(".*tmp-*"))


def test_folder_above_the_current_one_is_refused(model, tmp_path, monkeypatch):
    user_files(tmp_path / "proj")
    (tmp_path / "proj" / "deep").mkdir()
    monkeypatch.chdir(tmp_path / "proj" / "deep")
    assert_refused(build(model, ".."), "above")
    assert_refused(build(model, tmp_path / "proj"), "above")
    intact(tmp_path / "proj")


def test_home_and_root_are_refused(model, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()  # empty: refused all the same
    monkeypatch.setenv("HOME", str(home))
    assert_refused(build(model, home), "home folder")
    assert_refused(build(model, "~"), "home folder")
    assert_refused(build(model, "/"), "root folder")
    assert list(home.iterdir()) == []


def test_non_empty_foreign_folder_is_refused(model, tmp_path):
    out = user_files(tmp_path / "mine")
    assert_refused(build(model, out), "not an rtlgen build")
    intact(out)
    no_tmp_left(tmp_path)


def test_symlink_to_a_foreign_folder_is_refused(model, tmp_path):
    target = user_files(tmp_path / "mine")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    assert_refused(build(model, link), "not an rtlgen build")
    intact(target)
    assert link.is_symlink()


def test_empty_folder_is_used(model, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    r = build(model, out)
    assert r.exit_code == 0, r.output
    assert (out / "plan.json").exists() and read_marker(out) is not None
    assert foreign_entries(out) == []


def test_earlier_build_is_replaced_atomically(model, tmp_path):
    out = tmp_path / "b"
    assert build(model, out).exit_code == 0
    first = json.loads((out / MARKER).read_text())
    assert "plan.json" in first["entries"] and MARKER in first["entries"]
    # rtlgen's own derived outputs (sim, synth, chart) do not block a rebuild
    (out / "sim_build" / "harness").mkdir(parents=True)
    (out / "sim_build" / "harness" / "Vtop").write_text("x")
    (out / "report.png").write_bytes(b"png")
    (out / "plan.json").write_text("{}")  # edited by the user, as README invites: rtlgen wrote it
    r = build(model, out)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "plan.json").read_text())["layers"]
    assert not (out / "sim_build").exists() and not (out / "report.png").exists()
    no_tmp_left(tmp_path)


def test_rebuild_keeps_the_yosys_caches(model, tmp_path):
    """synth/ and timing/ are keyed by each module's Verilog and script: a rebuild hands them to the new build."""
    out = tmp_path / "b"
    assert build(model, out).exit_code == 0
    for cache in ("synth/layers/m.json", "timing/m.netlist.key"):
        (out / cache).parent.mkdir(parents=True, exist_ok=True)
        (out / cache).write_text("cached")
    r = build(model, out)
    assert r.exit_code == 0, r.output
    assert (out / "synth/layers/m.json").read_text() == "cached" and (out / "timing/m.netlist.key").read_text() == "cached"
    assert "synth/" not in read_marker(out)["entries"]  # still derived, not the build's own
    no_tmp_left(tmp_path)


def test_earlier_build_with_a_users_file_is_refused(model, tmp_path):
    out = tmp_path / "b"
    assert build(model, out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    (out / "rtl").mkdir(exist_ok=True)
    (out / "rtl" / "patch.v").write_text("mine")
    assert_refused(build(model, out), "notes.txt", "2 more", "did not write")
    assert (out / "notes.txt").read_text() == "mine" and (out / "rtl" / "patch.v").read_text() == "mine"
    assert (out / "plan.json").exists()


def test_failed_build_leaves_the_earlier_build(model, tmp_path):
    out = tmp_path / "b"
    assert build(model, out).exit_code == 0
    before = (out / "plan.json").read_text()
    r = cli("build", model, "--board", "generic", "--budget", "dsp=1,lut=10", "--out", out)
    assert r.exit_code == 2
    assert (out / "plan.json").read_text() == before and read_marker(out) is not None
    no_tmp_left(tmp_path)


def test_existing_file_is_refused(model, tmp_path):
    f = tmp_path / "out"
    f.write_text("precious")
    assert_refused(build(model, f), "existing file")
    assert f.read_text() == "precious"


def test_core_output_never_overwrites_a_users_file(tmp_path):
    f = tmp_path / "mine.v"
    f.write_text("module mine; endmodule\n")
    r = cli("core", "fifo", "--width", "8", "--depth", "4", "-o", f)
    assert r.exit_code == 2, r.output
    assert "refusing to overwrite" in r.stderr and f.read_text() == "module mine; endmodule\n"
    g = tmp_path / "ours.v"
    assert cli("core", "fifo", "--width", "8", "--depth", "4", "-o", g).exit_code == 0
    assert cli("core", "fifo", "--width", "8", "--depth", "8", "-o", g).exit_code == 0  # rtlgen's own: replaced
    assert "depth 8" in g.read_text().splitlines()[0] or "8" in g.read_text().splitlines()[0]


def test_cli_checks_out_before_loading_the_model(tmp_path, monkeypatch):
    """The refusal comes first, even for a model that does not exist (no work is done, nothing written)."""
    out = user_files(tmp_path / "mine")
    assert_refused(cli("build", tmp_path / "missing.onnx", "--out", out), "not an rtlgen build")
    intact(out)
    assert os.listdir(tmp_path) == ["mine"]
