"""Plumbing cores: stream FIFO, skid buffer, lane-width converters.

One Verilator build holds all of them (a :class:`frame_bench.Bundle`); each gets random stalls on both sides over
back-to-back frames, a reset mid-frame, and a no-stall throughput measurement against its cycle model.
"""

import numpy as np

from frame_bench import build, run_bench
from rtlgen.cores.adapters import LaneConverter
from rtlgen.cores.fifo import SkidBuffer, StreamFIFO
from rtlgen.cores.stream import frame_to_beats

# (shape, lanes_in, lanes_out, flatten)
CONVERTERS = {
    "c3to1": ((4, 3, 3), 3, 1, False),  # RGB pixel per beat -> one channel per beat
    "c1to3": ((3, 2, 5), 1, 3, False),  # 1 -> 3 with a 2-lane tail beat per pixel
    "c2to3f": ((2, 3, 5), 2, 3, True),  # non-dividing both sides, frame flattened into one vector (dense input)
    "c4to4f": ((2, 2, 3), 4, 4, True),  # same width, regrouped pixels (tail beats removed)
}


def _frames(rng, shape, n):
    return [rng.integers(-128, 128, size=shape) for _ in range(n)]


def test_plumbing(tmp_path):
    rng = np.random.default_rng(1)
    cores = {"fifo": StreamFIFO(depth=4, lanes=2), "skid": SkidBuffer(lanes=2)}
    for n, (shape, li, lo, flat) in CONVERTERS.items():
        H, W, C = shape
        cores[n] = LaneConverter(C, li, lo, c_out=H * W * C if flat else C)
    v = build(tmp_path, cores, "plumbing")

    shape, lanes = (3, 4, 5), 2
    words = [frame_to_beats(f, lanes) for f in _frames(rng, shape, 3)]
    for n in ("fifo", "skid"):
        res = run_bench(tmp_path, v, "plumbing", {"i": words}, words, prefix=f"{n}_", last_bit=lanes * 8,
                        model=cores[n].cycles_per_frame(len(words[0])))
        assert res["measured"] == len(words[0]), n

    for n, (shape, li, lo, flat) in CONVERTERS.items():
        H, W, C = shape
        c_out = cores[n].c_out
        frames = _frames(rng, shape, 3)
        ins = [frame_to_beats(f, li) for f in frames]
        outs = [frame_to_beats(f.reshape(1, -1, c_out), lo) for f in frames]
        res = run_bench(tmp_path, v, "plumbing", {"i": ins}, outs, prefix=f"{n}_", last_bit=lo * 8,
                        model=cores[n].cycles_per_frame(H * W))
        assert res, n
