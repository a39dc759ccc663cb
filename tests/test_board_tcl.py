"""Vivado/PYNQ files of ``rtlgen.boards.emit`` without Vivado: Tcl parsed and run under stubs by ``tclsh``, file
references, the IP port list vs the Verilog, the driver's ``--help`` without ``pynq``, README register tables.

The network is the bundled ResNet20 (import + plan only, ~2 s); ``rtl/rtlgen_top.v`` (the network RTL, which
``Design.build`` writes before ``emit``) is replaced by a one-module placeholder here; ``sim_tests/test_board.py``
runs the same checks on a real build.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtlgen.boards import BOARDS, emit, port_table_md, register_table_md
from rtlgen.boards import tclcheck
from rtlgen.boards.top import port_list

pytestmark = pytest.mark.skipif(tclcheck.tclsh() is None, reason="tclsh not installed")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def net_plan():
    from rtlgen.flow import Design
    from rtlgen.emit.compose import RtlgenTop

    d = Design.load("resnet20", board="kv260")
    _no_uram(d)
    plan = d.plan_
    return d.net, plan, RtlgenTop(d.net, plan).manifest()


def _no_uram(d):
    """The plain (no weight port) variant: weights the planner put in URAM go to LUTs instead."""
    for lp in d.plan().layers:
        if lp.storage == "uram":
            d.set_layer(lp.name, storage="lut")


def _emit(tmp, net_plan, board, clock=200.0, width=64):
    net, plan, man = net_plan
    d = Path(tmp) / f"{board}_{width}"
    (d / "rtl").mkdir(parents=True)
    (d / "rtl" / "rtlgen_top.v").write_text("// placeholder for the network RTL\nmodule rtlgen_top(); endmodule\n")
    cfg = emit(d, net, plan, board, clock, man, tdata_width=width)
    return d, cfg


@pytest.mark.parametrize("board,width", [("kv260", 64), ("ultra96v2", 32), ("kv260", 128)])
def test_tcl_parses_runs_and_references_existing_files(tmp_path, net_plan, board, width):
    d, _ = _emit(tmp_path, net_plan, board, width=width)
    assert sorted(p.name for p in (d / "vivado").iterdir()) == sorted(
        ["build.tcl", "package_ip.tcl", f"rtlgen_{board}.xdc", "README.md"])
    assert tclcheck.check_design_dir(d) == []


def test_tcl_port_list_matches_verilog(tmp_path, net_plan):
    d, _ = _emit(tmp_path, net_plan, "kv260", width=128)
    vports = tclcheck.verilog_ports(d / "rtl" / "rtlgen_axi_top.v")
    assert sorted(vports) == sorted(port_list(128))
    r = tclcheck.run_stubbed(d / "vivado" / "package_ip.tcl", vports)
    assert r["error"] is None
    tports = [tuple(e.split()) for e in r["vars"]["rtlgen_ports"]]
    assert sorted((n, di, int(w)) for n, di, w in tports) == sorted(vports)
    # the script's own check (ipx::get_ports vs rtlgen_ports) fires when the Verilog lacks a port
    r = tclcheck.run_stubbed(d / "vivado" / "package_ip.tcl", [p for p in vports if p[0] != "s_axis_tlast"])
    assert r["error"] and "s_axis_tlast" in r["error"]


def test_checker_catches_mismatch_and_missing_file(tmp_path, net_plan):
    d, _ = _emit(tmp_path, net_plan, "ultra96v2")
    v = d / "rtl" / "rtlgen_axi_top.v"
    v.write_text(v.read_text().replace("m_axis_tlast", "m_axis_tlast_x"))
    assert any("rtlgen_ports" in p or "m_axis_tlast" in p for p in tclcheck.check_design_dir(d))
    d2, _ = _emit(tmp_path / "b", net_plan, "ultra96v2")
    (d2 / "rtl" / "rtlgen_top.v").unlink()
    assert any("rtlgen_top.v" in p for p in tclcheck.check_design_dir(d2))
    bad = d2 / "vivado" / "build.tcl"
    bad.write_text(bad.read_text() + "\nif {1} {\n")
    assert any("not a complete Tcl script" in p for p in tclcheck.check_design_dir(d2))


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_build_tcl_targets_part_clock_and_block_design(tmp_path, net_plan, board):
    d, cfg = _emit(tmp_path, net_plan, board, clock=187.5)
    vports = tclcheck.verilog_ports(d / "rtl" / "rtlgen_axi_top.v")
    for with_board in (False, True):
        r = tclcheck.run_stubbed(d / "vivado" / "build.tcl", vports, board_parts=with_board)
        assert r["error"] is None, r["error"]
        log = r["log"]
        cmds = [e[0] for e in log]
        projects = [e for e in log if e[0] == "create_project"]
        assert projects[-1][-1] == BOARDS[board]["part"] and projects[-1][-2] == "-part"
        assert "ipx::package_project" in cmds and "ipx::save_core" in cmds
        assert any(e[0] == "set_property" and "board_part" in e for e in log) == with_board
        ps_cfg = next(e for e in log if e[0] == "set_property" and e[1] == "-dict" and "PSU__USE__M_AXI_GP0" in e[2])
        assert "CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ 187.5" in ps_cfg[2]
        cells = {e[-1] for e in log if e[0] == "create_bd_cell"}
        assert cells == {"zynq_ultra_ps_e_0", "rtlgen_0", "axi_dma_0", "axi_ctrl_ic", "axi_mem_ic", "proc_sys_reset_0",
                         "irq_concat"}
        dma = next(e for e in log if e[0] == "set_property" and "c_include_sg" in e[2])
        assert "CONFIG.c_include_sg 0" in dma[2] and "CONFIG.c_m_axis_mm2s_tdata_width 64" in dma[2]
        intf = {(e[1], e[2]) for e in log if e[0] == "connect_bd_intf_net"}
        assert any("M_AXIS_MM2S" in a and "rtlgen_0/s_axis" in b for a, b in intf)
        assert any("rtlgen_0/m_axis" in a and "S_AXIS_S2MM" in b for a, b in intf)
        assert any("M_AXI_HPM0_FPD" in a for a, b in intf) and any("S_AXI_HP0_FPD" in b for a, b in intf)
        for step in ("validate_bd_design", "make_wrapper", "launch_runs", "write_bitstream", "report_utilization",
                     "report_timing_summary", "write_hw_platform"):
            assert step in cmds, step
        bit = next(e for e in log if e[0] == "write_bitstream")[-1]
        assert bit.endswith("vivado/out/rtlgen.bit")
        hwh = next(e for e in log if e[0] == "file" and e[1] == "copy")[-1]
        assert hwh.endswith("vivado/out/rtlgen.hwh")


def test_driver_help_without_pynq(tmp_path, net_plan):
    d, cfg = _emit(tmp_path, net_plan, "kv260")
    assert importlib.util.find_spec("pynq") is None, "pynq is installed here: this test wants it absent"
    r = subprocess.run([sys.executable, str(d / "driver" / "driver.py"), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    for opt in ("--dataset", "--batch", "--limit", "--bitfile", "--clock-mhz", cfg["build_hash"]):
        assert opt in r.stdout, opt
    r = subprocess.run([sys.executable, str(d / "driver" / "driver.py"), "--dataset", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "pynq" in r.stderr


def test_driver_config_and_record_decoding(tmp_path, net_plan):
    d, cfg = _emit(tmp_path, net_plan, "ultra96v2", width=32)
    j = json.loads((d / "driver" / "rtlgen_board.json").read_text())
    assert j == cfg
    assert j["frame_bytes"] == 3072 and j["record_words"] == j["values"] + 1 and j["tdata_width"] == 32
    assert j["registers"]["BUILD_HASH"] == 0x34 and j["part"] == "xczu3eg-sbva484-1-i"
    spec = importlib.util.spec_from_file_location("rtlgen_driver", d / "driver" / "driver.py")
    drv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drv)
    V = j["values"]
    vals = np.arange(-5, -5 + 2 * V).reshape(2, V)
    words = np.zeros((2, V + 1), dtype=np.uint32)
    words[:, :V] = vals.astype(np.int64) & 0xFFFFFFFF
    words[0, V] = 7 | (0 << 16)
    words[1, V] = 3 | (1 << 16) | (1 << 31)
    v, cls, fno, pad = drv.decode_records(words.reshape(-1), V)
    assert v.tolist() == vals.tolist() and cls.tolist() == [7, 3] and fno.tolist() == [0, 1] and pad.tolist() == [0, 1]
    assert j["argmax_is_top1"] and len(j["output_scale"]) == V  # ResNet20: one scale for every class
    # per-class scales: the driver ranks the dequantized values, not the raw integers
    q = np.array([[10, 20, 15] + [0] * (V - 3)])
    cfg2 = dict(j, output_scale=[1.0, 0.25, 1.0] + [1.0] * (V - 3), output_zero_point=0, argmax_is_top1=False)
    assert drv.top1_from_values(q, cfg2).tolist() == [2] and int(np.argmax(q)) == 1


def test_verilog_and_readmes(tmp_path, net_plan):
    d, cfg = _emit(tmp_path, net_plan, "kv260")
    v = (d / "rtl" / "rtlgen_axi_top.v").read_text()
    assert "rtlgen_top rtlgen_top_i" in v and "\\" not in v
    assert f"32'd{int(cfg['build_hash'], 16)}" in v or f"32'h{int(cfg['build_hash'], 16):x}" in v.lower()
    readme = (d / "vivado" / "README.md").read_text()
    assert register_table_md() in readme and "Vivado 2022.2" in readme and "never been" in readme
    assert "vivado -mode batch -source DIR/vivado/build.tcl" in readme
    assert "@@" not in readme + (d / "driver" / "README.md").read_text()
    boards_readme = (ROOT / "boards" / "README.md").read_text()
    assert register_table_md() in boards_readme, "boards/README.md register table out of date"
    assert port_table_md() in boards_readme, "boards/README.md port table out of date"


def test_emit_rejects_unknown_board_and_width(tmp_path, net_plan):
    from rtlgen.errors import OptionError

    net, plan, man = net_plan
    with pytest.raises(OptionError, match="no Vivado flow"):
        emit(tmp_path, net, plan, "zcu104", 200.0, man)
    with pytest.raises(OptionError, match="TDATA"):
        emit(tmp_path, net, plan, "kv260", 200.0, man, tdata_width=48)


# ---- URAM weights: second AXI4-Stream slave, weight DMA, driver image -----------------------------------------------


@pytest.fixture(scope="module")
def net_plan_uram():
    from rtlgen.flow import Design
    from rtlgen.emit.compose import RtlgenTop

    d = Design.load("resnet20", board="kv260")
    _no_uram(d)
    d.set_layer("conv1", storage="uram")
    d.set_layer("dense0", storage="uram")
    return d.net, d.plan_, RtlgenTop(d.net, d.plan_).manifest()


def test_uram_build_weight_port_dma_and_driver(tmp_path, net_plan_uram):
    net, plan, man = net_plan_uram
    w = man["weights"]
    assert [s["layer"] for s in w["segments"]] == ["conv1", "dense0"]
    d = tmp_path / "kv260_uram"
    (d / "rtl").mkdir(parents=True)
    (d / "rtl" / "rtlgen_top.v").write_text("// placeholder for the network RTL\nmodule rtlgen_top(); endmodule\n")
    from rtlgen.errors import OptionError

    with pytest.raises(OptionError, match="weight image"):
        emit(d, net, plan, "kv260", 250.0, man, tdata_width=64)
    (d / "weights").mkdir()
    (d / "weights" / "weights.bin").write_bytes(bytes(range(256)) * (w["bytes"] // 256) + bytes(w["bytes"] % 256))
    cfg = emit(d, net, plan, "kv260", 250.0, man, tdata_width=64)
    assert cfg["weights"]["bytes"] == w["bytes"] and cfg["weights"]["dma_name"] == "axi_dma_weights"
    assert (d / "driver" / "weights.bin").read_bytes() == (d / "weights" / "weights.bin").read_bytes()
    vports = tclcheck.verilog_ports(d / "rtl" / "rtlgen_axi_top.v")
    assert sorted(vports) == sorted(port_list(64, weights=True))
    assert ("s_axis_weights_tdata", "in", 64) in vports and ("s_axis_weights_tready", "out", 1) in vports
    assert tclcheck.check_design_dir(d) == []
    r = tclcheck.run_stubbed(d / "vivado" / "package_ip.tcl", vports)
    assert r["error"] is None and any(i.startswith("s_axis_weights ") for i in r["vars"]["rtlgen_interfaces"])
    r = tclcheck.run_stubbed(d / "vivado" / "build.tcl", vports)
    assert r["error"] is None, r["error"]
    log = r["log"]
    cells = {e[-1] for e in log if e[0] == "create_bd_cell"}
    assert "axi_dma_weights" in cells
    wdma = [e for e in log if e[0] == "set_property" and "c_include_s2mm 0" in e[2]]
    assert wdma and "CONFIG.c_m_axis_mm2s_tdata_width 64" in wdma[0][2]
    intf = {(e[1], e[2]) for e in log if e[0] == "connect_bd_intf_net"}
    assert any("axi_dma_weights/M_AXIS_MM2S" in a and "rtlgen_0/s_axis_weights" in b for a, b in intf)
    assert any("axi_ctrl_ic/M02_AXI" in a for a, b in intf) and any("axi_mem_ic/S02_AXI" in b for a, b in intf)
    ic = [e for e in log if e[0] == "set_property" and "CONFIG.NUM_MI" in e[2] and "NUM_SI 1" in e[2]]
    assert "CONFIG.NUM_MI 3" in ic[0][2]
    readme = (d / "vivado" / "README.md").read_text() + (d / "driver" / "README.md").read_text()
    assert "s_axis_weights" in readme and "axi_dma_weights" in readme and "@@" not in readme
    # the driver finds and checks the image
    spec = importlib.util.spec_from_file_location("rtlgen_driver_uram", d / "driver" / "driver.py")
    drv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drv)
    img = drv.load_weight_image(cfg)
    assert img.size == w["bytes"]
    assert drv.load_weight_image({k: v for k, v in cfg.items() if k != "weights"}) is None


def test_default_build_has_no_weight_port(tmp_path, net_plan):
    d, cfg = _emit(tmp_path, net_plan, "kv260")
    assert "weights" not in cfg and not (d / "driver" / "weights.bin").exists()
    v = (d / "rtl" / "rtlgen_axi_top.v").read_text()
    assert "s_axis_weights" not in v
    vports = tclcheck.verilog_ports(d / "rtl" / "rtlgen_axi_top.v")
    r = tclcheck.run_stubbed(d / "vivado" / "build.tcl", vports)
    assert "axi_dma_weights" not in {e[-1] for e in r["log"] if e[0] == "create_bd_cell"}
