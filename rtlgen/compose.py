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
  FIFO (:func:`rtlgen.cores.conv.skip_fifo_entries`, about half the paper's) sits in front of the second conv.
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

from . import ir
from .errors import RtlgenError


@dataclass
class Edge:
    src: str  # producing layer
    port: str  # producer port: o | centre | proj
    dst: str  # consuming layer
    dport: str  # consumer port: i | a | b | skip
    lanes_src: int
    lanes_dst: int
    channels: int
    depth: int  # FIFO depth in beats of lanes_dst
    width: int = 8


@dataclass
class LoadSegment:
    """One URAM weight memory on the top's ``wload`` chain."""
    core: str  # top-level core (submodule) that holds the memory
    port: str  # its load port: wload | proj_wload
    layer: str  # IR layer whose weights it holds (a loop-merged projection's own name)
    words: int  # memory words = beats of this segment
    width: int  # bits per word
    values: list = field(default_factory=list, repr=False)  # the words (ints), in address order


@dataclass
class Topology:
    edges: list[Edge] = field(default_factory=list)
    centre_of: dict = field(default_factory=dict)  # conv name -> True when its centre port is used
    proj_of: dict = field(default_factory=dict)  # conv name -> projection layer merged into it
    merged: set = field(default_factory=set)  # layers computed inside another core
    skip_bits: dict = field(default_factory=dict)  # consumer -> skip FIFO bits


def _same_padded(lay: ir.Conv) -> bool:
    kh, kw = lay.kernel
    return kh == kw and kh % 2 == 1 and tuple(lay.pads) == (kh // 2,) * 4 and lay.stride[0] == lay.stride[1]


def _input_lanes(lay, lp) -> int:
    """Lanes a core reads on its main input."""
    if isinstance(lay, ir.Conv):
        return lp.ich_par
    if isinstance(lay, ir.Dense):  # the core regroups pixels of C values into ich_par-wide groups itself
        return min(lp.ich_par, lay.in_shape[2])
    return lp.lanes_out


def _out_lanes(lay, lp) -> int:
    if isinstance(lay, ir.InputStage):
        return lay.out_shape[2]
    if isinstance(lay, (ir.Conv, ir.Dense)):
        return lp.och_par if isinstance(lay, ir.Conv) else lp.lanes_out
    return lp.lanes_out


def _window_delay_pixels(lay: ir.Conv, pix: int) -> int:
    """Input pixels a conv must see beyond pixel p before it emits output p (its window look-ahead)."""
    kh, kw = lay.kernel
    W = lay.in_shape[1]
    s = lay.stride[0]
    return (kh // 2) * W + kw // 2 + 2 * pix + (W if s > 1 else 0) + 2


def projection_merges(net: ir.Network) -> dict[str, str]:
    """Loop merging: host conv -> the 1x1 projection shortcut computed on its window centres (one pass over the
    block input feeds both). The rule depends on the network only; :func:`topology` applies it and the planner
    (:func:`rtlgen.planner.plan_network`) costs a merged projection as the engine it becomes: the host's
    ``ich_par`` lanes, one pixel per cycle, no packing."""
    L = {lay.name: lay for lay in net.layers}
    consumers = {lay.name: [c for c in net.layers if lay.name in c.inputs] for lay in net.layers}
    out: dict[str, str] = {}
    for lay in net.layers:
        if not (isinstance(lay, ir.Conv) and lay.residual is not None):
            continue
        a = L[lay.inputs[0]]
        r = L[lay.residual]
        if (isinstance(a, ir.Conv) and isinstance(r, ir.Conv) and r.kernel == (1, 1) and not any(r.pads)
                and r.inputs[0] == a.inputs[0] and tuple(r.stride) == tuple(a.stride) and _same_padded(a)
                and a.residual is None and [c.name for c in consumers[r.name]] == [lay.name]
                and a.name not in out and len(consumers[a.name]) == 1):
            out[a.name] = r.name
    return out


def topology(net: ir.Network, plan) -> Topology:
    from .cores.conv import skip_fifo_entries

    t = Topology()
    L = {lay.name: lay for lay in net.layers}
    P = {lp.name: lp for lp in plan.layers}
    consumers = {lay.name: [c for c in net.layers if lay.name in c.inputs] for lay in net.layers}

    # 1. residual merges: loop merging (projection) and temporal reuse (identity)
    merges = projection_merges(net)
    skip_src: dict[str, tuple[str, str]] = {}
    for lay in net.layers:
        if not (isinstance(lay, ir.Conv) and lay.residual is not None):
            continue
        a = L[lay.inputs[0]]
        r = L[lay.residual]
        if merges.get(a.name) == r.name:
            t.proj_of[a.name] = r.name
            t.merged.add(r.name)
            skip_src[lay.name] = (a.name, "proj")
            continue
        if (isinstance(a, ir.Conv) and a.inputs[0] == r.name and tuple(a.stride) == (1, 1) and _same_padded(a)
                and len(consumers[a.name]) == 1 and not t.centre_of.get(a.name)):
            t.centre_of[a.name] = True
            skip_src[lay.name] = (a.name, "centre")
            continue
        skip_src[lay.name] = (r.name, "o")

    # 2. edges
    for lay in net.layers:
        if isinstance(lay, ir.InputStage) or lay.name in t.merged:
            continue
        lp = P[lay.name]
        ins = [lay.inputs[0]]
        ports = ["i"]
        if isinstance(lay, ir.Add):
            ins, ports = list(lay.inputs), ["a", "b"]
        for src, dport in zip(ins, ports):
            s = L[src]
            lanes_src = _out_lanes(s, P[src])
            lanes_dst = _input_lanes(lay, lp) if dport == "i" else lp.lanes_out
            C = s.out_shape[2]
            width = 32 if (s.out_q is None) else 8
            depth = max(P[src].fifo_depth, 2)
            if isinstance(lay, ir.Add):
                depth = max(depth, _add_skip_depth(net, lay, src, lanes_dst, P))
            t.edges.append(Edge(src, "o", lay.name, dport, lanes_src, lanes_dst, C, depth, width))
        if isinstance(lay, ir.Conv) and lay.residual is not None:
            src, port = skip_src[lay.name]
            s = L[src]
            O = lay.out_shape[2]
            if port == "centre":
                lanes_src = P[src].ich_par
            elif port == "proj":
                lanes_src = P[lay.residual].och_par
            else:
                lanes_src = _out_lanes(s, P[src])
            R = math.ceil(O / lp.och_par)
            W = lay.out_shape[1]
            kh, kw = lay.kernel
            if port in ("centre", "proj"):
                entries = skip_fifo_entries(W, O, kh, kw, lp.och_par, temporal_reuse=True, pix=lp.pix_par)
            else:
                entries = _generic_skip_entries(net, lay, src, P)
            pixels = math.ceil(entries / O)
            depth = pixels * R + R + 2
            t.skip_bits[lay.name] = depth * lp.och_par * 8
            t.edges.append(Edge(src, port, lay.name, "skip", lanes_src, lp.och_par, O, depth))
        if isinstance(lay, ir.Add):
            H, W, C = lay.out_shape
            t.skip_bits[lay.name] = max(e.depth for e in t.edges if e.dst == lay.name) * lp.lanes_out * 8
    return t


def _path_delay(net, frm: str, to: str, P) -> int:
    """Sum of window delays (pixels) of the convs on the longest path frm -> to (exclusive of frm)."""
    L = {lay.name: lay for lay in net.layers}
    memo = {}

    def d(name):
        if name == frm:
            return 0
        if name in memo:
            return memo[name]
        lay = L[name]
        best = None
        for i in lay.inputs:
            v = d(i)
            if v is not None:
                best = v if best is None else max(best, v)
        if best is not None and isinstance(lay, ir.Conv):
            best += _window_delay_pixels(lay, P[name].pix_par)
        elif best is not None and isinstance(lay, ir.Pool) and not lay.is_global:
            best += lay.kernel[0] * lay.in_shape[1] + 2
        memo[name] = best
        return best

    return d(to) or 0


def _generic_skip_entries(net, lay: ir.Conv, src: str, P) -> int:
    """Skip FIFO entries for a merged residual without reuse: the window delays on the main path (paper's rule).

    The main path is measured from the skip source when it feeds the main path (identity skip), else from the
    nearest common ancestor of both paths (e.g. an option-A shortcut and the block's stride-2 conv1 are siblings fed
    by the block input: conv1's window delay must be covered too, or the block input's fork stalls -- a deadlock).
    Delays of convs before a stride count in their input pixels, which over-covers the skip pixels (safe)."""
    main_in = lay.inputs[0]
    root = src
    if src not in _ancestors(net, main_in):
        main_anc = _ancestors(net, main_in)
        common = [a for a in _ancestors(net, src) if a in main_anc]
        root = common[0] if common else src
    delay = _path_delay(net, root, main_in, P) + _window_delay_pixels(lay, P[lay.name].pix_par)
    return delay * lay.out_shape[2] + P[lay.name].och_par + 1


def _add_skip_depth(net, lay: ir.Add, src: str, lanes: int, P) -> int:
    """FIFO beats on one input of a standalone add: the other path's extra window delay, at the add's resolution."""
    other = [i for i in lay.inputs if i != src][0]
    # common ancestor: walk up from both
    anc = _ancestors(net, src)
    common = [a for a in _ancestors(net, other) if a in anc]
    if not common:
        return 2
    root = common[0]
    d_self = _path_delay(net, root, src, P)
    d_other = _path_delay(net, root, other, P)
    H, W, C = lay.out_shape
    extra = max(0, d_other - d_self) + W + 4
    return extra * math.ceil(C / lanes) + 4


def _ancestors(net, name):
    L = {lay.name: lay for lay in net.layers}
    out, stack = [], [name]
    while stack:
        n = stack.pop(0)
        if n in out:
            continue
        out.append(n)
        stack.extend(L[n].inputs)
    return out


# ---------------------------------------------------------------------------------------------------------------


def _make_core(lay, lp, topo: Topology, net, P):
    from .cores.add import AddCore
    from .cores.conv import Conv
    from .cores.dense import DenseCore
    from .cores.pool import PoolCore

    if isinstance(lay, ir.InputStage):
        from .cores.input_stage import InputStageCore

        return InputStageCore.from_layer(lay)
    if isinstance(lay, ir.Conv):
        proj = net[topo.proj_of[lay.name]] if lay.name in topo.proj_of else None
        kw = {}
        if proj is not None:
            pp = P[proj.name]
            kw = dict(proj_och_par=pp.och_par, proj_pix_par=1, proj_storage=pp.storage, proj_mult=pp.mult)
        return Conv(lay, ich_par=lp.ich_par, och_par=lp.och_par, pix_par=lp.pix_par, tap_par=lp.tap_par,
                    packing=lp.packing, storage=lp.storage, mult=lp.mult, centre=bool(topo.centre_of.get(lay.name)),
                    proj=proj, **kw)
    if isinstance(lay, ir.Dense):
        storage = {"lut": "logic", "uram": "uram"}.get(lp.storage, "auto")
        return DenseCore.from_layer(lay, lanes_in=_input_lanes(lay, lp), och_par=lp.och_par, ich_par=lp.ich_par,
                                    lanes_out=lp.lanes_out, storage=storage, mult=lp.mult)
    if isinstance(lay, ir.Pool):
        return PoolCore.from_layer(lay, lanes=lp.lanes_out)
    if isinstance(lay, ir.Add):
        return AddCore.from_layer(lay, lanes=lp.lanes_out)
    if isinstance(lay, ir.ShortcutA):
        from .cores.shortcut_a import ShortcutACore

        return ShortcutACore.from_layer(lay, lanes_in=lp.lanes_out, lanes_out=lp.lanes_out)
    if isinstance(lay, ir.Requantize):
        from .cores.requant_core import RequantCore

        return RequantCore.from_layer(lay, lanes=lp.lanes_out)
    raise RtlgenError(f"layer {lay.name!r}: no core for op {lay.kind!r}")


def core_cycles(net: ir.Network, plan) -> dict[str, int]:
    """Steady-state cycles per frame of every stage from the cores' own cycle models (``cycles_per_frame``), with the
    residual merges of :func:`topology` (a loop-merged projection runs inside its conv and reports that conv's)."""
    topo = topology(net, plan)
    P = {lp.name: lp for lp in plan.layers}
    out = {}
    for lay in net.layers:
        if lay.name in topo.merged:
            continue
        core = _make_core(lay, P[lay.name], topo, net, P)
        out[lay.name] = int(core.cycles_per_frame())
    for a, r in topo.proj_of.items():
        out[r] = out[a]
    return out


def load_segments(net: ir.Network, plan, topo: Topology | None = None) -> list[LoadSegment]:
    """The URAM weight memories of the design in ``wload`` order (layer order; a merged projection after its conv),
    with their words (from the cores' own packing: ``ConvEngine.rom_init``, ``DenseCore.rom_words``)."""
    topo = topo or topology(net, plan)
    P = {lp.name: lp for lp in plan.layers}
    segs = []
    for lay in net.layers:
        if lay.name in topo.merged or not isinstance(lay, (ir.Conv, ir.Dense)):
            continue
        proj = topo.proj_of.get(lay.name)
        if P[lay.name].storage != "uram" and not (proj and P[proj].storage == "uram"):
            continue
        core = _make_core(lay, P[lay.name], topo, net, P)
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
        from .cores.stream import act_signature

        self.net, self.plan = net, plan
        self.topo = topology(net, plan)
        P = {lp.name: lp for lp in plan.layers}
        self.P = P
        out = net[net.output]
        self.out_lanes = _out_lanes(out, P[out.name])
        self.out_width = 32 if out.out_q is None else 8
        C = net.input.out_shape[2]
        sig = {"i": In(act_signature(C)), "o": Out(act_signature(self.out_lanes, self.out_width))}
        #: URAM weight memories on the ``wload`` chain (empty: no ``wload``/``weights_loaded`` ports)
        self.load_segments = load_segments(net, plan, self.topo)
        if self.load_segments:
            from .cores.conv import load_signature

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
        from .cores.adapters import LaneConverter
        from .cores.fifo import StreamFIFO
        from .cores.fork import Fork

        m = Module()
        net, P, topo = self.net, self.P, self.topo
        cores = {}
        for lay in net.layers:
            if lay.name in topo.merged:
                continue
            core = _make_core(lay, P[lay.name], topo, net, P)
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
                    lc = LaneConverter(e.channels, e.lanes_src, e.lanes_dst, width=e.width)
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
        self.probes.append({"layer": name, "prefix": f"probe_{name}", "lanes": _out_lanes(lay, src_lp),
                            "width": 32 if lay.out_q is None else 8, "shape": list(lay.out_shape),
                            "signed": bool(lay.out_q.signed) if lay.out_q is not None else True})

    def manifest(self) -> dict:
        net = self.net
        H, W, C = net.input.out_shape
        out = net[net.output]
        return {
            "top": "rtlgen_top",
            "input": {"port": "i", "lanes": C, "width": 8, "pixels": H * W, "beats_per_frame": H * W, "shape": [H, W, C]},
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


def write_rtl(net: ir.Network, plan, out_dir: Path, progress=None, weights_dir: Path | None = None) -> dict:
    """Elaborate ``rtlgen_top`` and write ``rtlgen_top.v``, ``manifest.json`` and per-layer weight images; with URAM
    layers and ``weights_dir``, also the load image ``weights_dir/weights.bin`` + ``weights.json``."""
    from .cores.conv import strip_ultra_init
    from .simulate import verilog_text

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = RtlgenTop(net, plan)
    (out_dir / "rtlgen_top.v").write_text(strip_ultra_init(verilog_text(top, "rtlgen_top")))
    man = top.manifest()  # after elaboration (lists the probes)
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
