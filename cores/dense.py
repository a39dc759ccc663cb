# amaranth: UnusedElaboratable=no
"""Dense (fully connected) core: matrix-vector product with weights in a ROM, int32 accumulation, bias and optional
requantization. Bit-exact to ``rtlgen.golden.run_dense``.

Stream contract (:class:`DenseCore`)
------------------------------------
* ``i``: one ``H x W x C`` frame per ``last`` (:mod:`rtlgen.cores.stream`, ``lanes_in`` 8-bit lanes, int8 or
  uint8). The input vector is the frame in stream order (NHWC flatten, ``N = H*W*C`` values), as in the golden model.
* ``o``: one ``1 x 1 x O`` frame per input frame, ``lanes_out`` lanes; 8-bit lanes holding
  ``clamp(rshift_round(acc[o] * m[o], sh[o]) + zp_out, lo, hi)`` (per-channel requant), or with ``requant=None``
  32-bit lanes holding the raw int32 accumulator ``acc[o] = bias[o] + sum_n w[o, n] * x[n]``.
* Parallelism: ``och_par`` outputs x ``ich_par`` inputs per cycle (``och_par * ich_par`` multipliers); neither has
  to divide ``O`` or ``N`` (tail weights are zero). An internal lane converter regroups the input into ``ich_par``
  values per beat; the engine takes a group, holds it, and cycles over the ``ceil(O / och_par)`` output groups
  (the converter gathers the next group meanwhile), reading
  one ROM word (``och_par * ich_par`` weights) per cycle and updating ``och_par`` accumulators (a memory of
  ``ceil(O / och_par)`` words). The final input group's raw results pass a FIFO of :attr:`DenseCore.result_depth`
  beats (the burst drains while the next frame computes), are requantized ``och_par`` per beat and regrouped to
  ``lanes_out`` lanes.
* Weights in UltraRAM (``storage="uram"``): UltraRAM has no initial contents on UltraScale+, so the weight memory
  is a RAM (``ram_style="ultra"``, no initial values) loaded at start-up through the stream port ``wload``: payload =
  one memory word of ``och_par * ich_par * 8`` bits (the packing of :meth:`DenseCore.rom_words`: weight of output
  lane ``j`` and input lane ``i`` at bits ``[(j*ich_par+i)*8 +: 8]``), exactly ``len(rom_words())`` beats in address
  order, no ``last``. ``wload.ready`` is high exactly until the last word is accepted; the output ``loaded`` rises the
  cycle after. Until then ``i.ready`` is held low (no input beat is consumed). ``rst`` clears ``loaded``: load again
  after a reset. Same protocol as the conv core (``rtlgen.cores.conv``).
* Frame boundaries: the core counts ``ceil(N / ich_par)`` input groups and also ends a frame at an early ``last``
  (a short frame still gives one full output frame; its missing inputs count as 0). It does NOT drop the excess of a
  long frame (that would start a second output frame): in a network it sits behind cores that already realign on
  ``last`` (line buffer, pooling; :mod:`rtlgen.cores.stream`), so it never receives one.
* Latency: :attr:`DenseCore.latency` cycles after the frame's final input group (the engine's pipeline: ROM word, its register,
  multiplier M and P registers, the dot-product tree registered every 2 adder levels, the accumulate adder; the
  raw-result FIFO; the pipelined :class:`~rtlgen.cores.requant.RequantStage`; the output lane converter). Cycles
  per frame without stalls: :meth:`DenseCore.cycles_per_frame`: ``ceil(N/ich_par)`` groups, each taking the larger
  of ``ceil(O/och_par)`` cycles and the input beats it needs, or the output beats if more.
* Flow control: the MAC pipeline runs free; the sequencer issues a beat only while a registered credit flag says
  the raw-result FIFO has room for every result in flight, and the requant has its own registered ready, so
  ``o.ready`` never reaches ``i.ready`` in the same cycle.
"""

from __future__ import annotations

import math

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .adapters import LaneConverter
from .conv import _load_port, load_signature
from .fifo import StreamFIFO
from .arith import credit_counter, delay, lane, normalize_requant, ptree, ptree_stages
from .mac import mac_product
from .requant import RequantStage
from .interface import LayerCore
from rtlgen.plan.geometry import dense_acc_range, dense_weight_register
from .stream import act_signature, beats_per_pixel

__all__ = ["DenseCore"]

ACC_BITS = 32

#: weight ROM storage -> Memory attributes (synthesis hints; same names as the conv core's)
STORAGE_ATTRS = {
    "auto": {},
    "bram": {"ram_style": "block", "rom_style": "block"},
    "uram": {"ram_style": "ultra"},
    "lut": {"ram_style": "distributed", "rom_style": "distributed"},
    "logic": {"ram_style": "distributed", "rom_style": "distributed"},  # alias of "lut"
}


class DenseCore(LayerCore, wiring.Component):
    """Fully connected layer: ROM weights, int32 accumulation, bias, requantization (or raw int32 output).

    Parameters
    ----------
    in_shape : (H, W, C)
        Input frame (flattened in NHWC order: ``N = H*W*C`` inputs).
    weights, bias :
        int8 ``[O, N]`` weights, int32 ``[O]`` biases.
    lanes_in, ich_par : int
        Input lanes per beat; inputs multiplied per cycle (the core regroups pixels of ``C`` values).
    och_par, lanes_out : int
        Outputs computed per cycle; output lanes per beat.
    in_signed : bool
        int8 (else uint8) input.
    requant : tuple or None
        ``(m, sh, zp_out, lo, hi[, rounding])``; None: raw int32 accumulators out.
    storage, mult : str
        Weight ROM (``auto``, ``bram``, ``uram``, ``logic``); multipliers (``dsp`` or ``lut``).

    Members
    -------
    i : ``In(act_signature(lanes_in))``
        Input activations.
    o : ``Out(act_signature(lanes_out, out_width))``
        Outputs (8 bits requantized, or 32-bit accumulators).
    wload : ``In(load_signature(rom_width))``
        Only with ``storage="uram"``: the weight words, loaded once after reset.
    loaded : ``Out(1)``
        Only with ``storage="uram"``: the weights are loaded.
    """

    def __init__(self, in_shape, weights, bias, *, lanes_in: int = 1, och_par: int = 1, ich_par: int = 1,
                 lanes_out: int = 1, in_signed: bool = True, requant=None, storage: str = "auto",
                 mult: str = "dsp"):
        """``weights`` int [O, N] (int8 range), ``bias`` int [O]; ``requant``: ``(m, sh, zp_out, lo, hi[, rounding])``
        or None for a raw int32 output. ``storage``: weight ROM hint, ``auto`` (the tool decides by size), ``bram``,
        ``uram`` or ``lut`` (alias ``logic``)."""
        self.in_shape = tuple(int(x) for x in in_shape)
        H, W, C = self.in_shape
        self.weights = np.asarray(weights, dtype=np.int64)
        self.bias = np.asarray(bias, dtype=np.int64).reshape(-1)
        O, N = self.weights.shape
        if N != H * W * C:
            raise ValueError(f"dense weights have {N} inputs, the input frame {self.in_shape} has {H * W * C}")
        if self.weights.min(initial=0) < -128 or self.weights.max(initial=0) > 127:
            raise ValueError("dense weights must be int8")
        if len(self.bias) != O:
            raise ValueError(f"dense bias has {len(self.bias)} entries for {O} outputs")
        self.O, self.N = O, N
        self.lanes_in, self.Po, self.Pi, self.lanes_out = lanes_in, och_par, ich_par, lanes_out
        self.in_signed, self.requant, self.storage = in_signed, requant, storage
        if mult not in ("dsp", "lut"):
            raise ValueError("mult must be 'dsp' or 'lut'")
        self.mult = mult  # "lut": multipliers in fabric (cores/arith.py lut_mul)
        if storage not in STORAGE_ATTRS:
            raise ValueError(f"storage must be one of {', '.join(STORAGE_ATTRS)}")
        self.G = math.ceil(N / ich_par)
        self.n_og = math.ceil(O / och_par)
        self.out_width = 8 if requant is not None else ACC_BITS
        lo_x, hi_x = (-128, 127) if in_signed else (0, 255)
        acc_lo, acc_hi = dense_acc_range(self.weights, self.bias, lo_x, hi_x)
        self.acc_lo, self.acc_hi = acc_lo, acc_hi
        if acc_hi.max(initial=0) >= 1 << (ACC_BITS - 1) or acc_lo.min(initial=0) < -(1 << (ACC_BITS - 1)):
            raise ValueError("dense accumulator may overflow int32")
        sig = {"i": In(act_signature(lanes_in)), "o": Out(act_signature(lanes_out, self.out_width))}
        self.uram = storage == "uram"
        if self.uram:  # weights loaded at start-up (UltraRAM has no initial contents)
            sig["wload"] = In(load_signature(self.rom_width))
            sig["loaded"] = Out(1)
        super().__init__(sig)

    @property
    def rom_width(self) -> int:
        return self.Po * self.Pi * 8

    @property
    def rom_depth(self) -> int:
        return self.G * self.n_og

    @classmethod
    def from_layer(cls, layer, lanes_in=1, och_par=1, ich_par=1, lanes_out=1, storage="auto", mult="dsp"):
        rq = layer.requant
        req = None if rq is None else (rq.m, rq.sh, rq.zp_out, rq.lo, rq.hi, rq.rounding)
        return cls(layer.in_shape, layer.weights, layer.bias, lanes_in=lanes_in, och_par=och_par, ich_par=ich_par,
                   lanes_out=lanes_out, in_signed=layer.in_q.signed, requant=req, storage=storage,
                   mult=mult)

    @classmethod
    def plan_knobs(cls, layer, lp, ctx=None) -> dict:
        # the core regroups pixels of C values into ich_par-wide groups itself
        return {"lanes_in": min(lp.ich_par, layer.in_shape[2]), "och_par": lp.och_par, "ich_par": lp.ich_par,
                "lanes_out": lp.lanes_out, "storage": {"lut": "logic", "uram": "uram"}.get(lp.storage, "auto"),
                "mult": lp.mult}

    def cycles_per_frame(self) -> int:
        H, W, C = self.in_shape
        in_beats = H * W * beats_per_pixel(C, self.lanes_in)
        return max(self.G * self.n_og, in_beats, beats_per_pixel(self.O, self.lanes_out))

    def rom_words(self) -> list[int]:
        Po, Pi = self.Po, self.Pi
        wp = np.zeros((self.n_og * Po, self.G * Pi), dtype=np.int64)
        wp[: self.O, : self.N] = self.weights
        words = []
        for gi in range(self.G):
            for go in range(self.n_og):
                blk = wp[go * Po : (go + 1) * Po, gi * Pi : (gi + 1) * Pi].reshape(-1)  # j-major, i-minor
                w = 0
                for k, v in enumerate(blk):
                    w |= (int(v) & 0xFF) << (8 * k)
                words.append(w)
        return words

    # -- pipeline geometry ----------------------------------------------------------------------------------------
    @property
    def pipe_depth(self) -> int:
        """Cycles from issuing a beat (ROM address) to its accumulate stage: ROM word + input register, the ROM
        word's own register (a block RAM's output register: no RAM -> multiplier path), the multipliers' M and P
        registers, the dot-product tree registered every 2 adder levels."""
        return 3 + int(self.weight_reg) + ptree_stages(self.Pi)

    @property
    def weight_reg(self) -> bool:
        """The ROM word gets a register of its own before the multipliers where the weights are in block RAM or
        UltraRAM (their output register: the RAM's clock-to-out plus a multiplier was the worst path, 289 MHz), i.e.
        wherever the ROM is a memory not forced into logic (``auto`` lets synthesis choose block RAM; the planner's
        ``bram`` storage arrives here as ``auto``); a logic ROM's read register already feeds the multipliers."""
        return dense_weight_register(self.storage, self.rom_depth)

    @property
    def result_depth(self) -> int:
        """Entries of the raw-result FIFO: one frame's ``ceil(O/och_par)`` results plus what the pipeline and the
        credit loop hold, so every result counted by the credit counter finds room."""
        return self.n_og + self.pipe_depth + 5

    def _requant_stage(self):
        mq, shq, zp_out, lo, hi = self.requant[:5]
        rounding = self.requant[5] if len(self.requant) > 5 else "half_even"
        mm, S = normalize_requant(mq, shq, self.O)
        return RequantStage(lanes=self.Po, channels=self.O, acc_range=(int(self.acc_lo.min()), int(self.acc_hi.max())),
                            bias=np.zeros(self.O, dtype=np.int64), m=mm, sh=np.full(self.O, S),
                            zp_out=zp_out, lo=lo, hi=hi, rounding=rounding, beats_per_frame=self.n_og)

    @property
    def latency(self) -> int:
        """Cycles from the frame's final input group (taken by the engine) to the first output beat."""
        lat = self.pipe_depth + 1 + 2  # accumulate, result FIFO
        if self.requant is not None:
            lat += self._requant_stage().latency
        return lat + 1  # output lane converter

    def elaborate(self, platform):
        m = Module()
        Po, Pi, G, n_og, O = self.Po, self.Pi, self.G, self.n_og, self.O
        H, W, C = self.in_shape
        m.submodules.gather = conv = LaneConverter(C, self.lanes_in, Pi, c_out=self.N)
        if self.uram:  # no input beat is taken before the weight RAM is loaded
            loaded = Signal(name="weights_loaded")
            m.d.comb += [conv.i.payload.eq(self.i.payload), conv.i.valid.eq(self.i.valid & loaded),
                         self.i.ready.eq(conv.i.ready & loaded), self.loaded.eq(loaded)]
        else:
            wiring.connect(m, wiring.flipped(self.i), conv.i)
        # the final group's n_og raw results come in a burst: a FIFO lets them drain at the output rate while the
        # engine goes on with the next frame; a credit counter keeps it from overflowing, so the pipeline in front
        # of it runs free
        F = self.result_depth
        aw = ACC_BITS
        m.submodules.results = rf = StreamFIFO(depth=F, lanes=Po, width=aw)
        m.submodules.scatter = outc = LaneConverter(O, Po, self.lanes_out, width=self.out_width)
        if self.requant is not None:
            m.submodules.requant = rq = self._requant_stage()
            ab = rq.acc_bits
            m.d.comb += [rq.i.valid.eq(rf.o.valid), rf.o.ready.eq(rq.i.ready),
                         rq.i.payload.data.eq(Cat(*(rf.o.payload.data[j * aw:j * aw + ab] for j in range(Po))))]
            wiring.connect(m, rq.o, outc.i)
        else:
            wiring.connect(m, rf.o, outc.i)
        wiring.connect(m, outc.o, wiring.flipped(self.o))
        ok = Signal(init=1, name="credit_ok")

        # sequencer: input group gi, output group go. The group's values are taken from the converter at go == 0
        # (and held for the other output groups), so the converter gathers the next group meanwhile.
        gi = Signal(range(max(G, 2)))
        go = Signal(range(max(n_og, 2)))
        addr = Signal(range(max(G * n_og, 2)))
        busy = Signal()
        x_hold = Signal(Pi * 8)
        last_hold = Signal()
        x_cur = Signal(Pi * 8)
        last_cur = Signal()
        issue = Signal()
        with m.If(busy):
            m.d.comb += [issue.eq(ok), x_cur.eq(x_hold), last_cur.eq(last_hold)]
        with m.Else():
            m.d.comb += [issue.eq(ok & conv.o.valid), conv.o.ready.eq(ok), x_cur.eq(conv.o.payload.data),
                         last_cur.eq(conv.o.payload.last)]
        final = (gi == G - 1) | last_cur
        with m.If(issue):
            if n_og > 1:
                with m.If(~busy):
                    m.d.sync += [x_hold.eq(conv.o.payload.data), last_hold.eq(conv.o.payload.last), busy.eq(1)]
            with m.If(go == n_og - 1):
                m.d.sync += [go.eq(0), busy.eq(0)]
                with m.If(final):
                    m.d.sync += [gi.eq(0), addr.eq(0)]
                with m.Else():
                    m.d.sync += [gi.eq(gi + 1), addr.eq(addr + 1)]
            with m.Else():
                m.d.sync += [go.eq(go + 1), addr.eq(addr + 1)]

        # credits: +1 per issued beat of a final group (one result each), -1 per result read from the FIFO
        m.d.sync += ok.eq(credit_counter(m, "inflight", F, issue & final, rf.o.valid & rf.o.ready))

        # stage 1: ROM word arrives; x and the flags registered
        b_valid, b_first, b_final = Signal(name="b_valid"), Signal(name="b_first"), Signal(name="b_final")
        b_go = Signal.like(go, name="b_go")
        b_x = Signal(Pi * 8)
        m.d.sync += [b_valid.eq(issue), b_first.eq(gi == 0), b_final.eq(final), b_go.eq(go), b_x.eq(x_cur)]
        words = self.rom_words()
        wbits = Po * Pi * 8
        wword = Signal(wbits)
        if self.uram:  # RAM written through wload (no initial contents), read like the ROM
            m.submodules.weights = ram = memory.Memory(shape=unsigned(wbits), depth=max(len(words), 2), init=[],
                                                         attrs=dict(STORAGE_ATTRS["uram"]))
            _load_port(m, ram, self.wload, len(words), loaded)
            rp = ram.read_port()
            m.d.comb += [rp.addr.eq(addr), rp.en.eq(1), wword.eq(rp.data)]
        elif len(words) == 1:
            m.d.comb += wword.eq(words[0])
        else:
            m.submodules.weights = rom = memory.Memory(shape=unsigned(wbits), depth=len(words), init=words,
                                                         attrs=dict(STORAGE_ATTRS[self.storage]))
            rp = rom.read_port()
            m.d.comb += [rp.addr.eq(addr), rp.en.eq(1), wword.eq(rp.data)]

        # stage 2 (block RAM / URAM weights): the ROM word registered (the RAM's output register), x along with it
        if self.weight_reg:
            w_reg, x_reg = Signal(wbits, name="w_reg"), Signal(Pi * 8, name="x_reg")
            m.d.sync += [w_reg.eq(wword), x_reg.eq(b_x)]
        else:
            w_reg, x_reg = wword, b_x
        # then the products (M and P registers; LUT multipliers: partial products, then their tree)
        xs = [lane(x_reg, i, 8, self.in_signed) for i in range(Pi)]
        prods = [[None] * Pi for _ in range(Po)]
        for j in range(Po):
            for i in range(Pi):
                w = w_reg[(j * Pi + i) * 8 : (j * Pi + i + 1) * 8].as_signed()
                prods[j][i] = mac_product(m, xs[i], w, self.mult, False, f"{j}_{i}")
        # dot products: trees registered every 2 adder levels
        dots = [ptree(m, prods[j], f"dot{j}") for j in range(Po)]
        A = self.pipe_depth
        a_valid, a_first, a_final = (delay(m, s, A - 1, s.name) for s in (b_valid, b_first, b_final))
        a_go = delay(m, b_go, A - 1, "a_go")

        # accumulate stage: one adder per output lane; partial sums in a memory of n_og words (read one cycle ahead)
        acc_rd = Signal(Po * aw)
        acc_new = Signal(Po * aw)
        if n_og == 1:
            acc_reg = Signal(Po * aw)
            with m.If(a_valid):
                m.d.sync += acc_reg.eq(acc_new)
            m.d.comb += acc_rd.eq(acc_reg)
        else:
            # the next beat of the same output group is >= n_og >= 2 cycles later: the read (issued one cycle
            # ahead of the accumulate stage) always sees the last write
            m.submodules.acc = accm = memory.Memory(shape=unsigned(Po * aw), depth=n_og, init=[])
            wp = accm.write_port()
            rp2 = accm.read_port(transparent_for=(wp,))
            a_go_early = delay(m, b_go, A - 2, "a_go_early")
            m.d.comb += [rp2.addr.eq(a_go_early), rp2.en.eq(1), acc_rd.eq(rp2.data),
                         wp.addr.eq(a_go), wp.data.eq(acc_new), wp.en.eq(a_valid)]
        bias_p = np.zeros(n_og * Po, dtype=np.int64)
        bias_p[:O] = self.bias
        news = []
        for j in range(Po):
            bj = [int(bias_p[g * Po + j]) for g in range(n_og)]
            if len(set(bj)) == 1:
                bval = Const(bj[0], signed(aw))
            else:
                bval = Signal(signed(aw), name=f"bias{j}")  # registered: the bias of the group one cycle ahead
                m.d.sync += bval.eq(Array(Const(x, signed(aw)) for x in bj)[a_go_early])
            base = Mux(a_first, bval, acc_rd[j * aw : (j + 1) * aw].as_signed())
            nv = Signal(signed(aw), name=f"acc{j}")
            m.d.comb += nv.eq(base + dots[j])
            news.append(nv)
        m.d.comb += acc_new.eq(Cat(*news))

        # final accumulators (tail lanes of the last group zeroed) -> result FIFO
        c_valid = Signal(name="c_valid")
        c_last = Signal(name="c_last")
        c_acc = Signal(Po * aw)
        outs = []
        for j in range(Po):
            if (n_og - 1) * Po + j >= O:  # lane past O on the tail group: zero
                outs.append(Mux(a_go == n_og - 1, 0, news[j]))
            else:
                outs.append(news[j])
        m.d.sync += [c_valid.eq(a_valid & a_final), c_acc.eq(Cat(*outs)), c_last.eq(a_go == n_og - 1)]
        m.d.comb += [rf.i.valid.eq(c_valid), rf.i.payload.data.eq(c_acc), rf.i.payload.last.eq(c_last)]
        return m
