"""Window generator (cores/linebuffer.py) against its pure-Python reference, with cocotb + Verilator.

Each pytest case builds one design and runs three cocotb tests on it: several frames under random valid/ready pauses
(window beats and the centre stream bit-exact), back-to-back frames without stalls (measured cycles per frame vs the
cycle model, within 2 %), and a reset in the middle of a frame followed by a clean frame.
"""

from __future__ import annotations

from pathlib import Path

import cocotb
import numpy as np
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from rtlgen.cores.linebuffer import WindowGen, window_layout
from rtlgen.cores.stream import beats_to_frame, frame_to_beats
from rtlgen.simulate import run_cocotb, sim_config, write_verilog

HERE = Path(__file__).parent


def _gen(cfg):
    return WindowGen(**cfg["params"])


def _frames(cfg, n, seed):
    p = cfg["params"]
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, size=(p["H"], p["W"], p["C"])) for _ in range(n)]


def _pack_ref(gen, beat):
    """(word, mask) of one expected window beat."""
    word = mask = 0
    for i, v in enumerate(beat["data"]):
        if v is not None:
            word |= (v & 0xFF) << (8 * i)
            mask |= 0xFF << (8 * i)
    pos = gen.pix * gen.lanes * 8
    for k, f in enumerate(("first", "wlast", "pfirst", "plast", "flast", "p1")):
        word |= beat[f] << (pos + k)
        mask |= 1 << (pos + k)
    return word, mask


async def _reset(dut, cycles=3):
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0


def _check(gen, got, frames, what=""):
    exp = [_pack_ref(gen, b) for f in frames for b in gen.reference(f)]
    assert len(got) == len(exp), f"{what}: {len(got)} beats, expected {len(exp)}"
    for k, (w, (e, msk)) in enumerate(zip(got, exp)):
        assert (w & msk) == e, f"{what}: beat {k} of {len(exp)}: got {w:#x} expected {e:#x} (mask {msk:#x})"


def _check_centre(gen, words, frames):
    n = gen.Ho * gen.Wo * gen.G
    assert len(words) == n * len(frames)
    for k, f in enumerate(frames):
        got = beats_to_frame(words[k * n:(k + 1) * n], (gen.Ho, gen.Wo, gen.C), gen.lanes, signed=False)
        np.testing.assert_array_equal(got, gen.reference_centre(f))


@cocotb.test()
async def windows_under_pauses(dut):
    from streams import StreamSink, StreamSource

    cfg = sim_config()
    gen = _gen(cfg)
    cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
    src = StreamSource(dut, "i", dut.clk, cfg["pause"], seed=11)
    sink = StreamSink(dut, "o", dut.clk, cfg["pause"], seed=12)
    csink = StreamSink(dut, "centre", dut.clk, cfg["pause"], seed=13) if gen.centre_out else None
    await _reset(dut)
    frames = _frames(cfg, cfg["frames"], 1)
    src.start([w for f in frames for w in frame_to_beats(f, gen.lanes)])
    n = len(frames) * gen.window_beats_per_frame()
    got = await sink.wait_for(n, 200 * n + 10_000)
    await ClockCycles(dut.clk, 50)
    _check(gen, sink.words, frames, "paused")
    if csink is not None:
        _check_centre(gen, csink.words, frames)


@cocotb.test()
async def throughput_matches_model(dut):
    from streams import StreamSink, StreamSource

    cfg = sim_config()
    gen = _gen(cfg)
    cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
    src = StreamSource(dut, "i", dut.clk, 0.0)
    sink = StreamSink(dut, "o", dut.clk, 0.0)
    csink = StreamSink(dut, "centre", dut.clk, 0.0) if gen.centre_out else None
    await _reset(dut)
    frames = _frames(cfg, 4, 2)
    src.start([w for f in frames for w in frame_to_beats(f, gen.lanes)])
    per = gen.window_beats_per_frame()
    await sink.wait_for(4 * per, 100 * per + 10_000)
    _check(gen, sink.words, frames, "back-to-back")
    if csink is not None:
        await ClockCycles(dut.clk, 20)
        _check_centre(gen, csink.words, frames)
    ends = [sink.cycles[(k + 1) * per - 1] for k in range(4)]
    measured = (ends[3] - ends[1]) / 2
    model = gen.cycles_per_frame()
    dut._log.info(f"cycles/frame measured {measured} model {model}")
    assert abs(measured - model) <= 0.02 * model, f"measured {measured} cycles/frame, model {model}"


@cocotb.test()
async def reset_mid_frame(dut):
    from streams import StreamSink, StreamSource

    cfg = sim_config()
    gen = _gen(cfg)
    cocotb.start_soon(Clock(dut.clk, 4, unit="ns").start())
    src = StreamSource(dut, "i", dut.clk, 0.2, seed=5)
    sink = StreamSink(dut, "o", dut.clk, 0.2, seed=6)
    csink = StreamSink(dut, "centre", dut.clk, 0.0) if gen.centre_out else None
    await _reset(dut)
    frames = _frames(cfg, 2, 3)
    beats = frame_to_beats(frames[0], gen.lanes)
    task = src.start(beats)
    await sink.wait_for(gen.window_beats_per_frame() // 2, 100_000)
    task.cancel()
    src.valid.value = 0
    await _reset(dut)
    sink.words.clear()
    if csink is not None:
        csink.words.clear()
    src.start(frame_to_beats(frames[1], gen.lanes))
    await sink.wait_for(gen.window_beats_per_frame(), 200_000)
    await ClockCycles(dut.clk, 50)
    _check(gen, sink.words, frames[1:], "after reset")
    if csink is not None:
        _check_centre(gen, csink.words, frames[1:])


CASES = {
    # name: (WindowGen params, frames under pauses)
    "k3s1_same_pix2_centre_tail": dict(H=5, W=4, C=5, lanes=2, K=3, stride=1, pad_value=-3, repeats=2, pix=2,
                                       centre=True),
    "k5s2_w1_pix1": dict(H=6, W=1, C=3, lanes=4, K=5, stride=2, pad_value=7, repeats=1, pix=1, centre=True),
    "k1s2_pix2_odd": dict(H=5, W=5, C=4, lanes=4, K=1, stride=2, pads=(0, 0, 0, 0), repeats=3, pix=2, centre=True),
    "k3s2_valid_asym_pix2": dict(H=7, W=6, C=2, lanes=1, K=3, stride=2, pads=(0, 1, 1, 0), repeats=1, pix=2),
    "k7s2_stem": dict(H=9, W=8, C=3, lanes=3, K=7, stride=2, pad_value=0, repeats=1, pix=1),
    "k3s1_wide_rows": dict(H=4, W=12, C=8, lanes=8, K=3, stride=1, repeats=1, pix=1),
}
DEFAULT = ["k3s1_same_pix2_centre_tail", "k5s2_w1_pix1", "k1s2_pix2_odd"]


def _run(name, tmp_path, pause=0.3, frames=2):
    params = CASES[name]
    gen = WindowGen(**params)
    v = write_verilog(gen, "window_gen", tmp_path / "window_gen.v")
    run_cocotb([v], "window_gen", "test_linebuffer", HERE, tmp_path / "build",
               config={"params": params, "pause": pause, "frames": frames})


@pytest.mark.parametrize("name", DEFAULT)
def test_window_gen(name, tmp_path):
    _run(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CASES if n not in DEFAULT])
def test_window_gen_more(name, tmp_path):
    _run(name, tmp_path)


def test_window_gen_model_depth():
    """The buffer holds K-1 rows plus a few pixels (stride 1), one more row at stride 2."""
    g = WindowGen(H=32, W=32, C=16, lanes=4, K=3, stride=1, pix=1)
    assert g.depth == 2 * 32 + 3 + 4
    assert g.DG == g.depth * 4
    g2 = WindowGen(H=32, W=32, C=16, lanes=4, K=3, stride=2, pix=2)
    assert g2.depth == 3 * 32 + 3 + 10
    layout = window_layout(4, 2)
    assert layout.size == 2 * 4 * 8 + 6
