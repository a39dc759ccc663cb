"""Many whole networks (``RtlgenTop``) in ONE Verilator build, driven by :mod:`stress_bench` (shared by the fuzz and
stress tests).

:func:`prepare` turns ``(name, net, plan)`` triples into the bundle component and one job per network (input beats
from :func:`rtlgen.verify.beats.frame_beats`, expected output beats from the golden model and
:func:`rtlgen.cores.stream.frame_to_beats`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtlgen import golden
from rtlgen.emit.compose import RtlgenTop
from rtlgen.cores.stream import frame_to_beats
from rtlgen.verify.beats import frame_beats


def pixels_for(net, n: int, seed: int) -> np.ndarray:
    """``n`` uint8 frames for ``net``: random, plus the extremes (all 0 / all 255) when ``n`` allows."""
    H, W, C = net.input.out_shape
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, size=(n, H, W, C), dtype=np.uint8)
    if n >= 3:
        px[1] = 255
    if n >= 4:
        px[2] = 0
    return px


def expected_words(net, top: RtlgenTop, px: np.ndarray) -> list[list[int]]:
    """Expected output beats per frame."""
    out = golden.run(net, px, return_all=True)[net.output]
    return [frame_to_beats(out[f], top.out_lanes, top.out_width) for f in range(len(px))]


def input_words(px: np.ndarray) -> list[list[int]]:
    return [[int(w) for w in row] for row in frame_beats(px)]


def make_job(name: str, net, top: RtlgenTop, frames: int, seed: int, pause_in, pause_out, reset_frames: int = 0) -> dict:
    px = pixels_for(net, frames, seed)
    iw, ew = input_words(px), expected_words(net, top, px)
    j = {"name": name, "inputs": {f"{name}_i": [w for f in iw for w in f]}, "output": f"{name}_o",
         "expected": [w for f in ew for w in f], "pause_in": list(pause_in), "pause_out": list(pause_out), "seed": seed,
         "frames": frames}
    if reset_frames:
        j["reset_partial"] = {f"{name}_i": iw[0][: max(1, len(iw[0]) * 2 // 3)]}
        k = min(reset_frames, frames)
        j["reset_clean"] = {f"{name}_i": [w for f in iw[:k] for w in f]}
        j["reset_expected"] = [w for f in ew[:k] for w in f]
    ww = top.weight_words()
    if ww:  # URAM layers: the weight image goes in once after every reset, through its own (paused) stream
        for key in ("inputs", "reset_partial", "reset_clean", "bp_inputs"):
            if key in j:
                j[key][f"{name}_wload"] = list(ww)
    return j


def bundle(parts: dict):
    import frame_bench

    return frame_bench.Bundle(parts)


def write_bundle(parts: dict, name: str, folder: Path) -> Path:
    from rtlgen.emit.verilog import write_verilog

    return write_verilog(bundle(parts), name, Path(folder) / f"{name}.v")


def small_resnet_build(tmp_path_factory, name: str) -> Path:
    """``rtlgen build`` (the CLI) of the small Brevitas ResNet of tests/zoo.py (QONNX, seed 3, with preprocessing
    metadata) for Ultra96-V2 into a fresh temporary folder: the build folder the harness, TB and regression benches
    share in shape (each module its own copy)."""
    from click.testing import CliRunner

    import zoo
    from rtlgen.cli import main

    tmp = tmp_path_factory.mktemp(name)
    m = zoo.brevitas_resnet(tmp, "qonnx", seed=3, with_metadata=True)
    out = tmp / "build"
    r = CliRunner().invoke(main, ["build", str(m.path), "--board", "ultra96v2", "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    return out
