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


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_requant_pipe_equals_the_golden_requant(mode):
    """requant_pipe (saturation decided on the unrounded value against round_threshold, in parallel with the
    rounding adder) equals clamp(rshift_round(v) + zp, lo, hi) for every 10-bit signed v, two cycles later."""
    from rtlgen.cores.arith import REQUANT_PIPE_STAGES, requant_pipe

    m = Module()
    v = Signal(signed(10))
    outs = {c: requant_pipe(m, v, *c, mode, f"rq{i}") for i, c in enumerate(REQUANT_CASES)}
    xs = list(range(-512, 512))
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
    arr = np.array(xs, dtype=np.int64)
    for (sh, zp, lo, hi), vals in got.items():
        want = np.clip(rshift_round(arr, sh, mode) + zp, lo, hi) & 0xFF
        assert vals[:len(xs)] == list(want), f"shift {sh} zp {zp} clamp [{lo}, {hi}] mode {mode}"
