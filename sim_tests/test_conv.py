"""Convolution core (cores/conv.py: window generator + MAC engine + requant/residual) bit-exact against
``rtlgen.golden.conv_acc``/``conv_post``, with cocotb + Verilator.

Several layer configurations are compiled into ONE Verilator build (a :class:`Bundle` wrapper exposing each
instance's ports as ``<name>_<port>``), so one build checks many cases. Per build, three cocotb tests run on every
instance at once: frames under random valid/ready pauses on every port (input, skip, outputs), back-to-back frames
without stalls (measured cycles per frame vs ``Conv.cycles_per_frame`` within 2 %), and a reset in the middle of a
frame followed by a clean frame. Layers are built from random integers (``make_layer``), with corner cases mixed
in: output channels with all weights +127 / -128 (saturation, max magnitude), a channel with tiny weights and a
1-2 bit shift (rounding ties), extreme input frames (all max, all min), negative accumulators.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from rtlgen import golden, ir
from rtlgen.cores.conv import Conv
from rtlgen.plan.geometry import skip_fifo_entries
from rtlgen.quant import rshift_round
from rtlgen.cores.stream import beats_to_frame, frame_to_beats
from rtlgen.verify.runner import run_cocotb
from rtlgen.emit.verilog import write_verilog
from streams import CoreInst, input_frames, scenario_tests  # sim_tests/ is on the path of pytest and cocotb

HERE = Path(__file__).parent


class Bundle(wiring.Component):
    """Several independent components in one top: port ``p`` of part ``n`` becomes ``n_p``."""

    def __init__(self, parts: dict):
        self.parts = parts
        members = {}
        for n, c in parts.items():
            for pname, mem in c.signature.members.items():
                members[f"{n}_{pname}"] = mem
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for n, c in self.parts.items():
            m.submodules[n] = c
            for pname, mem in c.signature.members.items():
                outer = getattr(self, f"{n}_{pname}")
                inner = getattr(c, pname)
                if mem.is_port:  # a plain signal (e.g. a core's ``loaded`` status)
                    m.d.comb += (outer.eq(inner) if mem.flow == Out else inner.eq(outer))
                elif mem.flow == Out:
                    wiring.connect(m, inner, wiring.flipped(outer))
                else:
                    wiring.connect(m, wiring.flipped(outer), inner)
        return m


# ------------------------------------------------------------------------------------------------------------------
# random layers with corner cases
# ------------------------------------------------------------------------------------------------------------------

def _qtype(signed, zp=0, lo=None, hi=None, scale=1.0):
    dlo, dhi = (-128, 127) if signed else (0, 255)
    return ir.QType(scale, zp, signed, 8, dlo if lo is None else lo, dhi if hi is None else hi)


def _requant(rng, O, kind, typical_bits, relu, out_signed):
    if kind == "shift":
        a = rng.integers(0, 3, O)
        m = (1 << a).astype(np.int64)
        sh = np.maximum(typical_bits - 7 + a + rng.integers(-1, 2, O), 0)
    else:
        m = rng.integers(1 << 23, 1 << 24, O).astype(np.int64)
        sh = np.maximum(typical_bits - 7 + 24 + rng.integers(-1, 2, O), 0)
    if out_signed:
        zp = int(rng.integers(-5, 6))
        lo, hi = (zp if relu else -128), 127
    else:
        zp = 0 if relu else int(rng.integers(100, 150))
        lo, hi = (zp if relu else 0), 255
    return m, sh.astype(np.int64), zp, lo, hi


def make_layer(spec: dict, seed: int) -> tuple[ir.Conv, ir.Conv | None]:
    rng = np.random.default_rng(seed)
    H, W, C, O, K, s = spec["H"], spec["W"], spec["C"], spec["O"], spec["K"], spec["stride"]
    pads = tuple(spec.get("pads", (K // 2,) * 4))
    in_signed = spec["in_signed"]
    in_zp = int(rng.integers(-6, 7)) if in_signed else int(rng.integers(0, 9))
    in_q = _qtype(in_signed, in_zp)
    w = rng.integers(-128, 128, (O, K, K, C)).astype(np.int64)
    w[0] = 127  # max magnitude, saturating
    if O > 1:
        w[1] = -128
    tie_ch = None
    if O > 2:
        tie_ch = 2
        w[2] = rng.integers(-1, 2, (K, K, C))  # tiny weights + short shift: rounding ties
    bias = rng.integers(-(1 << 12), 1 << 12, O).astype(np.int64)
    typical = int(math.log2(128 * 74 * math.sqrt(K * K * C))) + (0 if in_signed else 1)
    out_signed = spec.get("out_signed", not spec["relu"])
    m, sh, zp, lo, hi = _requant(rng, O, spec["rq"], typical, spec["relu"], out_signed)
    if tie_ch is not None:
        if spec["rq"] == "shift":
            m[tie_ch], sh[tie_ch] = 1, 1
        else:
            sh[tie_ch] = 24 + 1
            m[tie_ch] = 1 << 23  # exact 0.5: ties every odd value
    Ho = (H + pads[0] + pads[2] - K) // s + 1
    Wo = (W + pads[1] + pads[3] - K) // s + 1
    res = spec.get("residual")
    kw = {}
    if res:
        skip_signed = spec.get("skip_signed", True)
        res_zp = int(rng.integers(-4, 5)) if skip_signed else int(rng.integers(0, 5))
        if res == "shift":
            res_m = (1 << (np.maximum(sh - 6, 0) + rng.integers(0, 2, O))).astype(np.int64)
        else:
            res_m = rng.integers(1 << 20, 1 << 24, O).astype(np.int64) << np.maximum(sh - 24 - 6, 0)
        kw = dict(residual="skip", res_m=res_m, res_zp=res_zp, res_q=_qtype(skip_signed, res_zp))
    rq = ir.Requant(m=m, sh=sh, zp_out=zp, lo=lo, hi=hi)
    layer = ir.Conv(name=spec.get("name", "conv"), inputs=["x"] + (["skip"] if res else []), in_shape=(H, W, C),
                    out_shape=(Ho, Wo, O), out_q=_qtype(out_signed, zp, lo, hi), weights=w, bias=bias,
                    stride=(s, s), pads=pads, pad_value=in_zp, requant=rq, in_q=in_q, w_scale=np.ones(O),
                    relu=spec["relu"], **kw)
    proj = None
    if spec.get("proj"):
        Op = spec["proj"]
        pw = rng.integers(-128, 128, (Op, 1, 1, C)).astype(np.int64)
        pb = rng.integers(-(1 << 10), 1 << 10, Op).astype(np.int64)
        ptyp = int(math.log2(128 * 74 * math.sqrt(C))) + (0 if in_signed else 1)
        pm, psh, pzp, plo, phi = _requant(rng, Op, "mult", ptyp, False, True)
        proj = ir.Conv(name="proj", inputs=["x"], in_shape=(H, W, C), out_shape=(Ho, Wo, Op),
                       out_q=_qtype(True, pzp, plo, phi), weights=pw, bias=pb, stride=(s, s), pads=(0, 0, 0, 0),
                       pad_value=in_zp, requant=ir.Requant(m=pm, sh=psh, zp_out=pzp, lo=plo, hi=phi), in_q=in_q,
                       w_scale=np.ones(Op))
    return layer, proj


def build_conv(spec, seed) -> Conv:
    if spec.get("block"):
        return ResBlock(*make_block(spec, seed), **spec["knobs"])
    layer, proj = make_layer(spec, seed)
    return Conv(layer, proj=proj, **spec["knobs"])


class ResBlock(wiring.Component):
    """conv1 (forwards its window centres) -> conv2 with the merged residual add; the skip stream is conv1's centre
    stream through a FIFO of :func:`rtlgen.plan.geometry.skip_fifo_entries` entries (temporal reuse)."""

    def __init__(self, l1: ir.Conv, l2: ir.Conv, lanes: int, mid_lanes: int, pix_par: int = 1):

        from rtlgen.cores.stream import act_signature

        self.conv1 = Conv(l1, ich_par=lanes, och_par=mid_lanes, pix_par=pix_par, centre=True)
        self.conv2 = Conv(l2, ich_par=mid_lanes, och_par=lanes, pix_par=pix_par)
        H, W, C = l1.in_shape
        self.skip_entries = skip_fifo_entries(W, C, l2.kernel[0], l2.kernel[1], lanes, pix=pix_par)
        self.skip_beats = max(3, math.ceil(self.skip_entries / lanes))
        super().__init__({"i": wiring.In(act_signature(lanes)), "o": Out(act_signature(lanes))})
        self._MustUse__silence = True

    def cycles_per_frame(self):
        return max(self.conv1.cycles_per_frame(), self.conv2.cycles_per_frame())

    def elaborate(self, platform):
        from amaranth.lib import fifo

        m = Module()
        m.submodules.conv1 = c1 = self.conv1
        m.submodules.conv2 = c2 = self.conv2
        m.submodules.skip_fifo = f = fifo.SyncFIFOBuffered(width=len(c1.centre.payload.as_value()),
                                                           depth=self.skip_beats)
        wiring.connect(m, wiring.flipped(self.i), c1.i)
        wiring.connect(m, c1.o, c2.i)
        wiring.connect(m, c2.o, wiring.flipped(self.o))
        m.d.comb += [
            f.w_data.eq(c1.centre.payload.as_value()), f.w_en.eq(c1.centre.valid), c1.centre.ready.eq(f.w_rdy),
            c2.skip.payload.eq(f.r_data), c2.skip.valid.eq(f.r_rdy), f.r_en.eq(c2.skip.ready),
        ]
        return m


def make_block(spec: dict, seed: int) -> tuple[ir.Conv, ir.Conv]:
    """A basic residual block: conv1 (3x3, ReLU, uint8 out) then conv2 (3x3) + skip, skip = block input."""
    H, W, C, M = spec["H"], spec["W"], spec["C"], spec["M"]
    l1, _ = make_layer(dict(H=H, W=W, C=C, O=M, K=3, stride=1, in_signed=spec["in_signed"], relu=True,
                            rq="shift"), seed)
    l2, _ = make_layer(dict(H=H, W=W, C=M, O=C, K=3, stride=1, in_signed=False, relu=spec["relu2"], rq=spec["rq"],
                            residual=spec["rq"], skip_signed=spec["in_signed"]), seed + 1)
    l2.in_q = l1.out_q
    l2.pad_value = l1.requant.zp_out
    l2.res_q = l1.in_q
    l2.res_zp = l1.in_q.zero_point
    return l1, l2


def skip_frames(layer: ir.Conv, n: int, seed: int):
    if layer.residual is None:
        return [None] * n
    rng = np.random.default_rng(seed + 1000)
    q = layer.res_q
    return [rng.integers(q.lo, q.hi + 1, layer.out_shape) for _ in range(n)]


def expected(layer, x, skip):
    """golden.conv_post(golden.conv_acc(...)), cross-checked against a plain int64 evaluation of the same spec."""
    acc = golden.conv_acc(x[None], layer.weights, layer.bias, layer.stride, layer.pads, layer.pad_value, layer.in_q)
    out = golden.conv_post(layer, acc, None if skip is None else skip[None])[0]
    rq = layer.requant
    v = np.asarray(acc[0], dtype=np.int64) * rq.m
    if skip is not None:
        v = v + (skip.astype(np.int64) - layer.res_zp) * layer.res_m
    ref = np.clip(rshift_round(v, rq.sh, rq.rounding) + rq.zp_out, rq.lo, rq.hi)
    assert np.array_equal(np.asarray(out, dtype=np.int64), ref), "golden.conv_post disagrees with int64 evaluation"
    return ref


# ------------------------------------------------------------------------------------------------------------------
# cocotb side
# ------------------------------------------------------------------------------------------------------------------



class _Inst(CoreInst):
    """A conv core (``<name>_i``, ``_o``; ``_skip`` with a residual, ``_centre``, ``_proj`` where the core has them)."""

    cycle_tol = staticmethod(lambda model: 0.02 * model)

    def __init__(self, dut, name, spec, seed, pause, seeds=0):
        super().__init__(dut, name, pause, seeds)
        self.layer, self.proj = make_layer(spec, seed)
        self.core = c = Conv(self.layer, proj=self.proj, **spec["knobs"])
        self.skip = self.add_source("skip", pause, seeds + 2) if self.layer.residual else None
        self.csink = self.add_sink("centre", pause, seeds + 4) if c.centre_out else None
        self.psink = self.add_sink("proj", pause, seeds + 5) if self.proj is not None else None

    @property
    def out_beats(self):
        Ho, Wo, O = self.layer.out_shape
        return Ho * Wo * math.ceil(O / self.core.och_par)

    def frames(self, n, seed):
        return input_frames(self.layer, n, seed), skip_frames(self.layer, n, seed)

    def feed(self, xs, skips):
        c = self.core
        self.xs, self.skips = xs, skips
        self.send(self.src, [w for x in xs for w in frame_to_beats(x, c.ich_par)])
        if self.skip is not None:
            self.send(self.skip, [w for s in skips for w in frame_to_beats(s, c.och_par)])

    def check(self, what=""):
        c, L = self.core, self.layer
        n = self.out_beats
        assert len(self.sink.words) == n * len(self.xs), f"{self.name} {what}: {len(self.sink.words)} output beats"
        for k, (x, s) in enumerate(zip(self.xs, self.skips)):
            got = beats_to_frame(self.sink.words[k * n:(k + 1) * n], L.out_shape, c.och_par,
                                 signed=L.requant.lo < 0)
            exp = expected(L, x, s)
            if not np.array_equal(got, exp):
                bad = np.argwhere(got != exp)[:5]
                raise AssertionError(f"{self.name} {what} frame {k}: {len(np.argwhere(got != exp))} mismatches, "
                                     f"first {[(tuple(b), int(got[tuple(b)]), int(exp[tuple(b)])) for b in bad]}")
        wg = c.window
        if self.csink is not None:
            nc = wg.Ho * wg.Wo * wg.G
            assert len(self.csink.words) == nc * len(self.xs), f"{self.name}: centre beats"
            for k, x in enumerate(self.xs):
                got = beats_to_frame(self.csink.words[k * nc:(k + 1) * nc], (wg.Ho, wg.Wo, wg.C), c.ich_par,
                                     signed=False)
                np.testing.assert_array_equal(got, wg.reference_centre(x), err_msg=f"{self.name} centre")
        if self.psink is not None:
            P = self.proj
            npb = wg.Ho * wg.Wo * math.ceil(P.out_shape[2] / c.proj_engine.och)
            assert len(self.psink.words) == npb * len(self.xs), f"{self.name}: proj beats"
            for k, x in enumerate(self.xs):
                got = beats_to_frame(self.psink.words[k * npb:(k + 1) * npb], P.out_shape, c.proj_engine.och)
                np.testing.assert_array_equal(got, expected(P, x, None), err_msg=f"{self.name} proj")


class _BlockInst(CoreInst):
    """The residual block (two convs, the add merged into the second) as a bundle part."""

    cycle_tol = staticmethod(lambda model: 0.02 * model)

    def __init__(self, dut, name, spec, seed, pause, seeds=0):
        super().__init__(dut, name, pause, seeds)
        self.l1, self.l2 = make_block(spec, seed)
        self.core = ResBlock(self.l1, self.l2, **spec["knobs"])
        self.lanes = spec["knobs"]["lanes"]

    @property
    def out_beats(self):
        H, W, C = self.l2.out_shape
        return H * W * math.ceil(C / self.lanes)

    @property
    def latency_model(self):
        return None  # the pair has no latency model of its own

    def frames(self, n, seed):
        return (input_frames(self.l1, n, seed),)

    def feed(self, xs):
        self.xs = xs
        self.send(self.src, [w for x in xs for w in frame_to_beats(x, self.lanes)])

    def check(self, what=""):
        n = self.out_beats
        assert len(self.sink.words) == n * len(self.xs), f"{self.name} {what}: {len(self.sink.words)} output beats"
        for k, x in enumerate(self.xs):
            y1 = expected(self.l1, x, None)
            exp = expected(self.l2, y1, x)
            got = beats_to_frame(self.sink.words[k * n:(k + 1) * n], self.l2.out_shape, self.lanes,
                                 signed=self.l2.requant.lo < 0)
            assert np.array_equal(got, exp), f"{self.name} {what} frame {k}: {int((got != exp).sum())} mismatches"


def _inst(dut, name, spec, seed, pause, seeds):
    return (_BlockInst if spec.get("block") else _Inst)(dut, name, spec, seed, pause, seeds)


# the shared scenarios (sim_tests/streams.py): frames_under_pauses, throughput_matches_model, reset_mid_frame
frames_under_pauses, throughput_matches_model, reset_mid_frame = scenario_tests(_inst, __name__, settle=100)


# ------------------------------------------------------------------------------------------------------------------
# pytest side
# ------------------------------------------------------------------------------------------------------------------

def _k(ich, och, pix, packing=True, storage="bram", **extra):
    return dict(ich_par=ich, och_par=och, pix_par=pix, packing=packing, storage=storage, **extra)


CASES = {
    # K=3 'same', int8 in, non-dividing och/ich (C=5 at 2 lanes, O=7 at 3 lanes), packed pair, ReLU, shift requant,
    # centre forwarding
    "k3same": dict(H=5, W=4, C=5, O=7, K=3, stride=1, in_signed=True, relu=True, rq="shift",
                   knobs=_k(2, 3, 2, centre=True)),
    # K=3 stride 2, uint8 in, unpacked pair of LUT multipliers (cores/arith.py lut_mul), multiplier requant, merged
    # residual (multiplier), int8 out
    "k3s2res": dict(H=6, W=5, C=3, O=6, K=3, stride=2, pads=(1, 1, 1, 1), in_signed=False, relu=False, rq="mult",
                    residual="mult", skip_signed=True, knobs=_k(3, 4, 2, packing=False, mult="lut")),
    # K=5 on 1-pixel-wide rows, shift residual (uint8 skip), ReLU, LUT weights and LUT multipliers (int8 in)
    "k5w1": dict(H=6, W=1, C=2, O=3, K=5, stride=1, in_signed=True, relu=True, rq="shift", residual="shift",
                 skip_signed=False, knobs=_k(1, 2, 1, storage="lut", mult="lut")),
    # 1x1 stride 2, odd pixel count with a packed pair (dummy second pixel), output-bound
    "k1s2": dict(H=5, W=5, C=4, O=5, K=1, stride=2, pads=(0, 0, 0, 0), in_signed=False, relu=False, rq="mult",
                 out_signed=True, knobs=_k(4, 5, 2)),
    # 3x3 stride 2 with a loop-merged 1x1 stride-2 projection on the window centres
    "k3proj": dict(H=6, W=6, C=4, O=4, K=3, stride=2, in_signed=False, relu=True, rq="shift", proj=6,
                   knobs=_k(2, 2, 1, proj_och_par=4, centre=True, proj_mult="lut")),
}
# tap parallelism (cores/linebuffer.py ``tap``): all 9 taps of a uint8 window per beat (packed, chunks of 4),
# merged residual, centre forwarding
CASES["k3tap9res"] = dict(H=5, W=6, C=3, O=5, K=3, stride=1, in_signed=False, relu=True, rq="shift", residual="shift",
                          skip_signed=False, knobs=_k(1, 2, 2, centre=True, tap_par=9))
# 4 taps per beat (the third tap group has 3 dummy slots), stride 2, loop-merged projection, LUT multipliers
CASES["k3s2tap4proj"] = dict(H=6, W=6, C=3, O=4, K=3, stride=2, in_signed=True, relu=False, rq="mult", proj=5,
                             knobs=_k(2, 3, 1, mult="lut", proj_och_par=2, centre=True, tap_par=4))
CASES["resblock"] = dict(block=True, H=6, W=5, C=4, M=4, in_signed=False, relu2=True, rq="shift",
                        knobs=dict(lanes=4, mid_lanes=2, pix_par=2))
SLOW_CASES = {
    "resblock_int8_mult": dict(block=True, H=8, W=8, C=6, M=5, in_signed=True, relu2=False, rq="mult",
                               knobs=dict(lanes=3, mid_lanes=5, pix_par=1)),
    "k3valid_asym": dict(H=7, W=6, C=6, O=5, K=3, stride=1, pads=(0, 1, 1, 0), in_signed=True, relu=False,
                         rq="mult", knobs=_k(4, 2, 2, storage="lut")),
    "k7stem": dict(H=10, W=9, C=3, O=4, K=7, stride=2, pads=(3, 3, 3, 3), in_signed=True, relu=True, rq="mult",
                   knobs=_k(3, 4, 2)),
    "k3wide": dict(H=6, W=10, C=16, O=10, K=3, stride=1, in_signed=False, relu=True, rq="shift", residual="shift",
                   skip_signed=False, knobs=_k(5, 4, 2)),
    "k5tap5": dict(H=7, W=6, C=4, O=3, K=5, stride=1, in_signed=True, relu=True, rq="mult",
                   knobs=_k(2, 3, 2, storage="lut", tap_par=5)),
}


def _run(cases, tmp_path, seed=1, frames=3):
    parts = {n: build_conv(spec, seed) for n, spec in cases.items()}
    v = write_verilog(Bundle(parts), "conv_bundle", tmp_path / "conv_bundle.v")
    run_cocotb([v], "conv_bundle", "test_conv", HERE, tmp_path / "build",
               config={"cases": cases, "seed": seed, "frames": frames})


@pytest.mark.parametrize("which,seed", [("default", 1), pytest.param("more", 7, marks=pytest.mark.slow),
                                         pytest.param("default", 2, marks=pytest.mark.slow, id="other_seed")])
def test_conv_cores(tmp_path, which, seed):
    """All cases of a set in one Verilator build (opt-in: the slow cases, and the default ones with another seed)."""
    _run(CASES if which == "default" else SLOW_CASES, tmp_path, seed=seed)


def test_layers_reference_selfcheck():
    """The random layers exercise what they claim: saturation, ties, negative accumulators."""
    layer, _ = make_layer(CASES["k3same"], 1)
    xs = input_frames(layer, 3, 0)
    acc = np.concatenate([golden.conv_acc(x[None], layer.weights, layer.bias, layer.stride, layer.pads,
                                          layer.pad_value, layer.in_q) for x in xs]).astype(np.int64)
    assert (acc < 0).any()
    outs = np.concatenate([expected(layer, x, None)[None] for x in xs])
    assert (outs == layer.requant.hi).any() and (outs == layer.requant.lo).any()
    v = acc[..., 2] * layer.requant.m[2]
    assert ((v & 1) == 1).any()  # half-way cases at sh = 1


# ------------------------------------------------------------------------------------------------------------------
# Verilator lint of every generated core
# ------------------------------------------------------------------------------------------------------------------

#: Waivers for ``verilator --lint-only -Wall`` on Amaranth-generated Verilog (artifacts of the generator's Verilog
#: style, not of the designs):
#:   WIDTHEXPAND   Amaranth operands are extended implicitly; the Verilog relies on context-determined widths.
#:   UNUSEDSIGNAL  unused bits of struct payloads and of intermediate wires (e.g. ``last`` of a consumed input).
#:   PROCASSINIT   registers carry their reset value as an initializer as well as in the ``always`` block.
#:   DECLFILENAME  one file holds the top module and all its submodules.
#:   WIDTHTRUNC    only the ``!x`` (LOGNOT) Amaranth emits for ``x == 0`` on a multi-bit ``x`` -- checked below.
LINT_WAIVERS = ("WIDTHEXPAND", "UNUSEDSIGNAL", "PROCASSINIT", "DECLFILENAME")


def verilator_lint(path: Path) -> list[str]:
    """Remaining ``-Wall`` warnings after :data:`LINT_WAIVERS` (LOGNOT width truncations removed)."""
    import os
    import subprocess

    from rtlgen import toolchain

    env = toolchain.setup_env(dict(os.environ))
    exe = toolchain.verilator_root() / "bin" / "verilator"
    args = [str(exe), "--lint-only", "-Wall", "-Wno-fatal"] + [f"-Wno-{w}" for w in LINT_WAIVERS] + [str(path)]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    bad = [ln for ln in r.stderr.splitlines() if ln.startswith("%")]
    bad = [ln for ln in bad if not (ln.startswith("%Warning-WIDTHTRUNC") and "LOGNOT" in ln)]
    return bad


def test_verilator_lint(tmp_path):
    from rtlgen.cores.linebuffer import WindowGen

    designs = {f"conv_{n}": build_conv(s, 1) for n, s in CASES.items()}
    designs["window_gen"] = WindowGen(H=5, W=4, C=5, lanes=2, K=3, pix=2, centre=True, repeats=2)
    designs["window_gen_k1"] = WindowGen(H=3, W=3, C=1, lanes=1, K=1, pads=(0, 0, 0, 0))
    problems = {}
    for n, d in designs.items():
        bad = verilator_lint(write_verilog(d, n, tmp_path / f"{n}.v"))
        if bad:
            problems[n] = bad[:5]
    assert not problems, problems
