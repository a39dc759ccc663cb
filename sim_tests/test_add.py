# amaranth: UnusedElaboratable=no
"""Standalone residual add vs ``golden.run_add``: two input streams with independent random stalls, bit-exact,
back-to-back frames, reset mid-frame, throughput; multiplier and pure-shift alignment, ReLU, saturation, ties."""

import numpy as np

from frame_bench import job, register, run_jobs, shared_design
from rtlgen import golden, ir
from rtlgen.cores.add import AddCore
from rtlgen.cores.stream import frame_to_beats


def add_layer(shape, ma, mb, sh, relu=False, za=3, zb=-7, zo=-2, b_signed=False):
    aq = ir.QType(0.1, za, True)
    bq = ir.QType(0.1, zb, b_signed, lo=-128 if b_signed else 0, hi=127 if b_signed else 255)
    oq = ir.QType(0.1, zo, True, lo=zo if relu else -128, hi=127)
    return ir.Add("add", ["a", "b"], shape, shape, oq, a_q=aq, b_q=bq, ma=ma, mb=mb, sh=sh, zp_out=zo, relu=relu)


CFGS = {  # name -> (layer, lanes)
    "mult": (add_layer((3, 3, 5), 1 << 20, 3 << 19, 21, relu=True), 3),  # fixed-point alignment, ReLU, tail lane
    "shift": (add_layer((4, 2, 4), 2, 1, 1, za=0, zb=0, zo=0, b_signed=True), 2),  # pure shift: exact .5 ties
    "sat": (add_layer((2, 3, 3), 3, 5, 0), 1),  # no shift: saturates both ways
}
for _n, (_layer, _lanes) in CFGS.items():
    register("default", f"add_{_n}", lambda c=(_layer, _lanes): AddCore.from_layer(*c))


def test_add(tmp_path, tmp_path_factory):
    design = shared_design("default", tmp_path_factory)
    rng = np.random.default_rng(10)
    jobs = []
    for n, (layer, lanes) in CFGS.items():
        qa, qb = layer.a_q, layer.b_q
        As = [rng.integers(qa.lo, qa.hi + 1, size=layer.in_shape) for _ in range(3)]
        Bs = [rng.integers(qb.lo, qb.hi + 1, size=layer.in_shape) for _ in range(3)]
        As[1][...], Bs[1][...] = qa.hi, qb.hi
        exp = [golden.run_add(layer, a[None], b[None])[0] for a, b in zip(As, Bs)]
        core = AddCore.from_layer(layer, lanes)
        jobs.append(job(n, {"a": [frame_to_beats(a, lanes) for a in As], "b": [frame_to_beats(b, lanes) for b in Bs]},
                        [frame_to_beats(e, lanes) for e in exp], prefix=f"add_{n}_", last_bit=lanes * 8,
                        model=core.cycles_per_frame()))
    res = run_jobs(tmp_path, design, jobs)
    assert set(res) == set(CFGS)
