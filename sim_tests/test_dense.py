# amaranth: UnusedElaboratable=no
"""Dense core (vs ``golden.run_dense``) and argmax core (vs ``numpy.argmax``): bit-exact under random stalls,
back-to-back frames, reset mid-frame, throughput vs the cycle model. One Verilator build for all configurations.
"""

import numpy as np
import pytest

from frame_bench import build, job, register, run_jobs, shared_design
from rtlgen import golden, ir
from rtlgen.cores.argmax import ArgmaxCore
from rtlgen.cores.dense import DenseCore
from rtlgen.cores.pool import PoolCore
from rtlgen.cores.stream import frame_to_beats


def dense_layer(rng, in_shape, O, *, signed=True, zp=0, req="mult", relu=False, wmax=False):
    H, W, C = in_shape
    N = H * W * C
    q = ir.QType(0.1, zp, signed, lo=-128 if signed else 0, hi=127 if signed else 255)
    w = np.full((O, N), -128) if wmax else rng.integers(-128, 128, size=(O, N))
    b = rng.integers(-5000, 5000, size=O)
    if req is None:
        rq, oq = None, None
    else:
        if req == "mult":  # per-channel fixed-point multipliers
            m, sh = rng.integers(1 << 20, 1 << 23, size=O), rng.integers(27, 31, size=O)
        else:  # pure shift, small: many exact rounding ties, and saturation
            m, sh = np.ones(O, dtype=np.int64), rng.integers(1, 4, size=O)
        zpo = -3
        rq = ir.Requant(m, sh, zpo, zpo if relu else -128, 127)
        oq = ir.QType(0.1, zpo, True)
    return ir.Dense("fc", ["x"], in_shape, (1, 1, O), oq, weights=w, bias=b, requant=rq, in_q=q, relu=relu)


def _configs(rng):
    # name -> (layer, lanes_in, och_par, ich_par, lanes_out, mult); mult "lut": cores/arith.py lut_mul multipliers
    return {
        "mult": (dense_layer(rng, (1, 1, 8), 5), 2, 2, 3, 1, "dsp"),  # non-dividing och/ich parallelism
        "flat": (dense_layer(rng, (2, 2, 3), 7, signed=False, zp=5, req="shift", relu=True), 2, 3, 2, 2, "lut"),
        # max-magnitude weights, int32 out, LUT multipliers
        "raw": (dense_layer(rng, (1, 1, 6), 4, req=None, wmax=True), 3, 4, 6, 4, "lut"),
        "seq": (dense_layer(rng, (1, 1, 5), 10, req=None), 1, 1, 1, 3, "dsp"),
    }


CFGS = _configs(np.random.default_rng(3))
ARGMAX = {"am8": (10, 3, 8), "am32": (7, 2, 32), "am1": (5, 1, 8)}  # classes, lanes, width
for _n, (_layer, _li, _po, _pi, _lo, _mu) in CFGS.items():
    register("default", f"dense_{_n}", lambda c=(_layer, _li, _po, _pi, _lo), mu=_mu: DenseCore.from_layer(*c, mult=mu))
for _n, _a in ARGMAX.items():
    register("default", f"argmax_{_n}", lambda a=_a: ArgmaxCore(*a, True))


def _dense_jobs(cfgs, rng, prefix):
    jobs = []
    for n, (layer, li, po, pi, lo, mu) in cfgs.items():
        q = layer.in_q
        xs = [rng.integers(q.lo, q.hi + 1, size=layer.in_shape) for _ in range(4)]
        xs[1][...] = q.lo  # extreme inputs: with max-magnitude weights, the largest accumulators
        exp = [golden.run_dense(layer, x[None])[0] for x in xs]
        core = DenseCore.from_layer(layer, li, po, pi, lo, mult=mu)
        ow = core.out_width
        jobs.append(job(n, {"i": [frame_to_beats(x, li) for x in xs]}, [frame_to_beats(e, lo, ow) for e in exp],
                        prefix=f"{prefix}{n}_", last_bit=lo * ow, model=core.cycles_per_frame()))
    return jobs


def test_dense(tmp_path, tmp_path_factory):
    design = shared_design("default", tmp_path_factory)
    res = run_jobs(tmp_path, design, _dense_jobs(CFGS, np.random.default_rng(4), "dense_"))
    assert set(res) == set(CFGS)


def test_argmax(tmp_path, tmp_path_factory):
    design = shared_design("default", tmp_path_factory)
    rng = np.random.default_rng(5)
    jobs = []
    for n, (k, lanes, width) in ARGMAX.items():
        core = ArgmaxCore(k, lanes, width, True)
        lo_, hi_ = -(1 << (width - 1)), (1 << (width - 1)) - 1
        frames = [rng.integers(lo_, hi_ + 1, size=(1, 1, k)) for _ in range(4)]
        frames[1][...] = 5  # all tied: index 0
        frames[2] = rng.integers(-2, 2, size=(1, 1, k))  # many ties
        frames[3][0, 0, -1] = hi_  # maximum in the last (tail) lane
        iw = core.index_width
        exp = [[int(np.argmax(f.reshape(-1))) | (1 << iw)] for f in frames]
        jobs.append(job(n, {"i": [frame_to_beats(f, lanes, width) for f in frames]}, exp, prefix=f"argmax_{n}_",
                        last_bit=iw, model=core.cycles_per_frame()))
    res = run_jobs(tmp_path, design, jobs)
    assert set(res) == set(ARGMAX)


@pytest.mark.slow
def test_dense_sweep(tmp_path):
    rng = np.random.default_rng(9)
    cfgs = {}
    for k, (shape, O, li, po, pi, lo) in enumerate([((1, 1, 64), 10, 4, 10, 8, 2), ((1, 1, 64), 10, 8, 3, 7, 1),
                                                     ((4, 4, 4), 13, 4, 5, 16, 3), ((1, 1, 17), 1, 1, 1, 1, 1)]):
        mu = ["dsp", "lut", "dsp", "lut"][k]
        cfgs[f"s{k}"] = (dense_layer(rng, shape, O, req=["mult", "shift", None, "mult"][k]), li, po, pi, lo, mu)
    cores = {f"dense_{n}": DenseCore.from_layer(*c[:5], mult=c[5]) for n, c in cfgs.items()}
    res = run_jobs(tmp_path, build(tmp_path, cores, "dense_sweep"), _dense_jobs(cfgs, rng, "dense_"))
    assert set(res) == set(cfgs)


# -- the head of the bundled ResNet20 (imported IR layers, realistic activations from the golden model) ---------------


def _resnet20():
    from pathlib import Path

    import rtlgen
    from rtlgen.frontend import load_model

    path = Path(rtlgen.__file__).parent / "models" / "resnet20.onnx"
    return load_model(path) if path.exists() else None


try:
    NET = _resnet20()
except Exception:  # the importer is developed concurrently: the head test is skipped if it cannot load the model
    NET = None
if NET is not None:
    _gap = next(lay for lay in NET.layers if isinstance(lay, ir.Pool))
    _fc = next(lay for lay in NET.layers if isinstance(lay, ir.Dense))
    register("default", "head_gap", lambda: PoolCore.from_layer(_gap, 16))
    register("default", "head_fc", lambda: DenseCore.from_layer(_fc, lanes_in=16, och_par=4, ich_par=16, lanes_out=2))
    register("default", "head_am", lambda: ArgmaxCore(_fc.out_shape[2], 2, DenseCore.from_layer(_fc).out_width, True))


@pytest.mark.skipif(NET is None, reason="bundled resnet20.onnx not importable")
def test_resnet20_head(tmp_path, tmp_path_factory):
    design = shared_design("default", tmp_path_factory)
    rng = np.random.default_rng(20)
    pixels = rng.integers(0, 256, size=(3, 32, 32, 3)).astype(np.uint8)
    vals = golden.run(NET, pixels, return_all=True)
    gap_in = vals[_gap.inputs[0]]
    gap_out, fc_out = vals[_gap.name], vals[_fc.name]
    fc_core = DenseCore.from_layer(_fc, lanes_in=16, och_par=4, ich_par=16, lanes_out=2)
    ow = fc_core.out_width
    am = ArgmaxCore(_fc.out_shape[2], 2, ow, True)
    jobs = [
        job("gap", {"i": [frame_to_beats(x, 16) for x in gap_in]}, [frame_to_beats(y, 16) for y in gap_out],
            prefix="head_gap_", last_bit=16 * 8, model=PoolCore.from_layer(_gap, 16).cycles_per_frame()),
        job("fc", {"i": [frame_to_beats(x, 16) for x in gap_out]}, [frame_to_beats(y, 2, ow) for y in fc_out],
            prefix="head_fc_", last_bit=2 * ow, model=fc_core.cycles_per_frame()),
        job("argmax", {"i": [frame_to_beats(y, 2, ow) for y in fc_out]},
            [[int(np.argmax(y.reshape(-1))) | (1 << am.index_width)] for y in fc_out], prefix="head_am_",
            last_bit=am.index_width, model=am.cycles_per_frame()),
    ]
    res = run_jobs(tmp_path, design, jobs)
    assert set(res) == {"gap", "fc", "argmax"}
    # the argmax of the integer logits is the golden prediction
    assert [int(np.argmax(y.reshape(-1))) for y in fc_out] == list(golden.predict(NET, pixels))
