"""Requantization: the IR's single form ``clamp(rshift_round(v * m[o], sh[o]) + zp_out, lo, hi)`` in hardware.

Building blocks
---------------
* rounding: ``round(v / 2**sh)`` exactly as :func:`rtlgen.quant.rshift_round`, by the cores' one rounding circuit
  (:func:`rtlgen.cores.arith.requant_pipe`: the quotient ``v >> S`` plus an increment decided by the dropped bits)
  with ONE constant shift ``S = max(sh)``: ``rshift_round(v, sh[o]) == rshift_round(v << (S - sh[o]), S)`` exactly (the same rational value), and
  the per-channel left shift ``S - sh[o]`` folds into power-of-two multipliers (a shift that exists anyway) or is
  a barrel shift stage of its own after the products. A per-channel right shift with its rounding offset was a
  barrel shifter, an offset subtraction and the rounding add in one cycle (220-231 MHz estimated, 271 in ResNet8 @
  Ultra96-V2); with a constant shift the quotient is wiring and the increment one carry chain.
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
* Throughput one beat per cycle; latency :attr:`RequantStage.latency` cycles (7 for shifts, more with multipliers:
  every adder, each DSP-sized partial product's M and P registers and their registered sum, the rounding add and
  the clamp in their own register stage, then a 2-cycle output FIFO).
* Flow control: the arithmetic pipeline runs free; a credit counter (beats taken and not yet read from the output
  FIFO, which has room for all of them) drives a registered ``ok``, so ``i.ready`` (``ok`` and ``skip.valid``) never
  depends on ``o.ready`` in the same cycle.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.plan.geometry import requant_fold, requant_lane_dsp
from rtlgen.quant import bits_signed

from .arith import check_out_shift, credit_counter, delay, logic_rom, pmul, pmul_stages, requant_pipe, shift_out
from .stream import act_signature

__all__ = ["RequantStage", "acc_layout"]


def _pow2(a: np.ndarray) -> bool:
    """Every entry of ``a`` (positive) is a power of two."""
    return bool(np.all((a & (a - 1)) == 0))


def _ubits(n: int) -> int:
    return max(1, int(n).bit_length())


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

    Parameters
    ----------
    lanes, channels : int
        Accumulators per beat; output channels ``C``.
    acc_range : (int, int)
        Inclusive range of the incoming accumulators (sizes every adder).
    bias, m, sh : int arrays
        Length-``C`` bias, multiplier and shift.
    zp_out, lo, hi, rounding :
        Output zero point, clamp range, rounding mode.
    beats_per_frame : int
        Beats per frame (the stage counts them itself for ``last``).
    res_m, res_zp, skip_signed :
        Merged residual: length-``C`` multipliers, the skip's zero point and signedness (None: no residual).
    out_shift, out_hi :
        Exact left shift of the clamped result (zero point 0): wiring; ``out_hi`` (or None) saturates the shifted
        value (one compare of the unshifted code).

    Members
    -------
    i : ``In(stream.Signature(acc_layout(lanes, acc_bits)))``
        Accumulators.
    skip : ``In(act_signature(lanes))``
        Only with a residual: the skip stream, beat ``n`` with accumulator beat ``n``.
    o : ``Out(act_signature(lanes))``
        Requantized activations, ``last`` on each frame's final beat.
    """

    def __init__(self, *, lanes: int, channels: int, acc_range: tuple[int, int], bias, m, sh, zp_out: int,
                 lo: int, hi: int, rounding: str = "half_even", beats_per_frame: int,
                 res_m=None, res_zp: int = 0, skip_signed: bool = True, out_shift: int = 0, out_hi=None):
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
        # one constant rounding shift S = max(sh): rshift_round(v, sh[o]) == rshift_round(v << (S - sh[o]), S)
        # exactly (same rational value); the per-channel left shift ls[o] = S - sh[o] folds into power-of-two
        # multipliers, otherwise it is a barrel shift of its own after the products (:attr:`ls`)
        mf, rf, ls = requant_fold(self.m, self.sh, None if res_m is None else padded(res_m, 1))
        self.m = np.array(mf, dtype=np.int64)
        res_m = None if rf is None else np.array(rf, dtype=np.int64)
        self.ls = None if ls is None else np.array(ls, dtype=np.int64)
        self.sh = np.full(n, int(self.sh.max()), dtype=np.int64)
        self.zp_out, self.lo, self.hi = int(zp_out), int(lo), int(hi)
        if not (-128 <= lo <= hi <= 255):
            raise ValueError("requant clamp range must fit an 8-bit type")
        self.out_shift, self.out_hi = int(out_shift), out_hi
        check_out_shift(self.out_shift, self.out_hi, self.zp_out, self.lo, self.hi)
        self.rounding = rounding
        self.residual = res_m is not None
        self.res_zp = int(res_zp)
        self.skip_signed = skip_signed
        self.m_shift = _pow2(self.m)
        self.fields = [_Field("bias", self.bias, True), _Field("sh", self.sh, False)]
        if self.m_shift:
            self.fields.append(_Field("ma", np.array([int(x).bit_length() - 1 for x in self.m]), False))
        else:
            self.fields.append(_Field("m", self.m, False))
        if self.residual:
            self.res_m = res_m
            if np.any(self.res_m < 1):
                raise ValueError("res_m must be >= 1")
            self.r_shift = _pow2(self.res_m)
            if self.r_shift:
                self.fields.append(_Field("ra", np.array([int(x).bit_length() - 1 for x in self.res_m]), False))
            else:
                self.fields.append(_Field("rm", self.res_m, False))
        if self.ls is not None:
            self.fields.append(_Field("ls", self.ls, False))
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

    # -- pipeline geometry ------------------------------------------------------------------------------------------
    def _shapes(self):
        """(t_shape, v_shape): the bias sum and the full product (+ residual) widths, from the value ranges."""
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
        return t_shape, signed(bits_signed(p_lo + r_lo, p_hi + r_hi) + 1)

    @property
    def dsp_per_lane(self) -> int:
        """DSP48E2s of one lane: the DSP-sized partial products of its ``(acc + bias) x m`` product (and of the
        residual's ``(skip - zp) x res_m``) as built, none for shifts
        (:func:`rtlgen.plan.geometry.requant_lane_dsp`, the planner's figure)."""
        t_shape, _ = self._shapes()
        return requant_lane_dsp(t_shape.width, self.m, self.res_m if self.residual else None)

    @property
    def mul_stages(self) -> int:
        """Register stages of the products: 1 for shifts; a multiplier's DSP-sized partial products with their M and
        P registers and their registered sum (:func:`~rtlgen.cores.arith.pmul_stages`)."""
        t_shape, _ = self._shapes()
        st = 1 if self.m_shift else pmul_stages(t_shape.width, self.f["m"].bits + 1)
        if self.residual and not self.r_shift:
            st = max(st, pmul_stages(10, self.f["rm"].bits + 1))
        return st

    @property
    def pipe_depth(self) -> int:
        """Register stages from taking an input beat to the output register: input (+ parameter ROM), bias add,
        products (:attr:`mul_stages`), [residual sum], [per-channel left shift :attr:`ls`], rounding add, (constant)
        shift + zero point + clamp."""
        return 4 + self.mul_stages + int(self.residual) + int(self.ls is not None)

    @property
    def out_depth(self) -> int:
        """Output FIFO entries: every beat taken (counted by the credit counter) finds room."""
        return self.pipe_depth + 4

    @property
    def latency(self) -> int:
        """Cycles from a beat on ``i`` (taken) to it on ``o`` (output FIFO: 2 cycles)."""
        return self.pipe_depth + 2

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        ab = self.acc_bits
        D, F = self.pipe_depth, self.out_depth
        # flow control: a credit counter (beats taken, not yet read from the output FIFO) and a registered ``ok``;
        # the arithmetic pipeline runs free, ``i.ready`` never depends on ``o.ready`` in the same cycle
        ok = Signal(init=1, name="credit_ok")
        skip_ok = self.skip.valid if self.residual else 1
        take = Signal()
        m.d.comb += take.eq(ok & self.i.valid & skip_ok)
        m.d.comb += self.i.ready.eq(ok & skip_ok)
        if self.residual:
            m.d.comb += self.skip.ready.eq(ok & self.i.valid)

        # group counter (ROM address) and frame beat counter
        grp = Signal(range(max(self.groups, 2)))
        beat = Signal(range(max(self.beats_per_frame, 2)))
        last0 = beat == self.beats_per_frame - 1
        with m.If(take):
            m.d.sync += grp.eq(Mux(grp == self.groups - 1, 0, grp + 1))
            m.d.sync += beat.eq(Mux(last0, 0, beat + 1))

        # parameter ROM (non-uniform fields only), read with the input register
        romf = self._rom_fields()
        par = {}
        if romf:
            words, width = self._rom_init()
            data_ = logic_rom(m, "params", words, width, grp, 1)
            pos = 0
            for lane in range(L):
                for f in romf:
                    s = Signal(f.shape, name=f"p_{f.name}_{lane}")
                    m.d.comb += s.eq(data_[pos:pos + f.bits])
                    par[(f.name, lane)] = s
                    pos += f.bits

        def param(name, lane, stage):
            """Field ``name`` of ``lane`` at pipeline stage ``stage`` (the ROM word arrives at stage 1)."""
            f = self.f[name]
            if f.uniform:
                return int(f.values[0])
            return delay(m, par[(name, lane)], stage - 1, f"p_{name}_{lane}")

        # stage 1: register inputs
        acc1 = [Signal(signed(ab), name=f"acc1_{k}") for k in range(L)]
        skp1 = [Signal(unsigned(8), name=f"skip1_{k}") for k in range(L)]
        v1, last1 = Signal(name="v1"), Signal(name="last1")
        m.d.sync += [v1.eq(take), last1.eq(last0)]
        for k in range(L):
            m.d.sync += acc1[k].eq(self.i.payload.data[k * ab:(k + 1) * ab])
            if self.residual:
                m.d.sync += skp1[k].eq(self.skip.payload.data[k * 8:(k + 1) * 8])

        t_shape, v_shape = self._shapes()

        # stage 2: bias add (and the skip's zero point)
        t2 = [Signal(t_shape, name=f"t2_{k}") for k in range(L)]
        u2 = [Signal(signed(10), name=f"u2_{k}") for k in range(L)]
        for k in range(L):
            m.d.sync += t2[k].eq(acc1[k] + param("bias", k, 1))
            if self.residual:
                sv = skp1[k].as_signed() if self.skip_signed else skp1[k]
                m.d.sync += u2[k].eq(sv - self.res_zp)

        # stages 3..: products (shifts: 1 stage; multipliers: DSP-sized partial products with M and P registers and
        # their registered sum), padded to :attr:`mul_stages`
        S = self.mul_stages
        prod, res = [], []

        def product(v, fshift, fmul, k, name):
            if fshift is not None:
                r = Signal(v_shape, name=f"{name}_{k}")
                m.d.sync += r.eq(v << param(fshift, k, 2))
                return delay(m, r, S - 1, r.name)
            f = self.f[fmul]
            mv = param(fmul, k, 2)
            if isinstance(mv, int):
                mv = Const(mv, unsigned(max(1, mv.bit_length())))
            st = pmul_stages(len(v) if v.shape().signed else len(v) + 1, f.bits + 1)
            return delay(m, pmul(m, v, mv, f"{name}_{k}"), S - st, f"{name}_{k}")

        for k in range(L):
            prod.append(product(t2[k], "ma" if self.m_shift else None, "m", k, "prod"))
            if self.residual:
                res.append(product(u2[k], "ra" if self.r_shift else None, "rm", k, "res"))
        e = 2 + S
        # stage 5 (residual): the sum
        vs = prod
        if self.residual:
            vs = []
            for k in range(L):
                s = Signal(v_shape, name=f"vsum_{k}")
                m.d.sync += s.eq(prod[k] + res[k])
                vs.append(s)
            e += 1
        # per-channel left shift (S - sh[o], multipliers that are not powers of two): a barrel shift, no adder
        if self.ls is not None:
            v_shape = signed(v_shape.width + self.f["ls"].max)
            vl = []
            for k in range(L):
                s = Signal(v_shape, name=f"vls_{k}")
                m.d.sync += s.eq(vs[k] << param("ls", k, e))
                vl.append(s)
            vs = vl
            e += 1
        # the one rounding circuit (:func:`~rtlgen.cores.arith.requant_pipe`, constant shift S): the rounded quotient
        # (the dropped bits decide an increment), then the zero point added beside the clamp compares
        S = int(self.sh[0])
        outs = [requant_pipe(m, vs[k], S, self.zp_out, self.lo, self.hi, self.rounding, f"rq{k}") for k in range(L)]
        outs = [shift_out(o, self.out_shift, self.out_hi) for o in outs]
        vD, lastD = delay(m, v1, D - 1, "v"), delay(m, last1, D - 1, "last")
        # zero the tail lanes of the last group
        tail = self.channels - (self.groups - 1) * L
        if tail < L:
            grpD = delay(m, grp, D, "grp")
            outs = [Mux(grpD == self.groups - 1, 0, o) if k >= tail else o for k, o in enumerate(outs)]

        # output FIFO: always has room for the beats in flight (credit counter)
        m.submodules.out = of = fifo.SyncFIFOBuffered(width=8 * L + 1, depth=F)
        m.d.comb += [of.w_data.eq(Cat(*outs, lastD)), of.w_en.eq(vD),
                     self.o.valid.eq(of.r_rdy), self.o.payload.eq(of.r_data), of.r_en.eq(self.o.ready)]
        m.d.sync += ok.eq(credit_counter(m, "inflight", F, take, of.r_rdy & self.o.ready))
        return m
