"""Board-level top ``rtlgen_axi_top``: the network (``rtlgen_top``) behind AXI4-Stream and AXI4-Lite, Vivado style.

The wrapper is elaborated from the network's *manifest* (``RtlgenTop.manifest()``: input shape, output lanes, width,
values per frame) and instantiates ``rtlgen_top`` (from ``rtl/rtlgen_top.v``) as a black box, so
``rtl/rtlgen_axi_top.v`` is small and the two files together are the IP's sources.

Ports (exact names; Vivado's IP packager infers the interfaces from them)
-------------------------------------------------------------------------
* ``aclk`` (in), ``aresetn`` (in, active-low, synchronous): one clock for everything.
* AXI4-Stream slave ``s_axis_tdata[W-1:0]`` (W = 32, 64 or 128), ``s_axis_tvalid``, ``s_axis_tready``,
  ``s_axis_tlast``: the NHWC uint8 image bytes (row, column, channel; channel innermost), packed little-endian (byte k
  of the stream in ``tdata[8*(k mod W/8) +: 8]``). Frames are contiguous in the byte stream: a frame need not start or
  end on a beat boundary (the next frame starts in the same beat). ``tlast`` must arrive in the beat that holds the
  last byte of a frame (normally the last frame of a DMA transfer); bytes after that frame end in the ``tlast`` beat
  are discarded (padding up to the beat). ``tlast`` before a frame end is a *framing error*: the flag is set and the
  rest of the frame is filled with zero bytes, so the network stays aligned and the frame still yields a result
  (marked in its result word).
* AXI4-Stream master ``m_axis_tdata[31:0]``, ``m_axis_tvalid``, ``m_axis_tready``, ``m_axis_tlast``: per frame a
  *record* of ``V + 1`` 32-bit words (V = output values per frame): words ``0 .. V-1`` are the network outputs
  (int8 logits sign-extended to 32 bits, or int32 raw accumulators, as ``CONFIG.value_bits`` says), word ``V`` is
  the result word: bits ``[15:0]`` the argmax class index (ties: lowest index, like ``numpy.argmax``), bits
  ``[30:16]`` the frame number since START/reset (mod 2**15), bit ``31`` set when the frame was padded after a
  framing error. ``tlast`` is on the result word of every ``BATCH_LEN``-th record.
* AXI4-Lite slave ``s_axi_ctrl_*`` (32-bit data, 8-bit byte address, no ``prot``): the registers below. Responses
  are always OKAY.
* Only when the network keeps weights in UltraRAM (manifest ``weights``; UltraRAM has no initial contents, so those
  weights are loaded at start-up): AXI4-Stream slave ``s_axis_weights_tdata[W-1:0]`` (same W as ``s_axis``),
  ``s_axis_weights_tvalid``, ``s_axis_weights_tready``, ``s_axis_weights_tlast``: the bytes of ``weights/weights.bin``
  in order (little-endian, byte k in ``tdata[8*(k mod W/8) +: 8]``). Every ``word_bytes`` bytes (a multiple of 16, so
  a whole number of beats) form one word of ``rtlgen_top``'s ``wload`` stream. ``tlast`` is optional; a ``tlast``
  beat ends the current word (a partial word is dropped), so every transfer must hold whole words. Send the image
  once after ``aresetn`` or SOFT_RESET (both clear the loaded state); beats after the whole image are accepted and
  discarded. Until the image is complete ``STATUS[3]`` (weights pending) is 1 and images on ``s_axis`` wait (their
  beats are held, not lost). Without URAM weights these ports do not exist and ``STATUS[3]`` reads 0.

Registers (byte offsets)
------------------------
See :data:`REGISTERS` (also rendered in ``boards/README.md`` and ``DIR/vivado/README.md``).
"""

from __future__ import annotations

import hashlib

import numpy as np
from amaranth.hdl import Array, Cat, ClockDomain, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from rtlgen.cores.stream import act_signature

ID_VALUE = 0x52544C47  # "RTLG"
VERSION = (1, 0)
ADDR_BITS = 8
TDATA_WIDTHS = (32, 64, 128)
TAG_DEPTH = 16  # frames in flight inside the network (padded-frame flags wait here)

#: (offset, name, access, description) -- the register map (documentation and the driver use it)
REGISTERS = [
    (0x00, "ID", "RO", 'constant 0x52544C47 ("RTLG")'),
    (0x04, "VERSION", "RO", "register-map version: major [31:16], minor [15:0] (1.0)"),
    (0x08, "CONFIG", "RO", "[7:0] input bytes per s_axis beat (W/8); [8] value_bits: 0 = int8 outputs, 1 = int32 raw "
                           "accumulators; [9] outputs signed; [10] URAM weights: s_axis_weights present (load "
                           "weights.bin after reset); [31:16] V, output values per frame"),
    (0x0C, "FRAME_BYTES", "RO", "input bytes per frame (H*W*C)"),
    (0x10, "CTRL", "WO", "bit 0 START: zero FRAMES_IN/OUT, BUSY_CYCLES, LATENCY, the batch position and the frame "
                         "number (write it while idle, before a batch); bit 1 SOFT_RESET: reset the datapath, counters "
                         "and error flags for 8 cycles (BATCH_LEN and the AXI-Lite port keep their state). Reads 0"),
    (0x14, "STATUS", "RO", "bit 0 busy (a frame started but its record not yet sent); bit 1 input frame partially "
                           "received; bit 2 framing error flag (copy of ERROR[0]); bit 3 weights pending (URAM "
                           "builds: the weight image is not completely loaded yet; 0 without URAM weights); "
                           "[31:16] frames in flight"),
    (0x18, "BATCH_LEN", "RW", "records per output packet: m_axis_tlast on every BATCH_LEN-th record (0 acts as 1); "
                              "reset value 1"),
    (0x1C, "ERROR", "RW1C", "bit 0 framing error: s_axis_tlast before a frame end (sticky, write 1 to clear)"),
    (0x20, "FRAMES_IN", "RO", "frames handed to the network since START/reset (padded ones included)"),
    (0x24, "FRAMES_OUT", "RO", "records completely sent on m_axis since START/reset"),
    (0x28, "BUSY_CYCLES_LO", "RO", "aclk cycles with at least one frame in flight (first byte accepted, record not "
                                   "yet sent) since START/reset, low word; reading it latches the high word"),
    (0x2C, "BUSY_CYCLES_HI", "RO", "high word of BUSY_CYCLES, as latched by the last BUSY_CYCLES_LO read"),
    (0x30, "LATENCY", "RO", "cycles from the first s_axis beat accepted after START/reset to the acceptance of that "
                            "frame's result word (0 until measured)"),
    (0x34, "BUILD_HASH", "RO", "first 32 bits of sha256 over the network (IR, weights) and the plan"),
    (0x38, "LAST_RESULT", "RO", "the last result word sent (class, frame number, padded flag)"),
    (0x3C, "RECORD_WORDS", "RO", "32-bit words per output record (V + 1)"),
]
REG = {name: off for off, name, _, _ in REGISTERS}


def build_hash(net, plan) -> int:
    """32-bit build hash: sha256 over the IR description, every weight/bias/requant array and the plan."""
    h = hashlib.sha256()
    h.update(net.to_json().encode())
    h.update(plan.to_json().encode())
    for lay in net.layers:
        for attr in ("weights", "bias", "table", "tables"):
            v = getattr(lay, attr, None)
            if isinstance(v, np.ndarray):
                h.update(attr.encode() + np.ascontiguousarray(v).tobytes())
        rq = getattr(lay, "requant", None)
        if rq is not None and hasattr(rq, "m"):
            h.update(np.asarray(rq.m, dtype=np.int64).tobytes() + np.asarray(rq.sh, dtype=np.int64).tobytes())
    return int.from_bytes(h.digest()[:4], "big")


class ByteUnpacker(wiring.Component):
    """AXI4-Stream bytes (``B`` per beat, frames of ``F`` bytes contiguous in the stream) -> one ``C``-byte pixel per
    beat with ``last`` on each frame's final pixel (the ``rtlgen_top`` input convention).

    A byte buffer of ``B + 2C`` entries: a beat is accepted when the buffer has room for all its bytes (``s_tready``
    depends only on registers), a pixel leaves whenever ``C`` bytes are buffered. Pixels never straddle frames
    (``F`` is a multiple of ``C``). ``rem`` counts the bytes still missing from the current input frame, which
    decides how many bytes of a ``tlast`` beat belong to the frame and whether ``tlast`` came early (``short``):
    then the input stops (``pad``) and zero bytes complete the frame.
    """

    def __init__(self, beat_bytes: int, frame_bytes: int, channels: int = 3):
        if frame_bytes % channels:
            raise ValueError(f"frame of {frame_bytes} bytes is not a whole number of {channels}-byte pixels")
        if frame_bytes < beat_bytes:
            raise ValueError(f"frame of {frame_bytes} bytes is shorter than one {beat_bytes}-byte beat")
        self.B, self.F, self.C = beat_bytes, frame_bytes, channels
        self.P = frame_bytes // channels
        super().__init__({
            "s_tdata": In(8 * beat_bytes), "s_tvalid": In(1), "s_tready": Out(1), "s_tlast": In(1),
            "o": Out(act_signature(channels)),
            "accept": Out(1),  # a beat was accepted this cycle
            "frame_start": Out(1),  # ... and a new frame's first byte is in it
            "short": Out(1),  # ... and its tlast came before the frame end (framing error)
            "pad": Out(1),  # pixels now leaving are (partly) zero padding of a short frame
            "partial": Out(1),  # bytes of an unfinished frame are held or expected
        })

    def elaborate(self, platform):
        m = Module()
        B, C, F, P = self.B, self.C, self.F, self.P
        N = B + 2 * C
        buf = [Signal(8, name=f"buf{j}") for j in range(N)]
        cnt = Signal(range(N + 1))
        rem = Signal(range(F + 1), init=F)
        pad = Signal()
        pix = Signal(range(max(P, 2)))

        accept = Signal()
        m.d.comb += [
            self.s_tready.eq(~pad & (cnt <= N - B)),
            accept.eq(self.s_tvalid & self.s_tready),
            self.accept.eq(accept),
            self.frame_start.eq(accept & ((rem == F) | ((rem < B) & ~self.s_tlast))),
            self.short.eq(accept & self.s_tlast & (rem > B)),
            self.pad.eq(pad),
            self.partial.eq((rem != F) | (cnt != 0) | pad),
            self.o.valid.eq(pad | (cnt >= C)),
            self.o.payload.data.eq(Cat(*[Mux(pad & (cnt <= j), 0, buf[j]) for j in range(C)])),
            self.o.payload.last.eq(pix == P - 1),
        ]
        ofire = Signal()
        m.d.comb += ofire.eq(self.o.valid & self.o.ready)
        pop = Signal(range(C + 1))
        m.d.comb += pop.eq(Mux(ofire, Mux(cnt >= C, C, cnt), 0))
        base = Signal(range(N + 1))
        m.d.comb += base.eq(cnt - pop)
        k = Signal(range(B + 1))
        m.d.comb += k.eq(Mux(accept, Mux(self.s_tlast & (rem < B), rem, B), 0))
        in_bytes = Array(self.s_tdata[8 * b: 8 * b + 8] for b in range(B))
        for j in range(N):
            shifted = Mux(ofire, buf[j + C] if j + C < N else 0, buf[j])
            idx = Signal(range(N), name=f"idx{j}")
            m.d.comb += idx.eq(j - base)
            m.d.sync += buf[j].eq(Mux(accept & (base <= j) & (j < base + k), in_bytes[idx], shifted))
        m.d.sync += cnt.eq(base + k)
        with m.If(accept):
            with m.If(self.s_tlast):
                m.d.sync += rem.eq(F)
            with m.Elif(rem > B):
                m.d.sync += rem.eq(rem - B)
            with m.Else():
                m.d.sync += rem.eq(rem + (F - B))
        with m.If(self.short):
            m.d.sync += pad.eq(1)
        with m.If(ofire):
            with m.If(self.o.payload.last):
                m.d.sync += pix.eq(0)
                with m.If(pad):
                    m.d.sync += [pad.eq(0), cnt.eq(0)]
            with m.Else():
                m.d.sync += pix.eq(pix + 1)
        return m


def port_list(tdata_width: int, weights: bool = False) -> list[tuple[str, str, int]]:
    """``(name, direction, width)`` of every top-level port of ``rtlgen_axi_top``, in declaration order
    (``weights``: the design has URAM weights, so ``s_axis_weights_*`` exist)."""
    A = ADDR_BITS
    wports = [("s_axis_weights_tdata", "in", tdata_width), ("s_axis_weights_tvalid", "in", 1),
              ("s_axis_weights_tready", "out", 1), ("s_axis_weights_tlast", "in", 1)] if weights else []
    return [
        ("aclk", "in", 1), ("aresetn", "in", 1),
        ("s_axis_tdata", "in", tdata_width), ("s_axis_tvalid", "in", 1), ("s_axis_tready", "out", 1),
        ("s_axis_tlast", "in", 1),
        *wports,
        ("m_axis_tdata", "out", 32), ("m_axis_tvalid", "out", 1), ("m_axis_tready", "in", 1), ("m_axis_tlast", "out", 1),
        ("s_axi_ctrl_awaddr", "in", A), ("s_axi_ctrl_awvalid", "in", 1), ("s_axi_ctrl_awready", "out", 1),
        ("s_axi_ctrl_wdata", "in", 32), ("s_axi_ctrl_wstrb", "in", 4), ("s_axi_ctrl_wvalid", "in", 1),
        ("s_axi_ctrl_wready", "out", 1),
        ("s_axi_ctrl_bresp", "out", 2), ("s_axi_ctrl_bvalid", "out", 1), ("s_axi_ctrl_bready", "in", 1),
        ("s_axi_ctrl_araddr", "in", A), ("s_axi_ctrl_arvalid", "in", 1), ("s_axi_ctrl_arready", "out", 1),
        ("s_axi_ctrl_rdata", "out", 32), ("s_axi_ctrl_rresp", "out", 2), ("s_axi_ctrl_rvalid", "out", 1),
        ("s_axi_ctrl_rready", "in", 1),
    ]


class AxiTop(wiring.Component):
    """``rtlgen_axi_top`` (see the module docstring). ``manifest``: ``RtlgenTop.manifest()`` of the network."""

    def __init__(self, manifest: dict, tdata_width: int = 32, build_hash: int = 0, inner: str = "rtlgen_top"):
        if tdata_width not in TDATA_WIDTHS:
            raise ValueError(f"s_axis TDATA width must be one of {TDATA_WIDTHS}, got {tdata_width}")
        self.man = manifest
        self.tdata_width = tdata_width
        self.hash = int(build_hash) & 0xFFFFFFFF
        self.inner = inner
        H, W, C = manifest["input"]["shape"]
        self.C = C
        self.frame_bytes = H * W * C
        o = manifest["output"]
        self.lanes, self.width, self.V, self.signed = o["lanes"], o["width"], o["values"], bool(o["signed"])
        if self.width not in (8, 32):
            raise ValueError(f"output lanes of {self.width} bits: expected 8 or 32")
        if self.V >= 1 << 16:
            raise ValueError("more than 65535 output values per frame")
        self.weights = manifest.get("weights")  # URAM weight image to load (None: no s_axis_weights)
        if self.weights and self.weights["word_bytes"] % (tdata_width // 8):
            raise ValueError(f"weight words of {self.weights['word_bytes']} bytes are not whole {tdata_width}-bit beats")
        dirs = {"in": In, "out": Out}
        super().__init__({name: dirs[d](w) for name, d, w in port_list(tdata_width, bool(self.weights))})

    @property
    def config_word(self) -> int:
        return ((self.tdata_width // 8) | ((self.width == 32) << 8) | (self.signed << 9) | (bool(self.weights) << 10)
                | (self.V << 16))

    def _weight_gearbox(self, m):
        """s_axis_weights beats -> ``wload`` words of rtlgen_top (``word_bytes / (W/8)`` beats per word)."""
        B = self.tdata_width // 8
        nb = self.weights["word_bytes"] // B
        wtop = self.weights["width"]
        wl_valid, wl_ready = Signal(name="wload_valid"), Signal(name="wload_ready")
        wl_payload, loaded = Signal(wtop, name="wload_payload"), Signal(name="weights_loaded")
        td, tv = self.s_axis_weights_tdata, self.s_axis_weights_tvalid
        if nb == 1:
            m.d.comb += [wl_valid.eq(tv & ~loaded), wl_payload.eq(td[:wtop]),
                         self.s_axis_weights_tready.eq(wl_ready | loaded)]
        else:
            cnt = Signal(range(nb), name="wbeat")
            need = min(nb - 1, -(-wtop // (8 * B)))  # buffered beats that hold bits of the word
            bufs = [Signal(8 * B, name=f"wbuf{j}") for j in range(need)]
            at_last = cnt == nb - 1
            fire = Signal(name="wbeat_fire")
            m.d.comb += [
                wl_valid.eq(tv & at_last & ~loaded),
                wl_payload.eq(Cat(*bufs, td)[:wtop]),
                self.s_axis_weights_tready.eq(~at_last | wl_ready | loaded),
                fire.eq(tv & self.s_axis_weights_tready),
            ]
            with m.If(fire):
                with m.If(at_last | self.s_axis_weights_tlast):
                    m.d.sync += cnt.eq(0)
                with m.Else():
                    m.d.sync += cnt.eq(cnt + 1)
                for j, b in enumerate(bufs):
                    with m.If(cnt == j):
                        m.d.sync += b.eq(td)
        return wl_valid, wl_ready, wl_payload, loaded

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")  # datapath: aresetn or SOFT_RESET
        m.domains.ctrl = ClockDomain("ctrl")  # AXI-Lite port and BATCH_LEN: aresetn only
        soft = Signal(range(9))
        m.d.comb += [
            ClockSignal("sync").eq(self.aclk),
            ClockSignal("ctrl").eq(self.aclk),
            ResetSignal("ctrl").eq(~self.aresetn),
            ResetSignal("sync").eq(~self.aresetn | (soft != 0)),
        ]

        # ---------------------------------------------------------------- AXI4-Lite (ctrl domain)
        aw_have, aw_addr = Signal(name="aw_have"), Signal(ADDR_BITS, name="aw_addr")
        w_have, w_data, w_strb = Signal(name="w_have"), Signal(32, name="w_data"), Signal(4, name="w_strb")
        bvalid, rvalid, rdata = Signal(name="bvalid_q"), Signal(name="rvalid_q"), Signal(32, name="rdata_q")
        m.d.comb += [
            self.s_axi_ctrl_awready.eq(~aw_have),
            self.s_axi_ctrl_wready.eq(~w_have),
            self.s_axi_ctrl_bvalid.eq(bvalid),
            self.s_axi_ctrl_bresp.eq(0),
            self.s_axi_ctrl_arready.eq(~rvalid),
            self.s_axi_ctrl_rvalid.eq(rvalid),
            self.s_axi_ctrl_rdata.eq(rdata),
            self.s_axi_ctrl_rresp.eq(0),
        ]
        with m.If(self.s_axi_ctrl_awvalid & ~aw_have):
            m.d.ctrl += [aw_have.eq(1), aw_addr.eq(self.s_axi_ctrl_awaddr)]
        with m.If(self.s_axi_ctrl_wvalid & ~w_have):
            m.d.ctrl += [w_have.eq(1), w_data.eq(self.s_axi_ctrl_wdata), w_strb.eq(self.s_axi_ctrl_wstrb)]
        do_write = Signal()
        m.d.comb += do_write.eq(aw_have & w_have & ~bvalid)
        with m.If(do_write):
            m.d.ctrl += [aw_have.eq(0), w_have.eq(0), bvalid.eq(1)]
        with m.Elif(bvalid & self.s_axi_ctrl_bready):
            m.d.ctrl += bvalid.eq(0)
        wmask = Signal(32)
        m.d.comb += wmask.eq(Cat(*[w_strb[b].replicate(8) for b in range(4)]))
        wd = Signal(32)
        m.d.comb += wd.eq(w_data & wmask)

        def wr(name):
            s = Signal(name=f"wr_{name.lower()}")
            m.d.comb += s.eq(do_write & (aw_addr[2:] == REG[name] >> 2))
            return s

        wr_ctrl, wr_batch, wr_err = wr("CTRL"), wr("BATCH_LEN"), wr("ERROR")
        start = Signal()
        m.d.comb += start.eq(wr_ctrl & wd[0])
        with m.If(wr_ctrl & wd[1]):
            m.d.ctrl += soft.eq(8)
        with m.Elif(soft != 0):
            m.d.ctrl += soft.eq(soft - 1)
        batch_len = Signal(32, init=1)
        with m.If(wr_batch):
            m.d.ctrl += batch_len.eq((batch_len & ~wmask) | wd)
        err_clr = Signal()
        m.d.comb += err_clr.eq(wr_err & wd[0])

        # ---------------------------------------------------------------- input: bytes -> pixels (sync domain)
        B = self.tdata_width // 8
        m.submodules.unpack = up = ByteUnpacker(B, self.frame_bytes, self.C)
        m.d.comb += [
            up.s_tdata.eq(self.s_axis_tdata), up.s_tvalid.eq(self.s_axis_tvalid), up.s_tlast.eq(self.s_axis_tlast),
            self.s_axis_tready.eq(up.s_tready),
        ]
        m.submodules.tags = tags = fifo.SyncFIFO(width=1, depth=TAG_DEPTH)  # padded flag per frame in flight
        net_i_valid, net_i_ready = Signal(name="net_i_valid"), Signal(name="net_i_ready")
        net_o_valid, net_o_ready = Signal(name="net_o_valid"), Signal(name="net_o_ready")
        net_o_payload = Signal(self.lanes * self.width + 1)
        hold = up.o.payload.last & ~tags.w_rdy  # a frame may only end when its flag has room
        m.d.comb += [
            net_i_valid.eq(up.o.valid & ~hold),
            up.o.ready.eq(net_i_ready & ~hold),
            tags.w_en.eq(net_i_valid & net_i_ready & up.o.payload.last),
            tags.w_data.eq(up.pad),
        ]
        wports = {}
        if self.weights:
            wl_valid, wl_ready, wl_payload, loaded = self._weight_gearbox(m)
            wports = dict(i_wload__valid=wl_valid, o_wload__ready=wl_ready, i_wload__payload=wl_payload,
                          o_weights_loaded=loaded)
        m.submodules.rtlgen_top_i = Instance(
            self.inner,
            i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"),
            i_i__valid=net_i_valid, o_i__ready=net_i_ready, i_i__payload=up.o.payload.as_value(),
            o_o__valid=net_o_valid, i_o__ready=net_o_ready, o_o__payload=net_o_payload,
            **wports,
        )

        # ---------------------------------------------------------------- output: lanes -> 32-bit words + result word
        L, w, V = self.lanes, self.width, self.V
        beat, beat_v = Signal(L * w, name="beat"), Signal(name="beat_v")
        lane = Signal(range(max(L, 2)))
        vidx = Signal(range(max(V, 2)))
        in_result = Signal()
        best_v, best_i = Signal(signed(33), name="best_v"), Signal(16, name="best_i")
        frame_no = Signal(15)
        lanes_arr = Array(beat[i * w: (i + 1) * w] for i in range(L))
        cur = Signal(signed(33))
        sel = lanes_arr[lane]
        m.d.comb += cur.eq(sel.as_signed() if self.signed else sel)
        result_word = Signal(32)
        m.d.comb += result_word.eq(Cat(best_i, frame_no, tags.r_data))
        batch_pos = Signal(32)
        blen = Signal(32)
        m.d.comb += blen.eq(Mux(batch_len == 0, 1, batch_len))
        m.d.comb += [
            net_o_ready.eq(~beat_v),
            self.m_axis_tvalid.eq(in_result | beat_v),
            self.m_axis_tdata.eq(Mux(in_result, result_word, cur[:32])),
            self.m_axis_tlast.eq(in_result & (batch_pos == blen - 1)),
        ]
        with m.If(net_o_valid & ~beat_v):
            m.d.sync += [beat.eq(net_o_payload[: L * w]), beat_v.eq(1), lane.eq(0)]
        vfire = Signal()
        rfire = Signal()
        m.d.comb += [vfire.eq(~in_result & beat_v & self.m_axis_tready), rfire.eq(in_result & self.m_axis_tready)]
        with m.If(vfire):
            with m.If((vidx == 0) | (cur > best_v)):
                m.d.sync += [best_v.eq(cur), best_i.eq(vidx)]
            with m.If(vidx == V - 1):
                m.d.sync += [vidx.eq(0), in_result.eq(1), beat_v.eq(0)]
            with m.Else():
                m.d.sync += vidx.eq(vidx + 1)
                with m.If(lane == L - 1):
                    m.d.sync += beat_v.eq(0)
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
        m.d.comb += tags.r_en.eq(rfire)
        last_result = Signal(32)

        # ---------------------------------------------------------------- counters (sync domain; START clears)
        frames_in, frames_out = Signal(32, name="frames_in"), Signal(32, name="frames_out")
        active = Signal(16)
        busy = Signal(64)
        lat, lat_cnt = Signal(32, name="latency"), Signal(32, name="lat_cnt")
        armed, running = Signal(init=1, name="lat_armed"), Signal(name="lat_running")
        framing = Signal()
        with m.If(rfire):
            m.d.sync += [in_result.eq(0), last_result.eq(result_word)]
        with m.If(start):
            m.d.sync += [frames_in.eq(0), frames_out.eq(0), busy.eq(0), lat.eq(0), lat_cnt.eq(0), armed.eq(1),
                         running.eq(0), batch_pos.eq(0), frame_no.eq(0)]
        with m.Else():
            with m.If(tags.w_en):
                m.d.sync += frames_in.eq(frames_in + 1)
            with m.If(rfire):
                m.d.sync += [frames_out.eq(frames_out + 1), frame_no.eq(frame_no + 1),
                             batch_pos.eq(Mux(batch_pos >= blen - 1, 0, batch_pos + 1))]
            with m.If(active != 0):
                m.d.sync += busy.eq(busy + 1)
            with m.If(armed & up.accept):
                m.d.sync += [armed.eq(0), running.eq(1), lat_cnt.eq(0)]
            with m.Elif(running):
                m.d.sync += lat_cnt.eq(lat_cnt + 1)
                with m.If(rfire):
                    m.d.sync += [running.eq(0), lat.eq(lat_cnt + 1)]
        m.d.sync += active.eq(active + up.frame_start - rfire)
        with m.If(up.short):
            m.d.sync += framing.eq(1)
        with m.Elif(err_clr):
            m.d.sync += framing.eq(0)

        # ---------------------------------------------------------------- register reads (ctrl domain)
        busy_hi = Signal(32)
        regs = {
            "ID": Const(ID_VALUE, 32), "VERSION": Const((VERSION[0] << 16) | VERSION[1], 32),
            "CONFIG": Const(self.config_word, 32), "FRAME_BYTES": Const(self.frame_bytes, 32),
            "CTRL": Const(0, 32),
            "STATUS": (Cat(active != 0, up.partial, framing, ~loaded, Const(0, 12), active) if self.weights else
                       Cat(active != 0, up.partial, framing, Const(0, 13), active)),
            "BATCH_LEN": batch_len, "ERROR": framing, "FRAMES_IN": frames_in, "FRAMES_OUT": frames_out,
            "BUSY_CYCLES_LO": busy[:32], "BUSY_CYCLES_HI": busy_hi, "LATENCY": lat,
            "BUILD_HASH": Const(self.hash, 32), "LAST_RESULT": last_result, "RECORD_WORDS": Const(V + 1, 32),
        }
        ar_fire = self.s_axi_ctrl_arvalid & ~rvalid
        with m.If(ar_fire):
            m.d.ctrl += rvalid.eq(1)
            with m.Switch(self.s_axi_ctrl_araddr[2:]):
                for name, val in regs.items():
                    with m.Case(REG[name] >> 2):
                        m.d.ctrl += rdata.eq(val)
                        if name == "BUSY_CYCLES_LO":
                            m.d.ctrl += busy_hi.eq(busy[32:])
                with m.Default():
                    m.d.ctrl += rdata.eq(0)
        with m.Elif(rvalid & self.s_axi_ctrl_rready):
            m.d.ctrl += rvalid.eq(0)
        return m


def verilog(manifest: dict, tdata_width: int = 32, build_hash: int = 0) -> str:
    """Verilog text of ``rtlgen_axi_top`` (instantiates ``rtlgen_top`` from ``rtlgen_top.v``)."""
    from rtlgen.emit.verilog import verilog_text

    return verilog_text(AxiTop(manifest, tdata_width, build_hash), "rtlgen_axi_top")


def header(manifest: dict, tdata_width: int, weights: bool, model: str, board: str, clock_mhz: float,
           cycles_per_frame: int, build_hash_value: int) -> str:
    """The comment block that opens ``rtl/rtlgen_axi_top.v``: every port of :func:`port_list` (data layout, ``tlast``,
    reset, the weight stream where present, the register map) and the plan summary. Only a comment: the Verilog after
    it is exactly what Amaranth wrote."""
    W = tdata_width
    H, Wd, C = manifest["input"].get("pixel_shape", manifest["input"]["shape"])  # the image (before an input fold)
    o = manifest["output"]
    V, vb = o["values"], o["width"]
    vals = ("int8 values sign-extended to 32 bits" if o["signed"] else "uint8 values zero-extended to 32 bits") \
        if vb == 8 else "int32 raw accumulators"
    doc = {
        "aclk": ["the only clock; everything updates on its rising edge"],
        "aresetn": ["reset: synchronous, ACTIVE LOW (AXI convention), sampled on a rising aclk edge; resets the",
                    "datapath, the counters and the registers" + ("; the URAM weights must be sent again" if weights else "")],
        "s_axis_tdata": [f"[{W - 1}:0] image bytes, NHWC uint8 (row, column, channel; channel innermost), {H}x{Wd}x{C} = "
                         f"{H * Wd * C} bytes/frame,", f"  little-endian: byte k of the stream in tdata[8*(k mod {W // 8}) +: 8]; "
                         "frames are contiguous (need not start on a beat)"],
        "s_axis_tvalid": ["image beat offered"],
        "s_axis_tready": ["image beat accepted on a rising aclk edge where tvalid & tready"],
        "s_axis_tlast": ["in the beat holding a frame's last byte (end of a DMA transfer); bytes after that frame end in",
                         "the same beat are dropped; tlast before a frame end = framing error (ERROR[0]; the frame is",
                         "zero-padded and its result word marked)"],
        "s_axis_weights_tdata": [f"[{W - 1}:0] URAM builds only: the bytes of weights/weights.bin in order, little-endian "
                                 f"(byte k in tdata[8*(k mod {W // 8}) +: 8]);",
                                 f"  every {manifest['weights']['word_bytes'] if weights else 'word_bytes'} bytes form one "
                                 "rtlgen_top wload word; send once after every reset;",
                                 "  STATUS[3] (weights pending) reads 1 until complete, images wait meanwhile"],
        "s_axis_weights_tvalid": ["weight beat offered"],
        "s_axis_weights_tready": ["weight beat accepted where tvalid & tready"],
        "s_axis_weights_tlast": ["optional; ends the current word (a partial word is dropped): send whole words"],
        "m_axis_tdata": [f"[31:0] one record of {V + 1} words per frame: words 0..{V - 1} the outputs ({vals}),",
                         f"  word {V} the result word: [15:0] argmax class, [30:16] frame number mod 2**15, "
                         "[31] padded after a framing error"],
        "m_axis_tvalid": ["result word offered"],
        "m_axis_tready": ["result word accepted where tvalid & tready (may be held low: back-pressure)"],
        "m_axis_tlast": ["on the result word of every BATCH_LEN-th record"],
    }
    axil = {"awaddr": f"[{ADDR_BITS - 1}:0] write byte address", "awvalid": "write address valid",
            "awready": "write address accepted", "wdata": "[31:0] write data", "wstrb": "[3:0] byte enables",
            "wvalid": "write data valid", "wready": "write data accepted", "bresp": "[1:0] write response (always OKAY)",
            "bvalid": "write response valid", "bready": "write response accepted",
            "araddr": f"[{ADDR_BITS - 1}:0] read byte address", "arvalid": "read address valid",
            "arready": "read address accepted", "rdata": "[31:0] read data", "rresp": "[1:0] read response (always OKAY)",
            "rvalid": "read data valid", "rready": "read data accepted"}
    for k, v in axil.items():
        doc[f"s_axi_ctrl_{k}"] = [f"AXI4-Lite control slave: {v}"]
    lines = ["// rtlgen_axi_top: the rtlgen accelerator (rtlgen_top, in rtlgen_top.v) behind AXI4-Stream and AXI4-Lite,",
             "// generated by rtlgen (Verilog body below written by Amaranth).",
             f"// model {model}, board {board}, clock {clock_mhz} MHz, {cycles_per_frame:,} cycles/frame predicted, "
             f"build hash {build_hash_value:#010x}",
             "// (per-layer plan: the header of rtlgen_top.v; throughput: report.json)",
             "//",
             "// Ports (AXI handshakes: a beat moves on a rising aclk edge where valid & ready):"]
    for name, d, w in port_list(tdata_width, weights):
        text = doc.get(name, ["(undocumented)"])
        lines.append(f"//   {name:22s} {d:3s} {w:4d}  {text[0]}")
        lines += [f"//   {'':22s} {'':3s} {'':4s}  {t}" for t in text[1:]]
    lines += ["//", "// Registers (s_axi_ctrl byte offsets):"]
    for off, name, acc, _ in REGISTERS:
        lines.append(f"//   0x{off:02X} {name:15s} {acc}")
    lines += ["// (meanings: rtlgen.boards.top.REGISTERS, DIR/vivado/README.md)", "", ""]
    return "\n".join(lines)
