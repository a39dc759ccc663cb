"""``rtlgen report DIR [--synth] [--json]``: table, JSON and PNG for a small build; yosys resources on a tiny design.

The synth tests skip when yosys is missing, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtlgen.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(*args, env=None):
    r = CliRunner().invoke(main, [str(a) for a in args], env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    """A brevitas residual network planned for kv260 with ``rtlgen build --no-rtl`` (report needs no RTL)."""
    import zoo

    tmp = tmp_path_factory.mktemp("report")
    m = zoo.brevitas_resnet(tmp, "qonnx", seed=3, with_metadata=True)
    out = tmp / "build"
    code, so, se = _run("build", m.path, "--no-rtl", "--out", out)
    assert code == 0, se
    return out


def test_table_json_png(small_build):
    out = small_build
    rep = json.loads((out / "report.json").read_text())
    code, so, se = _run("report", out)
    assert code == 0, se
    lines = so.splitlines()
    assert f"{rep['cycles_per_frame']:,} cycles/frame" in lines[0] and rep["bottleneck"] in lines[0]
    for L in rep["layers"]:
        assert any(line.split()[:1] == [L["name"]] for line in lines), L["name"]
    bl = next(line for line in lines if line.startswith(rep["bottleneck"] + " "))
    assert "<- bottleneck" in bl and "100%" in bl
    png = out / "report.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000

    png.unlink()
    code, so, se = _run("report", out, "--json")
    assert code == 0, se
    j = json.loads(so)
    assert j["cycles_per_frame"] == rep["cycles_per_frame"] and j["bottleneck"] == rep["bottleneck"]
    assert [L["name"] for L in j["layers"]] == [L["name"] for L in rep["layers"]]
    for L, R in zip(j["layers"], rep["layers"]):
        assert L["cycles"] == R["cycles"] and L["dsp"] == R["dsp"] and L["skip_buffer_bits"] == R["skip_buffer_bits"]
        assert L["fifo_depth"] == R["fifo_depth"] and L["storage"] == R["storage"]
        assert (L["och_par"], L["ich_par"], L["pix_par"]) == tuple(R["parallelism"][k] for k in ("och_par", "ich_par", "pix_par"))
        assert 0 < L["utilization"] <= 1
    assert max(L["utilization"] for L in j["layers"]) == 1.0
    assert sum(L["bottleneck"] for L in j["layers"]) == 1
    assert "synth" not in j and j["chart"] == str(out / "report.png")
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_errors_are_one_line(small_build, tmp_path):
    code, so, se = _run("report", tmp_path / "nope")
    assert code == 2 and "does not exist" in se and len(se.strip().splitlines()) == 1
    code, so, se = _run("report", tmp_path)
    assert code == 2 and "no report.json" in se
    # --synth on a --no-rtl build: the RTL is missing
    code, so, se = _run("report", small_build, "--synth", "--no-chart")
    assert code == 2 and "--no-rtl" in se and len(se.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------------------------
# yosys on a tiny hand-written "build": one registered 16x16 multiplier (1 DSP48E2) and a 1024 x 32 memory (block RAM)

MUL_ENGINE_V = """
module rtlgen_top__mul__engine(input clk, input [15:0] a, input [15:0] b, output reg [31:0] p);
  reg [15:0] ar, br;
  always @(posedge clk) begin ar <= a; br <= b; p <= $signed(ar) * $signed(br); end
endmodule
"""
#: a 1024 x 32 RAM with registered read (one block RAM)
RAM_V = """
  reg [31:0] mem [0:1023];
  always @(posedge clk) begin
    if (we) mem[wa] <= wd;
    rd <= mem[ra];
  end
"""
TINY_V = MUL_ENGINE_V + """
module rtlgen_top(input clk, input rst, input [15:0] a, input [15:0] b, input we, input [9:0] wa, input [9:0] ra,
                  input [31:0] wd, output [31:0] p, output reg [31:0] rd);
  rtlgen_top__mul__engine engine(clk, a, b, p);""" + RAM_V + """endmodule
"""


def _tiny_build(path: Path, dsp_budget=1248, mult="dsp") -> Path:
    (path / "rtl").mkdir(parents=True)
    (path / "rtl" / "rtlgen_top.v").write_text(TINY_V)
    rep = {"model": "tiny", "board": "kv260", "clock_mhz": 250.0, "cycles_per_frame": 10, "bottleneck": "mul",
           "total_macs": 1, "resources": {"dsp": 1, "lut": 0, "ff": 64, "bram36": 1, "uram": 0},
           "budget": {"dsp": dsp_budget, "lut": 117120, "ff": 234240, "bram36": 144, "uram": 64}, "skip_buffer_bits": 0,
           "layers": [{"name": "mul", "op": "conv", "parallelism": {"och_par": 1, "ich_par": 1, "pix_par": 1},
                       "packing": False, "mult": mult, "cycles": 10, "dsp": 1, "lut": 0, "bram36": 1, "uram": 0,
                       "storage": "bram", "fifo_depth": 2, "skip_fifo_depth": 0, "skip_buffer_bits": 0, "macs": 1}]}
    (path / "report.json").write_text(json.dumps(rep))
    return path


def test_synth_without_yosys_is_a_clear_error(tmp_path):
    out = _tiny_build(tmp_path / "b")
    code, so, se = _run("report", out, "--synth", env={"RTLGEN_YOSYS": str(tmp_path / "no-yosys-here")})
    assert code == 2, (so, se)
    assert len(se.strip().splitlines()) == 1 and "apt-get install yosys" in se, se


@pytest.fixture
def need_yosys():
    from rtlgen.verify.synth import find_yosys

    if find_yosys() is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("yosys not found (required under CI=true): apt-get install yosys")
        pytest.skip("yosys not found (Debian: apt-get install yosys)")


def test_synth_tiny_design(tmp_path, need_yosys):
    out = _tiny_build(tmp_path / "b")
    code, so, se = _run("report", out, "--synth", "--json", "--no-chart")
    assert code == 0, se
    s = json.loads(so)["synth"]
    r = s["resources"]
    assert r["dsp48e2"] == 1, s
    assert r["ramb18"] + r["ramb36"] >= 1 and r["bram36_equiv"] == r["ramb36"] + r["ramb18"] / 2
    assert r["ff"] >= 32 and r["lut"] is not None and r["uram"] == 0
    assert s["fits"] is True and json.loads(so)["fits"] is True and s["over"] == [] and s["complete"]
    assert s["capacity"]["dsp48e2"] == 1248 and not s["cached"]
    # second run: cached; text output names the verdict
    code, so, se = _run("report", out, "--synth", "--no-chart")
    assert code == 0 and "DSP48E2 1/1,248" in so and "-> fits" in so and "cached" in so, so
    # a board without DSPs: does not fit
    shutil.rmtree(out)
    out = _tiny_build(tmp_path / "b", dsp_budget=0)
    code, so, se = _run("report", out, "--synth", "--json", "--no-chart")
    j = json.loads(so)
    assert code == 0 and j["fits"] is False and j["synth"]["over"] == ["dsp48e2"]
    # the same layer planned with LUT multipliers: yosys keeps the product out of DSPs -> fits
    shutil.rmtree(out)
    out = _tiny_build(tmp_path / "b", dsp_budget=0, mult="lut")
    code, so, se = _run("report", out, "--synth", "--json", "--no-chart")
    j = json.loads(so)
    assert code == 0 and j["fits"] is True and j["synth"]["resources"]["dsp48e2"] == 0, j["synth"]
    assert j["synth"]["lut_mult_modules"] == ["rtlgen_top__mul__engine"]
    assert j["synth"]["resources"]["lut"] > r["lut"] + 50  # the multiplier now costs LUTs


def test_lut_mult_modules_follow_the_plan():
    """Which modules' multipliers are kept out of DSPs: every module of a ``mult == "lut"`` conv/dense layer except
    its requant; a loop-merged projection's ``proj_*`` modules follow the projection layer (manifest ``merged``)."""
    from rtlgen.verify.synth import lut_mult_modules

    v = "\n".join(f"module {m}(input clk);\nendmodule" for m in (
        "rtlgen_top", "rtlgen_top__conv1", "rtlgen_top__conv1__engine", "rtlgen_top__conv1__engine__requant",
        "rtlgen_top__conv1__window", "rtlgen_top__conv1__proj_engine", "rtlgen_top__conv10__engine",
        "rtlgen_top__conv2__engine", "rtlgen_top__conv2__proj_engine", "rtlgen_top__dense0", "rtlgen_top__conv1_i_fifo"))
    rep = {"layers": [{"name": "conv1", "op": "conv", "mult": "lut"}, {"name": "conv2", "op": "conv", "mult": "dsp"},
                      {"name": "conv3", "op": "conv", "mult": "lut"}, {"name": "conv10", "op": "conv", "mult": "dsp"},
                      {"name": "conv11", "op": "conv", "mult": "dsp"}, {"name": "dense0", "op": "dense", "mult": "lut"}]}
    got = lut_mult_modules(v, rep, {"conv1": "conv11", "conv2": "conv3"})
    assert got == ["rtlgen_top__conv1", "rtlgen_top__conv1__engine", "rtlgen_top__conv1__window",
                   "rtlgen_top__conv2__proj_engine", "rtlgen_top__dense0"]


TINY_HIER_V = MUL_ENGINE_V + """
module rtlgen_top__mul(input clk, input [15:0] a, input [15:0] b, output [31:0] p);
  rtlgen_top__mul__engine engine(clk, a, b, p);
endmodule
module rtlgen_top__buf(input clk, input we, input [9:0] wa, input [9:0] ra, input [31:0] wd, output reg [31:0] rd);
""" + RAM_V + """endmodule
module rtlgen_top(input clk, input rst, input [15:0] a, input [15:0] b, input we, input [9:0] wa, input [9:0] ra,
                  input [31:0] wd, output [31:0] p, output reg [31:0] rd, output reg [31:0] q);
  wire [31:0] rdw;
  rtlgen_top__mul mul(clk, a, b, p);
  rtlgen_top__buf buf0(clk, we, wa, ra, wd, rdw);
  always @(posedge clk) begin rd <= rdw; q <= rdw + p; end  // the top's own glue: an adder and registers
endmodule
"""


def test_synth_per_module_adds_up_the_children(tmp_path, need_yosys):
    """``--synth-per-module``: every child of rtlgen_top out of context plus the top's glue with the children as
    black boxes; the sum equals the flat run on a design with nothing to optimise across modules, and reruns are
    cached module by module."""
    out = _tiny_build(tmp_path / "b")
    (out / "rtl" / "rtlgen_top.v").write_text(TINY_HIER_V)
    code, so, se = _run("report", out, "--synth", "--json", "--no-chart")
    assert code == 0, se
    flat = json.loads(so)["synth"]
    assert flat["mode"] == "flat"
    code, so, se = _run("report", out, "--synth", "--synth-per-module", "--json", "--no-chart")
    assert code == 0, se
    hier = json.loads(so)["synth"]
    assert hier["mode"] == "per-module" and not hier["cached"]
    assert set(hier["modules"]) == {"rtlgen_top__mul", "rtlgen_top__buf", "rtlgen_top (glue)"}
    assert hier["modules"]["rtlgen_top__mul"]["dsp48e2"] == 1 and hier["modules"]["rtlgen_top__buf"]["bram36_equiv"] == 1
    assert hier["modules"]["rtlgen_top (glue)"]["ff"] >= 64 and hier["modules"]["rtlgen_top (glue)"]["dsp48e2"] == 0
    for k in ("lut", "ff", "dsp48e2", "bram36_equiv", "uram"):
        assert hier["resources"][k] == sum(m[k] for m in hier["modules"].values()), k
    for k in ("dsp48e2", "bram36_equiv", "uram", "ff"):
        assert hier["resources"][k] == flat["resources"][k], (k, hier["resources"], flat["resources"])
    assert abs(hier["resources"]["lut"] - flat["resources"]["lut"]) <= 4, (hier["resources"], flat["resources"])
    assert hier["fits"] is True
    code, so, se = _run("report", out, "--synth", "--synth-per-module", "--no-chart")
    assert code == 0 and "cached" in so and "2 modules out of context + top glue" in so, so
    # --synth-stop cannot be combined with it: one-line error, exit 2
    code, so, se = _run("report", out, "--synth", "--synth-per-module", "--synth-stop", "map_ffram", "--no-chart")
    assert code == 2 and len(se.strip().splitlines()) == 1 and "--synth-per-module" in se, se
    # two yosys runs at once: the same figures (fresh cache)
    import shutil

    shutil.rmtree(out / "synth" / "layers")
    code, so, se = _run("report", out, "--synth", "--synth-per-module", "--synth-jobs", "2", "--json", "--no-chart")
    assert code == 0, se
    par = json.loads(so)["synth"]
    assert not par["cached"] and par["resources"] == hier["resources"] and par["modules"] == hier["modules"]
    assert list(par["modules"]) == list(hier["modules"])
    code, so, se = _run("report", out, "--synth", "--synth-jobs", "2", "--no-chart")
    assert code == 2 and "--synth-jobs needs --synth-per-module" in se, se


def test_module_blocks_and_sub_hierarchy():
    """The per-module runs give yosys only the child and what it instantiates (attributes kept with their module)."""
    from rtlgen.verify.synth import module_blocks, sub_hierarchy

    v = ('/* header */\n(* top =  1  *)\n(* generator = "Amaranth" *)\nmodule rtlgen_top(clk);\n  input clk;\n'
         '  rtlgen_top__a a (\n    .clk(clk)\n  );\nendmodule\n\n(* generator = "Amaranth" *)\n'
         'module rtlgen_top__a(clk);\n  input clk;\n  rtlgen_top__a__x \\x$1 (.clk(clk));\nendmodule\n'
         'module rtlgen_top__a__x(clk);\n  input clk;\nendmodule\nmodule rtlgen_top__b(clk);\n  input clk;\nendmodule\n')
    b = module_blocks(v)
    assert list(b) == ["rtlgen_top", "rtlgen_top__a", "rtlgen_top__a__x", "rtlgen_top__b"]
    assert b["rtlgen_top"].startswith("(* top =  1  *)\n(* generator") and b["rtlgen_top"].rstrip().endswith("endmodule")
    assert b["rtlgen_top__a"].startswith('(* generator = "Amaranth" *)\nmodule rtlgen_top__a(')
    assert sub_hierarchy(b, "rtlgen_top__a") == ["rtlgen_top__a", "rtlgen_top__a__x"]
    assert sub_hierarchy(b, "rtlgen_top") == ["rtlgen_top", "rtlgen_top__a", "rtlgen_top__a__x"]
    assert sub_hierarchy(b, "rtlgen_top__b") == ["rtlgen_top__b"]
