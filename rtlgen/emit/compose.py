"""Composition: one Amaranth top ``rtlgen_top`` built layer by layer from the IR and the plan.

Top-level ports
---------------
* ``i``: raw pixels, one pixel per beat (``C`` lanes of uint8, RGB), raster order, ``last`` on the frame's final beat.
* ``o``: the network output, ``lanes_out`` lanes per beat (8-bit requantized values, or 32-bit raw accumulators for a
  final dense layer without output quantization), ``last`` on each frame's final beat.

Only when some layer keeps its weights in UltraRAM (plan ``storage="uram"``; UltraRAM has no initial contents, see
``cores/conv.py``), two more ports (a design without ``uram`` layers has neither and is unchanged):

* ``wload``: the weight-load stream, one word of ``W`` bits per beat (``W`` = the widest URAM weight word, the
  manifest's ``weights.width``), no ``last``. It carries every URAM memory's words back to back, memory after memory
  in the order of :attr:`RtlgenTop.load_segments` (layer order; a loop-merged projection right after its conv), each
  memory from address 0; a narrower memory takes the low bits of the beat. A daisy chain routes the beats: the first
  memory not yet loaded takes them, so ``wload.ready`` is high exactly until the last word of the last memory is
  accepted. The build writes this exact stream as ``DIR/weights/weights.bin`` (:meth:`RtlgenTop.weight_image`).
* ``weights_loaded``: 1 once every URAM memory is loaded. Layers with URAM weights take no activation beat before
  their memory is loaded, so frames may be sent at any time but none progresses past such a layer until then;
  ``rst`` clears every memory's ``loaded`` flag (send the image again after a reset).

Residual blocks (the seed's idea, see ``cores/conv.py``)
--------------------------------------------------------
* *Temporal reuse*: when a conv's merged skip is the input of the conv feeding it (identity shortcut, stride 1,
  'same' padding), the first conv forwards the centre pixel of its window (port ``centre``) and only a small skip
  FIFO (:func:`rtlgen.plan.geometry.skip_fifo_entries`, about half the paper's) sits in front of the second conv.
* *Loop merging*: when the skip is a 1x1 projection conv on the same input as the first conv, with the same stride,
  it is computed inside the first conv on its window centres (port ``proj``).
* Otherwise the producer's stream is forked and the skip waits in a FIFO sized from the window delays on the
  longer path (the paper's rule per conv on it).

Every edge gets a lane converter where the producer's lanes differ from what the consumer reads, and a FIFO sized by
the planner. Submodules are named after the IR layers (``conv3``, ``conv3_skip_fifo``...), so the Verilog hierarchy
is stable and readable.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import ir
from rtlgen.cores.registry import PlanContext, from_plan
from ..plan.topology import Edge, Topology, out_lanes, topology


@dataclass
class LoadSegment:
    """One URAM weight memory on the top's ``wload`` chain."""
    core: str  # top-level core (submodule) that holds the memory
    port: str  # its load port: wload | proj_wload
    layer: str  # IR layer whose weights it holds (a loop-merged projection's own name)
    words: int  # memory words = beats of this segment
    width: int  # bits per word
    values: list = field(default_factory=list, repr=False)  # the words (ints), in address order


# ---------------------------------------------------------------------------------------------------------------


def load_segments(net: ir.Network, plan, topo: Topology | None = None) -> list[LoadSegment]:
    """The URAM weight memories of the design in ``wload`` order (layer order; a merged projection after its conv),
    with their words (from the cores' own packing: ``ConvEngine.rom_init``, ``DenseCore.rom_words``)."""
    topo = topo or topology(net, plan)
    P = {lp.name: lp for lp in plan.layers}
    ctx = PlanContext(net, P, topo)
    segs = []
    for lay in net.layers:
        if lay.name in topo.merged or not isinstance(lay, (ir.Conv, ir.Dense)):
            continue
        proj = topo.proj_of.get(lay.name)
        if P[lay.name].storage != "uram" and not (proj and P[proj].storage == "uram"):
            continue
        core = from_plan(lay, P[lay.name], ctx)
        if isinstance(lay, ir.Dense):
            segs.append(LoadSegment(lay.name, "wload", lay.name, core.rom_depth, core.rom_width, core.rom_words()))
            continue
        for port, eng in core.load_ports:
            name = proj if port == "proj_wload" else lay.name
            segs.append(LoadSegment(lay.name, port, name, eng.rom_depth, eng.rom_width, eng.rom_init()[: eng.rom_depth]))
    return segs


#: bytes per word in ``weights.bin``: a multiple of 16, so every AXI4-Stream width (32/64/128 bits) carries whole words
WORD_ALIGN = 16


class RtlgenTop(wiring.Component):
    """The whole network as one streaming component (see the module docstring for its ports)."""

    def __init__(self, net: ir.Network, plan):
        from rtlgen.cores.stream import act_signature

        self.net, self.plan = net, plan
        self.topo = topology(net, plan)
        P = {lp.name: lp for lp in plan.layers}
        self.P = P
        out = net[net.output]
        self.out_lanes = out_lanes(out, P[out.name])
        self.out_width = 32 if out.out_q is None else 8
        C = net.input.out_shape[2]
        sig = {"i": In(act_signature(C)), "o": Out(act_signature(self.out_lanes, self.out_width))}
        #: URAM weight memories on the ``wload`` chain (empty: no ``wload``/``weights_loaded`` ports)
        self.load_segments = load_segments(net, plan, self.topo)
        if self.load_segments:
            from rtlgen.cores.conv import load_signature

            self.load_width = max(s.width for s in self.load_segments)
            sig["wload"] = In(load_signature(self.load_width))
            sig["weights_loaded"] = Out(1)
        super().__init__(sig)

    @property
    def word_bytes(self) -> int:
        """Bytes per ``wload`` word in the weight image (the word, little-endian, zero-padded to 16-byte multiples)."""
        return -(-self.load_width // (8 * WORD_ALIGN)) * WORD_ALIGN

    def weight_words(self) -> list[int]:
        """The ``wload`` stream: every beat's payload, in order (empty without URAM layers)."""
        return [w for s in self.load_segments for w in s.values]

    def weight_image(self) -> bytes:
        """``weights.bin``: the ``wload`` stream, each word little-endian in :attr:`word_bytes` bytes."""
        if not self.load_segments:
            return b""
        n = self.word_bytes
        return b"".join(int(w).to_bytes(n, "little") for w in self.weight_words())

    def weight_info(self) -> dict | None:
        """Description of the weight image (manifest ``weights`` and ``weights/weights.json``); None without URAM."""
        if not self.load_segments:
            return None
        segs, off = [], 0
        for s in self.load_segments:
            segs.append({"layer": s.layer, "core": s.core, "port": s.port, "words": s.words, "width": s.width,
                         "offset_words": off, "offset_bytes": off * self.word_bytes})
            off += s.words
        return {"port": "wload", "loaded_port": "weights_loaded", "width": self.load_width,
                "word_bytes": self.word_bytes, "words": off, "bytes": off * self.word_bytes,
                "image": "weights/weights.bin", "segments": segs}

    def elaborate(self, platform):
        from rtlgen.cores.adapters import LaneConverter
        from rtlgen.plan.cost import lane_converter_slots
        from rtlgen.cores.fifo import StreamFIFO
        from rtlgen.cores.fork import Fork

        m = Module()
        net, P, topo = self.net, self.P, self.topo
        ctx = PlanContext(net, P, topo)
        cores = {}
        for lay in net.layers:
            if lay.name in topo.merged:
                continue
            core = from_plan(lay, P[lay.name], ctx)
            cores[lay.name] = core
            m.submodules[lay.name] = core
        # group edges by (src, port) for forks
        groups: dict[tuple[str, str], list[Edge]] = {}
        for e in topo.edges:
            groups.setdefault((e.src, e.port), []).append(e)
        self.probes = []
        for (src, port), edges in groups.items():
            prod = getattr(cores[src], port)
            if port == "o":
                self._probe(m, src, prod)
            if len(edges) > 1:
                fk = Fork(prod.payload.shape(), len(edges))
                m.submodules[f"{src}_{port}_fork"] = fk
                wiring.connect(m, prod, fk.i)
                outs = [fk.out(k) for k in range(len(edges))]
            else:
                outs = [prod]
            for e, s in zip(edges, outs):
                tag = f"{e.dst}_{e.dport}"
                if e.lanes_src != e.lanes_dst:
                    lc = LaneConverter(e.channels, e.lanes_src, e.lanes_dst, width=e.width,
                                       slots=lane_converter_slots(e.lanes_src, e.lanes_dst, e.channels, e.width))
                    m.submodules[f"{tag}_lanes"] = lc
                    wiring.connect(m, s, lc.i)
                    s = lc.o
                ff = StreamFIFO(e.depth, lanes=e.lanes_dst, width=e.width)
                m.submodules[f"{tag}_fifo"] = ff
                wiring.connect(m, s, ff.i)
                wiring.connect(m, ff.o, getattr(cores[e.dst], e.dport))
        wiring.connect(m, wiring.flipped(self.i), cores[net.input.name].i)
        wiring.connect(m, cores[net.output].o, wiring.flipped(self.o))
        if self.load_segments:
            self._weight_chain(m, cores)
        return m

    def _weight_chain(self, m, cores):
        """Daisy chain of the ``wload`` stream: the first memory (in :attr:`load_segments` order) that is not loaded
        takes the beats (a memory's ``wload.ready`` is high exactly until it is loaded)."""
        from amaranth.hdl import Signal

        prev = None  # every earlier memory loaded
        sels = []
        for s in self.load_segments:
            port = getattr(cores[s.core], s.port)
            tag = s.core if s.port == "wload" else f"{s.core}_proj"
            sel = Signal(name=f"wload_sel_{tag}")
            done = Signal(name=f"wload_done_{tag}")
            m.d.comb += [
                sel.eq(port.ready if prev is None else prev & port.ready),
                done.eq(~port.ready if prev is None else prev & ~port.ready),
                port.valid.eq(self.wload.valid & sel),
                port.payload.eq(self.wload.payload[: s.width]),
            ]
            sels.append(sel)
            prev = done
        from amaranth.hdl import Cat

        m.d.comb += [self.wload.ready.eq(Cat(*sels).any()), self.weights_loaded.eq(prev)]

    def _probe(self, m, name, s):
        """Named copies of a layer's output stream (``probe_<layer>__valid/ready/payload``) for mismatch localization."""
        from amaranth.hdl import Signal

        v, r = Signal(name=f"probe_{name}__valid"), Signal(name=f"probe_{name}__ready")
        p = Signal(len(s.payload.as_value()), name=f"probe_{name}__payload")
        m.d.comb += [v.eq(s.valid), r.eq(s.ready), p.eq(s.payload.as_value())]
        lay = self.net[name]
        src_lp = self.P[name]
        self.probes.append({"layer": name, "prefix": f"probe_{name}", "lanes": out_lanes(lay, src_lp),
                            "width": 32 if lay.out_q is None else 8, "shape": list(lay.out_shape),
                            "signed": bool(lay.out_q.signed) if lay.out_q is not None else True})

    def manifest(self) -> dict:
        net = self.net
        H, W, C = net.input.out_shape
        f = getattr(net, "input_fold", 1)  # pixels per input beat (rtlgen.plan.fold)
        out = net[net.output]
        return {
            "top": "rtlgen_top",
            "input": {"port": "i", "lanes": C, "width": 8, "pixels": H * W * f, "beats_per_frame": H * W,
                      "shape": [H, W, C], "pixels_per_beat": f,
                      "pixel_shape": list(getattr(net, "pixel_shape", (H, W, C)))},
            "output": {"port": "o", "lanes": self.out_lanes, "width": self.out_width, "values": out.out_shape[2],
                       "beats_per_frame": math.ceil(out.out_shape[2] / self.out_lanes),
                       "signed": bool(out.out_q.signed) if out.out_q is not None else True},
            "skip_fifo_bits": self.topo.skip_bits,
            "probes": getattr(self, "probes", []),
            "merged": {"loop_merged_projections": self.topo.proj_of,
                       "temporal_reuse": [k for k, v in self.topo.centre_of.items() if v]},
            **({"weights": self.weight_info()} if self.load_segments else {}),
        }


def write_weight_image(top: RtlgenTop, folder: Path) -> dict:
    """``folder/weights.bin`` (the exact ``wload`` stream) and ``folder/weights.json`` (its layout)."""
    import hashlib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    img = top.weight_image()
    info = dict(top.weight_info())
    info.update({
        "format": "rtlgen-weights-1",
        "order": "segments in the listed order (layer order, a merged projection after its conv); each segment is "
                 "its memory's words from address 0; every word little-endian, zero-padded to word_bytes",
        "word_layout": "weight of output lane o and MAC lane i of a word at bits [(o*P+i)*8 +: 8], int8, "
                       "P = tap_par*ich_par, MAC lane i = tap slot j*ich_par + channel lane (conv words in the order "
                       "output group, tap group, channel group: rtlgen.cores.conv.ConvEngine.rom_init)",
        "sha256": hashlib.sha256(img).hexdigest(),
    })
    info.pop("image", None)
    (folder / "weights.bin").write_bytes(img)
    (folder / "weights.json").write_text(json.dumps(info, indent=1))
    return info


def module_ports(verilog: str, module: str) -> dict[str, tuple[str, int]]:
    """``{port: (direction, width)}`` of ``module`` in a Verilog text as Amaranth writes it (the header's test and
    :func:`top_header` read the generated file, so the header documents exactly the ports the module has)."""
    import re

    m = re.search(rf"^module {re.escape(module)}\s*\((.*?)\);", verilog, re.S | re.M)
    if m is None:
        raise ValueError(f"no module {module} in the Verilog text")
    names = [n.strip() for n in m.group(1).replace("\n", " ").split(",") if n.strip()]
    body = verilog[m.end():verilog.find("endmodule", m.end())]
    out = {}
    for n in names:
        d = re.search(rf"^\s*(input|output)\s*(?:\[(\d+):0\])?\s*{re.escape(n)}\s*;", body, re.M)
        out[n] = (d.group(1), int(d.group(2)) + 1 if d.group(2) else 1) if d else ("?", 0)
    return out


def top_header(top: "RtlgenTop", man: dict, verilog: str) -> str:
    """The comment block that opens ``rtlgen_top.v``: every port of the module (payload bit layout, ``last``, reset,
    weight-load protocol where present) and the plan (model, board, clock, cycles per frame, per-layer parallelism and
    cycles). Only a comment: the Verilog after it is exactly what Amaranth wrote."""
    net, plan = top.net, top.plan
    H, W, C = net.input.out_shape
    f = getattr(net, "input_fold", 1)  # pixels per input beat (rtlgen.plan.fold)
    o = man["output"]
    L, wd, V = o["lanes"], o["width"], o["values"]
    kind = ("int8" if o["signed"] else "uint8") if wd == 8 else "int32 raw accumulators of the final dense layer"
    doc = {
        "clk": ["clock; every register updates on its rising edge"],
        "rst": ["reset: synchronous, active high (Amaranth's sync domain), sampled on a rising clk edge; returns every",
                "register to its initial value (streams and FIFOs empty, frame positions at the start"
                + ("; every URAM memory's loaded flag cleared: send the weights again)" if top.load_segments else ")")],
        "i__payload": ([f"[{8 * C}:0] one pixel per beat, raster order (row by row, left to right), {H}x{W} beats/frame:",
                        f"  [8*c+7:8*c] channel c (c = 0..{C - 1}{', RGB' if C == 3 else ''}), a raw uint8 pixel: the "
                        "input stage maps it", "  through its per-channel table (quantize((pixel*S - mean)/std))"]
                       if f == 1 else
                       [f"[{8 * C}:0] {f} horizontally adjacent pixels per beat (input fold: the image's bytes in raster "
                        f"order, {8 * C // f}", f"  bits per pixel), {H}x{W} beats/frame for a "
                        f"{H}x{W * f}x{C // f} image:",
                        f"  [8*(p*{C // f}+c)+7:8*(p*{C // f}+c)] channel c of pixel p of the beat (p = 0..{f - 1}, "
                        f"c = 0..{C // f - 1}), a raw", "  uint8 value: the input stage maps it through its "
                        "per-channel table (quantize((pixel*S - mean)/std))"])
                       + [f"  [{8 * C}] last: 1 on the frame's final beat (beat {H * W} of {H * W})"],
        "i__valid": ["input beat offered (hold payload stable until accepted)"],
        "i__ready": ["input beat accepted on a rising clk edge where valid & ready"],
        "o__payload": [f"[{L * wd}:0] {L} lane(s) of {wd} bits, {o['beats_per_frame']} beat(s)/frame, {V} values/frame "
                       f"({kind}):",
                       f"  [{wd}*l+{wd - 1}:{wd}*l] lane l of beat b = output value b*{L}+l (NHWC flatten order)"
                       + (f"; lanes past value {V - 1} are padding" if o["beats_per_frame"] * L > V else ""),
                       f"  [{L * wd}] last: 1 on the frame's final output beat"],
        "o__valid": ["output beat offered"],
        "o__ready": ["output beat accepted on a rising clk edge where valid & ready (may be held low: back-pressure)"],
    }
    if top.load_segments:
        wi = man["weights"]
        doc.update({
            "wload__payload": [f"[{wi['width'] - 1}:0] one URAM weight word per beat (no last): the {wi['words']:,} words of",
                               "  DIR/weights/weights.bin in order (memory after memory, each from address 0; a narrower",
                               "  memory takes the low bits); layout in DIR/weights/weights.json"],
            "wload__valid": ["weight word offered"],
            "wload__ready": ["weight word accepted where valid & ready; high exactly until the last word is loaded"],
            "weights_loaded": ["1 once every URAM memory is loaded; frames wait at URAM layers until then. Send the",
                               "whole image once after every reset"],
        })
    ports = module_ports(verilog, "rtlgen_top")
    lines = ["// rtlgen_top: streaming dataflow accelerator generated by rtlgen (Verilog body below written by Amaranth).",
             f"// model {net.name}, board {plan.board}, clock {plan.clock_mhz} MHz, {plan.cycles_per_frame:,} cycles/frame "
             "predicted (throughput: report.json)",
             "//",
             "// Ports (streams: valid/ready handshake, a beat moves on a rising clk edge where valid & ready):"]
    order = list(doc)
    for name, (d, w) in sorted(ports.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        text = doc.get(name, ["(undocumented)"])
        lines.append(f"//   {name:15s} {d:6s} {w:4d}  {text[0]}")
        lines += [f"//   {'':15s} {'':6s} {'':4s}  {t}" for t in text[1:]]
    lines += ["//", "// Plan (per layer: parallelism och/ich/pix/taps, weight storage, predicted cycles per frame):"]
    lines.append(f"//   {'layer':12s} {'op':16s} {'och/ich/pix/tap':>16s} {'storage':>7s} {'cycles':>9s}")
    P = {lp.name: lp for lp in plan.layers}
    for lay in net.layers:
        lp = P.get(lay.name)
        if lp is None:
            continue
        par = f"{lp.och_par}/{lp.ich_par}/{lp.pix_par}/{lp.tap_par}"
        st = lp.storage if isinstance(lay, (ir.Conv, ir.Dense)) else "-"
        mark = "  <- bottleneck" if lp.cycles == plan.cycles_per_frame else ""
        lines.append(f"//   {lay.name:12s} {lay.kind:16s} {par:>16s} {st:>7s} {lp.cycles:>9,d}{mark}")
    lines += ["//", "// Details: DIR/rtl/manifest.json (ports, probes), DIR/plan.json, DIR/report.json.", "", ""]
    return "\n".join(lines)


def write_rtl(net: ir.Network, plan, out_dir: Path, progress=None, weights_dir: Path | None = None) -> dict:
    """Elaborate ``rtlgen_top`` and write ``rtlgen_top.v``, ``manifest.json`` and per-layer weight images; with URAM
    layers and ``weights_dir``, also the load image ``weights_dir/weights.bin`` + ``weights.json``."""
    from rtlgen.cores.conv import strip_ultra_init
    from .verilog import verilog_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = RtlgenTop(net, plan)
    body = strip_ultra_init(verilog_text(top, "rtlgen_top"))
    man = top.manifest()  # after elaboration (lists the probes)
    (out_dir / "rtlgen_top.v").write_text(top_header(top, man, body) + body)
    (out_dir / "manifest.json").write_text(json.dumps(man, indent=1))
    if top.load_segments and weights_dir is not None:
        write_weight_image(top, weights_dir)
    wdir = out_dir / "weights"
    wdir.mkdir(exist_ok=True)
    for lay in net.layers:
        if isinstance(lay, (ir.Conv, ir.Dense)):
            w = lay.weights.reshape(lay.weights.shape[0], -1)
            with open(wdir / f"{lay.name}.hex", "w") as f:
                f.write(f"// {lay.name}: {w.shape[0]} outputs x {w.shape[1]} int8 weights (O, Kh, Kw, C order), then int32 biases\n")
                for row in w:
                    f.write(" ".join(f"{int(v) & 0xFF:02x}" for v in row) + "\n")
                f.write(" ".join(f"{int(b) & 0xFFFFFFFF:08x}" for b in lay.bias) + "\n")
    return man
