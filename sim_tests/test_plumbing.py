# amaranth: UnusedElaboratable=no
"""Plumbing cores: stream FIFO, skid buffer, lane-width converters.

Each gets random stalls on both sides over back-to-back frames, a reset mid-frame, and a no-stall throughput
measurement against its cycle model (cores live in the shared ``default`` design of :mod:`frame_bench`).
"""

import numpy as np

from frame_bench import job, register, run_jobs, shared_design
from rtlgen.cores.adapters import LaneConverter
from rtlgen.cores.fifo import SkidBuffer, StreamFIFO
from rtlgen.cores.stream import frame_to_beats

# (shape, lanes_in, lanes_out, flatten, slots)
CONVERTERS = {
    "c3to1": ((4, 3, 3), 3, 1, False, False),  # RGB pixel per beat -> one channel per beat
    "c1to3": ((3, 2, 5), 1, 3, False, False),  # 1 -> 3 with a 2-lane tail beat per pixel
    "c2to3f": ((2, 3, 5), 2, 3, True, False),  # non-dividing both sides, frame flattened into one vector (dense input)
    "c4to4f": ((2, 2, 3), 4, 4, True, False),  # same width, regrouped pixels (tail beats removed)
    "c4to2": ((2, 3, 8), 4, 2, False, False),  # splitter fast path
    "c2to6f": ((2, 2, 6), 2, 6, True, False),  # gatherer fast path
    "c3to3": ((2, 2, 3), 3, 3, False, False),  # pass-through
    "s8to3": ((2, 3, 16), 8, 3, False, True),  # two pixel slots: tail beats on the output side (16 = 5 x 3 + 1)
    "s3to7": ((3, 2, 16), 3, 7, False, True),  # two pixel slots: tail beats on both sides
    "s1to3": ((3, 2, 5), 1, 3, False, True),  # two pixel slots: input slower than output
}

CONVERTERS_MODES = {"c3to1": "split", "c1to3": "pack", "c2to3f": "pack", "c4to4f": "pack", "c4to2": "split",
                    "c2to6f": "gather", "c3to3": "pass", "s8to3": "slots", "s3to7": "slots", "s1to3": "slots"}


def _conv(shape, li, lo, flat, slots):
    H, W, C = shape
    return LaneConverter(C, li, lo, c_out=H * W * C if flat else C, slots=slots)


register("default", "plumb_fifo", lambda: StreamFIFO(depth=4, lanes=2))
register("default", "plumb_skid", lambda: SkidBuffer(lanes=2))
for _n, _c in CONVERTERS.items():
    register("default", f"plumb_{_n}", lambda c=_c: _conv(*c))


def _frames(rng, shape, n):
    return [rng.integers(-128, 128, size=shape) for _ in range(n)]


def test_plumbing(tmp_path, tmp_path_factory):
    design = shared_design("default", tmp_path_factory)
    rng = np.random.default_rng(1)
    jobs = []
    shape, lanes = (3, 4, 5), 2
    words = [frame_to_beats(f, lanes) for f in _frames(rng, shape, 3)]
    for n in ("fifo", "skid"):
        jobs.append(job(n, {"i": words}, words, prefix=f"plumb_{n}_", last_bit=lanes * 8, model=len(words[0])))
    for n, (shape, li, lo, flat, slots) in CONVERTERS.items():
        H, W, C = shape
        core = _conv(shape, li, lo, flat, slots)
        frames = _frames(rng, shape, 3)
        ins = [frame_to_beats(f, li) for f in frames]
        outs = [frame_to_beats(f.reshape(1, -1, core.c_out), lo) for f in frames]
        jobs.append(job(n, {"i": ins}, outs, prefix=f"plumb_{n}_", last_bit=lo * 8, model=core.cycles_for(H * W)))
    assert [CONVERTERS_MODES[n] for n in CONVERTERS] == [_conv(*c).mode for c in CONVERTERS.values()]
    res = run_jobs(tmp_path, design, jobs)
    assert set(res) == {j["name"] for j in jobs}
