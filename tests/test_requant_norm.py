"""RequantStage's one constant rounding shift: per-channel shifts sh[o] become S = max(sh) with a left shift
S - sh[o] before rounding, folded into power-of-two multipliers or a barrel-shift stage of its own. The identity
rshift_round(v * m, sh) == rshift_round((v * m) << (S - sh), S) holds for every rounding mode (the same rational
value); the RTL's bit-exactness is checked by sim_tests/test_conv.py (per-channel shifts, tie channels, residuals)."""

import numpy as np
import pytest

from rtlgen.cores.requant import RequantStage
from rtlgen.quant import ROUNDING_MODES, rshift_round


@pytest.mark.parametrize("mode", ROUNDING_MODES)
def test_left_shift_then_constant_shift_is_the_same_rounding(mode):
    rng = np.random.default_rng(3)
    v = np.concatenate([np.arange(-4096, 4096), rng.integers(-(1 << 40), 1 << 40, 20000)]).astype(np.int64)
    for sh in range(0, 12):
        for S in range(sh, sh + 5):
            assert np.array_equal(rshift_round(v, sh, mode), rshift_round(v << (S - sh), S, mode)), (mode, sh, S)


def _stage(m, sh, **kw):
    C = len(m)
    return RequantStage(lanes=2, channels=C, acc_range=(-1000, 1000), bias=np.zeros(C, dtype=np.int64), m=m, sh=sh,
                        zp_out=0, lo=0, hi=127, beats_per_frame=8, **kw)


def test_power_of_two_multipliers_absorb_the_per_channel_shift():
    st = _stage(np.array([1, 2, 4, 1]), np.array([5, 7, 6, 5]))
    assert st.ls is None and set(st.sh) == {7}
    assert list(st.m[:4]) == [1 << 2, 2 << 0, 4 << 1, 1 << 2]
    assert st.f["sh"].uniform and st.m_shift


def test_multipliers_get_a_left_shift_stage():
    plain = _stage(np.array([3, 5, 7, 9]), np.array([4, 4, 4, 4]))
    st = _stage(np.array([3, 5, 7, 9]), np.array([4, 6, 5, 4]))
    assert plain.ls is None and list(st.ls[:4]) == [2, 0, 1, 2] and set(st.sh) == {6}
    assert st.pipe_depth == plain.pipe_depth + 1 and st.latency == plain.latency + 1


def test_residual_shift_multipliers_move_together():
    st = _stage(np.array([1, 2]), np.array([3, 4]), res_m=np.array([2, 1]), res_zp=0)
    assert st.ls is None and list(st.m[:2]) == [2, 2] and list(st.res_m[:2]) == [4, 1] and st.r_shift
