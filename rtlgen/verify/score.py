"""The result of a simulation run, scored against the golden model: the one result dict of ``rtlgen sim`` (both
engines: :func:`rtlgen.verify.harness.run_regression` and the cocotb bench of :func:`rtlgen.verify.sim.run_sim`)."""

from __future__ import annotations

import math

import numpy as np

from .. import golden
from ..figures import fps


def result(net, rep: dict, got: np.ndarray, expect: np.ndarray, cpf: float, latency: int, stall: float, seconds: dict,
           labels=None, **extra) -> tuple[dict, np.ndarray]:
    """``(result dict, indices of the mismatching frames)``: images, mismatches, top-1 (with ``labels``), measured
    cycles per frame (``cpf``, NaN when unmeasured), latency, FPS at the build's clock, the prediction, ``stall``,
    ``seconds``, then ``extra`` (engine details), and the first mismatch where there is one."""
    mism = np.nonzero(np.any(got != expect, axis=1))[0]
    out = {
        "images": int(len(got)),
        "mismatches": int(len(mism)),
        "top1": None,
        "cycles_per_frame": int(round(cpf)) if not math.isnan(cpf) else None,
        "latency_cycles": latency,
        "fps_at_clock": fps(rep["clock_mhz"], cpf) if not math.isnan(cpf) else None,
        "predicted_cycles_per_frame": rep["cycles_per_frame"],
        "stall": stall,
        "seconds": seconds,
        **extra,
    }
    if labels is not None:
        logits = golden.logits(net, got)
        out["top1"] = float(np.mean(np.argmax(logits, axis=1) == labels))
    if len(mism):
        f = int(mism[0])
        out["first_mismatch_frame"] = f
        out["first_mismatch"] = {"expected": expect[f].tolist(), "got": got[f].tolist()}
    return out, mism
