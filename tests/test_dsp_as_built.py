"""The plan's DSP48E2 count per layer is what the layer's core builds (one source: ``rtlgen/plan/geometry.py``).

Every ``$mul`` cell Amaranth emits is DSP-sized (the MAC products, one per packed pair; the requant's and the
residual's partial products, split by ``pmul``; an average pool's constant or selected multiplier), and LUT
multipliers carry none, so the count of ``$mul`` cells in a core's RTLIL is the count of DSP48E2s yosys maps it to.
Found on MobileNetV1 @ Ultra96-V2 (yosys 365 DSPs against a plan of 358 on a 360-DSP part): the plan counted two
DSPs per requant lane whatever the accumulator width (one suffices below 19 bits) and none for the global average
pool's multipliers."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from amaranth.back import rtlil

import zoo_dw
import zoo_shapes
from rtlgen.cores.interface import PlanContext
from rtlgen.cores.registry import from_plan
from rtlgen.flow import Design
from rtlgen.plan import geometry


def _muls(core) -> int:
    return len(re.findall(r"^\s*cell \$mul ", rtlil.convert(core), re.M))


def _check_plan_is_built(d):
    plan = d.plan()
    ctx = PlanContext.of(d.net, plan)
    checked = 0
    for lay in d.net.layers:
        if lay.name in ctx.topo.merged:
            continue
        lp = ctx.plans[lay.name]
        want = lp.dsp + sum(ctx.plans[p].dsp for h, p in ctx.topo.proj_of.items() if h == lay.name)
        assert _muls(from_plan(lay, lp, ctx)) == want, lay.name
        checked += want > 0
    assert checked, "no layer with DSPs checked"


@pytest.mark.parametrize("board", ["kv260", "ultra96v2"])
def test_mobilenet_v2_dsps_as_built(board):
    _check_plan_is_built(Design.load(zoo_dw.mobilenet_v2_tiny(), board=board))


def test_ds_cnn_with_average_pool_dsps_as_built():
    d = Design.load(zoo_shapes.ds_cnn(H=12, W=6, c=16, blocks=2, classes=4), board="ultra96v2")
    assert any(lay.kind == "global_avgpool" for lay in d.net.layers)
    _check_plan_is_built(d)


def test_dense_only_dsps_as_built():
    _check_plan_is_built(Design.load(zoo_shapes.mlp(), board="kv260"))


@pytest.mark.parametrize("bias_bits,res", [(4, False), (14, False), (20, False), (20, True)])
def test_requant_dsps_as_built_across_the_accumulator_width(bias_bits, res):
    """Float-scale multipliers (per-channel shifts, not powers of two) and biases that take the bias sum below and
    above 18 bits: the planner's count follows the built requant of every conv, depthwise and dense layer of a small
    MobileNetV2, and of ResNet8's convs with a merged residual add (their ``skip x res_m`` products too)."""
    from rtlgen.plan import cost

    d = Design.load("resnet8" if res else zoo_dw.mobilenet_v2_tiny(), board="kv260")
    plan = d.plan()
    ctx = PlanContext.of(d.net, plan)
    rng = np.random.default_rng(bias_bits)
    picked = [lay for lay in d.net.layers if lay.kind in ("conv", "dense") and lay.name not in ctx.topo.merged
              and (getattr(lay, "residual", None) is not None) == res]
    assert picked
    for lay in picked:
        O = lay.weights.shape[0]
        lay.requant = dataclasses.replace(lay.requant, m=rng.integers(1 << 20, 1 << 22, O),
                                          sh=rng.integers(28, 31, O))
        lay.bias = rng.integers(-(1 << bias_bits), 1 << bias_bits, O)
        if res:
            lay.res_m = rng.integers(3, 1 << 12, O) | 1
        lp = ctx.plans[lay.name]
        lanes_in = lp.ich_par
        if lay.kind == "dense":
            _, r = cost.conv_config_cost(lay, lp.och_par, lp.ich_par, 1, False, lp.mult, lp.storage, lanes_in)
        elif geometry.is_depthwise(lay):
            _, r = cost.dwconv_config_cost(lay, lp.och_par, lp.pix_par, lp.packing, lp.mult, lp.storage, lanes_in,
                                           lp.tap_par)
        else:
            _, r = cost.conv_config_cost(lay, lp.och_par, lp.ich_par, lp.pix_par, lp.packing, lp.mult, lp.storage,
                                         lanes_in, lp.tap_par)
        assert _muls(from_plan(lay, lp, ctx)) == r["dsp"], lay.name


def test_requant_lane_dsp_follows_the_accumulator_width():
    m = [3 << 20]  # a 22-bit multiplier that is not a power of two
    assert geometry.requant_lane_dsp(18, m) == 1  # 18 x 23 bits: one DSP48E2
    assert geometry.requant_lane_dsp(19, m) == 2  # 19 x 23: split in 17-bit pieces
    assert geometry.requant_lane_dsp(40, m) == 3
    assert geometry.requant_lane_dsp(40, [1 << 5, 1 << 9]) == 0  # powers of two: shifts
    assert geometry.requant_lane_dsp(18, m, res_m=[5]) == 2  # + the residual's (skip - zp) x res_m


def test_requant_fold_keeps_a_barrel_shift_unless_every_multiplier_is_a_power_of_two():
    assert geometry.requant_fold([4, 8], [3, 5]) == ([16, 8], None, None)
    assert geometry.requant_fold([3, 8], [3, 5]) == ([3, 8], None, [2, 0])
    assert geometry.requant_fold([4, 8], [3, 5], res_m=[3, 3]) == ([4, 8], [3, 3], [2, 0])
    assert geometry.requant_fold([5], [7]) == ([5], None, None)


def test_const_mul_dsp_matches_const_mul():
    from amaranth.hdl import Module, Signal, signed

    from rtlgen.cores.arith import const_mul

    for k in (0, 1, 8, 12, 0x0B72D1B, 7, 1 << 20 | 1):
        m = Module()
        x, y = Signal(signed(14)), Signal(signed(40))
        m.d.comb += y.eq(const_mul(x, k))
        text = rtlil.convert(m, ports=[x, y])
        assert len(re.findall(r"cell \$mul ", text)) == geometry.const_mul_dsp(k, 14), k


def test_avg_pool_dsp_per_lane():
    # 4 lanes over 6 channels: lane 0 carries channels 0 and 4, lane 1 channels 1 and 5, lanes 2-3 one channel and
    # a padding channel (multiplier 1)
    m = [3, 3, 8, 8, 3, 5]
    assert geometry.avg_pool_dsp(4, 6, m, 14) == 0 + 1 + 1 + 1  # lane 0: 3 = two set bits, shift + add
    assert geometry.avg_pool_dsp(2, 2, [1 << 4, 1 << 4], 14) == 0
    assert geometry.avg_pool_dsp(1, 1, np.array([0x0B72D1B]), 14) == 1
