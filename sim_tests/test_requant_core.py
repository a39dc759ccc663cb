# amaranth: UnusedElaboratable=no
"""Elementwise requant core vs ``golden.run_requant``: random stalls, back-to-back frames, reset mid-frame, throughput;
fixed-point multiplier, pure clamp (ReLU on a quantized activation), ties, tail lanes."""

import numpy as np

from frame_bench import job, register, run_jobs, shared_design
from rtlgen import golden, ir
from rtlgen.cores.requant_core import RequantCore
from rtlgen.cores.stream import frame_to_beats


def rq_layer(shape, m, sh, zi, zo, lo, hi, in_signed=True):
    iq = ir.QType(0.1, zi, in_signed, lo=-128 if in_signed else 0, hi=127 if in_signed else 255)
    oq = ir.QType(0.05, zo, True, lo=lo, hi=hi)
    return ir.Requantize("rq", ["x"], shape, shape, oq, in_q=iq, m=m, sh=sh)


CFGS = {  # name -> (layer, lanes)
    "mult": (rq_layer((3, 3, 5), 11184811, 23, 4, -3, -128, 127), 2),  # ~4/3 fixed-point, tail lane
    "tie": (rq_layer((2, 4, 4), 1, 1, 0, 0, -128, 127), 4),  # halves: exact ties, half-to-even
    "relu": (rq_layer((4, 2, 3), 1, 0, -5, -5, -5, 127), 3),  # pure clamp at the zero point
}
for _n, (_layer, _lanes) in CFGS.items():
    register("default", f"rq_{_n}", lambda c=(_layer, _lanes): RequantCore.from_layer(*c))


def test_requant_core(tmp_path, tmp_path_factory):
    design = shared_design("default", tmp_path_factory)
    rng = np.random.default_rng(3)
    jobs = []
    for n, (layer, lanes) in CFGS.items():
        q = layer.in_q
        X = [rng.integers(q.lo, q.hi + 1, size=layer.in_shape) for _ in range(3)]
        X[1][...] = q.hi
        exp = [golden.run_requant(layer, x[None])[0].astype(np.int64) for x in X]
        core = RequantCore.from_layer(layer, lanes)
        jobs.append(job(n, {"i": [frame_to_beats(x, lanes) for x in X]}, [frame_to_beats(e, lanes) for e in exp],
                        prefix=f"rq_{n}_", last_bit=lanes * 8, model=core.cycles_per_frame()))
    res = run_jobs(tmp_path, design, jobs)
    assert set(res) == set(CFGS)
