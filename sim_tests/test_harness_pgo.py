"""The profile-guided harness build (``rtlgen.verify.harness.build_harness(pgo=True)``, issue 20 simulator speed) on a small
network built with ``rtlgen build``: instrumented compile, training run (profile files written), optimised compile;
the result is bit-exact with the golden model and gives the same outputs, cycle stamps and cycle counts as the plain
build, with and without stalls. Opt-in (``--runslow``): three harness compiles, minutes on the shared machine."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from rtlgen.cli import main  # noqa: E402


@pytest.mark.slow
def test_pgo_harness_same_results_as_plain(tmp_path):
    import zoo

    from rtlgen import golden
    from rtlgen.verify import harness as regress

    m = zoo.brevitas_resnet(tmp_path, "qonnx", seed=3, with_metadata=True)
    out = tmp_path / "build"
    r = CliRunner().invoke(main, ["build", str(m.path), "--board", "ultra96v2", "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    plain = regress.build_harness(out, info=True, log=False)
    pgo = regress.build_harness(out, info=True, log=False, pgo=True, mdir=out / "sim_build" / "harness_pgo")
    assert list((out / "sim_build" / "harness_pgo").glob("*.gcda")), "the training run wrote no profile"
    assert "-fprofile-use" in (out / "sim_build" / "harness_pgo" / "build.log").read_text()
    net, rep, man = regress.load_design(out)
    px = np.random.default_rng(4).integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    words = regress.input_words(px, man)
    expect = golden.run(net, px)
    for stall in (0.0, 0.3):
        a, b = (regress.run_harness(h.exe, words, man, rep["cycles_per_frame"], stall=stall, seed=5, shards=1,
                                    progress=lambda k: None)[0] for h in (plain, pgo))
        for k in ("outs", "first_in", "last_out"):
            assert np.array_equal(a[k], b[k]), (stall, k)
        assert a["cycles"] == b["cycles"] and not b["timeout"]
        got = regress.decode_output_words(b["outs"], man, len(px))
        assert np.array_equal(got, expect), stall
    # a second call reuses the cached profile-guided build
    again = regress.build_harness(out, info=True, log=False, pgo=True, mdir=out / "sim_build" / "harness_pgo")
    assert again.seconds is None
