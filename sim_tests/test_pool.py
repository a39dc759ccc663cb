# amaranth: UnusedElaboratable=no
"""Pooling cores (windowed max/avg, global avg/max) vs ``golden.run_pool``, bit-exact, under random stalls, reset
mid-frame, back-to-back frames, and throughput vs the cycle model. One Verilator build per bundle of configurations.
Malformed framing: short frames (``last`` early, completed with the zero point) and a long frame (excess beats
dropped) between good frames, each giving exactly one full output frame.
"""

import numpy as np
import pytest

from frame_bench import build, fill_after, job, long_frame, register, run_jobs, shared_design, short_frame
from rtlgen import golden, ir
from rtlgen.cores.pool import PoolCore
from rtlgen.cores.stream import frame_to_beats


def pool_layer(shape, mode, k=(2, 2), s=(2, 2), pads=(0, 0, 0, 0), glob=False, signed=True, zp=0, m=(1,), sh=(0,),
               zpo=0, relu=False):
    q = ir.QType(0.1, zp, signed, lo=-128 if signed else 0, hi=127 if signed else 255)
    lo = zpo if relu else q.lo
    rq = ir.Requant(np.array(m, dtype=np.int64), np.array(sh, dtype=np.int64), zpo, lo, q.hi) if mode == "avg" else None
    H, W, C = shape
    return ir.Pool("pool", ["x"], shape, (1, 1, C), q, mode=mode, kernel=k, stride=s, pads=pads, is_global=glob,
                   in_q=q, requant=rq)


# name -> (layer, lanes)
DEFAULT = {
    # ResNet-stem style 3x3/2 pad 1 on an odd width (window closed in the right padding), non-dividing lanes
    "max3s2": (pool_layer((7, 6, 5), "max", (3, 3), (2, 2), (1, 1, 1, 1)), 2),
    "max2u": (pool_layer((4, 4, 3), "max", signed=False), 3),
    # overlapping 3x3/1 pad 1: virtual padding column AND row; per-channel multipliers; ReLU clamp; saturation
    "avg3s1": (pool_layer((5, 4, 3), "avg", (3, 3), (1, 1), (1, 1, 1, 1), signed=False, zp=7,
                          m=(3, 5, 7), sh=(2, 4, 6), zpo=3, relu=True), 2),
    # pure shift requant: sum / 4 has many exact .5 ties (half-to-even)
    "avg2": (pool_layer((4, 6, 4), "avg", m=(1,), sh=(2,), zp=-3, zpo=1), 4),
    "gavg": (pool_layer((4, 4, 8), "avg", glob=True, m=(1,), sh=(4,)), 4),
    "gavgm": (pool_layer((3, 3, 5), "avg", glob=True, m=(7456540,), sh=(26,), zp=2, zpo=-1), 2),
    "gmax": (pool_layer((3, 4, 5), "max", glob=True), 3),
    "wide1": (pool_layer((6, 1, 2), "max", (3, 1), (2, 1), (1, 0, 1, 0)), 1),  # 1-pixel-wide rows
}

SLOW = {
    f"k{k}s{s}p{p}l{lanes}{mode}": (pool_layer((9, 7, 6), mode, (k, k), (s, s), (p, p, p, p), m=(5,), sh=(k,),
                                               signed=(lanes % 2 == 0)), lanes)
    for k, s, p, lanes, mode in [
        (1, 1, 0, 1, "max"), (2, 1, 0, 4, "avg"), (3, 3, 1, 3, "max"), (5, 2, 2, 2, "avg"), (5, 1, 2, 1, "max"),
        (3, 2, 0, 6, "avg"), (4, 2, 1, 5, "max"), (2, 2, 1, 2, "avg"),
    ]
}
# asymmetric ("SAME"-style) padding on odd sizes, non-square kernel and stride
SLOW["same2"] = (pool_layer((7, 5, 3), "max", (2, 2), (2, 2), (0, 0, 1, 1)), 2)
SLOW["rect"] = (pool_layer((6, 9, 4), "avg", (3, 2), (2, 1), (1, 0, 1, 1), m=(3,), sh=(3,)), 4)


for _n, (_layer, _lanes) in DEFAULT.items():
    register("default", f"pool_{_n}", lambda layer=_layer, lanes=_lanes: PoolCore.from_layer(layer, lanes))


def _jobs(configs, nframes=3):
    rng = np.random.default_rng(0)
    jobs = []
    for n, (layer, lanes) in configs.items():
        q = layer.in_q
        xs = [rng.integers(q.lo, q.hi + 1, size=layer.in_shape) for _ in range(nframes)]
        xs[1][...] = q.hi  # saturation corner: a constant max-valued frame
        exp = [golden.run_pool(layer, x[None])[0] for x in xs]
        core = PoolCore.from_layer(layer, lanes)
        assert exp[0].shape == core.out_shape, n
        jobs.append(job(n, {"i": [frame_to_beats(x, lanes) for x in xs]}, [frame_to_beats(e, lanes) for e in exp],
                        prefix=f"pool_{n}_", last_bit=lanes * 8, model=core.cycles_per_frame()))
    return jobs


def _malformed_jobs(configs, seed=3):
    """Per config: good, short (random cut), good, long (random excess), good, 1-beat, good frames under pauses."""
    rng = np.random.default_rng(seed)
    jobs = []
    for n, (layer, lanes) in configs.items():
        q, lb = layer.in_q, lanes * 8
        xs = [rng.integers(q.lo, q.hi + 1, size=layer.in_shape) for _ in range(7)]
        nb = len(frame_to_beats(xs[0], lanes))
        ins, outs = [], []
        for j, x in enumerate(xs):
            w = frame_to_beats(x, lanes)
            if j in (1, 5):
                k = int(rng.integers(1, nb)) if j == 1 else 1
                w, x = short_frame(w, k, lb), fill_after(x, lanes, k, q.zero_point)
            elif j == 3:
                extra = [int(v) for v in rng.integers(0, 1 << lb, size=int(rng.integers(1, nb + 2)))]
                w = long_frame(w, extra, lb)
            ins.append(w)
            outs.append(frame_to_beats(golden.run_pool(layer, x[None])[0], lanes))
        jobs.append(job(f"{n}_malformed", {"i": ins}, outs, prefix=f"pool_{n}_", last_bit=lb, model=None,
                        reset_frame=None))
    return jobs


def test_pool(tmp_path, tmp_path_factory):
    res = run_jobs(tmp_path, shared_design("default", tmp_path_factory), _jobs(DEFAULT) + _malformed_jobs(DEFAULT))
    assert set(res) == set(DEFAULT)


@pytest.mark.slow
def test_pool_sweep(tmp_path):
    cores = {f"pool_{n}": PoolCore.from_layer(layer, lanes) for n, (layer, lanes) in SLOW.items()}
    res = run_jobs(tmp_path, build(tmp_path, cores, "pool_sweep"), _jobs(SLOW))
    assert set(res) == set(SLOW)
