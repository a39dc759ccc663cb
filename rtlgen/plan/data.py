"""Plan data: boards and budgets, the per-layer decisions (:class:`LayerPlan`), the whole plan (:class:`Plan`,
written as ``plan.json``) and reading an edited ``plan.json`` back (:func:`load_plan_file`)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .. import ir
from ..errors import OptionError
from .geometry import MAX_SIGNAL_BITS, conv_dims, dw_weight_word_bits, dw_window, is_depthwise, weight_word_bits



@dataclass
class Budget:
    dsp: int
    lut: int
    ff: int
    bram36: int
    uram: int
    clock_mhz: float = 250.0
    part: str = ""

    def as_dict(self):
        return {"dsp": self.dsp, "lut": self.lut, "ff": self.ff, "bram36": self.bram36, "uram": self.uram}


BOARDS = {
    "kv260": Budget(1248, 117_120, 234_240, 144, 64, 250.0, "xck26-sfvc784-2LV-c"),
    "ultra96v2": Budget(360, 70_560, 141_120, 216, 0, 214.29, "xczu3eg-sbva484-1-i"),
}

#: fraction of each resource the planner may fill (the rest is left for the AXI shell, DMA and routing)
UTILIZATION = {"dsp": 1.0, "lut": 0.80, "ff": 0.80, "bram36": 0.92, "uram": 1.0}

RESOURCES = ("dsp", "lut", "ff", "bram36", "uram")

# per-unit costs (LUT/FF) of the model, fitted to yosys (``synth_xilinx -family xcup`` with rtlgen.verify.synth's script)
# per-layer runs of the ResNet8 builds (``tools/calibrate.py BUILD_DIR`` prints planner vs yosys per layer); standalone
# convs match within 5 % (LUT multipliers ~110 LUT per MAC, packed-DSP arrays 27). Measured residual on whole designs
# (with the identical-cell merge of rtlgen.verify.synth): yosys counts 14 % more LUTs than predicted on ResNet8 @ Ultra96-V2,
# 23 % on ResNet20 @ Ultra96-V2, 18 % on ResNet20 @ KV260, whose och_par=2 ich_par=32 layers cost 1.2-1.4x the model
# (their window generators grow with ich_par*pix_par, covered here by the flat LUT_PER_STAGE). The 80 % LUT
# utilization absorbs it; a build's fit is checked by ``rtlgen report --synth [--synth-per-module]``:


def parse_budget(text: str, base: Budget | None = None) -> Budget:
    """``dsp=…,lut=…,ff=…,bram36=…,uram=…`` (missing keys from ``base``)."""
    vals = asdict(base) if base else {"dsp": 0, "lut": 0, "ff": 0, "bram36": 0, "uram": 0, "clock_mhz": 250.0, "part": ""}
    if base is None:
        vals["ff"] = None
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        if "=" not in item:
            raise OptionError(f"--budget: {item!r} is not key=value (keys: {', '.join(RESOURCES)})")
        k, v = (s.strip() for s in item.split("=", 1))
        k = k.lower()
        if k not in RESOURCES:
            raise OptionError(f"--budget: unknown resource {k!r} (keys: {', '.join(RESOURCES)})")
        try:
            n = int(v)
        except ValueError:
            raise OptionError(f"--budget: {k}={v!r} is not an integer") from None
        if n < 0:
            raise OptionError(f"--budget: {k} must be >= 0")
        vals[k] = n
    if vals["ff"] is None:
        vals["ff"] = 2 * vals["lut"]
    return Budget(**vals)


def board_budget(board: str, budget: str | None = None) -> Budget:
    if board == "generic":
        if not budget:
            raise OptionError("--board generic needs --budget dsp=…,lut=…,bram36=…,uram=…")
        return parse_budget(budget)
    if board not in BOARDS:
        raise OptionError(f"--board: unknown board {board!r} (known: {', '.join(list(BOARDS) + ['generic'])})")
    return parse_budget(budget, BOARDS[board]) if budget else BOARDS[board]


@dataclass
class LayerPlan:
    name: str
    kind: str
    och_par: int = 1
    ich_par: int = 1
    pix_par: int = 1
    tap_par: int = 1  # kernel taps per window beat (tap parallelism)
    packing: bool = False
    mult: str = "dsp"  # dsp | lut
    storage: str = "lut"  # weight ROM: bram | uram | lut
    lanes_out: int = 1  # channels per output beat
    cycles: int = 0
    dsp: int = 0
    lut: int = 0
    ff: int = 0
    bram36: float = 0.0
    uram: int = 0
    fifo_depth: int = 2  # beats of the FIFO on this layer's output
    skip_fifo_depth: int = 0  # entries (pixels x channel beats) of the skip FIFO feeding this layer's merged add
    skip_buffer_bits: int = 0
    notes: list = field(default_factory=list)

    def resources(self):
        return {"dsp": self.dsp, "lut": self.lut, "ff": self.ff, "bram36": self.bram36, "uram": self.uram}


@dataclass
class Plan:
    model: str
    board: str
    clock_mhz: float
    budget: dict
    layers: list[LayerPlan]
    options: dict = field(default_factory=dict)

    @property
    def cycles_per_frame(self) -> int:
        return max(lp.cycles for lp in self.layers)

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.cycles_per_frame

    def totals(self) -> dict:
        t = {k: 0 for k in RESOURCES}
        for lp in self.layers:
            for k in RESOURCES:
                t[k] += getattr(lp, k)
        t["bram36"] = math.ceil(t["bram36"] * 2) / 2
        return t

    @property
    def skip_buffer_bits(self) -> int:
        return sum(lp.skip_buffer_bits for lp in self.layers)

    def layer(self, name) -> LayerPlan:
        for lp in self.layers:
            if lp.name == name:
                return lp
        raise OptionError(f"plan has no layer {name!r}")

    def to_json(self) -> str:
        return json.dumps({
            "model": self.model, "board": self.board, "clock_mhz": self.clock_mhz, "budget": self.budget,
            "options": self.options, "layers": [asdict(lp) for lp in self.layers],
        }, indent=1)


def load_plan_file(path, net: ir.Network) -> Plan:
    """Read a ``plan.json`` (as written by ``build``, possibly edited) and validate it against the network."""
    p = Path(path)
    if p.is_dir():
        raise OptionError(f"--plan: {str(p)!r} is a directory, not a plan.json file")
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise OptionError(f"--plan: file {str(p)!r} does not exist") from None
    except OSError as e:
        raise OptionError(f"--plan: cannot read {str(p)!r} ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OptionError(f"--plan: {str(p)!r} is not valid JSON ({e.__class__.__name__} at line {getattr(e, 'lineno', '?')})") from None
    if not isinstance(d, dict) or "layers" not in d or not isinstance(d["layers"], list):
        raise OptionError(f"--plan: {str(p)!r} has no 'layers' list")
    names = {lay.name for lay in net.layers}
    allowed = {f.name for f in fields(LayerPlan)}
    layers = []
    for i, L in enumerate(d["layers"]):
        if not isinstance(L, dict) or "name" not in L:
            raise OptionError(f"--plan: layer entry #{i} has no 'name'")
        if L["name"] not in names:
            raise OptionError(f"--plan: layer {L['name']!r} is not in model {net.name!r}")
        bad = set(L) - allowed
        if bad:
            raise OptionError(f"--plan: layer {L['name']!r} has unknown field(s) {', '.join(sorted(bad))}")
        try:
            layers.append(LayerPlan(**L))
        except TypeError as e:
            raise OptionError(f"--plan: layer {L['name']!r}: {e}") from None
    missing = names - {lp.name for lp in layers}
    if missing:
        raise OptionError(f"--plan: no entry for layer(s) {', '.join(sorted(missing))}")
    order = {lay.name: k for k, lay in enumerate(net.layers)}
    layers.sort(key=lambda lp: order[lp.name])
    plan = Plan(d.get("model", net.name), d.get("board", "generic"), float(d.get("clock_mhz", 250.0)),
                        d.get("budget", {}), layers, d.get("options", {}))
    for lp in plan.layers:
        validate_layer_plan(net[lp.name], lp)
    return plan


def validate_layer_plan(layer, lp: LayerPlan):
    def bad(msg):
        raise OptionError(f"plan: layer {lp.name!r}: {msg}")

    for k in ("och_par", "ich_par", "pix_par", "tap_par", "lanes_out", "fifo_depth"):
        v = getattr(lp, k)
        if not isinstance(v, int) or v < 1:
            bad(f"{k} must be a positive integer, got {v!r}")
    if lp.storage not in ("bram", "uram", "lut"):
        bad(f"storage must be bram, uram or lut, got {lp.storage!r}")
    if lp.mult not in ("dsp", "lut"):
        bad(f"mult must be dsp or lut, got {lp.mult!r}")
    if lp.pix_par not in (1, 2):
        bad("pix_par must be 1 or 2")
    if isinstance(layer, (ir.Conv, ir.Dense)):
        npix, O, C, KK, W, K = conv_dims(layer)
        if is_depthwise(layer):
            _validate_depthwise(layer, lp, bad)
            return
        if lp.och_par > O:
            bad(f"och_par {lp.och_par} exceeds the {O} output channels")
        if lp.ich_par > C:
            bad(f"ich_par {lp.ich_par} exceeds the {C} input channels")
        if lp.packing and lp.pix_par != 2:
            bad("packing needs pix_par=2 (two pixels share a weight)")
        if isinstance(layer, ir.Dense) and lp.pix_par != 1:
            bad("dense layers have pix_par=1")
        if lp.tap_par > KK:
            bad(f"tap_par {lp.tap_par} exceeds the kernel's {KK} taps")
        word = weight_word_bits(lp.och_par, lp.ich_par, lp.tap_par)
        if word > MAX_SIGNAL_BITS:
            tp = f" x tap_par {lp.tap_par}" if lp.tap_par > 1 else ""
            bad(f"its weight word (och_par {lp.och_par} x ich_par {lp.ich_par}{tp} x 8 = {word:,} bits, read every "
                f"cycle) exceeds {MAX_SIGNAL_BITS:,} bits, the widest signal the generator emits: lower och_par or ich_par")


def _validate_depthwise(layer, lp: LayerPlan, bad):
    """A depthwise layer (``cores/dwconv.py``): one channel parallelism (``ich_par == och_par``), taps of the embedded
    ``K' x K'`` window, weights in BRAM or LUTs."""
    C = layer.in_shape[2]
    if lp.och_par != lp.ich_par:
        bad(f"a depthwise layer has one channel parallelism: ich_par ({lp.ich_par}) must equal och_par ({lp.och_par})")
    if lp.och_par > C:
        bad(f"och_par {lp.och_par} exceeds the {C} channels")
    if lp.storage == "uram":
        bad("a depthwise layer keeps its weights in bram or lut, not uram")
    if lp.packing and lp.pix_par != 2:
        bad("packing needs pix_par=2 (two pixels share a weight)")
    K = dw_window(layer)[0]
    if lp.tap_par > K * K:
        bad(f"tap_par {lp.tap_par} exceeds the {K * K} taps of its {K}x{K} window")
    word = dw_weight_word_bits(lp.och_par, lp.tap_par)
    if word > MAX_SIGNAL_BITS:
        bad(f"its weight word ({word:,} bits, read every cycle) exceeds {MAX_SIGNAL_BITS:,} bits: lower och_par or tap_par")
