"""Board wrappers (installed as ``rtlgen.boards``): the network as an AXI IP plus Vivado and PYNQ files.

``emit(design_dir, net, plan, board, clock_mhz, manifest)`` writes, into a build folder ``DIR``:

* ``DIR/rtl/rtlgen_axi_top.v``: the board-level top (:mod:`rtlgen.boards.top`), instantiating ``rtlgen_top``;
* ``DIR/vivado/package_ip.tcl``, ``build.tcl``, ``rtlgen_<board>.xdc``, ``README.md``: IP packaging, block design,
  bitstream (``vivado -mode batch -source DIR/vivado/build.tcl``);
* ``DIR/driver/driver.py``, ``rtlgen_board.json``, ``README.md``: the PYNQ driver; with URAM weights also
  ``DIR/driver/weights.bin`` (a copy of ``DIR/weights/weights.bin``, sent once through ``axi_dma_weights``).

No Vivado and no board were available where this was written: the Tcl is parsed with ``tclsh`` and checked against
the Verilog in the tests, the RTL is simulated with cocotb, nothing else is claimed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .top import ADDR_BITS, ID_VALUE, REGISTERS, TDATA_WIDTHS, VERSION, build_hash, header, port_list, verilog

__all__ = ["BOARDS", "VIVADO_VERSION", "emit", "register_table_md", "port_table_md"]

VIVADO_VERSION = "2022.2"  # also expected to work with 2022.1 (PYNQ 3.0.x) and 2023.1; untested here
DEFAULT_TDATA = 64

BOARDS = {
    "kv260": {
        "name": "Kria KV260 Vision AI Starter Kit",
        "part": "xck26-sfvc784-2LV-c",
        "board_part_pattern": "*kv260_som*",
        "carrier_pattern": "*kv260_carrier*",
        "pynq": "Kria-PYNQ 3.0 (Ubuntu 22.04 for Kria)",
    },
    "ultra96v2": {
        "name": "Avnet Ultra96-V2",
        "part": "xczu3eg-sbva484-1-i",
        "board_part_pattern": "*ultra96v2*",
        "carrier_pattern": "",
        "pynq": "PYNQ 3.0 image for Ultra96-V2",
    },
}

_TEMPLATES = Path(__file__).resolve().parent / "templates"

_PORT_DOC = {
    "aclk": ("clock", "the only clock (PL clock)"),
    "aresetn": ("reset", "active-low synchronous reset of everything"),
    "s_axis_tdata": ("s_axis", "image bytes, little-endian: byte k of the stream in bits [8*(k mod W/8) +: 8]"),
    "s_axis_tvalid": ("s_axis", ""), "s_axis_tready": ("s_axis", ""),
    "s_axis_tlast": ("s_axis", "in the beat holding a frame's last byte (end of a transfer); earlier = framing error"),
    "m_axis_tdata": ("m_axis", "result records: V output values (sign-extended to 32 bits), then the result word"),
    "m_axis_tvalid": ("m_axis", ""), "m_axis_tready": ("m_axis", ""),
    "m_axis_tlast": ("m_axis", "on the result word of every BATCH_LEN-th record"),
    "s_axis_weights_tdata": ("s_axis_weights", "URAM builds only: weights/weights.bin bytes, little-endian, once after reset"),
    "s_axis_weights_tvalid": ("s_axis_weights", ""), "s_axis_weights_tready": ("s_axis_weights", ""),
    "s_axis_weights_tlast": ("s_axis_weights", "optional; ends a word (transfers hold whole words)"),
}


def _fill(text: str, values: dict) -> str:
    for k, v in values.items():
        text = text.replace(f"@@{k}@@", str(v))
    if "@@" in text:
        raise ValueError(f"unfilled template placeholder near {text[text.index('@@') - 30:text.index('@@') + 30]!r}")
    return text


def register_table_md() -> str:
    lines = ["| offset | name | access | meaning |", "|---:|---|---|---|"]
    for off, name, acc, desc in REGISTERS:
        lines.append(f"| 0x{off:02X} | {name} | {acc} | {desc} |")
    return "\n".join(lines)


def port_table_md(tdata_width: int | None = None, weights: bool = False) -> str:
    lines = ["| port | dir | width | interface | notes |", "|---|---|---:|---|---|"]
    for name, d, w in port_list(tdata_width or 0, weights):
        itf, note = _PORT_DOC.get(name, ("s_axi_ctrl", "AXI4-Lite, 32-bit data, 8-bit address" if name.endswith("awaddr") else ""))
        if name in ("s_axis_tdata", "s_axis_weights_tdata") and not tdata_width:
            w = "W = 32/64/128"
        lines.append(f"| `{name}` | {d} | {w} | {itf} | {note} |")
    return "\n".join(lines)


def _tcl_ports(tdata_width: int, weights: bool = False) -> str:
    return "\n".join(f"    {{{n} {d} {w}}}" for n, d, w in port_list(tdata_width, weights))


def board_config(net, plan, board: str, clock_mhz: float, manifest: dict, tdata_width: int) -> dict:
    o = manifest["output"]
    H, W, C = manifest["input"].get("pixel_shape", manifest["input"]["shape"])  # the image (before an input fold)
    scale = None if net.output_scale is None else [float(v) for v in np.ravel(net.output_scale)]
    if scale is not None and len(scale) == 1:
        scale = scale * o["values"]
    return {
        "rtlgen_board_version": 1, "model": net.name, "board": board, "part": BOARDS[board]["part"],
        "clock_mhz": float(clock_mhz), "tdata_width": tdata_width, "input_shape": [H, W, C], "frame_bytes": H * W * C,
        "values": o["values"], "value_bits": o["width"], "signed": bool(o["signed"]), "record_words": o["values"] + 1,
        "build_hash": f"{build_hash(net, plan):#010x}", "id": ID_VALUE, "version": list(VERSION),
        "registers": {name: off for off, name, _, _ in REGISTERS},
        "ip_name": "rtlgen_0", "dma_name": "axi_dma_0", "bitfile": "../vivado/out/rtlgen.bit",
        "output_scale": scale, "output_zero_point": int(net.output_zero_point),
        # the result word's class is the argmax of the raw integers: the model's top-1 only when every class has
        # the same positive scale (else the driver ranks the dequantized values itself)
        "argmax_is_top1": scale is None or (min(scale) == max(scale) and scale[0] > 0),
        **({"weights": _weights_config(manifest["weights"])} if manifest.get("weights") else {}),
    }


def _weights_config(w: dict) -> dict:
    """The driver's view of the URAM weight image (sent once after reset through ``axi_dma_weights``)."""
    return {"file": "weights.bin", "bytes": w["bytes"], "word_bytes": w["word_bytes"], "words": w["words"],
            "dma_name": "axi_dma_weights", "status_pending_bit": 3}


def emit(design_dir, net, plan, board: str, clock_mhz: float, manifest: dict, tdata_width: int = DEFAULT_TDATA) -> dict:
    """Write ``rtl/rtlgen_axi_top.v``, ``vivado/`` and ``driver/`` into ``design_dir`` (see the module docstring).

    ``manifest`` is ``RtlgenTop.manifest()`` (``rtl/manifest.json``). Returns the board config (also written to
    ``driver/rtlgen_board.json``). ``board`` must be one of :data:`BOARDS`.
    """
    from rtlgen.errors import OptionError

    if board not in BOARDS:
        raise OptionError(f"--board: no Vivado flow for {board!r} (available: {', '.join(BOARDS)})")
    if tdata_width not in TDATA_WIDTHS:
        raise OptionError(f"s_axis TDATA width must be one of {TDATA_WIDTHS}, got {tdata_width}")
    d = Path(design_dir)
    b = BOARDS[board]
    cfg = board_config(net, plan, board, clock_mhz, manifest, tdata_width)
    h = int(cfg["build_hash"], 16)
    (d / "rtl").mkdir(parents=True, exist_ok=True)
    weights = bool(manifest.get("weights"))
    (d / "rtl" / "rtlgen_axi_top.v").write_text(
        header(manifest, tdata_width, weights, net.name, board, clock_mhz, plan.cycles_per_frame, h)
        + verilog(manifest, tdata_width, h))

    try:
        from importlib.metadata import version

        rtlgen_version = version("rtlgen")
    except Exception:  # noqa: BLE001
        rtlgen_version = "dev"
    xdc = f"rtlgen_{board}.xdc"
    axil = " ".join(n for n, _, _ in port_list(tdata_width, weights) if n.startswith("s_axi_ctrl_"))
    witf = ("    {s_axis_weights slave xilinx.com:interface:axis_rtl:1.0 {s_axis_weights_tdata s_axis_weights_tvalid "
            "s_axis_weights_tready s_axis_weights_tlast}}\n") if weights else ""
    values = {
        "VERSION": rtlgen_version, "MODEL": net.name, "BOARD": board, "BOARD_NAME": b["name"], "PART": b["part"],
        "BOARD_PART_PATTERN": b["board_part_pattern"], "CARRIER_PATTERN": b["carrier_pattern"],
        "CLOCK_MHZ": f"{float(clock_mhz):g}", "TDATA": tdata_width, "HP_WIDTH": 128 if tdata_width == 128 else 64,
        "HASH": cfg["build_hash"], "VIVADO": VIVADO_VERSION, "XDC": xdc, "PORTS": _tcl_ports(tdata_width, weights),
        "AXIL_PORTS": axil, "REVISION": h & 0x7FFFFFFF, "WEIGHTS": int(weights), "WEIGHTS_ITF": witf,
    }
    vd = d / "vivado"
    vd.mkdir(parents=True, exist_ok=True)
    (vd / "package_ip.tcl").write_text(_fill((_TEMPLATES / "package_ip.tcl").read_text(), values))
    (vd / "build.tcl").write_text(_fill((_TEMPLATES / "build.tcl").read_text(), values))
    (vd / xdc).write_text(_fill((_TEMPLATES / "board.xdc").read_text(), values))
    readme_vals = dict(values, REGISTER_TABLE=register_table_md(), PORT_TABLE=port_table_md(tdata_width, weights),
                       VIVADO_WEIGHTS=_VIVADO_WEIGHTS.format(**manifest["weights"]) if weights else "",
                       DRIVER_WEIGHTS=_DRIVER_WEIGHTS.format(**manifest["weights"]) if weights else "",
                       V=cfg["values"], F=cfg["frame_bytes"], RECORD=cfg["record_words"], ADDR_BITS=ADDR_BITS,
                       VALUE_KIND="int32 raw accumulators" if cfg["value_bits"] == 32 else "int8 values, sign-extended",
                       PYNQ=b["pynq"], BEAT_BYTES=tdata_width // 8)
    (vd / "README.md").write_text(_fill((_TEMPLATES / "vivado_README.md").read_text(), readme_vals))

    dd = d / "driver"
    dd.mkdir(parents=True, exist_ok=True)
    (dd / "driver.py").write_text((_TEMPLATES / "driver.py").read_text())
    (dd / "rtlgen_board.json").write_text(json.dumps(cfg, indent=1))
    (dd / "README.md").write_text(_fill((_TEMPLATES / "driver_README.md").read_text(), readme_vals))
    if weights:
        img = d / "weights" / "weights.bin"
        if not img.exists():
            raise OptionError(f"{img} missing: a design with URAM weights needs its weight image (rtlgen build writes it)")
        if img.stat().st_size != manifest["weights"]["bytes"]:
            raise OptionError(f"{img}: {img.stat().st_size} bytes, the manifest expects {manifest['weights']['bytes']}")
        (dd / "weights.bin").write_bytes(img.read_bytes())
    return cfg


_VIVADO_WEIGHTS = """
### URAM weights (this build)

Some layers keep their weights in UltraRAM, which has no initial contents on Zynq UltraScale+: they are loaded at
start-up. The IP has a second AXI4-Stream slave, `s_axis_weights`, fed in the block design by `axi_dma_weights` (AXI
DMA, MM2S only, on `S_AXI_HP0_FPD` through `axi_mem_ic`, registers on `axi_ctrl_ic`, interrupt on `pl_ps_irq0`).
After `aresetn` or SOFT_RESET send `DIR/weights/weights.bin` ({bytes} bytes = {words} words of {word_bytes} bytes,
each a {width}-bit memory word, little-endian, zero-padded; layout in `DIR/weights/weights.json`) in one MM2S
transfer (TLAST at its end). STATUS[3] (weights pending) reads 1 until the image is complete; images sent before that
wait in the input stream. CONFIG[10] = 1 marks such a build.
"""

_DRIVER_WEIGHTS = """
## URAM weights (this build)

This build keeps some weights in UltraRAM (no initial contents on UltraScale+). After its SOFT_RESET the driver sends
`weights.bin` (beside `driver.py`, {bytes} bytes; `--weights FILE` overrides) once through `axi_dma_weights`, checks
STATUS[3] (weights pending) went to 0, then streams the images. Any later reset needs the image again.
"""
