"""cores/arith.py lut_mul: the LUT multiplier equals x * w for every 9-bit signed x and int8 w (Amaranth simulator), and
its Verilog has no multiply operator (so no synthesizer infers a DSP for it)."""

import numpy as np
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from rtlgen.cores.arith import lut_mul


def test_lut_mul_exhaustive():
    m = Module()
    x = Signal(signed(9))
    ws = list(range(-128, 128))
    outs = []
    for w in ws:
        ws_sig = Signal(signed(8), name=f"w{w + 128}", init=w)
        o = Signal(signed(18), name=f"p{w + 128}")
        m.d.comb += o.eq(lut_mul(x, ws_sig))
        outs.append(o)
    sim = Simulator(m)
    bad = []

    async def bench(ctx):
        for xv in range(-256, 256):
            ctx.set(x, xv)
            got = [ctx.get(o) for o in outs]
            exp = [xv * w for w in ws]
            if got != exp:
                bad.append((xv, [(w, g) for w, g, e in zip(ws, got, exp) if g != e][:3]))

    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:5]


def test_lut_mul_unsigned_activation():
    """uint8 activations (unsigned 8-bit signals) are zero-extended, not reinterpreted as negative."""
    m = Module()
    x = Signal(8)
    ws = (-128, -1, 1, 77, 127)
    outs = []
    for w in ws:
        o = Signal(signed(18), name=f"q{w + 128}")
        m.d.comb += o.eq(lut_mul(x, Signal(signed(8), name=f"v{w + 128}", init=w)))
        outs.append(o)
    sim = Simulator(m)
    bad = []

    async def bench(ctx):
        for xv in range(256):
            ctx.set(x, xv)
            bad.extend((xv, w) for w, o in zip(ws, outs) if ctx.get(o) != xv * w)

    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:5]


def test_lut_mul_has_no_multiplier_cell():
    m = Module()
    x, w, o = Signal(signed(9)), Signal(signed(8)), Signal(signed(17))
    m.d.comb += o.eq(lut_mul(x, w))
    text = rtlil.convert(m, ports=[x, w, o])
    assert "$mul" not in text and "$add" in text


def test_lut_mul_rejects_wide_weights():
    import pytest

    with pytest.raises(ValueError):
        lut_mul(Signal(signed(9)), Signal(signed(9)))
