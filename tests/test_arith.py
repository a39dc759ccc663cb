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
