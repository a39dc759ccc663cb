"""The MAC engines' shared stages (:class:`~rtlgen.cores.conv.ConvEngine`, :class:`~rtlgen.cores.dwconv.DWConvEngine`):
one definition of the weight ROM read, the registered product, the packed two-pixel chunk split and the result
sequencer, so that the conv and depthwise engines build them the same way.

* :func:`weight_rom` -- a ROM of weight words (block RAM / distributed memory, or a logic ROM for ``"lut"``), read
  with the engine's input register, its word registered once more (2 cycles from address to :func:`weight_rom`'s
  output).
* :func:`mac_product` -- ``x * w`` with the multiplier's ``M`` and ``P`` registers (2 cycles,
  :func:`~rtlgen.cores.hardmul.registered_product`), or on LUTs the four
  registered partial products of :func:`~rtlgen.cores.arith.lut_mul_pps` and their registered sum.
* :func:`packed_sums` -- DSP packing (``x0 + x1 * 2**18``, one weight): the products summed in chunks small enough
  that the low lane stays within +-2**17, each chunk split ``lo = sext(sum[0:18])``, ``hi = (sum >> 18) + sum[17]``,
  and the trees over the chunks (:attr:`sum stages <ptree_stages>` of the longest chunk + 1 + the chunk tree).
* :func:`result_sequencer` -- reads the finished results of pixel 0's FIFO (``groups`` beats), then pixel 1's
  (``pix_par = 2``: the second FIFO), into the requant stage's input (the output's raster order).
"""

from __future__ import annotations

from amaranth.hdl import Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory

from .arith import delay, logic_rom, lut_mul_pps, ptree, ptree_stages
from .hardmul import registered_product

__all__ = ["weight_rom", "mac_product", "packed_sums", "result_sequencer"]


def weight_rom(m, init: list[int], width: int, addr, storage: str, attrs: dict | None = None):
    """The registered word of a weight ROM at ``addr`` (``storage="lut"``: a logic ROM; otherwise a
    :class:`~amaranth.lib.memory.Memory` with ``attrs``); two cycles after ``addr``."""
    if storage == "lut":
        rom_q = logic_rom(m, "weights", init, width, addr, 1)
    else:
        m.submodules.weights = rom = Memory(shape=unsigned(width), depth=len(init), init=init, attrs=dict(attrs or {}))
        rp = rom.read_port(transparent_for=())
        m.d.comb += [rp.addr.eq(addr), rp.en.eq(1)]
        rom_q = rp.data
    return registered_word(m, rom_q, width)


def registered_word(m, q, width: int):
    """``q`` (a memory's read data) registered once more: the weight word the multipliers see."""
    out = Signal(unsigned(width), name="weights_q")
    m.d.sync += out.eq(q)
    return out


def mac_product(m, x, w, mult: str, packing: bool, name: str):
    """``x * w`` registered twice (a DSP's ``M`` and ``P``; ``packing``: 35-bit packed products), or on LUTs
    (``mult="lut"``) four registered partial products and their registered sum (17 bits)."""
    if mult == "lut":
        pps = []
        for k, pp in enumerate(lut_mul_pps(x, w)):
            r = Signal(pp.shape(), name=f"pp_{name}_{k}")
            m.d.sync += r.eq(pp)
            pps.append(r)
        p4 = Signal(signed(17), name=f"mul_{name}")
        m.d.sync += p4.eq((pps[0] + pps[1]) + (pps[2] + pps[3]))
        return p4
    return registered_product(m, x, w, f"mp_{name}", f"pp_{name}", signed(35) if packing else signed(17))


def packed_sums(m, prods: list, chunk: int, chunks: list[int], name: str):
    """The two pixels' sums of packed products ``prods``: chunk trees (padded to the longest chunk's stages), the
    registered lane split of each chunk, then a tree per pixel over the chunks. Returns ``(sum0, sum1)``."""
    ct = ptree_stages(max(chunks))
    los, his = [], []
    for c0 in range(0, len(prods), chunk):
        part = prods[c0:c0 + chunk]
        cs = delay(m, ptree(m, part, f"cs_{name}_{c0}"), ct - ptree_stages(len(part)), f"cs_{name}_{c0}")
        lo = Signal(signed(18), name=f"lo_{name}_{c0}")
        hi = Signal(signed(22), name=f"hi_{name}_{c0}")
        m.d.sync += [lo.eq(cs[:18].as_signed()), hi.eq((cs >> 18) + cs[17])]
        los.append(lo)
        his.append(hi)
    return ptree(m, los, f"slo_{name}"), ptree(m, his, f"shi_{name}")


def result_sequencer(m, fifos: list, groups: int, width: int, sink):
    """Stream the results into ``sink`` (a stream with ``valid``/``ready``/``payload.data``): ``groups`` beats from
    ``fifos[0]``, then, with two FIFOs and when the pixel-0 entry's flag bit (bit ``width``) says a second pixel
    exists, ``groups`` beats from ``fifos[1]``. Each FIFO's ``r_en`` is driven here."""
    f0 = fifos[0]
    sel = Signal(name="seq_pixel")
    rg = Signal(range(max(groups, 2)), name="seq_group")
    src_valid = Mux(sel, fifos[-1].r_rdy, f0.r_rdy)
    src_data = Mux(sel, fifos[-1].r_data[:width], f0.r_data[:width])
    tk = src_valid & sink.ready
    m.d.comb += [sink.valid.eq(src_valid), sink.payload.data.eq(src_data), f0.r_en.eq(tk & ~sel)]
    if len(fifos) == 2:
        m.d.comb += fifos[1].r_en.eq(tk & sel)
    with m.If(tk):
        m.d.sync += rg.eq(Mux(rg == groups - 1, 0, rg + 1))
        if len(fifos) == 2:
            with m.If(rg == groups - 1):
                m.d.sync += sel.eq(~sel & f0.r_data[width])
