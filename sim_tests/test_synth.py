"""Resource checks with Debian's yosys (``synth_xilinx -family xcup``, UltraScale+).

* A conv with ``och_par=8``, ``K=3``, ``pix_par=2`` infers 72 DSP48E2 with packing and 144 without. In rtlgen's
  engine the K x K kernel positions are time-multiplexed and ``ich_par`` input channels are multiplied in parallel,
  so the MAC array is ``och_par x ich_par x pix_par``; ``ich_par=9`` gives the same 144 MACs per cycle as the
  paper's full-window (K*K) engine. Requant is a pure shift here, so every DSP is a MAC multiplier.
* A line buffer's memory is inferred as block RAM with exactly ``depth * G * lanes * 8`` bits.

Synthesis stops after memory mapping (``-run :map_ffram``): DSP and BRAM inference are done by then; the LUT
mapping that follows (the slow part) cannot change those counts. The tests skip when yosys is missing, except under
``CI=true`` where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from rtlgen.verify.yosys_probe import sample_conv_layer, yosys_cells, yosys_memories
from rtlgen.cores.conv import Conv, dsp_count
from rtlgen.cores.linebuffer import WindowGen
from rtlgen.emit.verilog import write_verilog

YOSYS = shutil.which("yosys")


@pytest.fixture(autouse=True)
def _need_yosys():
    if YOSYS is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("yosys not found (required under CI=true): apt-get install yosys")
        pytest.skip("yosys not found on PATH (Debian: apt-get install yosys)")


@pytest.mark.parametrize("packing,expected,storage", [(True, 72, "bram"), (False, 144, "lut")])
def test_conv_dsp_packing(packing, expected, storage, tmp_path):
    """72 / 144 DSP48E2; the weight ROM lands in block RAM (``bram``: 576-bit words -> 8 RAMB36E2 at 72 bits)
    or in logic (``lut``: no block RAM at all)."""
    conv = Conv(sample_conv_layer(), ich_par=9, och_par=8, pix_par=2, packing=packing, storage=storage)
    assert dsp_count(8, 9, 2, packing) == expected == conv.dsp == conv.resources()["dsp"]
    v = write_verilog(conv, "conv", tmp_path / "conv.v")
    cells = yosys_cells(v, "conv")
    print(f"packing={packing}: {cells.get('DSP48E2', 0)} DSP48E2, {cells.get('RAMB36E2', 0)} RAMB36E2, "
          f"{cells.get('RAMB18E2', 0)} RAMB18E2")
    assert cells.get("DSP48E2", 0) == expected
    brams = cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0)
    assert brams == (8 if storage == "bram" else 0)


def test_linebuffer_block_ram(tmp_path):
    g = WindowGen(H=32, W=32, C=32, lanes=8, K=3, stride=1, pix=1)
    bits = g.DG * g.lanes * 8
    assert (g.depth, g.DG, bits) == (71, 284, 18176)  # 2 rows of 32 pixels + 7 pixels, 4 beats of 64 bits each
    v = write_verilog(g, "window_gen", tmp_path / "window_gen.v")
    assert yosys_memories(v, "window_gen") == [(64, 284)]
    cells = yosys_cells(v, "window_gen")
    print(f"line buffer {bits} bits: {cells.get('RAMB36E2', 0)} RAMB36E2, {cells.get('RAMB18E2', 0)} RAMB18E2")
    assert cells.get("RAMB36E2", 0) == 1  # 284 x 64 bits fits one RAMB36E2 in its 512 x 72 configuration
    assert not any(k.startswith("RAM32") or k.startswith("RAM64") for k in cells)  # no LUTRAM


def test_small_line_buffer_copies_in_lutram(tmp_path):
    """A tap-parallel window generator with small copies (DS-CNN's stem shape: 1 lane, 11x11 window, 49-word copies
    here) builds pix*T copies in LUTRAM, as many primitives as the planner costs and no block RAM."""
    from rtlgen.plan import cost, geometry

    g = WindowGen(H=8, W=4, C=1, lanes=1, K=11, stride=2, pix=1, tap=11)
    assert geometry.line_copy_style(g.DG, 8) == "distributed"
    prims = geometry.lutram_primitives(g.DG, 8)
    v = write_verilog(g, "window_gen", tmp_path / "window_gen.v")
    cells = yosys_cells(v, "window_gen")
    lutram = sum(n for k, n in cells.items() if k.startswith(("RAM32M", "RAM64M")))
    print(f"{g.pix * g.T} copies of {g.DG} x 8 bits: {cells}")
    assert lutram == g.pix * g.T * prims
    assert cells.get("RAMB36E2", 0) + cells.get("RAMB18E2", 0) == 0
    _, lut = cost.line_buffer_cost(4, 1, 11, 2, 1, 1, 11)
    assert lut == g.pix * g.T * (geometry.LUTS_PER_LUTRAM * prims + cost.LUT_PER_TAP_PORT)


def _rtlgen_script_cells(verilog, top, tmp_path) -> dict:
    """Cell counts through rtlgen.verify.synth's own script (the one ``rtlgen report --synth`` runs), up to memories."""
    from rtlgen.verify.synth import cell_counts, script

    stat = tmp_path / f"{top}_stat.json"
    r = subprocess.run([YOSYS, "-q", "-p", script(verilog, stat, top=top, stop="map_ffram")], capture_output=True,
                       text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    return cell_counts(json.loads(stat.read_text()), top=top)


def test_lut_rom_stays_in_luts(tmp_path):
    """A ``storage="lut"`` weight ROM deep and wide enough for yosys' proc_rom + memory_libmap to choose block RAM
    (144 words x 512 bits) stays in LUTs through rtlgen's script (``proc -norom``), as planned; plain
    ``synth_xilinx`` puts it in 15 RAMB18E2 (measured) that the plan would not count."""
    conv = Conv(sample_conv_layer(C=32, O=32), ich_par=2, och_par=32, pix_par=1, packing=False, storage="lut")
    assert conv.engine.rom_depth == 144 and conv.engine.rom_width == 512
    v = write_verilog(conv, "conv", tmp_path / "conv.v")
    plain = yosys_cells(v, "conv")
    ours = _rtlgen_script_cells(v, "conv", tmp_path)
    line_buffer = 1  # the window generator's line memory: one RAMB18E2 in both
    assert plain.get("RAMB36E2", 0) + plain.get("RAMB18E2", 0) > line_buffer + 8
    assert ours.get("RAMB36E2", 0) + ours.get("RAMB18E2", 0) == line_buffer


def test_lut_multipliers_infer_no_dsp(tmp_path):
    """``mult="lut"`` (cores/arith.py lut_mul): no DSP48E2 even in a plain synth_xilinx run (no ``*`` to infer from)."""
    conv = Conv(sample_conv_layer(), ich_par=9, och_par=2, pix_par=1, packing=False, storage="bram", mult="lut")
    assert conv.dsp == 0
    v = write_verilog(conv, "conv", tmp_path / "conv.v")
    assert yosys_cells(v, "conv").get("DSP48E2", 0) == 0


def test_duplicated_enable_luts_merged(tmp_path):
    """The engine's fabric does not grow with its number of output-channel groups. An och_par=2 ich_par=32 engine
    with 32 output channels (16 groups) came out of plain ``synth_xilinx`` at 6,202 LUT against 3,308 with 8
    channels (4 groups), from the same coarse cells: ABC gave each of ~2,850 flip-flops its own copy of one shared
    clock-enable LUT3. rtlgen's script merges identical cells after synthesis (``MERGE_DUPLICATES``), as Vivado
    shares such logic; without it this test fails."""
    from rtlgen.verify.synth import cell_counts, script, summarize, module_blocks, sub_hierarchy

    luts = {}
    for O in (8, 32):
        conv = Conv(sample_conv_layer(C=32, O=O), ich_par=32, och_par=2, pix_par=2, packing=True, storage="bram")
        text = write_verilog(conv, "conv", tmp_path / f"conv{O}.v").read_text()
        blocks = module_blocks(text)
        part = tmp_path / f"engine{O}.v"
        part.write_text("".join(blocks[k] for k in sub_hierarchy(blocks, "conv__engine")))
        stat = tmp_path / f"engine{O}.json"
        r = subprocess.run([YOSYS, "-q", "-p", script(part, stat, top="conv__engine")], capture_output=True,
                           text=True, timeout=900, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        cells = cell_counts(json.loads(stat.read_text()), top="conv__engine")
        luts[O] = summarize(cells, {})["resources"]["lut"]
        assert cells.get("DSP48E2") == 64
    print(f"och_par=2 engine: {luts[8]} LUT with 4 output groups, {luts[32]} with 16")
    assert luts[32] < 1.1 * luts[8]
