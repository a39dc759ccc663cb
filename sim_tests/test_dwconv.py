"""Depthwise convolution core (cores/dwconv.py: window generator + per-channel MAC engine + requant) bit-exact against
``rtlgen.golden.grouped_conv_acc``/``conv_post``, with cocotb + Verilator.

Several layer configurations are compiled into ONE Verilator build (the :class:`test_conv.Bundle` wrapper). Per
build, four cocotb tests run on every instance at once: frames under random valid/ready pauses on the input and the
output (every beat checked: none lost, duplicated or reordered), back-to-back frames without stalls (measured cycles
per frame equal to ``DWConv.cycles_per_frame`` within 1 cycle, first output at ``DWConv.latency`` within 1 cycle),
a reset in the middle of a frame followed by a clean frame, and a short + a long + a well-formed frame (three
complete output frames, the short one as if its missing beats were the input zero point). Layers are random with corner cases: a channel of
all +127 weights, one of all -128 (saturation), one with tiny weights and a short shift (rounding ties), extreme
input frames (all max, all min), ReLU / ReLU6 clamps.
"""

from __future__ import annotations

import math
from pathlib import Path

import cocotb
import numpy as np
import pytest

from rtlgen import golden, ir
from rtlgen.cores.dwconv import DWConv, embed_kernel
from rtlgen.cores.stream import beats_to_frame, frame_to_beats
from rtlgen.quant import rshift_round
from rtlgen.verify.runner import run_cocotb
from rtlgen.emit.verilog import write_verilog
from streams import CoreBench, CoreInst, input_frames, scenario_tests  # sim_tests/ is on the path of pytest and cocotb

HERE = Path(__file__).parent


# ------------------------------------------------------------------------------------------------------------------
# random depthwise layers with corner cases
# ------------------------------------------------------------------------------------------------------------------

def _qtype(signed, zp=0, lo=None, hi=None, scale=1.0):
    dlo, dhi = (-128, 127) if signed else (0, 255)
    return ir.QType(scale, zp, signed, 8, dlo if lo is None else lo, dhi if hi is None else hi)


def make_layer(spec: dict, seed: int) -> ir.Conv:
    """A depthwise layer (``group == C``): ``spec`` keys H, W, C, K (int or (Kh, Kw)), stride, pads (default
    'same'-like ``(Kh-1)//2, (Kw-1)//2, Kh//2, Kw//2``), in_signed, act (``none`` | ``relu`` | ``relu6``), rq
    (``shift`` | ``mult``)."""
    rng = np.random.default_rng(seed)
    H, W, C, s = spec["H"], spec["W"], spec["C"], spec["stride"]
    kh, kw = (spec["K"], spec["K"]) if isinstance(spec["K"], int) else tuple(spec["K"])
    pads = tuple(spec.get("pads", ((kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2)))
    in_signed = spec["in_signed"]
    in_zp = int(rng.integers(-6, 7)) if in_signed else int(rng.integers(0, 9))
    in_q = _qtype(in_signed, in_zp)
    w = rng.integers(-128, 128, (C, kh, kw, 1)).astype(np.int64)
    w[0] = 127
    if C > 1:
        w[1] = -128
    tie_ch = 2 if C > 2 else None
    if tie_ch is not None:
        w[tie_ch] = rng.integers(-1, 2, (kh, kw, 1))
    bias = rng.integers(-(1 << 12), 1 << 12, C).astype(np.int64)
    typical = int(math.log2(128 * 74 * math.sqrt(kh * kw))) + (0 if in_signed else 1)
    act = spec.get("act", "none")
    out_signed = spec.get("out_signed", act == "none")
    if spec["rq"] == "shift":
        a = rng.integers(0, 3, C)
        m = (1 << a).astype(np.int64)
        sh = np.maximum(typical - 7 + a + rng.integers(-1, 2, C), 0).astype(np.int64)
    else:
        m = rng.integers(1 << 23, 1 << 24, C).astype(np.int64)
        sh = np.maximum(typical - 7 + 24 + rng.integers(-1, 2, C), 0).astype(np.int64)
    if tie_ch is not None:
        if spec["rq"] == "shift":
            m[tie_ch], sh[tie_ch] = 1, 1
        else:
            m[tie_ch], sh[tie_ch] = 1 << 23, 25  # exact 0.5: ties on every odd value
    if out_signed:
        zp = int(rng.integers(-5, 6))
        lo, hi = (zp if act != "none" else -128), 127
    else:
        zp = 0 if act != "none" else int(rng.integers(100, 150))
        lo, hi = (zp if act != "none" else 0), 255
    if act == "relu6":
        hi = min(hi, zp + 60)  # 6.0 at a scale of 0.1
    Ho = (H + pads[0] + pads[2] - kh) // s + 1
    Wo = (W + pads[1] + pads[3] - kw) // s + 1
    rq = ir.Requant(m=m, sh=sh, zp_out=zp, lo=lo, hi=hi)
    return ir.Conv(name=spec.get("name", "dw"), inputs=["x"], in_shape=(H, W, C), out_shape=(Ho, Wo, C),
                   out_q=_qtype(out_signed, zp, lo, hi), weights=w, bias=bias, stride=(s, s), pads=pads,
                   pad_value=in_zp, requant=rq, in_q=in_q, w_scale=np.ones(C), relu=act != "none", group=C)


def build(spec, seed) -> DWConv:
    return DWConv(make_layer(spec, seed), **spec["knobs"])


def expected(layer, x):
    """golden.grouped_conv_acc + golden.conv_post, cross-checked against a plain int64 loop evaluation."""
    acc = golden.grouped_conv_acc(x[None], layer.weights, layer.bias, layer.stride, layer.pads, layer.pad_value,
                                  layer.in_q, layer.group)
    out = np.asarray(golden.conv_post(layer, acc)[0], dtype=np.int64)
    # independent reference: explicit padding and loops
    C = layer.in_shape[2]
    _, kh, kw, _ = layer.weights.shape
    pt, pl, pb, pr = layer.pads
    xp = np.pad(x.astype(np.int64), ((pt, pb), (pl, pr), (0, 0)), constant_values=layer.pad_value)
    Ho, Wo, _ = layer.out_shape
    s = layer.stride[0]
    a = np.zeros((Ho, Wo, C), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            a += xp[i:i + (Ho - 1) * s + 1:s, j:j + (Wo - 1) * s + 1:s, :] * layer.weights[:, i, j, 0]
    a += layer.bias
    rq = layer.requant
    ref = np.clip(rshift_round(a * rq.m, rq.sh, rq.rounding) + rq.zp_out, rq.lo, rq.hi)
    assert np.array_equal(out, ref), "golden depthwise disagrees with the int64 loop"
    return ref


# ------------------------------------------------------------------------------------------------------------------
# cocotb side
# ------------------------------------------------------------------------------------------------------------------



class _Inst(CoreInst):
    """A depthwise core (``<name>_i``, ``<name>_o``); :meth:`check` also checks each beat's ``last`` flag."""

    def __init__(self, dut, name, spec, seed, pause, seeds=0):
        super().__init__(dut, name, pause, seeds)
        self.layer = make_layer(spec, seed)
        self.core = DWConv(self.layer, **spec["knobs"])

    @property
    def out_beats(self):
        Ho, Wo, C = self.layer.out_shape
        return Ho * Wo * math.ceil(C / self.core.ch_par)

    def frames(self, n, seed):
        return (input_frames(self.layer, n, seed),)

    def feed(self, xs):
        self.xs = xs
        self.send(self.src, [w for x in xs for w in frame_to_beats(x, self.core.ch_par)])

    def check(self, what=""):
        L, n = self.layer, self.out_beats
        assert len(self.sink.words) == n * len(self.xs), f"{self.name} {what}: {len(self.sink.words)} output beats"
        for k, x in enumerate(self.xs):
            words = self.sink.words[k * n:(k + 1) * n]
            lastbit = 8 * self.core.ch_par
            lasts = [(w >> lastbit) & 1 for w in words]
            assert lasts == [0] * (n - 1) + [1], f"{self.name} {what} frame {k}: last flags {lasts}"
            got = beats_to_frame(words, L.out_shape, self.core.ch_par, signed=L.requant.lo < 0)
            exp = expected(L, x)
            if not np.array_equal(got, exp):
                bad = np.argwhere(got != exp)[:5]
                raise AssertionError(f"{self.name} {what} frame {k}: {len(np.argwhere(got != exp))} mismatches, "
                                     f"first {[(tuple(b), int(got[tuple(b)]), int(exp[tuple(b)])) for b in bad]}")


# the shared scenarios (sim_tests/streams.py): frames_under_pauses, throughput_matches_model, reset_mid_frame
frames_under_pauses, throughput_matches_model, reset_mid_frame = scenario_tests(_Inst, __name__, settle=200)


def malformed(layer, lanes, xs):
    """Input beats of a short frame (the last ``3*G + 1`` beats missing, ``last`` on the new final beat), a long
    frame (5 extra beats, ``last`` on the final extra one) and a well-formed frame, with the frames the core must
    treat them as: the short one completed with the input zero point, the long one cut (stream contract,
    :mod:`rtlgen.cores.stream`)."""
    H, W, C = layer.in_shape
    G = math.ceil(C / lanes)
    lb = 1 << (8 * lanes)
    short = frame_to_beats(xs[0], lanes)
    cut = 3 * G + 1
    short = short[:-cut]
    short[-1] |= lb
    xs0 = xs[0].copy()
    for b in range(H * W * G - cut, H * W * G):
        px, g = divmod(b, G)
        xs0[px // W, px % W, g * lanes:(g + 1) * lanes] = layer.pad_value
    long = frame_to_beats(xs[1], lanes)
    long[-1] &= ~lb
    rnd = np.random.default_rng(5)
    long += [int.from_bytes(rnd.integers(0, 256, lanes, dtype=np.uint8).tobytes(), "little") for _ in range(5)]
    long[-1] |= lb
    return short + long + frame_to_beats(xs[2], lanes), [xs0, xs[1], xs[2]]


@cocotb.test()
async def malformed_frames(dut):
    """A short, a long and a well-formed frame under pauses: three complete, correct output frames."""
    bench = CoreBench(dut, _Inst, 0.2, seeds=7)
    await bench.reset()
    for k, inst in enumerate(bench.insts):
        beats, inst.xs = malformed(inst.layer, inst.core.ch_par, input_frames(inst.layer, 3, 500 + k))
        inst.send(inst.src, beats)
    for inst in bench.insts:
        await inst.wait(3, 400)
    await bench.settle(200)
    for inst in bench.insts:
        inst.check("malformed frames")


# ------------------------------------------------------------------------------------------------------------------
# pytest side
# ------------------------------------------------------------------------------------------------------------------

def _k(ch, pix=1, tap=1, **extra):
    return dict(ch_par=ch, pix_par=pix, tap_par=tap, **extra)


CASES = {
    # 3x3 'same' stride 1, int8 in, C=8 at 2 lanes, one tap per beat (accumulating delay line), shift requant, ReLU
    "k3s1": dict(H=8, W=8, C=8, K=3, stride=1, in_signed=True, act="relu", rq="shift", knobs=_k(2)),
    # 3x3 stride 2 (MobileNet's pads (0,0,1,1)), uint8 in, all 9 taps per beat, packed pixel pair, ReLU6, multiplier
    "k3s2": dict(H=8, W=8, C=8, K=3, stride=2, pads=(0, 0, 1, 1), in_signed=False, act="relu6", rq="mult",
                 knobs=_k(4, pix=2, tap=9)),
    # 3x3 stride 1, C=5 at 3 lanes (partial tail beat), a row of taps per beat (3 tap groups), LUT multipliers,
    # unpacked pair, int8 out
    "k3tap3": dict(H=6, W=7, C=5, K=3, stride=1, in_signed=True, act="none", rq="mult",
                   knobs=_k(3, pix=2, tap=3, mult="lut", storage="lut")),
    # 3x3 stride 1 'same', all taps and a packed pixel pair per beat: one output beat per input beat (the result
    # FIFOs and credits must sustain it: pixel 1's results wait while pixel 0's are read)
    "k3p2full": dict(H=6, W=6, C=6, K=3, stride=1, in_signed=False, act="none", out_signed=True, rq="shift",
                     knobs=_k(3, pix=2, tap=9)),
    # even 4x4 kernel, pads (1,1,2,2), stride 2, 8 taps per beat over the embedded 5x5 window, 8 lanes
    "k4s2": dict(H=8, W=8, C=8, K=4, stride=2, pads=(1, 1, 2, 2), in_signed=True, act="relu", rq="shift",
                 knobs=_k(8, tap=8)),
    # non-square 5x2 kernel (embedded in 5x5), 'valid' in width, ch_par 1, row per beat, ReLU6
    "k5x2": dict(H=8, W=6, C=3, K=(5, 2), stride=1, pads=(2, 0, 2, 0), in_signed=False, act="relu6", rq="shift",
                 knobs=_k(1, tap=5)),
}
SLOW_CASES = {
    "k3s1_pix2_packed_t1": dict(H=9, W=7, C=6, K=3, stride=1, in_signed=True, act="none", rq="mult",
                                knobs=_k(2, pix=2, tap=1)),
    "k5s2_full": dict(H=11, W=10, C=4, K=5, stride=2, in_signed=True, act="relu", rq="mult", knobs=_k(4, tap=25)),
    "k10x4s2": dict(H=20, W=10, C=2, K=(10, 4), stride=2, pads=(4, 1, 5, 2), in_signed=True, act="relu", rq="shift",
                    knobs=_k(2, tap=11)),
    "k3s2_ch1_wide": dict(H=8, W=16, C=16, K=3, stride=2, pads=(1, 1, 1, 1), in_signed=False, act="relu6",
                          rq="shift", knobs=_k(1, pix=2, tap=9)),
    "k7s1_lanes_gt_c": dict(H=9, W=9, C=3, K=7, stride=1, in_signed=True, act="none", rq="shift",
                            knobs=_k(4, tap=7, storage="lut")),
    # 9x9 'same' stride 1 and 11x11 stride 2 depthwise kernels (the largest window rtlgen builds: flow.MAX_DW_WINDOW)
    "k9s1": dict(H=10, W=9, C=3, K=9, stride=1, in_signed=False, act="relu", rq="mult", knobs=_k(3, tap=9)),
    "k11s2": dict(H=13, W=12, C=2, K=11, stride=2, in_signed=True, act="none", rq="shift", knobs=_k(2, tap=11)),
}


def _run(cases, tmp_path, seed=1, frames=3):
    from test_conv import Bundle

    parts = {n: build(spec, seed) for n, spec in cases.items()}
    v = write_verilog(Bundle(parts), "dwconv_bundle", tmp_path / "dwconv_bundle.v")
    run_cocotb([v], "dwconv_bundle", "test_dwconv", HERE, tmp_path / "build",
               config={"cases": cases, "seed": seed, "frames": frames}, cxx_opt="-O0")  # a few short frames


@pytest.mark.parametrize("which,seed", [("default", 1), pytest.param("more", 7, marks=pytest.mark.slow),
                                         pytest.param("default", 3, marks=pytest.mark.slow, id="other_seed")])
def test_dwconv_cores(tmp_path, which, seed):
    """All cases of a set in one Verilator build (opt-in: the slow cases, and the default ones with another seed)."""
    _run(CASES if which == "default" else SLOW_CASES, tmp_path, seed=seed)


def test_layers_reference_selfcheck():
    """The random layers exercise what they claim: saturation at both ends, negative accumulators, ties."""
    layer = make_layer(CASES["k3s1"], 1)
    xs = input_frames(layer, 3, 0)
    outs = np.concatenate([expected(layer, x)[None] for x in xs])
    assert (outs == layer.requant.hi).any() and (outs == layer.requant.lo).any()
    acc = golden.grouped_conv_acc(xs[0][None], layer.weights, layer.bias, layer.stride, layer.pads,
                                  layer.pad_value, layer.in_q, layer.group)
    assert (acc < 0).any()
    assert ((acc[..., 2].astype(np.int64) & 1) == 1).any()  # half-way cases at sh = 1 (m = 1)
    l6 = make_layer(CASES["k5x2"], 1)
    assert l6.requant.hi < 255 and l6.out_shape == (8, 5, 3)


@pytest.mark.parametrize("kh,kw,pads,expect", [
    (3, 3, (1, 1, 1, 1), (3, 0, 0, (1, 1, 1, 1))),
    (4, 4, (1, 1, 2, 2), (5, 1, 1, (2, 2, 2, 2))),
    (5, 2, (2, 0, 2, 0), (5, 0, 3, (2, 3, 2, 0))),
    (10, 4, (4, 1, 5, 2), (11, 1, 7, (5, 8, 5, 2))),
    (2, 2, (0, 0, 1, 1), (3, 1, 1, (1, 1, 1, 1))),
])
def test_embed_kernel(kh, kw, pads, expect):
    K, oy, ox, wp = embed_kernel(kh, kw, pads)
    assert (K, oy, ox, wp) == expect
    assert all(0 <= p < K for p in wp)
    # same output size for any input size
    for n in (5, 8, 13):
        assert (n + pads[0] + pads[2] - kh) == (n + wp[0] + wp[2] - K)
        assert (n + pads[1] + pads[3] - kw) == (n + wp[1] + wp[3] - K)


def test_cycle_model_and_resources():
    """The cycle model is the window generator's or the output's beats; slots outside the real kernel get no
    multiplier."""
    c = build(CASES["k3s2"], 1)
    wg = c.window
    assert c.cycles_per_frame() == max(wg.cycles_per_frame(), 4 * 4 * 2)
    assert c.dsp == 4 * 9  # packed pair: one DSP per lane and tap
    c4 = build(CASES["k4s2"], 1)
    assert c4.K == 5 and len(c4.engine.slots) == 8  # 8 slots, all of them hold real taps in some tap group
    c52 = build(CASES["k5x2"], 1)
    assert c52.engine.slots == [3, 4] and c52.dsp == 2  # 5x2 in 5x5, one row per beat: 2 live columns
    assert c52.engine.NTG == 5
    with pytest.raises(ValueError):
        DWConv(make_layer(dict(H=6, W=6, C=4, K=3, stride=1, in_signed=True, rq="shift", knobs={}), 1), tap_par=10)


def test_verilator_lint(tmp_path):
    from test_conv import verilator_lint

    problems = {}
    for n, s in CASES.items():
        bad = verilator_lint(write_verilog(build(s, 1), n, tmp_path / f"{n}.v"))
        if bad:
            problems[n] = bad[:5]
    assert not problems, problems


# ------------------------------------------------------------------------------------------------------------------
# timing budget (issue 19): structural check on the yosys netlist, as tests/test_timing.py's test_core_timing_budget
# ------------------------------------------------------------------------------------------------------------------

#: small configurations (uniform requant multiplier and shift, as ``rtlgen core conv`` builds them for the conv's
#: budget test: a per-channel *shift* goes through RequantStage's variable-shift rounding offset, which measures
#: 5 LUT + 3 carry chains on its own -- a RequantStage matter, the same in the conv core)
TIMING = {
    # packed pixel pair, a row of taps per beat, multiplier requant: MAC array, tap trees, delay line, two FIFOs
    "pix2_tap3": dict(H=8, W=8, C=8, K=3, stride=2, pads=(0, 0, 1, 1), in_signed=False, act="relu6", rq="mult",
                      knobs=_k(4, pix=2, tap=3)),
}


@pytest.mark.parametrize("name", list(TIMING))
def test_dwconv_timing_budget(name, timing_work):
    """<= 6 LUT levels and <= 2 carry chains between registers; a DSP48E2 without its registers only alone between
    two registers (``tests/test_timing.py:within_budget``). Cached by content in pytest's cache folder."""
    import os

    from rtlgen.verify import synth, timing

    y = synth.find_yosys()
    if not y:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("yosys not found (CI=true: the timing tests must run)")
        pytest.skip("yosys not found")
    layer = make_layer(TIMING[name], 1)
    layer.requant.m[:] = layer.requant.m.max()
    layer.requant.sh[:] = layer.requant.sh.max()
    v = write_verilog(DWConv(layer, **TIMING[name]["knobs"]), f"dwconv_{name}", timing_work / f"dwconv_{name}.v")
    res = timing.estimate_verilog(v, work_dir=timing_work / "cores", yosys=y)
    p = res["path"]
    assert p is not None and res["fmax_mhz"] > 0 and not res["unknown_cells"], res["unknown_cells"]
    alone = p["lut_levels"] == 0 and p["carry_chains"] == 0 and p["muxf"] == 0
    ok = (p["lut_levels"] <= 6 and p["carry_chains"] <= 2
          and (p["dsp_comb"] == 0 or (p["dsp_comb"] == 1 and alone)))
    assert ok, (f"{name}: {p['lut_levels']} LUT, {p['carry_chains']} carry chains, {p['dsp_comb']} unregistered DSP, "
                f"{res['fmax_mhz']} MHz: {p['cells']} ({p['start']} -> {p['end']})")
