"""cocotb bench for a whole ``rtlgen_top`` (``rtlgen sim --waves`` and ``run_sim(engine="cocotb")``, the cross-check
of the compiled harness :mod:`rtlgen.verify.harness`; runs inside the simulator). For your own cocotb tests use
:class:`rtlgen.verify.tb.RtlgenTB`.

Reads its job from :func:`rtlgen.verify.runner.sim_config`: ``frames`` (path of an .npy holding the input beats, one row
per frame), ``out_beats`` per frame, ``pause_in``/``pause_out`` probabilities, ``seed``, ``results`` (path of the JSON
written at the end: output beats, and the cycle of every frame's first input beat and last output beat).
One coroutine drives the input and consumes the output in the same clock loop (cheaper than two), honouring the
handshake: ``valid`` stays up with a stable payload until accepted.

Designs with URAM weights (a ``wload`` port, see :mod:`rtlgen.emit.compose`): before the first frame the bench sends the
weight image (``weights``: ``{"path", "word_bytes", "words"}`` in the config, else ``DIR/weights/weights.bin`` of the
build folder that holds the ``results`` path, as ``rtlgen sim`` lays it out), with the same random input pauses, and
waits for ``weights_loaded``. The cycle count of the frame phase starts after that (``load_cycles`` in the results),
so cycles per frame and latency are those of the loaded pipeline.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from rtlgen.verify.runner import sim_config


@cocotb.test()
async def stream_frames(dut):
    cfg = sim_config()
    frames = np.load(cfg["frames"], allow_pickle=False)  # [N, beats] python-int payloads as uint64 (< 2**63)
    n_frames, beats = frames.shape
    out_beats = int(cfg["out_beats"])
    p_in, p_out = float(cfg.get("pause_in", 0.0)), float(cfg.get("pause_out", 0.0))
    rng = random.Random(int(cfg.get("seed", 1)))
    max_cycles = int(cfg.get("max_cycles", 50_000_000))
    clk = dut.clk
    cocotb.start_soon(Clock(clk, 4, unit="ns").start())
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.o__ready.value = 0
    if hasattr(dut, "wload__valid"):
        dut.wload__valid.value = 0
    await ClockCycles(clk, 4)
    dut.rst.value = 0
    await RisingEdge(clk)

    load_cycles = await _load_weights(dut, cfg, clk, p_in, rng) if hasattr(dut, "wload__valid") else None

    probes = {}
    for pr in cfg.get("probes", []):
        probes[pr["layer"]] = []
        cocotb.start_soon(_monitor(dut, clk, pr["prefix"], probes[pr["layer"]]))

    flat = frames.reshape(-1)
    total_in, total_out = flat.size, n_frames * out_beats
    k = 0  # next input beat index
    presenting = False
    outs: list[int] = []
    first_in = [None] * n_frames
    last_out = [None] * n_frames
    cyc = 0
    i_valid, i_ready, i_payload = dut.i__valid, dut.i__ready, dut.i__payload
    o_valid, o_ready, o_payload = dut.o__valid, dut.o__ready, dut.o__payload
    while len(outs) < total_out:
        if not presenting and k < total_in and not (p_in and rng.random() < p_in):
            i_payload.value = int(flat[k])
            i_valid.value = 1
            presenting = True
        rdy = 0 if (p_out and rng.random() < p_out) else 1
        o_ready.value = rdy
        await RisingEdge(clk)
        cyc += 1
        if presenting and int(i_ready.value):
            f = k // beats
            if first_in[f] is None:
                first_in[f] = cyc
            k += 1
            presenting = False
            i_valid.value = 0
        if rdy and int(o_valid.value):
            outs.append(int(o_payload.value))
            if len(outs) % out_beats == 0:
                last_out[len(outs) // out_beats - 1] = cyc
        if cyc > max_cycles:
            break
    # a few idle cycles: nothing more may come out
    o_ready.value = 1
    extra = 0
    for _ in range(64):
        await RisingEdge(clk)
        if int(o_valid.value):
            extra += 1
    with open(cfg["results"], "w") as f:
        json.dump({"outs": outs, "first_in": first_in, "last_out": last_out, "cycles": cyc, "extra_beats": extra,
                   "timeout": cyc > max_cycles, "probes": probes, "load_cycles": load_cycles}, f)
    assert cyc <= max_cycles, f"timeout after {cyc} cycles: {len(outs)} of {total_out} output beats (deadlock?)"
    assert extra == 0, f"{extra} output beats after the last expected one"


def weight_words(cfg: dict) -> list[int]:
    """The ``wload`` beats of the design's weight image (see the module docstring)."""
    w = cfg.get("weights")
    if w is None:  # rtlgen sim layout: DIR/sim_build/<tmp>/results.json -> DIR/weights
        d = Path(cfg["results"]).resolve().parent.parent.parent / "weights"
        info = json.loads((d / "weights.json").read_text())
        w = {"path": str(d / "weights.bin"), "word_bytes": info["word_bytes"], "words": info["words"]}
    data = Path(w["path"]).read_bytes()
    n, wb = int(w["words"]), int(w["word_bytes"])
    if len(data) != n * wb:
        raise ValueError(f"{w['path']}: {len(data)} bytes, expected {n} words x {wb} bytes")
    return [int.from_bytes(data[k * wb:(k + 1) * wb], "little") for k in range(n)]


async def _load_weights(dut, cfg, clk, p_in, rng) -> int:
    """Send the weight image on ``wload`` (random pauses with probability ``p_in``); returns the cycles it took."""
    words = weight_words(cfg)
    valid, ready, payload = dut.wload__valid, dut.wload__ready, dut.wload__payload
    mask = (1 << len(payload)) - 1
    k, cyc, presenting = 0, 0, False
    limit = 100 * len(words) + 10_000
    while k < len(words):
        if not presenting and not (p_in and rng.random() < p_in):
            payload.value = words[k] & mask
            valid.value = 1
            presenting = True
        await RisingEdge(clk)
        cyc += 1
        if presenting and int(ready.value):
            k += 1
            presenting = False
            valid.value = 0
        assert cyc <= limit, f"weight load stalled: {k} of {len(words)} words accepted in {cyc} cycles"
    await RisingEdge(clk)
    cyc += 1
    assert int(dut.weights_loaded.value), "weights_loaded low after the whole weight image was accepted"
    assert not int(ready.value), "wload still ready after the whole weight image"
    return cyc


async def _monitor(dut, clk, prefix, sink: list):
    """Record every beat of a probed internal stream (``<prefix>__valid/ready/payload``)."""
    v, r, p = getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready"), getattr(dut, f"{prefix}__payload")
    while True:
        await RisingEdge(clk)
        if int(v.value) and int(r.value):
            sink.append(int(p.value))
