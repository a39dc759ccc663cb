"""The build flow: a list of named steps, each producing inspectable artifacts (in the style of FINN's builder).

Steps (``STEPS``): ``import`` (ONNX -> integer IR, ``ir.json``), ``plan`` (planner or ``--plan`` file, ``plan.json``),
``compose`` (Amaranth top ``rtlgen_top`` from IR + plan), ``verilog`` (``rtl/*.v`` and weight images), ``report``
(``report.json``, ``report.md``); with URAM weight storage also ``weights/weights.bin`` (the exact weight-load stream of
``rtlgen_top``'s ``wload`` port, to send once after reset) and ``weights/weights.json`` (word width, order, per-layer
offsets). Output is written to a temporary folder beside ``DIR`` and renamed into place only when
every step succeeded, so a failed build leaves no partial ``DIR``.

Python API (see README): ``design = Design.load(model)``; ``design.plan(board=...)``;
``design.plan_.layer("conv3").och_par = 4``; ``design.build(out_dir)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from . import ir, planner
from .errors import OptionError
from .importer import load_model
from .models import resolve

STEPS = ("import", "plan", "compose", "verilog", "report")

DEFAULT_CLOCK = {"kv260": 250.0, "ultra96v2": 214.29}


def load_plan_file(path, net: ir.Network) -> planner.Plan:
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
    allowed = {f.name for f in fields(planner.LayerPlan)}
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
            layers.append(planner.LayerPlan(**L))
        except TypeError as e:
            raise OptionError(f"--plan: layer {L['name']!r}: {e}") from None
    missing = names - {lp.name for lp in layers}
    if missing:
        raise OptionError(f"--plan: no entry for layer(s) {', '.join(sorted(missing))}")
    order = {lay.name: k for k, lay in enumerate(net.layers)}
    layers.sort(key=lambda lp: order[lp.name])
    plan = planner.Plan(d.get("model", net.name), d.get("board", "generic"), float(d.get("clock_mhz", 250.0)),
                        d.get("budget", {}), layers, d.get("options", {}))
    for lp in plan.layers:
        validate_layer_plan(net[lp.name], lp)
    return plan


def validate_layer_plan(layer, lp: planner.LayerPlan):
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
        npix, O, C, KK, W, K = planner.conv_dims(layer)
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
        word = planner.weight_word_bits(lp.och_par, lp.ich_par, lp.tap_par)
        if word > planner.MAX_SIGNAL_BITS:
            tp = f" x tap_par {lp.tap_par}" if lp.tap_par > 1 else ""
            bad(f"its weight word (och_par {lp.och_par} x ich_par {lp.ich_par}{tp} x 8 = {word:,} bits, read every "
                f"cycle) exceeds {planner.MAX_SIGNAL_BITS:,} bits, the widest signal the generator emits: lower och_par or ich_par")


def recost(net: ir.Network, plan: planner.Plan, exact: bool = True):
    """Recompute every layer's cycles and resources from its (possibly edited) configuration; with ``exact`` the
    cycles come from the cores' cycle models rather than the planner's closed form."""
    fixed = planner._fixed_stage_costs(net)
    for lay in net.layers:
        lp = plan.layer(lay.name)
        if isinstance(lay, (ir.Conv, ir.Dense)):
            validate_layer_plan(lay, lp)
            src = plan.layer(lay.inputs[0])
            cyc, res = planner.conv_config_cost(lay, lp.och_par, lp.ich_par, lp.pix_par, lp.packing, lp.mult, lp.storage,
                                                lanes_in=src.lanes_out, tp=lp.tap_par)
            lp.lanes_out = lp.och_par
        else:
            cyc, res, lanes = fixed[lay.name]
            lp.lanes_out = lanes
        lp.cycles = cyc
        for k, v in res.items():
            setattr(lp, k, v)
    if exact:  # the cores' own cycle models (what RTL simulation measures)
        from .compose import core_cycles

        for name, cyc in core_cycles(net, plan).items():
            plan.layer(name).cycles = cyc
    planner.size_fifos(net, plan)


def check_hardware(net: ir.Network):
    """Refuse, before planning, what the cores cannot build (one line naming the source node)."""
    from .errors import ModelError

    def bad(lay, msg):
        node = lay.source_nodes[0] if lay.source_nodes else lay.name
        return ModelError(f"node {node!r} ({lay.kind}): {msg}")

    for lay in net.layers:
        if isinstance(lay, ir.Conv):
            kh, kw = lay.kernel
            if kh != kw or kh % 2 == 0 or kh > 7:
                raise bad(lay, f"{kh}x{kw} kernel not supported in hardware (square odd kernels 1, 3, 5, 7 only)")
            if lay.stride[0] != lay.stride[1] or lay.stride[0] not in (1, 2):
                raise bad(lay, f"stride {lay.stride[0]}x{lay.stride[1]} not supported in hardware (1 or 2, equal on H and W)")
            if max(lay.pads) >= kh:
                raise bad(lay, f"padding {tuple(lay.pads)} not supported (each pad must be smaller than the kernel)")
        if isinstance(lay, ir.Pool) and not lay.is_global:
            if max(lay.pads) >= min(lay.kernel):
                raise bad(lay, f"padding {tuple(lay.pads)} not supported (each pad must be smaller than the window)")


class Design:
    """Python API: a network, its plan and the build steps."""

    def __init__(self, net: ir.Network, board: str = "kv260", clock_mhz: float | None = None, budget: str | None = None):
        check_hardware(net)
        if clock_mhz is not None and not clock_mhz > 0:
            raise OptionError(f"--clock-mhz: must be positive, got {clock_mhz}")
        self.net = net
        self.board = board
        self.budget = planner.board_budget(board, budget)
        self.clock_mhz = float(clock_mhz or DEFAULT_CLOCK.get(board, self.budget.clock_mhz))
        self.plan_: planner.Plan | None = None
        self.source = None  # the ONNX ModelProto (copied into the build folder for rtlgen sim)
        self.tdata_width = 64  # board-level AXI4-Stream input width (32, 64 or 128)
        self.timings: dict[str, float] = {}

    @classmethod
    def load(cls, model=None, *, board="kv260", clock_mhz=None, budget=None, input_scale=None, mean=None, std=None):
        t = time.perf_counter()
        import onnx

        src = resolve(model) if not hasattr(model, "graph") else model
        net = load_model(src, input_scale=input_scale, mean=mean, std=std)
        d = cls(net, board, clock_mhz, budget)
        d.source = src if hasattr(src, "graph") else onnx.load(src)
        d.timings["import"] = time.perf_counter() - t
        return d

    def plan(self, plan_file=None, allow_lut_mult=True, allow_packing=True, search="greedy",
             taps=True) -> planner.Plan:
        t = time.perf_counter()
        if plan_file is not None:
            self.plan_ = load_plan_file(plan_file, self.net)
            self.plan_.board, self.plan_.clock_mhz, self.plan_.budget = self.board, self.clock_mhz, self.budget.as_dict()
        else:
            self.plan_ = planner.plan_network(self.net, self.board, self.budget, self.clock_mhz, allow_lut_mult,
                                              allow_packing, search, taps)
        recost(self.net, self.plan_)
        if plan_file is not None:
            tot = self.plan_.totals()
            over = [f"{k} {tot[k]:g} > {getattr(self.budget, k)}" for k in planner.RESOURCES if tot[k] > getattr(self.budget, k)]
            if over:
                raise OptionError(f"--plan: {plan_file} exceeds the {self.board} budget ({'; '.join(over)})")
        self.timings["plan"] = time.perf_counter() - t
        return self.plan_

    def set_layer(self, name: str, **changes) -> planner.LayerPlan:
        """Change one layer's decisions (``och_par``, ``ich_par``, ``pix_par``, ``tap_par``, ``packing``, ``mult``, ``storage``,
        ``fifo_depth``) and re-cost the plan; raises :class:`OptionError` on an invalid value."""
        if self.plan_ is None:
            self.plan()
        lp = self.plan_.layer(name)
        allowed = {"och_par", "ich_par", "pix_par", "tap_par", "packing", "mult", "storage", "fifo_depth"}
        bad = set(changes) - allowed
        if bad:
            raise OptionError(f"set_layer: unknown field(s) {', '.join(sorted(bad))} (allowed: {', '.join(sorted(allowed))})")
        for k, v in changes.items():
            setattr(lp, k, v)
        recost(self.net, self.plan_)
        return lp

    def report(self) -> dict:
        plan = self.plan_
        tot = plan.totals()
        slow = max(plan.layers, key=lambda lp: lp.cycles)
        layers = []
        for lay in self.net.layers:
            lp = plan.layer(lay.name)
            layers.append({
                "name": lay.name, "op": lay.kind,
                "parallelism": {"och_par": lp.och_par, "ich_par": lp.ich_par, "pix_par": lp.pix_par,
                                "tap_par": lp.tap_par},
                "packing": lp.packing, "mult": lp.mult, "cycles": lp.cycles,
                "utilization": round(lp.cycles / plan.cycles_per_frame, 4),
                "dsp": lp.dsp, "lut": lp.lut, "ff": lp.ff, "bram36": lp.bram36, "uram": lp.uram,
                "storage": lp.storage, "fifo_depth": lp.fifo_depth, "skip_fifo_depth": lp.skip_fifo_depth,
                "skip_buffer_bits": lp.skip_buffer_bits, "macs": lay.macs,
            })
        return {
            "model": self.net.name,
            "board": self.board,
            "clock_mhz": self.clock_mhz,
            "cycles_per_frame": plan.cycles_per_frame,
            "fps": round(self.clock_mhz * 1e6 / plan.cycles_per_frame, 1),
            "bottleneck": slow.name,
            "total_macs": self.net.total_macs,
            "resources": {k: (int(v) if float(v).is_integer() else v) for k, v in tot.items()},
            "budget": self.budget.as_dict(),
            "skip_buffer_bits": plan.skip_buffer_bits,
            "preprocess": self.net.input.preprocess,
            "layers": layers,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def build(self, out_dir, steps=STEPS, progress=None) -> dict:
        """Run the steps into ``out_dir`` atomically. Returns the report dict."""
        out = Path(out_dir).resolve()
        parent = out.parent
        if out.exists() and not out.is_dir():
            raise OptionError(f"--out: {str(out)!r} is an existing file, not a folder")
        for anc in [parent, *parent.parents]:
            if anc.exists():
                if not anc.is_dir():
                    raise OptionError(f"--out: {str(anc)!r} is a file, not a folder")
                break
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OptionError(f"--out: cannot create {str(parent)!r} ({e.strerror})") from None
        if not os.access(parent, os.W_OK):
            raise OptionError(f"--out: {str(parent)!r} is not writable")
        if self.plan_ is None:
            self.plan()
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
        try:
            (tmp / "ir.json").write_text(self.net.to_json())
            if self.source is not None:
                import onnx

                onnx.save(self.source, str(tmp / "model.onnx"))
            (tmp / "plan.json").write_text(self.plan_.to_json())
            if "compose" in steps or "verilog" in steps:
                t = time.perf_counter()
                from .compose import write_rtl

                # with URAM layers also DIR/weights/weights.bin (the load stream) + weights.json
                man = write_rtl(self.net, self.plan_, tmp / "rtl", progress=progress, weights_dir=tmp / "weights")
                self.timings["verilog"] = time.perf_counter() - t
                from .boards import BOARDS, emit  # board wrapper, Vivado flow, PYNQ driver (kv260, ultra96v2)

                if self.board in BOARDS:
                    emit(tmp, self.net, self.plan_, self.board, self.clock_mhz, man, tdata_width=self.tdata_width)
            rep = self.report()
            (tmp / "report.json").write_text(json.dumps(rep, indent=1))
            (tmp / "report.md").write_text(report_markdown(rep))
            if out.exists():
                shutil.rmtree(out)
            os.replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return rep


def report_markdown(rep: dict) -> str:
    r = rep["resources"]
    b = rep["budget"]
    lines = [
        f"# rtlgen build: {rep['model']} on {rep['board']} @ {rep['clock_mhz']} MHz",
        "",
        f"* predicted cycles per frame: **{rep['cycles_per_frame']:,}** (bottleneck `{rep['bottleneck']}`)",
        f"* predicted throughput at {rep['clock_mhz']} MHz: **{rep['fps']:,.0f} FPS**",
        f"* MACs per frame: {rep['total_macs']:,}",
        f"* skip buffers: {rep['skip_buffer_bits']:,} bits",
        "",
        "| resource | predicted | budget |",
        "|---|---:|---:|",
    ]
    for k in ("dsp", "lut", "ff", "bram36", "uram"):
        lines.append(f"| {k} | {r[k]:,} | {b.get(k, 0):,} |")
    lines += ["", "| layer | op | och/ich/pix(/taps) | packing | mult | storage | cycles | util | DSP | LUT | BRAM36 | FIFO | skip FIFO |",
              "|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for L in rep["layers"]:
        p = L["parallelism"]
        taps = f"/{p['tap_par']}" if p.get("tap_par", 1) > 1 else ""
        lines.append(f"| {L['name']} | {L['op']} | {p['och_par']}/{p['ich_par']}/{p['pix_par']}{taps} | {'yes' if L['packing'] else 'no'} | "
                     f"{L['mult']} | {L['storage']} | {L['cycles']:,} | {100 * L['utilization']:.0f} % | {L['dsp']} | {L['lut']:,} | "
                     f"{L['bram36']} | {L['fifo_depth']} | {L['skip_fifo_depth']} |")
    lines += ["", "Predictions from the planner's model; `rtlgen sim` measures cycles per frame in RTL simulation and "
              "`rtlgen report --synth` estimates resources with yosys. Timing closure is not verified without Vivado.", ""]
    return "\n".join(lines)

