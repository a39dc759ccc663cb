"""cores/arith.py: the one rounding circuit equals rtlgen.quant.rshift_round for every mode
(constant shifts 0..5, every 9-bit signed value; Amaranth simulator). Per-channel shifts are normalized to one
constant shift before rounding (RequantStage; tests/test_requant_norm.py checks that identity)."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from rtlgen.cores.arith import rshift_round_value
from rtlgen.quant import ROUNDING_MODES, rshift_round

VALUES = range(-256, 256)
SHIFTS = range(0, 6)


def _simulate(m, v, outs: dict, drive=None):
    got = {k: [] for k in outs}

    async def bench(ctx):
        for x in VALUES:
            ctx.set(v, x)
            for k, o in outs.items():
                got[k].append(ctx.get(o))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_rounding_circuit_equals_the_golden_rounding(mode):
    m = Module()
    v = Signal(signed(9))
    outs = {}
    for sh in SHIFTS:
        a = Signal(signed(12), name=f"value_{sh}")
        m.d.comb += a.eq(rshift_round_value(v, sh, mode))
        outs[("value", sh)] = a
    got = _simulate(m, v, outs)
    xs = np.array(list(VALUES), dtype=np.int64)
    for (form, sh), vals in got.items():
        assert vals == list(rshift_round(xs, sh, mode)), f"{form} form, shift {sh}, mode {mode}"


# (shift, zero point, lo, hi): uint8 outputs with a zero point, int8, a ReLU clamp (lo = zp), a narrow clip, a shift
# wider than the value (every input rounds to 0 or -1), a left shift
REQUANT_CASES = [(3, 7, 0, 255), (2, -3, -128, 127), (0, 0, -128, 127), (4, 10, 10, 255), (1, 0, 0, 6),
                 (12, 100, 0, 255), (-2, 1, -128, 127)]


def _run_pipe(m, v, outs: dict, xs: list) -> dict:
    """Feed ``xs`` into ``v`` one per cycle; each requant_pipe output's values, REQUANT_PIPE_STAGES cycles later."""
    from rtlgen.cores.arith import REQUANT_PIPE_STAGES

    got = {c: [] for c in outs}

    async def bench(ctx):
        for k in range(len(xs) + REQUANT_PIPE_STAGES):
            if k < len(xs):
                ctx.set(v, xs[k])
            await ctx.tick()
            if k + 1 >= REQUANT_PIPE_STAGES:
                for c, o in outs.items():
                    got[c].append(ctx.get(o))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_requant_pipe_equals_the_golden_requant(mode):
    """requant_pipe (saturation decided on the unrounded value against round_threshold, in parallel with the
    rounding adder) equals clamp(rshift_round(v) + zp, lo, hi) for every 10-bit signed v, two cycles later."""
    from rtlgen.cores.arith import requant_pipe

    m = Module()
    v = Signal(signed(10))
    outs = {c: requant_pipe(m, v, *c, mode, f"rq{i}") for i, c in enumerate(REQUANT_CASES)}
    xs = list(range(-512, 512))
    got = _run_pipe(m, v, outs, xs)
    arr = np.array(xs, dtype=np.int64)
    for (sh, zp, lo, hi), vals in got.items():
        want = np.clip(rshift_round(arr, sh, mode) + zp, lo, hi) & 0xFF
        assert vals[:len(xs)] == list(want), f"shift {sh} zp {zp} clamp [{lo}, {hi}] mode {mode}"


def _exact_round(v: int, sh: int, mode: str) -> int:
    """``round(v / 2**sh)`` in exact rationals (an independent reference for datapaths wider than int64)."""
    import math
    from fractions import Fraction

    x = Fraction(v, 1 << sh) if sh >= 0 else Fraction(v << -sh)
    fl = math.floor(x)
    frac = x - fl
    if mode == "floor" or frac == 0:
        return fl
    if mode == "ceil":
        return fl + 1
    if mode == "to_zero":
        return fl + 1 if x < 0 else fl
    if frac != Fraction(1, 2):
        return fl + (frac > Fraction(1, 2))
    return {"half_up": fl + 1, "half_down": fl, "half_even": fl + (fl % 2)}[mode]


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_requant_pipe_on_a_79_bit_value_saturates_exactly(mode):
    """A multiplier requant with a per-channel left shift carries a 79-bit value into requant_pipe (conv_ref of
    tools/ecp5_crosscheck.py): its saturation thresholds are computed in Python integers, so the clamp stays a
    comparator on the unrounded value beside the rounding adder. Values around both thresholds, the extremes and
    random 79-bit values match an exact rational reference."""
    from rtlgen.cores.arith import round_threshold, requant_pipe

    W, cases = 79, [(40, 3, -128, 127), (66, -5, 0, 255), (70, 0, -128, 127)]
    m = Module()
    v = Signal(signed(W))
    outs = {c: requant_pipe(m, v, *c, mode, f"rq{i}") for i, c in enumerate(cases)}
    vmin, vmax = -(1 << (W - 1)), (1 << (W - 1)) - 1
    rng = np.random.default_rng(7)
    xs = [vmin, vmax, 0, -1, 1]
    for sh, zp, lo, hi in cases:
        for t in (round_threshold(lo - zp, sh, mode, vmin, vmax), round_threshold(hi - zp + 1, sh, mode, vmin, vmax)):
            xs += [t + d for d in range(-3, 4) if vmin <= t + d <= vmax]
        xs += [int(rng.integers(-(1 << 62), 1 << 62)) << max(sh - 60, 0) for _ in range(40)]  # at the shift's scale
    xs += [int.from_bytes(rng.bytes(10), "little", signed=True) >> 1 for _ in range(40)]
    got = _run_pipe(m, v, outs, xs)
    for (sh, zp, lo, hi), vals in got.items():
        want = [min(max(_exact_round(x, sh, mode) + zp, lo), hi) & 0xFF for x in xs]
        assert vals[:len(xs)] == want, f"shift {sh} zp {zp} clamp [{lo}, {hi}] mode {mode}"


def test_chunked_constant_compare_equals_python_comparison():
    """ge_const_reg (the saturation compare of requant_pipe, cut into registered chunks of at most
    COMPARE_CHUNK_BITS) equals ``v >= t`` one cycle later: 79-, 50- and 24-bit values, thresholds at, beside and
    across chunk boundaries and outside the range."""
    from rtlgen.cores.arith import COMPARE_CHUNK_BITS, ge_const_reg

    rng = np.random.default_rng(3)
    m = Module()
    cases = []
    for w in (79, 50, COMPARE_CHUNK_BITS):
        v = Signal(signed(w), name=f"v{w}")
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        ts = [lo - 1, lo, lo + 1, hi, hi + 1, 0, -1, 1 << 27, -(1 << 27) + 5]
        ts += [int.from_bytes(rng.bytes(10), "little", signed=True) >> (81 - w) for _ in range(6)]
        for j, t in enumerate(ts):
            cases.append((v, w, t, ge_const_reg(m, v, t, f"c{w}_{j}")))
    vals = {}
    for w in (79, 50, COMPARE_CHUNK_BITS):
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
        xs = [lo, hi, 0, -1]
        xs += [int.from_bytes(rng.bytes(10), "little", signed=True) >> (81 - w) for _ in range(60)]
        xs += [t + d for (_, ww, t, _) in cases if ww == w for d in (-1, 0, 1) if lo <= t + d <= hi]
        vals[w] = xs
    n = max(len(x) for x in vals.values())
    got = []

    async def bench(ctx):
        for k in range(n):
            for v, w, _, _ in cases:
                ctx.set(v, vals[w][k % len(vals[w])])
            await ctx.tick()  # the chunk registers now hold this value's compares
            got.append([ctx.get(r) for *_, r in cases])

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    for k in range(n):
        for (v, w, t, _), g in zip(cases, got[k]):
            x = vals[w][k % len(vals[w])]
            assert g == int(x >= t), f"{w}-bit {x} >= {t}"
