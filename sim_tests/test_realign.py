# amaranth: UnusedElaboratable=no
"""Whole network realigns on ``last``: the small residual network of ``test_network.py`` (identity block with temporal
reuse + projection block with loop merging) is fed a good frame, a truncated frame (``last`` early), a long frame
(excess pixels after the frame, ``last`` on the final one), then good frames, under random valid/ready pauses.

Every input frame must give exactly one output frame (``beats_per_frame`` beats, ``last`` on the final one, nothing
lost or duplicated, nothing after the end), and every good frame's output must equal the golden model bit-exactly.
The first consumer of the input stream (the stem convolution's window generator, behind the input stage) completes a
short frame with the zero point and drops a long frame's excess, so every core after it sees well-formed frames.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from rtlgen.verify.runner import sim_config

HERE = Path(__file__).parent


@cocotb.test()
async def stream_words(dut):
    """Drive the configured input words (``last`` wherever the words put it) with random pauses; record every output
    beat, then 200 idle cycles (nothing more may come)."""
    from streams import StreamSink, StreamSource, hold_reset, release_reset

    cfg = sim_config()
    hold_reset(dut)
    src = StreamSource(dut, "i", dut.clk, cfg["pause"], seed=3)
    sink = StreamSink(dut, "o", dut.clk, cfg["pause"], seed=4)
    await release_reset(dut, 4)
    await RisingEdge(dut.clk)
    task = src.start(cfg["words"])
    n = cfg["out_beats"]
    try:
        await sink.wait_for(n, cfg["timeout"])
    except TimeoutError:
        pass
    await ClockCycles(dut.clk, 200)
    Path(cfg["results"]).write_text(json.dumps({"outs": list(sink.words), "sent": src.sent, "done": task.done()}))


# ---------------------------------------------------------------- pytest side

# argmax (its frame-bench checks live in test_dense.py): short and long logit frames between good ones
from frame_bench import job, long_frame, register, run_jobs, shared_design, short_frame  # noqa: E402

AM = dict(n=10, lanes=3, width=8, is_signed=True)
register("default", "realign_argmax", lambda: _argmax())


def _argmax():
    from rtlgen.cores.argmax import ArgmaxCore

    return ArgmaxCore(**AM)


def test_argmax_realigns_on_last(tmp_path, tmp_path_factory):
    """good, short (``last`` early: the index over the values received), good, long (excess dropped), good, 1-beat,
    good frames under random pauses: exactly one result beat per input frame."""
    from rtlgen.cores.stream import frame_to_beats

    core = _argmax()
    rng = np.random.default_rng(21)
    n, L = AM["n"], AM["lanes"]
    nb = -(-n // L)
    ins, outs = [], []
    for j in range(7):
        v = rng.integers(-128, 128, size=n)
        v[rng.integers(0, n)] = v.max()  # a tie: the lowest index wins
        w = frame_to_beats(v.reshape(1, 1, n), L)
        seen = v
        if j in (1, 5):
            k = int(rng.integers(1, nb)) if j == 1 else 1
            w, seen = short_frame(w, k, L * 8), v[: k * L]
        elif j == 3:
            w = long_frame(w, [int(x) for x in rng.integers(0, 1 << (L * 8), size=5)], L * 8)
        ins.append(w)
        outs.append([int(np.argmax(seen)) | 1 << core.index_width])
    jb = job("argmax_malformed", {"i": ins}, outs, prefix="realign_argmax_", last_bit=core.index_width, model=None,
             reset_frame=None)
    run_jobs(tmp_path, shared_design("default", tmp_path_factory), [jb])



def _pixel_words(frame: np.ndarray) -> list[int]:
    from rtlgen.verify.beats import frame_beats

    return [int(w) for w in frame_beats(frame[None])[0]]


def test_network_realigns_on_last(tmp_path):
    sys.path.insert(0, str(HERE.parent / "tests"))
    import zoo

    from rtlgen import golden
    from rtlgen.flow import Design
    from rtlgen.verify.beats import decode_outputs
    from rtlgen.verify.harness import load_design
    from rtlgen.verify.runner import run_cocotb

    m = zoo.brevitas_resnet(tmp_path, "qonnx", seed=3, with_metadata=True)
    d = Design.load(str(m.path), board="ultra96v2")
    d.plan()
    rep = d.build(tmp_path / "build")
    net, _, man = load_design(tmp_path / "build")
    H, W, C = man["input"]["shape"]
    last_bit = 8 * C
    bpf = man["output"]["beats_per_frame"]

    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, size=(6, H, W, C), dtype=np.uint8)
    kinds = ["good", "short", "long", "good", "good", "good"]
    words = []
    for kind, px in zip(kinds, pixels):
        w = _pixel_words(px)
        if kind == "short":  # cut in the middle of a row, about 40 % into the frame
            w = w[: int(0.4 * H * W) + 5]
            w[-1] |= 1 << last_bit
        elif kind == "long":  # no 'last' on the final pixel, 1.5 rows of junk, 'last' on the final junk pixel
            w[-1] &= ~(1 << last_bit)
            w += [int(v) & ~(1 << last_bit) for v in rng.integers(0, 1 << last_bit, size=W + W // 2)]
            w[-1] |= 1 << last_bit
        words += w

    cfg = {"words": words, "pause": 0.2, "out_beats": len(kinds) * bpf, "results": str(tmp_path / "res.json"),
           "timeout": 10 * rep["cycles_per_frame"] * len(kinds) + 50_000}
    run_cocotb([tmp_path / "build" / "rtl" / "rtlgen_top.v"], "rtlgen_top", "test_realign", HERE,
               tmp_path / "sim_build", config=cfg, cxx_opt="-O0")
    r = json.loads((tmp_path / "res.json").read_text())
    outs = r["outs"]
    assert r["sent"] == len(words) and r["done"], f"input not fully taken: {r['sent']} of {len(words)} beats"
    assert len(outs) == len(kinds) * bpf, f"{len(outs)} output beats for {len(kinds)} frames of {bpf}"
    got = decode_outputs(outs, man, len(kinds))  # also checks 'last' sits on every frame's final beat only
    good = [k for k, kind in enumerate(kinds) if kind == "good"]
    exp = golden.run(net, pixels[good])
    for j, k in enumerate(good):
        np.testing.assert_array_equal(got[k], exp[j], err_msg=f"good frame {k} (after {kinds[:k]})")
