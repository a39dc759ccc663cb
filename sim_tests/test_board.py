"""Board-level top ``rtlgen_axi_top`` (boards/top.py) in cocotb + Verilator with cocotbext-axi, and its byte unpacker.

pytest side: the small residual network of ``tests/zoo.py`` is built (``Design.build``), ``rtlgen_axi_top`` is written
for the TDATA width under test, and the golden model gives every expected output. One Verilator build per width
(64, the default of ``emit``; 32 and 128 with ``--runslow``), all cocotb tests below in one simulation:

* ``board_registers_and_batches``: constant registers, BATCH_LEN read-back, START; two DMA-like transfers of three
  frames each with random TVALID/TREADY pauses; records bit-exact with ``rtlgen.golden.run`` (values, argmax class,
  frame numbers), TLAST exactly on every third record; FRAMES_IN/OUT, BUSY_CYCLES and LATENCY equal to the values a
  cycle-accurate monitor of the AXI handshakes computes.
* ``board_framing_error``: a short frame (TLAST early, mid-pixel) sets ERROR[0] and comes out zero-padded (bit-exact
  with the golden model of the padded image, result bit 31 set); a clean frame follows; W1C clears the flag.
* ``board_reset_recovery``: a frame cut by SOFT_RESET, then by ``aresetn``; registers back to their reset values;
  then a clean batch is bit-exact with TLAST at its end.

``test_axi_top_uram_weights``: the same network with conv1, conv3 (+ its merged projection conv4) and the dense head in
UltraRAM (``storage="uram"``): ``rtlgen_axi_top`` has ``s_axis_weights``; cocotb test ``board_uram_weights``: STATUS[3]
(weights pending) after reset, an image sent *before* the weights waits, ``weights/weights.bin`` through
``s_axis_weights`` (cocotbext-axi, random pauses) completes the load, then every record is bit-exact; after SOFT_RESET
the weights are pending again and a reload in two transfers works.

``test_unpacker_unaligned`` runs the byte unpacker alone in Amaranth's simulator with frames that do not align to
beats (147-byte frames in 4/8/16-byte beats), TLAST with trailing padding bytes, and a short frame.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

V_ID = 0x52544C47


# ------------------------------------------------------------------------------------------------ pytest side


@pytest.fixture(scope="module")
def small_design(tmp_path_factory):
    import zoo

    tmp = tmp_path_factory.mktemp("board_net")
    d = zoo.planned_small_resnet(tmp)
    d.build(tmp / "build")
    return d, tmp / "build"


def _expected(net, images):
    from rtlgen import golden

    return golden.run(net, images).astype(np.int64)


@pytest.mark.parametrize("width", [pytest.param(32, marks=pytest.mark.slow), 64, pytest.param(128, marks=pytest.mark.slow)])
def test_axi_top_bench(small_design, tmp_path, width):
    import zoo
    from boards.top import build_hash, verilog
    from rtlgen.verify.runner import run_cocotb

    d, out = small_design
    man = json.loads((out / "rtl" / "manifest.json").read_text())
    h = build_hash(d.net, d.plan_)
    axi = tmp_path / "rtlgen_axi_top.v"
    axi.write_text(verilog(man, width, h))
    H, W, C = man["input"]["shape"]
    F = H * W * C
    imgs = zoo.random_pixels(11, seed=21)
    # frame 6: short (TLAST after `cut` bytes, a multiple of 16 that ends mid-pixel); expected = zero-padded image
    cut = 16 * 77
    padded = imgs[6].reshape(-1).copy()
    padded[cut:] = 0
    golden_in = imgs.copy()
    golden_in[6] = padded.reshape(H, W, C)
    exp = _expected(d.net, golden_in)
    np.save(tmp_path / "images.npy", imgs)
    cfg = {"images": str(tmp_path / "images.npy"), "expected": exp.tolist(), "width": width, "frame_bytes": F,
           "values": man["output"]["values"], "value_bits": man["output"]["width"], "signed": man["output"]["signed"],
           "hash": h, "cut": cut, "seed": width}
    run_cocotb([axi, out / "rtl" / "rtlgen_top.v"], "rtlgen_axi_top", "test_board", HERE, tmp_path / "sim", config=cfg,
               cxx_opt="-O0")


@pytest.fixture(scope="module")
def uram_design(tmp_path_factory):
    import zoo

    tmp = tmp_path_factory.mktemp("board_uram")
    d = zoo.planned_small_resnet(tmp, uram_layers=("conv1", "conv3", "conv4", "dense0"))
    d.build(tmp / "build")
    return d, tmp / "build"


def test_axi_top_uram_weights(uram_design, tmp_path):
    import zoo
    from rtlgen.verify.runner import run_cocotb

    d, out = uram_design
    man = json.loads((out / "rtl" / "manifest.json").read_text())
    assert man["weights"]["bytes"] == (out / "weights" / "weights.bin").stat().st_size
    axi = out / "rtl" / "rtlgen_axi_top.v"  # written by the build (kv260, TDATA 64)
    assert "s_axis_weights_tdata" in axi.read_text()
    imgs = zoo.random_pixels(4, seed=31)
    np.save(tmp_path / "images.npy", imgs)
    cfg = {"images": str(tmp_path / "images.npy"), "expected": _expected(d.net, imgs).tolist(), "width": 64,
           "frame_bytes": int(np.prod(man["input"]["shape"])), "values": man["output"]["values"],
           "value_bits": man["output"]["width"], "signed": man["output"]["signed"], "seed": 3,
           "weights": str(out / "weights" / "weights.bin"), "word_bytes": man["weights"]["word_bytes"]}
    run_cocotb([axi, out / "rtl" / "rtlgen_top.v"], "rtlgen_axi_top", "test_board", HERE, tmp_path / "sim", config=cfg,
               cxx_opt="-O0", testcase="board_uram_weights")


def test_axi_top_ports_exact(small_design):
    """The Verilog top has exactly the Vivado-convention port names (no escaped identifiers, no clk/rst)."""
    import re

    from boards.top import port_list, verilog

    d, out = small_design
    man = json.loads((out / "rtl" / "manifest.json").read_text())
    for width in (32, 64, 128):
        v = verilog(man, width, 1)
        hdr = re.search(r"^module rtlgen_axi_top\((.*?)\);", v, re.S | re.M).group(1)
        names = [p.strip() for p in hdr.split(",")]
        assert sorted(names) == sorted(p[0] for p in port_list(width))
        for name, direction, w in port_list(width):
            decl = f"{'input' if direction == 'in' else 'output'} {'' if w == 1 else f'[{w - 1}:0] '}{name};"
            assert decl in v, decl
        assert "\\" not in v


@pytest.mark.parametrize("F,C", [(147, 3), (64, 64), (60, 1)], ids=["7x7x3", "1x1x64", "12x5x1"])
def test_unpacker_unaligned(F, C):
    """ByteUnpacker alone (Amaranth simulator): 147-byte frames (7x7x3) in 4/8/16-byte beats; a 64-feature vector (one
    pixel wider than a beat: a dense-only network's input) and a one-channel 12x5 frame."""
    from amaranth.sim import Simulator

    from boards.top import ByteUnpacker

    rng = np.random.default_rng(5)
    for B in (4, 8, 16):
        frames = [rng.integers(0, 256, F, dtype=np.uint8) for _ in range(5)]
        # transfer 1: frames 0,1,2 back to back, TLAST in the beat with frame 2's last byte, garbage after it
        # transfer 2: frame 3 cut short (TLAST early after 2 beats) -> zero padded
        # transfer 3: frame 4 clean
        stream1 = np.concatenate(frames[:3])
        n1 = -(-len(stream1) // B) * B
        s1 = np.concatenate([stream1, np.full(n1 - len(stream1), 0xEE, dtype=np.uint8)])
        s2 = frames[3][: 2 * B]
        s3 = np.concatenate([frames[4], np.full(-(-F // B) * B - F, 0xAB, dtype=np.uint8)])
        beats = []
        for s in (s1, s2, s3):
            nb = len(s) // B
            for k in range(nb):
                beats.append((int.from_bytes(bytes(s[k * B:(k + 1) * B]), "little"), int(k == nb - 1)))
        pad3 = np.zeros(F, dtype=np.uint8)
        pad3[: 2 * B] = frames[3][: 2 * B]
        expect = [frames[0], frames[1], frames[2], pad3, frames[4]]
        dut = ByteUnpacker(B, F, C)
        got, lasts, shorts = [], [], []
        prng = random.Random(B)

        async def bench(ctx):
            k = 0
            while len(got) < 5 * (F // C):
                if k < len(beats) and prng.random() < 0.7:
                    ctx.set(dut.s_tdata, beats[k][0])
                    ctx.set(dut.s_tlast, beats[k][1])
                    ctx.set(dut.s_tvalid, 1)
                else:
                    ctx.set(dut.s_tvalid, 0)
                ctx.set(dut.o.ready, int(prng.random() < 0.7))
                await ctx.delay(1e-9)
                acc = ctx.get(dut.s_tvalid) and ctx.get(dut.s_tready)
                if ctx.get(dut.short):
                    shorts.append(len(got))
                if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                    p = ctx.get(dut.o.payload)
                    got.append([(p.data >> (8 * c)) & 0xFF for c in range(C)])
                    lasts.append(p.last)
                await ctx.tick()
                if acc:
                    k += 1

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        g = np.array(got, dtype=np.uint8).reshape(5, F)
        for f in range(5):
            assert np.array_equal(g[f], expect[f]), (B, f)
        P = F // C
        assert [i for i, v in enumerate(lasts) if v] == [P * f + P - 1 for f in range(5)]
        # the early TLAST is taken while frame 2's last pixels may still be buffered (two pixels wider than a beat)
        lag = 2 if C > B else 0
        assert len(shorts) == 1 and 3 * P - lag <= shorts[0] < 4 * P, shorts


# ------------------------------------------------------------------------------------------------ cocotb side

REG = {"ID": 0x00, "VERSION": 0x04, "CONFIG": 0x08, "FRAME_BYTES": 0x0C, "CTRL": 0x10, "STATUS": 0x14,
       "BATCH_LEN": 0x18, "ERROR": 0x1C, "FRAMES_IN": 0x20, "FRAMES_OUT": 0x24, "BUSY_LO": 0x28, "BUSY_HI": 0x2C,
       "LATENCY": 0x30, "BUILD_HASH": 0x34, "LAST_RESULT": 0x38, "RECORD_WORDS": 0x3C}

try:
    import cocotb
    from cocotb.triggers import ClockCycles, RisingEdge
except ImportError:  # pragma: no cover
    cocotb = None


class Monitor:
    """Cycle-accurate model of the counters from the AXI handshakes seen at every rising edge."""

    def __init__(self, dut, F, V):
        self.dut, self.F, self.V = dut, F, V
        self.reset()
        cocotb.start_soon(self._run())

    def reset(self):
        self.edge = 0
        self.kept = 0  # bytes accepted (all beats full in the measured scenario)
        self.done = 0  # records finished
        self.words = 0
        self.busy = 0
        self.t_first_in = None
        self.t_first_out = None

    async def _run(self):
        d = self.dut
        B = len(d.s_axis_tdata) // 8
        while True:
            await RisingEdge(d.aclk)
            self.edge += 1
            started = -(-self.kept // self.F)
            if started > self.done:
                self.busy += 1
            if int(d.s_axis_tvalid.value) and int(d.s_axis_tready.value):
                if self.t_first_in is None:
                    self.t_first_in = self.edge
                self.kept += B
            if int(d.m_axis_tvalid.value) and int(d.m_axis_tready.value):
                self.words += 1
                if self.words % (self.V + 1) == 0:
                    self.done += 1
                    if self.t_first_out is None:
                        self.t_first_out = self.edge


class BoardTB:
    """The board wrapper's bench, cocotbext-axi style: the clock on ``aclk``, ``aresetn``, the AXI4-Stream source
    (``s_axis``) and sink (``m_axis``) and the AXI4-Lite master (``s_axi_ctrl``), random pauses (30 %) on both streams,
    the run's config (``cfg``), its test images (``imgs``) and their golden records (``exp``)."""

    def __init__(self, dut):
        from cocotb.clock import Clock
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink, AxiStreamSource

        from rtlgen.verify.runner import sim_config

        self.dut, self.cfg = dut, sim_config()
        cocotb.start_soon(Clock(dut.aclk, 4, unit="ns").start())
        self.src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.aclk, dut.aresetn,
                                   reset_active_level=False)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_ctrl"), dut.aclk, dut.aresetn,
                                  reset_active_level=False)
        self.rng = random.Random(self.cfg["seed"])
        for drv in (self.src, self.sink, self.axil.write_if, self.axil.read_if):
            drv.log.setLevel(logging.WARNING)  # no per-frame dumps of whole images
        self.src.set_pause_generator(self.pauses(0.3))
        self.sink.set_pause_generator(self.pauses(0.3))
        self.imgs, self.exp = np.load(self.cfg["images"]), self.cfg["expected"]

    def pauses(self, p: float):
        """Pause generator: 1 (pause this cycle) with probability ``p``."""
        while True:
            yield int(self.rng.random() < p)

    def weight_source(self, pause: float = 0.3):
        """The AXI4-Stream source of the weight image port (``s_axis_weights``; URAM-weight designs only)."""
        from cocotbext.axi import AxiStreamBus, AxiStreamSource

        wsrc = AxiStreamSource(AxiStreamBus.from_prefix(self.dut, "s_axis_weights"), self.dut.aclk, self.dut.aresetn,
                               reset_active_level=False)
        wsrc.log.setLevel(logging.WARNING)
        wsrc.set_pause_generator(self.pauses(pause))
        return wsrc

    def frame(self, *images: int):
        """One AXI4-Stream transfer (one TLAST) carrying test images ``images`` back to back."""
        from cocotbext.axi import AxiStreamFrame

        return AxiStreamFrame(b"".join(_img_bytes(self.imgs[i]) for i in images))

    async def reset(self, cycles: int = 8):
        """``aresetn`` low for ``cycles`` cycles, then two idle cycles."""
        self.dut.aresetn.value = 0
        await ClockCycles(self.dut.aclk, cycles)
        self.dut.aresetn.value = 1
        await ClockCycles(self.dut.aclk, 2)

    async def records(self, n_packets: int):
        """Receive ``n_packets`` TLAST-delimited packets; the per-packet record lists (values, result word)."""
        V = self.cfg["values"]
        out = []
        for _ in range(n_packets):
            fr = await self.sink.recv()
            data = bytes(fr.tdata)
            assert len(data) % (4 * (V + 1)) == 0, f"packet of {len(data)} bytes is not whole records"
            words = np.frombuffer(data, dtype="<u4").astype(np.int64)
            recs = []
            for r in range(len(words) // (V + 1)):
                w = words[r * (V + 1): (r + 1) * (V + 1)]
                vals = np.where(w[:V] >= 1 << 31, w[:V] - (1 << 32), w[:V])
                recs.append((vals, int(w[V])))
            out.append(recs)
        return out


def _check_record(rec, expected, frame_no, padded, what):
    vals, res = rec
    assert vals.tolist() == list(expected), f"{what}: values {vals.tolist()} != golden {list(expected)}"
    cls = int(np.argmax(np.asarray(expected)))
    assert res & 0xFFFF == cls, f"{what}: class {res & 0xFFFF} != argmax {cls}"
    assert (res >> 16) & 0x7FFF == frame_no, f"{what}: frame number {(res >> 16) & 0x7FFF} != {frame_no}"
    assert res >> 31 == int(padded), f"{what}: padded flag {res >> 31} != {int(padded)}"


def _img_bytes(img):
    return bytes(np.ascontiguousarray(img).reshape(-1))


async def _wait_idle(axil, dut, max_polls=200):
    for _ in range(max_polls):
        if (await axil.read_dword(REG["STATUS"])) & 3 == 0:
            return
        await ClockCycles(dut.aclk, 50)
    raise AssertionError("STATUS never went idle")


if cocotb is not None:

    @cocotb.test()
    async def board_registers_and_batches(dut):

        tb = BoardTB(dut)
        F, V = tb.cfg["frame_bytes"], tb.cfg["values"]
        await tb.reset()
        mon = Monitor(dut, F, V)
        B = tb.cfg["width"] // 8
        config = B | ((tb.cfg["value_bits"] == 32) << 8) | (int(tb.cfg["signed"]) << 9) | (V << 16)
        for name, val in [("ID", V_ID), ("VERSION", 0x00010000), ("CONFIG", config), ("FRAME_BYTES", F),
                          ("BUILD_HASH", tb.cfg["hash"]), ("RECORD_WORDS", V + 1), ("BATCH_LEN", 1), ("ERROR", 0),
                          ("FRAMES_IN", 0), ("FRAMES_OUT", 0), ("STATUS", 0), ("LATENCY", 0)]:
            got = await tb.axil.read_dword(REG[name])
            assert got == val, f"{name}: read {got:#x}, expected {val:#x}"
        await tb.axil.write_dword(REG["BATCH_LEN"], 3)
        assert await tb.axil.read_dword(REG["BATCH_LEN"]) == 3
        await tb.axil.write_dword(REG["CTRL"], 1)
        await ClockCycles(dut.aclk, 2)
        mon.reset()
        for t in range(2):  # two DMA transfers of three frames
            await tb.src.send(tb.frame(*(3 * t + i for i in range(3))))
        packets = await tb.records(2)
        assert [len(p) for p in packets] == [3, 3], "TLAST not on every third record"
        for k, rec in enumerate(packets[0] + packets[1]):
            _check_record(rec, tb.exp[k], k, False, f"frame {k}")
        await ClockCycles(dut.aclk, 4)
        regs = {n: await tb.axil.read_dword(REG[n]) for n in ("FRAMES_IN", "FRAMES_OUT", "BUSY_LO", "BUSY_HI", "LATENCY",
                                                               "STATUS", "ERROR", "LAST_RESULT")}
        assert regs["FRAMES_IN"] == 6 and regs["FRAMES_OUT"] == 6, regs
        assert regs["STATUS"] == 0 and regs["ERROR"] == 0, regs
        busy = regs["BUSY_LO"] | (regs["BUSY_HI"] << 32)
        assert busy == mon.busy, f"BUSY_CYCLES {busy} != monitor {mon.busy}"
        assert regs["LATENCY"] == mon.t_first_out - mon.t_first_in, (regs["LATENCY"], mon.t_first_in, mon.t_first_out)
        assert regs["LAST_RESULT"] == packets[1][-1][1]
        dut._log.info("width %d: 6 frames bit-exact; BUSY_CYCLES %d, LATENCY %d cycles", tb.cfg["width"], busy,
                      regs["LATENCY"])

    @cocotb.test()
    async def board_framing_error(dut):
        from cocotbext.axi import AxiStreamFrame

        tb = BoardTB(dut)
        await tb.reset()
        await tb.axil.write_dword(REG["BATCH_LEN"], 2)
        await tb.axil.write_dword(REG["CTRL"], 1)
        await tb.src.send(AxiStreamFrame(_img_bytes(tb.imgs[6])[: tb.cfg["cut"]]))  # TLAST early, mid-pixel
        await tb.src.send(tb.frame(7))
        packets = await tb.records(1)
        assert len(packets[0]) == 2
        _check_record(packets[0][0], tb.exp[6], 0, True, "short frame (zero padded)")
        _check_record(packets[0][1], tb.exp[7], 1, False, "frame after the short one")
        assert await tb.axil.read_dword(REG["ERROR"]) == 1
        assert (await tb.axil.read_dword(REG["STATUS"])) & 4
        await tb.axil.write_dword(REG["ERROR"], 0)  # writing 0 leaves it set
        assert await tb.axil.read_dword(REG["ERROR"]) == 1
        await tb.axil.write_dword(REG["ERROR"], 1)  # W1C
        assert await tb.axil.read_dword(REG["ERROR"]) == 0
        assert await tb.axil.read_dword(REG["FRAMES_IN"]) == 2
        assert await tb.axil.read_dword(REG["FRAMES_OUT"]) == 2

    @cocotb.test()
    async def board_reset_recovery(dut):

        tb = BoardTB(dut)
        await tb.reset()
        # 1. SOFT_RESET in the middle of a frame (no TLAST: the source is cut off); BATCH_LEN survives it
        await tb.axil.write_dword(REG["BATCH_LEN"], 1)
        tb.src.send_nowait(tb.frame(0))
        await ClockCycles(dut.aclk, 300)
        tb.src._handle_reset(True)  # drop the frame in progress, tvalid low (as the source does on aresetn)
        await RisingEdge(dut.aclk)
        tb.src._handle_reset(False)
        assert (await tb.axil.read_dword(REG["STATUS"])) & 2, "partial frame not reported"
        assert await tb.axil.read_dword(REG["ERROR"]) == 0
        await tb.axil.write_dword(REG["CTRL"], 2)
        await ClockCycles(dut.aclk, 12)
        assert await tb.axil.read_dword(REG["STATUS"]) == 0
        assert await tb.axil.read_dword(REG["FRAMES_IN"]) == 0
        assert await tb.axil.read_dword(REG["BATCH_LEN"]) == 1
        await tb.src.send(tb.frame(8))
        packets = await tb.records(1)
        _check_record(packets[0][0], tb.exp[8], 0, False, "frame after SOFT_RESET")
        # 2. aresetn in the middle of a frame (the source is cut off by the reset)
        await tb.axil.write_dword(REG["BATCH_LEN"], 2)
        tb.src.send_nowait(tb.frame(1))
        await ClockCycles(dut.aclk, 300)
        await tb.reset()
        for name, val in [("BATCH_LEN", 1), ("ERROR", 0), ("FRAMES_IN", 0), ("FRAMES_OUT", 0), ("STATUS", 0)]:
            got = await tb.axil.read_dword(REG[name])
            assert got == val, f"after aresetn {name} = {got:#x}, expected {val:#x}"
        await tb.axil.write_dword(REG["BATCH_LEN"], 2)
        await tb.src.send(tb.frame(9, 10))
        packets = await tb.records(1)
        assert len(packets[0]) == 2, "TLAST not at the end of the 2-frame batch"
        _check_record(packets[0][0], tb.exp[9], 0, False, "first frame after aresetn")
        _check_record(packets[0][1], tb.exp[10], 1, False, "second frame after aresetn")
        assert tb.sink.empty()


if cocotb is not None:

    @cocotb.test()
    async def board_uram_weights(dut):
        from cocotbext.axi import AxiStreamFrame

        if not hasattr(dut, "s_axis_weights_tdata"):
            return  # a design without URAM weights: nothing to load
        tb = BoardTB(dut)
        wsrc = tb.weight_source()
        image = Path(tb.cfg["weights"]).read_bytes()
        await tb.reset()
        assert (await tb.axil.read_dword(REG["CONFIG"])) >> 10 & 1, "CONFIG[10] (URAM weights) not set"
        assert (await tb.axil.read_dword(REG["STATUS"])) & 8, "STATUS[3] (weights pending) not set after reset"
        await tb.axil.write_dword(REG["BATCH_LEN"], 1)
        await tb.axil.write_dword(REG["CTRL"], 1)
        # an image before the weights: accepted into the input stream as far as it goes, but no result comes out
        tb.src.send_nowait(tb.frame(0))
        await ClockCycles(dut.aclk, 3000)
        assert tb.sink.empty(), "a result came out before the weights were loaded"
        assert await tb.axil.read_dword(REG["FRAMES_OUT"]) == 0
        await wsrc.send(AxiStreamFrame(image))
        await wsrc.wait()
        for _ in range(50):
            if not (await tb.axil.read_dword(REG["STATUS"])) & 8:
                break
        else:
            raise AssertionError("STATUS[3] still set after the whole weight image")
        packets = await tb.records(1)
        _check_record(packets[0][0], tb.exp[0], 0, False, "image sent before the weights")
        await tb.axil.write_dword(REG["BATCH_LEN"], 2)
        await tb.src.send(tb.frame(1, 2))
        packets = await tb.records(1)
        assert len(packets[0]) == 2
        _check_record(packets[0][0], tb.exp[1], 1, False, "frame 1 after loading")
        _check_record(packets[0][1], tb.exp[2], 2, False, "frame 2 after loading")
        # SOFT_RESET clears the loaded state: reload in two transfers of whole words, then a clean frame
        await tb.axil.write_dword(REG["CTRL"], 2)
        await ClockCycles(dut.aclk, 12)
        assert (await tb.axil.read_dword(REG["STATUS"])) & 8, "weights not pending after SOFT_RESET"
        wb = tb.cfg["word_bytes"]
        half = (len(image) // wb // 2) * wb
        await wsrc.send(AxiStreamFrame(image[:half]))
        await wsrc.send(AxiStreamFrame(image[half:]))
        await wsrc.wait()
        await ClockCycles(dut.aclk, 4)
        assert not (await tb.axil.read_dword(REG["STATUS"])) & 8, "reload did not complete"
        await tb.axil.write_dword(REG["BATCH_LEN"], 1)
        await tb.axil.write_dword(REG["CTRL"], 1)
        await tb.src.send(tb.frame(3))
        packets = await tb.records(1)
        _check_record(packets[0][0], tb.exp[3], 0, False, "frame after SOFT_RESET and reload")
        dut._log.info("URAM weights: %d bytes loaded twice through s_axis_weights; 4 frames bit-exact", len(image))


def test_emit_on_real_build(small_design):
    """``rtlgen.boards.emit`` on a real build folder (real ``rtl/rtlgen_top.v``): the Tcl checks pass and the
    emitted ``rtlgen_axi_top.v`` lints clean together with the network (Verilator -Wall, project waivers)."""
    import subprocess

    from rtlgen import toolchain
    from rtlgen.boards import emit, tclcheck
    from rtlgen.verify.lint import WAIVERS

    d, out = small_design
    man = json.loads((out / "rtl" / "manifest.json").read_text())
    cfg = emit(out, d.net, d.plan_, "ultra96v2", 214.29, man)
    if tclcheck.tclsh():
        assert tclcheck.check_design_dir(out) == []
    assert cfg["frame_bytes"] == 3072 and cfg["values"] == man["output"]["values"]
    toolchain.setup_env()
    cmd = [str(toolchain.verilator_root() / "bin" / "verilator"), "--lint-only", "-Wall",
           *[f"-Wno-{w}" for w in WAIVERS], str(out / "rtl" / "rtlgen_axi_top.v"), str(out / "rtl" / "rtlgen_top.v"),
           "--top-module", "rtlgen_axi_top"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    msgs = [ln for ln in r.stderr.splitlines() if ln.startswith("%")]
    assert r.returncode == 0 and not msgs, msgs[:10]
