"""The cores' arithmetic: the one place every core takes its rounding, multipliers, adder trees and pipelines from.

Rounding: ``round(v / 2**sh)`` exactly as :func:`rtlgen.quant.rshift_round` (every mode of :mod:`rtlgen.quant`)
--------------------------------------------------------------------------------------------------------------
One rounding circuit, :func:`rshift_round_value` (``tests/test_arith.py`` checks it against
:func:`rtlgen.quant.rshift_round` for every mode): a constant shift, the quotient ``v >> sh`` (wiring) plus an
increment decided by the dropped bits and the quotient's LSB (one carry chain). Every core rounds through
:func:`requant_pipe` (add, pool, requant cores and the conv/dense/depthwise engines'
:class:`~rtlgen.cores.requant.RequantStage`, whose per-channel shifts become one constant shift first).

Multipliers
-----------
* :func:`lut_mul` / :func:`lut_mul_pps` -- products in LUT fabric (``mult="lut"`` layers):

  :func:`lut_mul` is the combinational product ``x * w`` of a signed activation ``x`` (9 bits: int8 sign-extended or
  uint8 zero-extended) and an int8 weight ``w``, written so that any synthesizer maps it to LUTs and carry chains
  (never a DSP48E2) with few LUTs:

  * the weight is taken two bits at a time: ``pp_k = x*w[2k] + 2*x*w[2k+1]`` for ``k = 0, 1, 2`` and
    ``pp_3 = x*w[6] - 2*x*w[7]`` (bit 7 of a two's-complement int8 weighs ``-128``), each one adder whose input bits
    are ANDs of one activation bit and one weight bit -- on UltraScale+ one LUT per result bit in front of a CARRY8;
  * ``x*w = pp_0 + 4*pp_1 + 16*pp_2 + 64*pp_3`` in a balanced tree (three adders).

  Measured with yosys 0.23 ``synth_xilinx -family xcup`` (the :mod:`rtlgen.verify.synth` script, 16 registered 9x8
  products): 110 LUTs per multiplier, against 195 for yosys' generic soft multiplier (``$__soft_mul``) and about the
  same (111) for a radix-4 Booth form, so the simpler form is kept. Exact for every ``x`` in [-256, 255] and ``w`` in
  [-128, 127] (``tests/test_lutmul.py`` checks all of them through Amaranth's simulator). No state, no latency: the
  caller registers the product like a DSP's ``M`` register.

  A multiplier written this way carries no ``*`` operator, so Vivado, like yosys, builds it from LUTs without a
  ``use_dsp`` attribute.

* :func:`pmul` -- DSP48E2-sized pipelined products; :func:`const_mul` -- constant factors as shifts/adds.

Trees and pipelines: :func:`tree_reduce`, :func:`ptree`, :func:`delay`, :func:`count_beats`, :func:`credit_fifo`,
:func:`requant_pipe`,
:func:`normalize_requant`, :func:`logic_rom`.
"""

from __future__ import annotations

import operator

import numpy as np

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned

from rtlgen.plan.geometry import DSP_A_BITS, DSP_B_BITS, clog2, normalize_requant, pmul_split
from rtlgen.quant import rshift_round

from .hardmul import dsp_ports, registered_product, signed_value

__all__ = ["clog2", "lane", "tree_reduce", "count_beats", "delay", "tree_levels", "ptree_stages", "ptree",
           "rshift_round_value",
           "lut_mul_pps", "lut_mul", "credit_fifo", "REQUANT_PIPE_STAGES", "requant_pipe", "round_threshold",
           "ge_const_reg", "COMPARE_CHUNK_BITS",
           "const_mul", "DSP_A_BITS", "DSP_B_BITS", "pmul_split", "pmul_stages", "pmul", "normalize_requant",
           "logic_rom", "credit_counter"]


# -- rounding --------------------------------------------------------------------------------------------------------


def rshift_round_value(v, sh: int, mode: str = "half_even"):
    """Hardware ``rshift_round(v, sh)`` for a signed value and a constant shift (see :func:`rtlgen.quant.rshift_round`).

    Arithmetic right shift plus a rounding increment computed from the dropped bits and the result's LSB.
    """
    v = v.as_signed() if not v.shape().signed else v
    if sh <= 0:
        return v << (-sh)
    w = len(v)
    if sh >= w:  # every bit is dropped: extend so the remainder logic below stays uniform
        v = Cat(v, v[-1].replicate(sh + 2 - w)).as_signed()
        w = sh + 2
    q = v >> sh
    r = v[:sh]
    half_bit = r[sh - 1]
    below = r[: sh - 1] != 0 if sh > 1 else Const(0, 1)
    nonzero = r != 0
    if mode == "half_even":
        inc = half_bit & (below | q[0])
    elif mode == "half_up":
        inc = half_bit
    elif mode == "half_down":
        inc = half_bit & below
    elif mode == "floor":
        inc = Const(0, 1)
    elif mode == "ceil":
        inc = nonzero
    elif mode == "to_zero":
        inc = nonzero & v[-1]
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    return q + inc


# -- multipliers -----------------------------------------------------------------------------------------------------


def lut_mul_pps(x, w) -> list:
    """The four partial products of :func:`lut_mul` (``x*w`` is their sum), so a pipeline can register them (one adder
    each) before the three-adder tree. ``x`` signed, or unsigned and zero-extended (uint8 -> 9-bit signed)."""
    x = signed_value(x)
    if len(w) != 8:
        raise ValueError("lut_mul: the weight must be 8 bits")
    pps = []
    for k in range(4):
        a = Mux(w[2 * k], x, 0)
        b = Mux(w[2 * k + 1], x, 0)
        pps.append(((a - (b << 1)) if k == 3 else (a + (b << 1))) << (2 * k))
    return pps


def lut_mul(x: Value, w: Value) -> Value:
    """Signed product ``x * w`` (``x`` signed, or unsigned and zero-extended; ``w`` signed 8 bits) as shift-and-add
    of weight-bit pairs; the result is a signed value wide enough for every product."""
    return tree_reduce(lut_mul_pps(x, w), operator.add)


def const_mul(v, k: int):
    """``v * k`` for a non-negative constant ``k``: a shift when ``k`` is a power of two, one adder of two shifts when
    ``k`` has two set bits (fabric, no DSP), else a multiplier."""
    if k & (k - 1) == 0:
        return v << (k.bit_length() - 1) if k else Const(0, 1)
    if bin(k).count("1") == 2:
        lo = (k & -k).bit_length() - 1
        return (v << (k.bit_length() - 1)) + (v << lo)
    return v * Const(k, unsigned(k.bit_length()))


def pmul_stages(a_bits: int, b_bits: int) -> int:
    """Register stages of :func:`pmul`: M and P of each DSP-sized partial product, then their sum (a tree registered
    every 2 adder levels)."""
    na, nb = pmul_split(a_bits, b_bits, dsp_ports())
    return 2 + ptree_stages(na * nb)


def pmul(m, a, b, name: str):
    """Pipelined product ``a * b`` (``a``, ``b`` signed or unsigned Values): split into partial products that fit
    the device family's multiplier (:func:`pmul_split`, :func:`~rtlgen.cores.hardmul.dsp_ports`: DSP48E2 27 x 18,
    ECP5 MULT18X18D 18 x 18), each registered before and after its multiplier
    (:func:`~rtlgen.cores.hardmul.registered_product`), summed in a registered tree, so no register-to-register path
    holds a multiplier plus the adders of a wide product. Returns the product, :func:`pmul_stages` cycles after the
    operands."""
    sa, sb = signed_value(a), signed_value(b)
    wide, narrow = dsp_ports()
    na, nb = pmul_split(len(sa), len(sb), (wide, narrow))

    def split(v, n, step):
        if n == 1:
            return [(v, 0)]
        out = []
        for k in range(n):
            lo = k * step
            if k < n - 1:
                out.append((Cat(v[lo:lo + step], Const(0, 1)).as_signed(), lo))
            else:
                out.append((v[lo:].as_signed(), lo))
        return out

    pieces_a, pieces_b = split(sa, na, narrow - 1), split(sb, nb, wide - 1)
    terms = []
    for i, (pa, sha) in enumerate(pieces_a):
        for j, (pb, shb) in enumerate(pieces_b):
            p2 = registered_product(m, pa, pb, f"{name}_m{i}_{j}", f"{name}_p{i}_{j}")
            terms.append(p2 << (sha + shb) if sha + shb else p2)
    if len(terms) == 1:
        return terms[0]
    return ptree(m, terms, f"{name}_s")


# -- trees, pipelines, tables ----------------------------------------------------------------------------------------


def lane(data, i: int, width: int, is_signed: bool = True):
    """Lane ``i`` of a packed data vector as a (signed) value."""
    v = data[i * width : (i + 1) * width]
    return v.as_signed() if is_signed else v


def tree_reduce(values: list, op):
    """Balanced binary reduction (keeps expression depth logarithmic: Amaranth lowers recursively)."""
    values = list(values)
    if not values:
        raise ValueError("tree_reduce of nothing")
    while len(values) > 1:
        nxt = [op(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        values = nxt
    return values[0]


def delay(m, value, stages: int, name: str):
    """``value`` through ``stages`` unconditional registers (a free-running pipeline: valid bits travel alongside)."""
    v = value
    for k in range(stages):
        r = Signal.like(v, name=f"{name}_d{k + 1}") if isinstance(v, Signal) else Signal(v.shape(), name=f"{name}_d{k + 1}")
        m.d.sync += r.eq(v)
        v = r
    return v


def tree_levels(n: int) -> int:
    """Adder levels of a balanced tree over ``n`` terms."""
    return clog2(n)


def ptree_stages(n: int, per: int = 2) -> int:
    """Register stages of :func:`ptree` over ``n`` terms (a register after every ``per`` adder levels)."""
    return -(-tree_levels(n) // per)


def ptree(m, terms: list, name: str, per: int = 2):
    """Balanced adder tree over ``terms`` registered after every ``per`` levels (and after the last one): the sum
    arrives :func:`ptree_stages` cycles later. One term: returned as is (0 stages)."""
    values = list(terms)
    if not values:
        raise ValueError("ptree of nothing")
    level = 0
    while len(values) > 1:
        nxt = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            nxt.append(values[-1])
        level += 1
        if level % per == 0 or len(nxt) == 1:
            regs = []
            for k, v in enumerate(nxt):
                r = Signal(v.shape(), name=f"{name}_l{level}_{k}")
                m.d.sync += r.eq(v)
                regs.append(r)
            nxt = regs
        values = nxt
    return values[0]


def count_beats(m, b, fire, last, beats: int):
    """Advance the beat position ``b`` (a Signal over ``0..beats-1``) within a pixel of ``beats`` beats on ``fire``;
    back to 0 after the pixel's last beat or on a frame's ``last``."""
    with m.If(fire):
        with m.If((b == beats - 1) | last):
            m.d.sync += b.eq(0)
        with m.Else():
            m.d.sync += b.eq(b + 1)


def credit_fifo(m, name: str, take, o, valid, data, last, pipe_depth: int):
    """Output side of a free-running pipeline: a FIFO of ``pipe_depth + 4`` entries on stream ``o`` (payload
    ``data``/``last``, written when ``valid``) and a credit counter (beats taken, not yet read). Returns the
    registered ``ok`` that admits input beats: every beat taken finds room, and the input's ``ready`` never depends
    on ``o.ready`` in the same cycle. Latency: the FIFO's 2 cycles after the pipeline."""
    from amaranth.lib import fifo

    depth = pipe_depth + 4
    f = fifo.SyncFIFOBuffered(width=len(data) + 1, depth=depth)
    m.submodules[name] = f
    m.d.comb += [f.w_data.eq(Cat(data, last)), f.w_en.eq(valid), o.valid.eq(f.r_rdy),
                 o.payload.data.eq(f.r_data[:len(data)]), o.payload.last.eq(f.r_data[len(data)]),
                 f.r_en.eq(o.ready)]
    ok = Signal(init=1, name=f"{name}_ok")
    m.d.sync += ok.eq(credit_counter(m, f"{name}_inflight", depth, take, f.r_rdy & o.ready))
    return ok


def credit_counter(m, name: str, depth: int, inc, dec):
    """A credit counter (``inc``: a beat taken, ``dec``: a result read; never below 0 nor above ``depth`` when its
    ``ok`` gates ``inc``): adds the counter register and returns the expression ``count after this cycle < depth``,
    which the caller registers as its ``ok`` (alone, or ANDed with other counters').

    Timing: the next ``ok`` is not ``(cnt + inc - dec) < depth`` (two adders and a comparator after the read
    enable, which comes from the output multiplexers) but a choice between three comparisons of the registered
    count with constants, ``cnt < depth - 1`` / ``cnt < depth`` / ``cnt < depth + 1``, by ``inc`` and ``dec``; the
    count itself takes one adder of a two-bit step. Same values cycle for cycle."""
    cnt = Signal(range(depth + 2), name=name)
    up, down = Signal(name=f"{name}_up"), Signal(name=f"{name}_down")
    m.d.comb += [up.eq(inc & ~dec), down.eq(dec & ~inc)]
    with m.If(up):
        m.d.sync += cnt.eq(cnt + 1)
    with m.Elif(down):
        m.d.sync += cnt.eq(cnt - 1)
    return Mux(up, cnt < depth - 1, Mux(down, cnt < depth + 1, cnt < depth))


#: register stages of :func:`requant_pipe`
REQUANT_PIPE_STAGES = 2


def round_threshold(t: int, sh: int, mode: str, lo: int, hi: int) -> int:
    """The least ``v`` in ``[lo, hi]`` with ``rshift_round(v, sh, mode) >= t`` (``hi + 1`` if none): every rounding
    mode is non-decreasing in ``v``, so ``rshift_round(v) >= t`` is exactly ``v >= round_threshold(t)``."""
    def f(x: int) -> int:  # Python integers: any datapath width
        return int(rshift_round(np.asarray(x, dtype=object), sh, mode))

    if f(hi) < t:
        return hi + 1
    a, b = lo, hi  # invariant: f(b) >= t; the answer is in [a, b]
    while a < b:
        c = (a + b) // 2
        if f(c) >= t:
            b = c
        else:
            a = c + 1
    return a


#: widest comparator carry chain of :func:`ge_const_reg` (3 CARRY8 on UltraScale+, 12 CCU2C on ECP5)
COMPARE_CHUNK_BITS = 24


def ge_const_reg(m: Module, v, t: int, name: str) -> Value:
    """``v >= t`` (``v`` signed, ``t`` a constant) for ``v`` of the previous cycle: ``v`` is cut into chunks of at
    most :data:`COMPARE_CHUNK_BITS` bits, each chunk's ``>`` and ``==`` against the same chunk of ``t`` registered
    (the lowest chunk's ``>=``), and the registers combined lexicographically (``gt | eq & rest``: one or two LUT
    levels, no carry chain). A constant where ``t`` lies outside ``v``'s range."""
    w = len(v)
    if t <= -(1 << (w - 1)):
        return Const(1, 1)
    if t > (1 << (w - 1)) - 1:
        return Const(0, 1)
    n = -(-w // COMPARE_CHUNK_BITS)
    size = -(-w // n)
    res = None
    for i, a in enumerate(range(0, w, size)):
        b = min(a + size, w)
        if b == w:
            piece, tp, pmin, pmax = v[a:b].as_signed(), t >> a, -(1 << (b - a - 1)), (1 << (b - a - 1)) - 1
        else:
            piece, tp, pmin, pmax = v[a:b], (t >> a) & ((1 << (b - a)) - 1), 0, (1 << (b - a)) - 1
        if res is None:
            res = Const(1, 1) if tp <= pmin else _reg(m, piece >= tp, f"{name}_ge{i}")
            continue
        # a chunk constant at the end of the chunk's range decides ``>`` alone (and Verilator flags the compare)
        gt = Const(0, 1) if tp >= pmax else _reg(m, piece > tp, f"{name}_gt{i}")
        res = gt | (_reg(m, piece == tp, f"{name}_eq{i}") & res)
    return res


def _reg(m: Module, value, name: str) -> Signal:
    """``value`` registered into a new one-bit signal ``name``."""
    r = Signal(name=name)
    m.d.sync += r.eq(value)
    return r


def requant_pipe(m, v, sh: int, zp: int, lo: int, hi: int, mode: str, name: str):
    """``clamp(rshift_round(v, sh) + zp, lo, hi)`` (constant ``sh``) in two register stages. Stage 1: the rounded
    quotient's low 8 bits (the rounding increment, an OR tree of the dropped bits, into an 8-bit adder) and, in
    parallel, the two saturation decisions compared on ``v`` itself (``rshift_round(v) < lo - zp`` is
    ``v < round_threshold(lo - zp)``), each a :func:`ge_const_reg` of comparator chunks; stage 2: the chunks
    combined, the 8-bit zero-point add and a 3-way select. No wide quotient is compared after the rounding adder and
    no comparator chain is longer than :data:`COMPARE_CHUNK_BITS` (a 79-bit product's single compare was conv_ref's
    ECP5 critical path, 137 MHz). Returns the registered 8-bit value (:data:`REQUANT_PIPE_STAGES` cycles after
    ``v``)."""
    vs = v.as_signed() if not v.shape().signed else v
    w = len(vs)
    vmin, vmax = -(1 << (w - 1)), (1 << (w - 1)) - 1
    t_lo = round_threshold(lo - zp, sh, mode, vmin, vmax)
    t_hi = round_threshold(hi - zp + 1, sh, mode, vmin, vmax)
    q = Signal(8, name=f"{name}_q")
    m.d.sync += q.eq(rshift_round_value(v, sh, mode)[:8])
    under = ~ge_const_reg(m, vs, t_lo, f"{name}_lo")
    over = ge_const_reg(m, vs, t_hi, f"{name}_hi")
    y = Mux(under, lo, Mux(over, hi, q + zp))
    o = Signal(8, name=f"{name}_y")
    m.d.sync += o.eq(y[:8])
    return o


def check_out_shift(k: int, out_hi, zp: int, lo: int, hi: int):
    """An exact output shift (:attr:`rtlgen.ir.Requant.out_shift`) needs zero point 0 and shifted codes within 8 bits:
    the clamped range shifted fits, or non-negative codes saturate at ``out_hi`` <= 255."""
    if not k:
        return
    fits = -128 <= lo << k and hi << k <= 255
    if zp != 0 or not (fits or (out_hi is not None and lo >= 0 and 0 <= out_hi <= 255)):
        raise ValueError("an output shift needs zero point 0 and a shifted range within 8 bits (or a saturation)")


def shift_out(o, k: int, out_hi):
    """The clamped 8-bit code ``o`` shifted left by ``k`` (wiring), saturated at ``out_hi`` (one compare of ``o``)."""
    if not k:
        return o
    s = Cat(Const(0, k), o[:8 - k])
    return s if out_hi is None else Mux(o > (int(out_hi) >> k), int(out_hi), s)


def logic_rom(m: Module, name: str, words: list[int], width: int, addr, en):
    """A ROM built from logic (a case statement on ``addr``, registered when ``en``): one-cycle read latency like
    a synchronous memory read port. Synthesizers may still infer a ROM from a large case statement (yosys' ``proc_rom``,
    Vivado's ROM extraction) and put it in block RAM: the output register carries ``rom_style = "distributed"`` for
    Vivado, and :mod:`rtlgen.verify.synth` runs ``proc -norom`` first so that yosys keeps it in LUTs too."""
    # rom_style: Vivado infers a ROM from a large case statement and may put it in block RAM without it
    out = Signal(unsigned(max(width, 1)), name=f"{name}_data", attrs={"rom_style": "distributed"})
    with m.If(en):
        with m.Switch(addr):
            for k, w in enumerate(words):
                with m.Case(k):
                    m.d.sync += out.eq(w)
            with m.Default():
                m.d.sync += out.eq(0)
    return out
