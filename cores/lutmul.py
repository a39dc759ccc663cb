"""Multipliers in LUT fabric for the MAC arrays (``mult="lut"`` layers of the plan).

:func:`lut_mul` is the combinational product ``x * w`` of a signed activation ``x`` (9 bits: int8 sign-extended or
uint8 zero-extended) and an int8 weight ``w``, written so that any synthesizer maps it to LUTs and carry chains
(never a DSP48E2) with few LUTs:

* the weight is taken two bits at a time: ``pp_k = x*w[2k] + 2*x*w[2k+1]`` for ``k = 0, 1, 2`` and
  ``pp_3 = x*w[6] - 2*x*w[7]`` (bit 7 of a two's-complement int8 weighs ``-128``), each one adder whose input bits
  are ANDs of one activation bit and one weight bit -- on UltraScale+ one LUT per result bit in front of a CARRY8;
* ``x*w = pp_0 + 4*pp_1 + 16*pp_2 + 64*pp_3`` in a balanced tree (three adders).

Measured with yosys 0.23 ``synth_xilinx -family xcup`` (the :mod:`rtlgen.synth` script, 16 registered 9x8
products): 110 LUTs per multiplier, against 195 for yosys' generic soft multiplier (``$__soft_mul``) and about the
same (111) for a radix-4 Booth form, so the simpler form is kept. Exact for every ``x`` in [-256, 255] and ``w`` in
[-128, 127] (``tests/test_lutmul.py`` checks all of them through Amaranth's simulator). No state, no latency: the
caller registers the product like a DSP's ``M`` register.

A multiplier written this way carries no ``*`` operator, so Vivado, like yosys, builds it from LUTs without a
``use_dsp`` attribute.
"""

from __future__ import annotations

import operator

from amaranth.hdl import Cat, Const, Mux, Value

from .add import tree_reduce


def lut_mul(x: Value, w: Value) -> Value:
    """Signed product ``x * w`` (``x`` signed, or unsigned and zero-extended; ``w`` signed 8 bits) as shift-and-add
    of weight-bit pairs; the result is a signed value wide enough for every product."""
    if not x.shape().signed:  # zero-extend an unsigned activation (uint8 -> 9-bit signed)
        x = Cat(x, Const(0, 1)).as_signed()
    if len(w) != 8:
        raise ValueError("lut_mul: the weight must be 8 bits")
    pps = []
    for k in range(4):
        a = Mux(w[2 * k], x, 0)
        b = Mux(w[2 * k + 1], x, 0)
        pp = (a - (b << 1)) if k == 3 else (a + (b << 1))
        pps.append(pp << (2 * k))
    return tree_reduce(pps, operator.add)
