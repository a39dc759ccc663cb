# amaranth: UnusedElaboratable=no
"""Input stage (uint8 pixels -> per-channel table) vs ``golden.run_input``: bit-exact under random stalls,
back-to-back frames, reset mid-frame, throughput vs the cycle model."""

import numpy as np

from frame_bench import job, register, run_jobs, shared_design
from rtlgen import golden, ir
from rtlgen.cores.input_stage import InputStageCore
from rtlgen.cores.stream import frame_to_beats


def input_layer(rng, shape, signed):
    C = shape[2]
    t = rng.integers(-128, 128, size=(C, 256)) if signed else rng.integers(0, 256, size=(C, 256))
    return ir.InputStage("input", [], shape, shape, ir.QType(0.1, 0, signed), table=t)


_rng = np.random.default_rng(7)
CFGS = {  # name -> (layer, lanes)
    "rgb3": (input_layer(_rng, (4, 5, 3), True), 3),  # one RGB pixel per beat
    "rgb1": (input_layer(_rng, (3, 4, 3), False), 1),  # one channel per beat, uint8 output
    "rgb2": (input_layer(_rng, (3, 2, 3), True), 2),  # non-dividing: a 1-value tail beat per pixel
}
for _n, (_layer, _lanes) in CFGS.items():
    register("default", f"input_{_n}", lambda c=(_layer, _lanes): InputStageCore.from_layer(*c))


def test_input_stage(tmp_path, tmp_path_factory):
    design = shared_design("default", tmp_path_factory)
    rng = np.random.default_rng(8)
    jobs = []
    for n, (layer, lanes) in CFGS.items():
        px = [rng.integers(0, 256, size=layer.in_shape).astype(np.uint8) for _ in range(3)]
        px[1][...] = 255
        px[2][0, 0, :] = 0
        exp = [golden.run_input(layer, p[None])[0] for p in px]
        core = InputStageCore.from_layer(layer, lanes)
        jobs.append(job(n, {"i": [frame_to_beats(p.astype(np.int64), lanes) for p in px]},
                        [frame_to_beats(e, lanes) for e in exp], prefix=f"input_{n}_", last_bit=lanes * 8,
                        model=core.cycles_per_frame()))
    res = run_jobs(tmp_path, design, jobs)
    assert set(res) == set(CFGS)


def _resnet20_input():
    from pathlib import Path

    import rtlgen
    from rtlgen.frontend import load_model

    path = Path(rtlgen.__file__).parent / "models" / "resnet20.onnx"
    return load_model(path).input if path.exists() else None


try:
    INPUT = _resnet20_input()
except Exception:  # the importer is developed concurrently: skipped if it cannot load the model
    INPUT = None
if INPUT is not None:
    register("default", "input_r20", lambda: InputStageCore.from_layer(INPUT, 3))


def test_resnet20_input_stage(tmp_path, tmp_path_factory):
    """The imported input table of the bundled ResNet20 on a 32x32 RGB image stream (one pixel per beat)."""
    import pytest

    if INPUT is None:
        pytest.skip("bundled resnet20.onnx not importable")
    design = shared_design("default", tmp_path_factory)
    rng = np.random.default_rng(21)
    px = [rng.integers(0, 256, size=(32, 32, 3)).astype(np.uint8) for _ in range(2)]
    exp = [golden.run_input(INPUT, p[None])[0] for p in px]
    core = InputStageCore.from_layer(INPUT, 3)
    res = run_jobs(tmp_path, design, [job("r20", {"i": [frame_to_beats(p.astype(np.int64), 3) for p in px]},
                                          [frame_to_beats(e, 3) for e in exp], prefix="input_r20_", last_bit=24,
                                          model=core.cycles_per_frame(), tp_frames=3)])
    assert set(res) == {"r20"}
