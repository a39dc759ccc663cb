"""Requantization: the IR's single form ``clamp(rshift_round(v * m[o], sh[o]) + zp_out, lo, hi)`` in hardware.

Building blocks
---------------
* :func:`rshift_round_expr` -- ``round(v / 2**sh)`` exactly as :func:`rtlgen.quant.rshift_round`: one add and one
  arithmetic shift, ``(v + offset) >> sh`` (half-even: ``offset = 2**(sh-1) - 1 + bit_sh(v)``; other modes see
  :mod:`rtlgen.quant`). ``sh`` is a Python int (constant: free wiring) or a Signal (per-channel shift read from a
  small parameter ROM: a barrel shifter).
* :class:`RequantStage` -- the post-processing stage of the convolution engine (also usable after any MAC array):
  per output channel ``o``::

      v   = (acc + bias[o]) * m[o]  [+ (skip - res_zp) * res_m[o]]      # merged residual, golden.conv_post
      out = clamp(rshift_round(v, sh[o]) + zp_out, lo, hi)               # ReLU is lo = zp_out

  Every per-channel field that is uniform over the channels becomes a constant; the others live in a small ROM
  indexed by the channel group. Power-of-two multipliers (``Requant.kind == "shift"``) become shifts (a constant
  shift when uniform), other multipliers real multipliers (``m`` has ``MULT_BITS`` = 24 significant bits).

Stream contract of :class:`RequantStage`
----------------------------------------
* ``i``: payload ``{data: lanes x acc_bits (two's complement, lane 0 in the LSBs), last}``. Beats in the activation
  stream order of :mod:`rtlgen.cores.stream`: beat ``k`` of a pixel carries channels ``k*lanes ...``; ``groups``
  beats per pixel. ``i.last`` is ignored: the stage counts ``beats_per_frame`` beats itself.
* ``skip`` (only with a residual): an activation stream (``lanes`` x 8 bits) in the same order; beat ``n`` of
  ``skip`` is consumed together with beat ``n`` of ``i``.
* ``o``: activation stream, ``lanes`` x 8 bits, ``last`` on beat ``beats_per_frame - 1`` of every frame; lanes past
  the channel count in the tail beat are zero.
* Throughput one beat per cycle, latency 4 cycles (``LATENCY``); backpressure stalls the whole pipeline.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.quant import bits_signed

from .stream import act_signature

__all__ = ["rshift_round_expr", "clamp_expr", "RequantStage", "acc_layout", "logic_rom"]


def _ubits(n: int) -> int:
    return max(1, int(n).bit_length())


def rshift_round_expr(v, sh, mode: str = "half_even", max_sh: int | None = None):
    """Amaranth expression for ``rtlgen.quant.rshift_round(v, sh, mode)`` with ``v`` signed and ``sh >= 0``.

    ``sh``: a Python int or an unsigned Value (``max_sh`` bounds it, for the offset width).
    """
    v = v.as_signed()
    if isinstance(sh, int):
        if sh < 0:
            raise ValueError("rshift_round_expr: negative constant shift")
        if sh == 0:
            return v
        if len(v) < sh + 2:  # sign-extend so that bit ``sh`` exists
            v = Cat(v, v[-1].replicate(sh + 2 - len(v))).as_signed()
        one = 1
        half = 1 << (sh - 1)
        if mode == "half_even":
            off = (half - 1) + v[sh]
        elif mode == "half_up":
            off = Const(half, unsigned(sh))
        elif mode == "half_down":
            off = Const(half - 1, unsigned(sh))
        elif mode == "floor":
            return v >> sh
        elif mode == "ceil":
            off = Const((one << sh) - 1, unsigned(sh))
        elif mode == "to_zero":
            off = Mux(v[-1], (one << sh) - 1, 0)
        else:
            raise ValueError(f"unknown rounding mode {mode!r}")
        return ((v + off) >> sh).as_signed()
    # variable shift
    max_sh = max_sh if max_sh is not None else (1 << len(sh)) - 1
    w = max_sh + 1
    one = Const(1, unsigned(w + 1))
    full = ((one << sh) - 1)[:w]  # 2**sh - 1
    half_m1 = (full >> 1)  # 2**(sh-1) - 1 (0 when sh == 0)
    nz = sh != 0
    lsb = (v >> sh)[0]
    if mode == "half_even":
        off = Mux(nz, half_m1 + lsb, 0)
    elif mode == "half_up":
        off = Mux(nz, half_m1 + 1, 0)
    elif mode == "half_down":
        off = half_m1
    elif mode == "floor":
        return (v >> sh).as_signed()
    elif mode == "ceil":
        off = full
    elif mode == "to_zero":
        off = Mux(v[-1], full, 0)
    else:
        raise ValueError(f"unknown rounding mode {mode!r}")
    return ((v + off) >> sh).as_signed()


def clamp_expr(v, lo: int, hi: int):
    v = v.as_signed()
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


def logic_rom(m: Module, name: str, words: list[int], width: int, addr, en):
    """A ROM built from logic (a case statement on ``addr``, registered when ``en``): one-cycle read latency like
    a synchronous memory read port. Synthesizers may still infer a ROM from a large case statement (yosys' ``proc_rom``,
    Vivado's ROM extraction) and put it in block RAM: the output register carries ``rom_style = "distributed"`` for
    Vivado, and :mod:`rtlgen.synth` runs ``proc -norom`` first so that yosys keeps it in LUTs too."""
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


def acc_layout(lanes: int, acc_bits: int) -> data.StructLayout:
    return data.StructLayout({"data": unsigned(lanes * acc_bits), "last": unsigned(1)})


class _Field:
    """One per-channel parameter: constant when uniform over the channels, else a ROM field."""

    def __init__(self, name, values: np.ndarray, is_signed: bool):
        self.name = name
        self.values = np.asarray(values, dtype=object)
        self.uniform = len(set(int(x) for x in self.values)) == 1
        lo, hi = int(min(self.values)), int(max(self.values))
        self.shape = signed(bits_signed(min(lo, 0), max(hi, 0))) if is_signed else unsigned(_ubits(hi))
        self.bits = self.shape.width
        self.max = hi


class RequantStage(wiring.Component):
    """Pipelined per-channel requant (+ bias, + merged residual) of ``lanes`` accumulators per beat.

    Parameters: ``bias``, ``m``, ``sh`` (and ``res_m``) are length-``C`` integer arrays (``C`` output channels),
    ``acc_range`` the inclusive range of the incoming accumulators (sizes every adder), ``skip_signed`` whether the
    skip stream carries int8 (else uint8).
    """

    LATENCY = 4

    def __init__(self, *, lanes: int, channels: int, acc_range: tuple[int, int], bias, m, sh, zp_out: int,
                 lo: int, hi: int, rounding: str = "half_even", beats_per_frame: int,
                 res_m=None, res_zp: int = 0, skip_signed: bool = True):
        self.lanes = lanes
        self.channels = channels
        self.groups = math.ceil(channels / lanes)
        self.beats_per_frame = beats_per_frame
        self.acc_lo, self.acc_hi = int(acc_range[0]), int(acc_range[1])
        self.acc_bits = bits_signed(self.acc_lo, self.acc_hi)
        n = self.groups * lanes

        def padded(a, fill):
            a = np.broadcast_to(np.asarray(a, dtype=np.int64), (channels,))
            out = np.full(n, fill, dtype=np.int64)
            out[:channels] = a
            return out

        self.bias = padded(bias, 0)
        self.m = padded(m, 1)
        self.sh = padded(sh, int(np.max(sh)))
        if np.any(self.sh < 0) or np.any(self.m < 1):
            raise ValueError("requant needs m >= 1 and sh >= 0")
        self.zp_out, self.lo, self.hi = int(zp_out), int(lo), int(hi)
        if not (-128 <= lo <= hi <= 255):
            raise ValueError("requant clamp range must fit an 8-bit type")
        self.rounding = rounding
        self.residual = res_m is not None
        self.res_zp = int(res_zp)
        self.skip_signed = skip_signed
        self.m_shift = bool(np.all((self.m & (self.m - 1)) == 0))
        self.fields = [_Field("bias", self.bias, True), _Field("sh", self.sh, False)]
        if self.m_shift:
            self.fields.append(_Field("ma", np.array([int(x).bit_length() - 1 for x in self.m]), False))
        else:
            self.fields.append(_Field("m", self.m, False))
        if self.residual:
            self.res_m = padded(res_m, 1)
            if np.any(self.res_m < 1):
                raise ValueError("res_m must be >= 1")
            self.r_shift = bool(np.all((self.res_m & (self.res_m - 1)) == 0))
            if self.r_shift:
                self.fields.append(_Field("ra", np.array([int(x).bit_length() - 1 for x in self.res_m]), False))
            else:
                self.fields.append(_Field("rm", self.res_m, False))
        self.f = {fl.name: fl for fl in self.fields}
        sig = {"i": In(stream.Signature(acc_layout(lanes, self.acc_bits))), "o": Out(act_signature(lanes))}
        if self.residual:
            sig["skip"] = In(act_signature(lanes))
        super().__init__(sig)
        self._MustUse__silence = True  # also built as a pure cycle/shape model by the planner

    # -- pure-Python model -------------------------------------------------------------------------------------
    def cycles_per_frame(self) -> int:
        return self.beats_per_frame

    def _rom_fields(self):
        return [fl for fl in self.fields if not fl.uniform]

    def _rom_init(self):
        fl = self._rom_fields()
        words = []
        for g in range(self.groups):
            w, pos = 0, 0
            for lane in range(self.lanes):
                c = g * self.lanes + lane
                for f in fl:
                    w |= (int(f.values[c]) & ((1 << f.bits) - 1)) << pos
                    pos += f.bits
            words.append(w)
        return words, pos

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        ab = self.acc_bits
        stall = Signal()
        en = ~stall
        # stage valid bits
        v1, v2, v3, v4 = (Signal(name=f"v{k}") for k in range(1, 5))
        m.d.comb += stall.eq(v4 & ~self.o.ready)
        skip_ok = self.skip.valid if self.residual else 1
        take = Signal()
        m.d.comb += take.eq(en & self.i.valid & skip_ok)
        m.d.comb += self.i.ready.eq(en & skip_ok)
        if self.residual:
            m.d.comb += self.skip.ready.eq(en & self.i.valid)

        # group counter (ROM address) and frame beat counter
        grp = Signal(range(max(self.groups, 2)))
        beat = Signal(range(max(self.beats_per_frame, 2)))
        last0 = beat == self.beats_per_frame - 1
        with m.If(take):
            m.d.sync += grp.eq(Mux(grp == self.groups - 1, 0, grp + 1))
            m.d.sync += beat.eq(Mux(last0, 0, beat + 1))

        # parameter ROM (non-uniform fields only)
        romf = self._rom_fields()
        par = {}
        if romf:
            words, width = self._rom_init()
            data_ = logic_rom(m, "params", words, width, grp, en)
            pos = 0
            for lane in range(L):
                for f in romf:
                    s = Signal(f.shape, name=f"p_{f.name}_{lane}")
                    m.d.comb += s.eq(data_[pos:pos + f.bits])
                    par[(f.name, lane)] = s
                    pos += f.bits

        def param(name, lane):
            f = self.f[name]
            if f.uniform:
                return int(f.values[0])
            return par[(name, lane)]

        # stage 1: register inputs
        acc1 = [Signal(signed(ab), name=f"acc1_{k}") for k in range(L)]
        skp1 = [Signal(unsigned(8), name=f"skip1_{k}") for k in range(L)]
        last1 = Signal()
        with m.If(en):
            m.d.sync += [v1.eq(take), last1.eq(last0)]
            for k in range(L):
                m.d.sync += acc1[k].eq(self.i.payload.data[k * ab:(k + 1) * ab])
                if self.residual:
                    m.d.sync += skp1[k].eq(self.skip.payload.data[k * 8:(k + 1) * 8])

        # ranges per lane for sizing
        b_lo, b_hi = int(self.bias.min()), int(self.bias.max())
        t_lo, t_hi = self.acc_lo + b_lo, self.acc_hi + b_hi
        t_shape = signed(bits_signed(t_lo, t_hi))
        mmax = int(self.m.max())
        p_lo, p_hi = min(t_lo * mmax, t_lo, 0), max(t_hi * mmax, t_hi, 0)
        if self.residual:
            s_lo, s_hi = (-128, 127) if self.skip_signed else (0, 255)
            u_lo, u_hi = s_lo - self.res_zp, s_hi - self.res_zp
            rmax = int(self.res_m.max())
            r_lo, r_hi = min(u_lo * rmax, u_lo, 0), max(u_hi * rmax, u_hi, 0)
        else:
            r_lo = r_hi = 0
        v_shape = signed(bits_signed(p_lo + r_lo, p_hi + r_hi) + 1)

        # stage 2: products / shifts
        prod2 = [Signal(v_shape, name=f"prod2_{k}") for k in range(L)]
        res2 = [Signal(v_shape, name=f"res2_{k}") for k in range(L)]
        last2 = Signal()
        with m.If(en):
            m.d.sync += [v2.eq(v1), last2.eq(last1)]
            for k in range(L):
                t = Signal(t_shape, name=f"t1_{k}")
                m.d.comb += t.eq(acc1[k] + param("bias", k))
                if self.m_shift:
                    m.d.sync += prod2[k].eq(t << param("ma", k))
                else:
                    m.d.sync += prod2[k].eq(t * param("m", k))
                if self.residual:
                    sv = skp1[k].as_signed() if self.skip_signed else skp1[k]
                    u = Signal(signed(10), name=f"u1_{k}")
                    m.d.comb += u.eq(sv - self.res_zp)
                    if self.r_shift:
                        m.d.sync += res2[k].eq(u << param("ra", k))
                    else:
                        m.d.sync += res2[k].eq(u * param("rm", k))
        # carry shift amounts to stage 2 when they come from the ROM
        sh2 = {}
        if not self.f["sh"].uniform:
            for k in range(L):
                s = Signal(self.f["sh"].shape, name=f"sh2_{k}")
                with m.If(en):
                    m.d.sync += s.eq(par[("sh", k)])
                sh2[k] = s

        # stage 3: sum and rounding shift
        q_shape = signed(v_shape.width)
        q3 = [Signal(q_shape, name=f"q3_{k}") for k in range(L)]
        last3 = Signal()
        with m.If(en):
            m.d.sync += [v3.eq(v2), last3.eq(last2)]
            for k in range(L):
                vsum = Signal(v_shape, name=f"v2_{k}")
                m.d.comb += vsum.eq(prod2[k] + res2[k] if self.residual else prod2[k])
                sh = int(self.f["sh"].values[0]) if self.f["sh"].uniform else sh2[k]
                m.d.sync += q3[k].eq(rshift_round_expr(vsum, sh, self.rounding, max_sh=self.f["sh"].max))

        # stage 4: zero point, clamp, output register
        out4 = [Signal(8, name=f"out4_{k}") for k in range(L)]
        last4 = Signal()
        with m.If(en):
            m.d.sync += [v4.eq(v3), last4.eq(last3)]
            for k in range(L):
                y = clamp_expr(q3[k] + self.zp_out, self.lo, self.hi)
                m.d.sync += out4[k].eq(y[:8])
        # zero the tail lanes of the last group
        tail = self.channels - (self.groups - 1) * L
        grp4 = None
        if tail < L:
            g1, g2, g3, g4 = (Signal(range(max(self.groups, 2)), name=f"grp{k}") for k in range(1, 5))
            with m.If(en):
                m.d.sync += [g1.eq(grp), g2.eq(g1), g3.eq(g2), g4.eq(g3)]
            grp4 = g4
        outs = []
        for k in range(L):
            if grp4 is not None and k >= tail:
                outs.append(Mux(grp4 == self.groups - 1, 0, out4[k]))
            else:
                outs.append(out4[k])
        m.d.comb += [
            self.o.valid.eq(v4),
            self.o.payload.data.eq(Cat(*outs)),
            self.o.payload.last.eq(last4),
        ]
        return m
