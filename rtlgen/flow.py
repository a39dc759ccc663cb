"""The build flow: a :class:`BuildConfig` and a list of named steps, each a function writing its own artifacts (in
the style of FINN's ``build_dataflow_steps.py``).

Steps (``STEPS``): ``import`` (ONNX -> integer IR, ``ir.json``), ``plan`` (planner or ``--plan`` file, ``plan.json``),
``compose`` (Amaranth top ``rtlgen_top`` from IR + plan), ``verilog`` (``rtl/*.v`` and weight images), ``report``
(``report.json``, ``report.md``); with URAM weight storage also ``weights/weights.bin`` (the exact weight-load stream of
``rtlgen_top``'s ``wload`` port, to send once after reset) and ``weights/weights.json`` (word width, order, per-layer
offsets). Output is written to a temporary folder beside ``DIR`` and renamed into place only when
every step succeeded, so a failed build leaves no partial ``DIR``; ``DIR`` may only be new, empty or an earlier
rtlgen build (``rtlgen/outdir.py``: never deletes what rtlgen did not write).

Python API (see README): ``design = Design.load(model, board=...)`` (keywords: :class:`BuildConfig` fields);
``design.plan()``;
``design.plan_.layer("conv3").och_par = 4``; ``design.build(out_dir)``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from . import ir, outdir
from .plan import RESOURCES, LayerPlan, Plan, board_budget, load_plan_file, plan_network, recost
from .plan.fold import FOLD, apply_fold, fold_input, plan_file_fold, why_not_foldable
from .errors import OptionError
from .figures import fmt_fps, fps
from .frontend import load_model
from .models import resolve

STEPS = ("import", "plan", "compose", "verilog", "report")

DEFAULT_CLOCK = {"kv260": 250.0, "ultra96v2": 214.29}


@dataclass
class BuildConfig:
    """Every option of a build in one place: the ``rtlgen build`` options and the Python API's keywords."""

    #: target board: ``kv260``, ``ultra96v2`` or ``generic`` (with :attr:`budget`)
    board: str = "kv260"
    #: clock for the FPS figures in MHz; None: the board's (250 for kv260, 214.29 for ultra96v2)
    clock_mhz: float | None = None
    #: resource budget ``dsp=…,lut=…,ff=…,bram36=…,uram=…`` overriding the board's; None: the board's
    budget: str | None = None
    #: preprocessing ``float input = (pixel * input_scale - mean) / std``; None: the model's metadata, else 1/255
    input_scale: float | None = None
    #: per-channel mean of the preprocessing; None: the model's metadata, else 0
    mean: list | None = None
    #: per-channel std of the preprocessing; None: the model's metadata, else 1
    std: list | None = None
    #: the hardware takes the graph input's first quantizer's codes themselves (identity input stage; excludes
    #: ``input_scale``/``mean``/``std``); an int8/uint8 graph input without preprocessing is taken so anyway
    input_codes: bool = False
    #: a ``plan.json`` (as written by a build, possibly edited) used instead of planning
    plan_file: str | None = None
    #: the planner may implement multipliers in LUTs
    allow_lut_mult: bool = True
    #: the planner may pack two int8 MACs into one DSP48E2
    allow_packing: bool = True
    #: planner search: ``greedy`` or ``knapsack`` (:data:`rtlgen.plan.SEARCHES`)
    search: str = "greedy"
    #: the planner may use tap parallelism (several kernel taps per cycle)
    taps: bool = True
    #: the planner may fold pixel pairs into the stem convolution's channels (two pixels per input beat,
    #: :mod:`rtlgen.plan.fold`) where the input stream bounds the frame and the fold makes it faster
    input_fold: bool = True
    #: board-level AXI4-Stream input width in bits (32, 64 or 128; kv260/ultra96v2 builds)
    tdata_width: int = 64
    #: the steps :meth:`Design.build` runs (:data:`STEPS`; without ``compose``/``verilog``: plan and report only)
    steps: tuple = field(default=STEPS)

    def updated(self, **changes) -> "BuildConfig":
        """A copy with ``changes`` (field names); an unknown name is an :class:`OptionError`."""
        bad = set(changes) - {f.name for f in fields(self)}
        if bad:
            raise OptionError(f"unknown build option(s) {', '.join(sorted(bad))}")
        return replace(self, **changes)


def check_hardware(net: ir.Network):
    """Refuse, before planning, what the cores cannot build (one line naming the source node)."""
    from .errors import ModelError

    def bad(lay, msg):
        node = lay.source_nodes[0] if lay.source_nodes else lay.name
        return ModelError(f"node {node!r} ({lay.kind}): {msg}")

    for lay in net.layers:
        if isinstance(lay, ir.Conv) and lay.group != 1:
            _check_depthwise(lay, bad)
            continue
        if isinstance(lay, ir.Conv):
            if lay.stride[0] not in (1, 2) or lay.stride[1] not in (1, 2):
                raise bad(lay, f"stride {lay.stride[0]}x{lay.stride[1]} not supported in hardware (1 or 2 on each axis)")
            _check_window(lay, bad, "", MAX_WINDOW)
        if isinstance(lay, ir.Pool) and not lay.is_global:
            if max(lay.pads) >= min(lay.kernel):
                raise bad(lay, f"padding {tuple(lay.pads)} not supported (each pad must be smaller than the window)")


#: the largest odd square window an ordinary conv kernel may need (its kernel embedded with its pads,
#: :func:`rtlgen.plan.geometry.embed_kernel`): 11x11 holds DS-CNN's 10x4 stride-2 first kernel (sim_tests/
#: test_input_shapes.py builds it)
MAX_WINDOW = 11
#: the same for a depthwise kernel (``cores/dwconv.py``; sim_tests/test_dwconv.py --runslow simulates 9x9, 10x4 in
#: 11x11 and 11x11 stride 2)
MAX_DW_WINDOW = 11


def _check_window(lay: ir.Conv, bad, what: str, limit: int):
    """Any ``kh x kw`` kernel whose window (embedded with its pads in the smallest odd square, the window the cores
    build) is at most ``limit``."""
    from .plan.geometry import embed_kernel

    kh, kw = lay.kernel
    K = embed_kernel(kh, kw, lay.pads)[0]
    if K > limit:
        raise bad(lay, f"{what}{kh}x{kw} kernel with pads {tuple(lay.pads)} needs a {K}x{K} window (at most "
                       f"{limit}x{limit} in hardware)")


def _check_depthwise(lay: ir.Conv, bad):
    """A depthwise convolution with depth multiplier 1 (``cores/dwconv.py``): any kernel whose embedded window is at
    most :data:`MAX_DW_WINDOW`, equal strides 1 or 2, no merged residual; other grouped convolutions are refused."""
    from .plan.geometry import is_depthwise

    C, O = lay.in_shape[2], lay.out_shape[2]
    if not lay.depthwise:
        raise bad(lay, f"grouped convolution (group={lay.group}, {C} -> {O} channels) has no hardware core (depthwise "
                       "with group = channels and multiplier 1 only; rtlgen inspect, predict and the golden model "
                       "support it)")
    if not is_depthwise(lay):
        raise bad(lay, f"depthwise convolution with depth multiplier {O // C} (group={lay.group}, {C} -> {O} channels) "
                       "has no hardware core (multiplier 1 only; rtlgen inspect, predict and the golden model support it)")
    if lay.stride[0] != lay.stride[1] or lay.stride[0] not in (1, 2):
        raise bad(lay, f"stride {lay.stride[0]}x{lay.stride[1]} not supported in hardware (1 or 2, equal on H and W)")
    _check_window(lay, bad, "depthwise ", MAX_DW_WINDOW)
    if lay.residual is not None:
        raise bad(lay, "a residual add merged into a depthwise convolution is not supported in hardware (quantize "
                       "the depthwise output before the Add)")


class Design:
    """Python API: a network, its plan and the build steps."""

    def __init__(self, net: ir.Network, config: BuildConfig | None = None, **options):
        """``config`` (default :class:`BuildConfig`), updated with ``options`` (its field names)."""
        self.config = cfg = (config or BuildConfig()).updated(**options)
        board, clock_mhz, budget = cfg.board, cfg.clock_mhz, cfg.budget
        check_hardware(net)
        if clock_mhz is not None and not clock_mhz > 0:
            raise OptionError(f"--clock-mhz: must be positive, got {clock_mhz}")
        self.net = net
        self.source_net = net  # as imported (self.net may be its input-folded form after planning)
        self.board = board
        self.budget = board_budget(board, budget)
        self.clock_mhz = float(clock_mhz or DEFAULT_CLOCK.get(board, self.budget.clock_mhz))
        self.plan_: Plan | None = None
        self.source = None  # the ONNX ModelProto (copied into the build folder for rtlgen sim)
        self.timings: dict[str, float] = {}

    @classmethod
    def load(cls, model=None, config: BuildConfig | None = None, **options):
        """Import ``model`` (an .onnx path, a bundled model name or an ``onnx.ModelProto``; default: the bundled
        ResNet8) with ``config`` updated by ``options`` (:class:`BuildConfig` field names)."""
        cfg = (config or BuildConfig()).updated(**options)
        t = time.perf_counter()
        import onnx

        src = resolve(model) if not hasattr(model, "graph") else model
        net = load_model(src, input_scale=cfg.input_scale, mean=cfg.mean, std=cfg.std, input_codes=cfg.input_codes)
        d = cls(net, cfg)
        d.source = src if hasattr(src, "graph") else onnx.load(src)
        d.timings["import"] = time.perf_counter() - t
        return d

    def plan(self, plan_file=None, **options) -> Plan:
        """Plan (or read ``plan_file``) with the config's planner options, updated by ``options`` (``allow_lut_mult``,
        ``allow_packing``, ``search``, ``taps``); writes nothing (:func:`step_plan` writes ``plan.json``)."""
        if plan_file is not None:
            options["plan_file"] = plan_file
        self.config = cfg = self.config.updated(**options)
        plan_file = cfg.plan_file
        t = time.perf_counter()
        self.net = self.source_net
        if plan_file is not None:
            self.net = apply_fold(self.source_net, plan_file_fold(plan_file))
            self.plan_ = load_plan_file(plan_file, self.net)
            self.plan_.board, self.plan_.clock_mhz, self.plan_.budget = self.board, self.clock_mhz, self.budget.as_dict()
        else:
            self.plan_ = self._search(self.net)
            # the input stream takes over half the frame (the stem's line buffer writes one pixel per cycle): try
            # two pixels per beat, kept where the plan is faster
            bound = 2 * self.plan_.layer(self.net.input.name).cycles > self.plan_.cycles_per_frame
            if cfg.input_fold and bound and why_not_foldable(self.net) is None:
                folded = fold_input(self.net)
                p2 = self._search(folded)
                if p2.cycles_per_frame < self.plan_.cycles_per_frame:
                    self.net, self.plan_ = folded, p2
                    self.plan_.options["input_fold"] = FOLD
        self._recost()
        if plan_file is not None:
            tot = self.plan_.totals()
            over = [f"{k} {tot[k]:g} > {getattr(self.budget, k)}" for k in RESOURCES if tot[k] > getattr(self.budget, k)]
            if over:
                raise OptionError(f"--plan: {plan_file} exceeds the {self.board} budget ({'; '.join(over)})")
        self.timings["plan"] = time.perf_counter() - t
        return self.plan_

    def _search(self, net: ir.Network) -> Plan:
        cfg = self.config
        return plan_network(net, self.board, self.budget, self.clock_mhz, cfg.allow_lut_mult, cfg.allow_packing,
                            cfg.search, cfg.taps)

    def _recost(self):
        from rtlgen.cores.registry import core_cycles  # the cores' own cycle models (no core is elaborated)

        recost(self.net, self.plan_, exact_cycles=core_cycles)

    def set_layer(self, name: str, **changes) -> LayerPlan:
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
        self._recost()
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
        rep = {
            "model": self.net.name,
            "board": self.board,
            "clock_mhz": self.clock_mhz,
            "cycles_per_frame": plan.cycles_per_frame,
            "fps": fps(self.clock_mhz, plan.cycles_per_frame),
            "bottleneck": slow.name,
            "total_macs": self.net.total_macs,
            "resources": {k: (int(v) if float(v).is_integer() else v) for k, v in tot.items()},
            "budget": self.budget.as_dict(),
            "skip_buffer_bits": plan.skip_buffer_bits,
            "preprocess": self.net.input.preprocess,
            "input_fold": getattr(self.net, "input_fold", 1),  # pixels per input beat (rtlgen.plan.fold)
            "layers": layers,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }
        if rep["input_fold"] > 1:
            rep["input_fold_stem"] = self.net.consumers(self.net.input.name)[0].name
        if getattr(self.net, "fusion_notes", None):  # the graph optimizer folded or refused something
            from .frontend.optimize import fusion_report

            rows = fusion_report(self.net)
            rep["fusion"] = {"folded": sum(n["action"] == "fused" for n in self.net.fusion_notes),
                             "kept": sum(n["action"] == "kept" for n in self.net.fusion_notes), "layers": rows}
        return rep

    def build(self, out_dir, steps=None, progress=None) -> dict:
        """Run the steps (default: the config's) into ``out_dir`` atomically, each step function writing its own
        artifacts (:data:`STEP_FUNCTIONS`). Returns the report dict."""
        steps = tuple(steps if steps is not None else self.config.steps)
        out = outdir.check_out_dir(out_dir)  # refuses anything rtlgen did not write (see rtlgen.outdir)
        if self.plan_ is None:
            self.plan()
        tmp = outdir.prepare_parent(out)
        try:
            step_import(self, tmp)
            step_plan(self, tmp)
            if "compose" in steps or "verilog" in steps:
                step_rtl(self, tmp, progress)
            rep = step_report(self, tmp)
            outdir.write_marker(tmp, model=self.net.name, board=self.board, steps=list(steps))
            outdir.install(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return rep


# ---- the steps: each writes its own artifacts into the (temporary) build folder ----------------------------------

def step_import(d: Design, out: Path):
    """``import``: ``ir.json`` (the integer IR) and ``model.onnx`` (the source model, for ``rtlgen sim``)."""
    (out / "ir.json").write_text(d.net.to_json())
    if d.source is not None:
        import onnx

        onnx.save(d.source, str(out / "model.onnx"))


def step_plan(d: Design, out: Path):
    """``plan``: ``plan.json`` (editable, accepted back as :attr:`BuildConfig.plan_file`)."""
    (out / "plan.json").write_text(d.plan_.to_json())


def step_rtl(d: Design, out: Path, progress=None):
    """``compose`` + ``verilog``: ``rtl/`` (``rtlgen_top.v``, manifest, weight images), with URAM layers
    ``weights/weights.bin`` + ``weights.json``, and for kv260/ultra96v2 the board wrapper, ``vivado/`` and
    ``driver/``."""
    t = time.perf_counter()
    from .emit.compose import write_rtl

    man = write_rtl(d.net, d.plan_, out / "rtl", progress=progress, weights_dir=out / "weights")
    d.timings["verilog"] = time.perf_counter() - t
    from rtlgen.boards import BOARDS, emit  # board wrapper, Vivado flow, PYNQ driver (kv260, ultra96v2)

    if d.board in BOARDS:
        emit(out, d.net, d.plan_, d.board, d.clock_mhz, man, tdata_width=d.config.tdata_width)


def step_report(d: Design, out: Path) -> dict:
    """``report``: ``report.json`` and ``report.md``; returns the report dict."""
    rep = d.report()
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    (out / "report.md").write_text(report_markdown(rep))
    return rep


#: step name -> the function writing its artifacts (``compose`` and ``verilog`` are one function: the Verilog is
#: written from the composed top)
STEP_FUNCTIONS = {"import": step_import, "plan": step_plan, "compose": step_rtl, "verilog": step_rtl,
                  "report": step_report}


def report_markdown(rep: dict) -> str:
    r = rep["resources"]
    b = rep["budget"]
    lines = [
        f"# rtlgen build: {rep['model']} on {rep['board']} @ {rep['clock_mhz']} MHz",
        "",
        f"* predicted cycles per frame: **{rep['cycles_per_frame']:,}** (bottleneck `{rep['bottleneck']}`)",
        f"* predicted throughput at {rep['clock_mhz']} MHz: **{fmt_fps(rep['fps'])} FPS**",
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
    if rep.get("fusion"):
        f = rep["fusion"]
        lines += ["", f"## Graph optimizer: {f['folded']} folded, {f['kept']} kept", "",
                  "| layer | op | ONNX nodes implemented | notes |", "|---|---|---|---|"]
        for r in f["layers"]:
            lines.append(f"| {r['layer']} | {r['op']} | {', '.join(r['source_nodes'])} | {'<br>'.join(r['notes'])} |")
    lines += ["", "Predictions from the planner's model; `rtlgen sim` measures cycles per frame in RTL simulation and "
              "`rtlgen report --synth` estimates resources with yosys; `rtlgen report --timing` estimates Fmax from the yosys netlist (no Vivado: not a sign-off).", ""]
    return "\n".join(lines)

