# amaranth: UnusedElaboratable=no
"""Option-A shortcut (stride-s subsample + zero-point channel padding) vs ``golden.run_shortcut_a``: bit-exact under
random stalls, back-to-back frames, reset mid-frame, throughput vs the cycle model; short frames (``last`` early,
completed with the pad value) and a long frame (excess dropped) between good frames."""

import numpy as np
import pytest

from frame_bench import build, fill_after, job, long_frame, register, run_jobs, shared_design, short_frame
from rtlgen import golden, ir
from rtlgen.cores.shortcut_a import ShortcutACore
from rtlgen.cores.stream import frame_to_beats


def sc_layer(shape, s, pb, pa, pv):
    H, W, C = shape
    return ir.ShortcutA("sc", ["x"], shape, (-(-H // s), -(-W // s), C + pb + pa), ir.QType(0.1, pv, True),
                        stride=s, pad_before=pb, pad_after=pa, pad_value=pv)


CFGS = {  # name -> (layer, lanes_in, lanes_out)
    "s2": (sc_layer((4, 4, 3), 2, 1, 2, -5), 1, 1),
    "odd": (sc_layer((5, 5, 4), 2, 2, 2, 3), 2, 3),  # odd H, W: the frame ends on dropped pixels
    "after": (sc_layer((5, 3, 6), 2, 0, 6, 0), 3, 4),
    "s1": (sc_layer((3, 3, 2), 1, 3, 0, 7), 2, 2),
    "w1": (sc_layer((4, 1, 2), 2, 1, 1, -1), 2, 2),  # 1-pixel-wide rows
}
for _n, _c in CFGS.items():
    register("default", f"sc_{_n}", lambda c=_c: ShortcutACore.from_layer(*c))


def _jobs(cfgs, rng):
    jobs = []
    for n, (layer, li, lo) in cfgs.items():
        xs = [rng.integers(-128, 128, size=layer.in_shape) for _ in range(3)]
        exp = [golden.run_shortcut_a(layer, x[None])[0] for x in xs]
        core = ShortcutACore.from_layer(layer, li, lo)
        assert exp[0].shape == core.out_shape
        jobs.append(job(n, {"i": [frame_to_beats(x, li) for x in xs]}, [frame_to_beats(e, lo) for e in exp],
                        prefix=f"sc_{n}_", last_bit=lo * 8, model=core.cycles_per_frame()))
    return jobs


def _malformed_jobs(cfgs, rng):
    """Per config: good, short (random cut), good, long (random excess), good, 1-beat, good frames under pauses."""
    jobs = []
    for n, (layer, li, lo) in cfgs.items():
        xs = [rng.integers(-128, 128, size=layer.in_shape) for _ in range(7)]
        nb = len(frame_to_beats(xs[0], li))
        ins, outs = [], []
        for j, x in enumerate(xs):
            w = frame_to_beats(x, li)
            if j in (1, 5):
                k = int(rng.integers(1, nb)) if j == 1 else 1
                w, x = short_frame(w, k, li * 8), fill_after(x, li, k, layer.pad_value)
            elif j == 3:
                w = long_frame(w, [int(v) for v in rng.integers(0, 1 << (li * 8), size=int(rng.integers(1, nb + 2)))],
                               li * 8)
            ins.append(w)
            outs.append(frame_to_beats(golden.run_shortcut_a(layer, x[None])[0], lo))
        jobs.append(job(f"{n}_malformed", {"i": ins}, outs, prefix=f"sc_{n}_", last_bit=lo * 8, model=None,
                        reset_frame=None))
    return jobs


def test_shortcut_a(tmp_path, tmp_path_factory):
    rng = np.random.default_rng(12)
    res = run_jobs(tmp_path, shared_design("default", tmp_path_factory), _jobs(CFGS, rng) + _malformed_jobs(CFGS, rng))
    assert set(res) == set(CFGS)


SLOW = {
    "s3": (sc_layer((7, 8, 5), 3, 4, 3, 2), 4, 1),
    "wide": (sc_layer((6, 6, 16), 2, 8, 8, -3), 4, 8),
    "l1to5": (sc_layer((5, 4, 3), 2, 5, 0, 9), 1, 5),
    "big": (sc_layer((9, 7, 7), 2, 1, 0, -128), 3, 3),
}


@pytest.mark.slow
def test_shortcut_a_sweep(tmp_path):
    cores = {f"sc_{n}": ShortcutACore.from_layer(*c) for n, c in SLOW.items()}
    res = run_jobs(tmp_path, build(tmp_path, cores, "shortcut_sweep"), _jobs(SLOW, np.random.default_rng(13)))
    assert set(res) == set(SLOW)
