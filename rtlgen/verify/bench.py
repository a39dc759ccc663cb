"""cocotb bench for a whole ``rtlgen_top`` (``rtlgen sim --waves`` and ``run_sim(engine="cocotb")``, the cross-check
of the compiled harness :mod:`rtlgen.verify.harness`; runs inside the simulator). For your own cocotb tests use
:class:`rtlgen.verify.tb.RtlgenTB`.

Reads its job from :func:`rtlgen.verify.runner.sim_config`: ``build_dir`` (the rtlgen build folder: manifest and weight
image), ``frames`` (path of an .npy holding the input beats, one row per frame), ``out_beats`` per frame,
``pause_in``/``pause_out`` probabilities, ``seed``, ``max_cycles``, ``probes`` (internal streams to record),
``results`` (path of the JSON written at the end: output beats, the cycle of every frame's first input beat and last
output beat, the probes' beats). The driving, the output consumption, the reset and the URAM weight load are
:class:`rtlgen.verify.tb.RtlgenTB`'s (one drive loop for both benches): designs with URAM weights get the weight image
(with the input pauses) before the first frame, and the cycle count of the frame phase starts after it
(``load_cycles`` in the results), so cycles per frame and latency are those of the loaded pipeline.
"""

from __future__ import annotations

import json

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from rtlgen.verify.runner import sim_config
from rtlgen.verify.tb import RtlgenTB, pause_generator


@cocotb.test()
async def stream_frames(dut):
    cfg = sim_config()
    frames = np.load(cfg["frames"], allow_pickle=False)  # [N, beats] python-int payloads as uint64 (< 2**63)
    n_frames = frames.shape[0]
    p_in, p_out = float(cfg.get("pause_in", 0.0)), float(cfg.get("pause_out", 0.0))
    seed = int(cfg.get("seed", 1))
    # the reusable testbench (rtlgen.verify.tb) drives and consumes; this bench only records
    tb = RtlgenTB(dut, cfg["build_dir"], scoreboard=False)
    tb.set_idle_generator(pause_generator(p_in, seed))
    tb.set_backpressure_generator(pause_generator(p_out, seed + 1))
    await tb.reset()  # and the weight image, with the input pauses, where the design has one
    probes = {}
    for pr in cfg.get("probes", []):
        probes[pr["layer"]] = []
        cocotb.start_soon(_monitor(dut, tb.clk, pr["prefix"], probes[pr["layer"]]))
    max_cycles = int(cfg.get("max_cycles", 50_000_000))
    r = await tb.stream(frames.reshape(-1), n_frames, max_cycles)
    with open(cfg["results"], "w") as f:
        json.dump(r | {"probes": probes, "load_cycles": tb.load_cycles}, f)
    assert not r["timeout"], (f"timeout after {r['cycles']} cycles: {len(r['outs'])} of "
                              f"{n_frames * int(cfg['out_beats'])} output beats (deadlock?)")
    assert r["extra_beats"] == 0, f"{r['extra_beats']} output beats after the last expected one"


async def _monitor(dut, clk, prefix, sink: list):
    """Record every beat of a probed internal stream (``<prefix>__valid/ready/payload``)."""
    v, r, p = getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready"), getattr(dut, f"{prefix}__payload")
    while True:
        await RisingEdge(clk)
        if int(v.value) and int(r.value):
            sink.append(int(p.value))
