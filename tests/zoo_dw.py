"""A tiny MobileNetV2-style network with depthwise convolutions (issue 22), built with ``onnx.helper`` in QDQ form
(tests/badmodels.py's :class:`~badmodels.G`): power-of-two scales, so the golden model is exact.

:func:`mobilenet_v2_tiny`: input ``8x8x3`` -> stem conv 3x3 (3 -> ``c``) + ReLU6 -> inverted-residual block (expand
1x1 ``c -> e`` + ReLU6, depthwise 3x3 stride 1 + ReLU6, linear project 1x1 ``e -> c``, identity add) -> block with a
stride-2 depthwise 3x3 (no add) -> global average pool -> dense (10 classes). ReLU6 is ``Clip(0, 6)`` on an int8
activation at scale 1/16 (6.0 = 96); the add and the linear projections keep signed int8 at 1/16.
Used by tests/test_dw_plan.py (planning) and sim_tests/test_mobilenet.py (RTL end to end).
"""

from __future__ import annotations

import numpy as np
import onnx

import badmodels as B

ACT = 1 / 16  # every activation's scale (ReLU6: 6.0 = 96 fits int8)


class G(B.G):
    """badmodels.G with a scalar bias zero point (ONNX Runtime requires it with a scalar scale)."""

    def qb(self, b_int, scale):
        b = self.init(self.uid("b"), np.asarray(b_int, dtype=np.int32))
        s = self.init(self.uid("bs"), np.asarray(scale, dtype=np.float32))
        z = self.init(self.uid("bzp"), np.int32(0))
        return self.node("DequantizeLinear", [b, s, z])

    def relu6(self, x):
        lo = self.init(self.uid("lo"), np.float32(0.0))
        hi = self.init(self.uid("hi"), np.float32(6.0))
        return self.node("Clip", [x, lo, hi])

    def cbr(self, x, cin, cout, k=1, stride=1, group=1, relu6=True, in_scale=ACT, name=None, w_scale=1 / 64,
            pads=None):
        """conv (+ ReLU6) -> QuantizeLinear/DequantizeLinear at :data:`ACT` (``k``: int or ``(kh, kw)``; default pads
        ``(top, left, bottom, right) = ((kh-1)//2, (kw-1)//2, kh//2, kw//2)``, ONNX's order: same size at stride 1)."""
        kh, kw = (k, k) if isinstance(k, int) else k
        if pads is None:
            pads = [(kh - 1) // 2, (kw - 1) // 2, kh // 2, kw // 2]
        h = self.conv(x, cin, cout, k=k, stride=stride, pads=pads, group=group, in_scale=in_scale,
                      w_scale=w_scale, name=name)
        return self.q(self.relu6(h) if relu6 else h, ACT, 0, name=f"q_{name}")


def mobilenet_v2_tiny(hw: int = 8, c: int = 8, e: int = 16, seed: int = 0, dw_k=3,
                      dw_w_scale: float = 1 / 16) -> onnx.ModelProto:
    """The network of the module docstring (``hw x hw x 3`` input, ``c`` block channels, ``e`` expanded channels,
    depthwise kernels ``dw_k``: int or ``(kh, kw)``, any size, 'same'-like pads; ``dw_w_scale``: the depthwise
    weights' scale, a power of two for a pure-shift requantization, else a fixed-point multiplier)."""
    g = G(shape=(1, 3, hw, hw), seed=seed)
    x = g.q(g.x, 1 / 64, 0, name="q_in")
    x = g.cbr(x, 3, c, k=3, in_scale=1 / 64, name="stem", w_scale=1 / 32)
    # block 1: expand -> depthwise 3x3 s1 -> linear project -> identity add
    h = g.cbr(x, c, e, name="expand1", w_scale=1 / 16)
    h = g.cbr(h, e, e, k=dw_k, group=e, name="dw1", w_scale=dw_w_scale)
    h = g.cbr(h, e, c, relu6=False, name="project1", w_scale=1 / 32)
    x = g.q(g.add(h, x, name="add1"), ACT, 0, name="q_add1")
    # block 2: expand -> depthwise 3x3 s2 -> linear project (no add: the shape changes)
    h = g.cbr(x, c, e, name="expand2", w_scale=1 / 16)
    h = g.cbr(h, e, e, k=dw_k, stride=2, group=e, name="dw2", w_scale=dw_w_scale)
    h = g.cbr(h, e, e, relu6=False, name="project2", w_scale=1 / 32)
    p = g.q(g.gap(h), ACT, 0, name="q_gap")
    y = g.gemm(g.flatten(p), e, 10, in_scale=ACT, name="fc")
    g.output(g.q(y, 1 / 16, 0, name="q_fc"), [1, 10])
    return g.model()
