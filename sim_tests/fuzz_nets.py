"""Random small residual networks for the fuzz tests (``sim_tests/test_fuzz.py``).

A network is described by a JSON-able *spec* (drawn by the hypothesis strategy :func:`spec_strategy`, or read back
from ``sim_tests/regressions/*.json``) and built deterministically from it:

* :func:`onnx_model` writes a QDQ ONNX graph with ``onnx.helper`` (float NCHW input -> QuantizeLinear, int8 weights
  behind DequantizeLinear, int32 biases, Conv / residual Add / Relu / MaxPool / AveragePool / GlobalAveragePool /
  option-A Slice+Pad / Flatten+Gemm, QuantizeLinear after every MAC layer), which :func:`rtlgen.frontend.load_model`
  turns into the integer IR. Scales are all powers of two (``spec["scales"] == "pow2"``: pure shift requants) or
  arbitrary floats with per-channel weight scales (``"float"``: 24-bit fixed-point multipliers).
* :func:`random_plan` then gives every conv/dense layer a random legal configuration (``och_par``, ``ich_par``,
  ``pix_par``, ``packing``, ``storage``, ``mult``, ``fifo_depth``), re-costed with :func:`rtlgen.plan.search.recost`,
  redrawn (towards more parallelism) while the predicted cycles per frame exceed a bound so simulations stay short.

Blocks (``spec["blocks"]``), each on the current activation ``x`` (``C`` channels, ``H x W``):

* ``plain``: conv ``k``/``s`` (+ReLU).
* ``identity``: conv k/1 + ReLU -> conv k/1, + x (merged residual or a standalone quantized Add), ReLU.
* ``proj``: conv k/s + ReLU -> conv k/1, + Q(conv1x1/s(x)) (projection shortcut).
* ``optA``: conv k/s + ReLU -> conv k/1, + Pad_channels(x[:, :, ::s, ::s]) (option-A shortcut, zero padding).
* ``maxpool`` / ``avgpool``: 2x2/2 (or 3x3/2 pad 1 max) pooling.
* ``requant``: DequantizeLinear -> QuantizeLinear to another scale (elementwise requant layer).

Head: optional global average/max pool, Flatten, Gemm (quantized 8-bit output, or raw int32 accumulators).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

KINDS = ("plain", "identity", "proj", "optA", "maxpool", "avgpool", "requant")


# ----------------------------------------------------------------------------------------------------------------
# spec strategy (hypothesis)


#: spec ranges: the issue's full ranges (opt-in run) and a smaller profile for the default run (Verilator's C++
#: compile time grows with the generated code, dominated by weight ROMs and lane converters)
PROFILES = {
    "full": {"hw": (4, 16), "c": (1, 24), "blocks": 4},
    "small": {"hw": (4, 8), "c": (1, 8), "blocks": 2},
}


def spec_strategy(profile: str = "full"):
    """hypothesis strategy of network specs (plain dicts)."""
    from hypothesis import strategies as st

    pr = PROFILES[profile]
    block = st.fixed_dictionaries({
        "kind": st.sampled_from(KINDS),
        "k": st.sampled_from([1, 3, 5]),
        "s": st.sampled_from([1, 2]),
        "c": st.integers(*pr["c"]),
        "merge": st.booleans(),  # residual: merged into the conv (True) or a standalone quantized Add
        "relu": st.booleans(),
    })
    return st.fixed_dictionaries({
        "H": st.integers(*pr["hw"]),
        "W": st.integers(*pr["hw"]),
        "blocks": st.lists(block, min_size=1, max_size=pr["blocks"]),
        "scales": st.sampled_from(["pow2", "float"]),
        "in_signed": st.booleans(),
        "head": st.sampled_from(["gap", "gmp", "flatten", "none"]),
        "classes": st.integers(1, 12),
        "raw_out": st.booleans(),
        "seed": st.integers(0, 2**31 - 1),
    })


def structure_key(spec: dict) -> str:
    return json.dumps([spec["H"], spec["W"], [(b["kind"], b["k"], b["s"]) for b in spec["blocks"]], spec["head"],
                       spec["scales"]])


def features(spec: dict) -> set:
    """Coverage features of a spec (for picking a diverse subset)."""
    f = {("head", spec["head"]), ("scales", spec["scales"]), ("raw", spec["raw_out"]), ("in_signed", spec["in_signed"]),
         ("odd", spec["H"] % 2, spec["W"] % 2), ("nblocks", len(spec["blocks"]))}
    for b in spec["blocks"]:
        f.add((b["kind"], b["k"], b["s"]))
        if b["kind"] in ("identity", "proj", "optA"):
            f.add((b["kind"], "merge", b["merge"]))
        f.add(("c", min(b["c"], 2) if b["c"] < 9 else 9))
    return f


def draw_specs(n: int, seed: int, profile: str = "full") -> list[dict]:
    """``n`` specs drawn by hypothesis (seeded, reproducible). hypothesis starts from minimal examples and mutates
    the ones it generated, so a pool of ``12 n`` draws is reduced to ``n`` structurally distinct specs picked greedily
    for coverage (each pick adds the most new features: block kind x kernel x stride, merge mode, head, scales...)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    got: list[dict] = []

    @hseed(seed)
    @settings(max_examples=max(12 * n, 100), database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(spec_strategy(profile))
    def collect(spec):
        got.append(spec)

    collect()
    seen, pool = set(), []
    for s in got:
        k = structure_key(s)
        if k not in seen:
            seen.add(k)
            pool.append(s)
    if len(pool) < n:
        raise RuntimeError(f"hypothesis gave only {len(pool)} distinct specs of {n}")
    covered: set = set()
    out = []
    feats = [features(s) for s in pool]
    used = [False] * len(pool)
    for _ in range(n):
        best = max((i for i in range(len(pool)) if not used[i]), key=lambda i: (len(feats[i] - covered), -i))
        used[best] = True
        covered |= feats[best]
        out.append(pool[best])
    return out


def spec_key(spec: dict) -> str:
    return json.dumps(spec, sort_keys=True)


# ----------------------------------------------------------------------------------------------------------------
# ONNX builder


class _Graph:
    def __init__(self, rng, pow2: bool):
        self.nodes, self.inits = [], []
        self.rng = rng
        self.pow2 = pow2
        self.q = {}  # dq tensor name -> (scale, zp, signed)
        self.k = 0

    def name(self, base):
        self.k += 1
        return f"{base}_{self.k}"

    def init(self, name, arr):
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op, ins, outs=None, **attrs):
        from onnx import helper

        outs = outs or [self.name(op.lower())]
        n = helper.make_node(op, ins, outs, name=self.name("n_" + op.lower()), **attrs)
        self.nodes.append(n)
        return outs[0]

    def scale(self, s):
        s = float(s)
        return float(2.0 ** round(math.log2(s))) if self.pow2 else s

    def qdq(self, x, scale, zp, signed):
        """QuantizeLinear + DequantizeLinear of float tensor ``x``; returns the dequantized name."""
        scale = np.float32(scale)
        dt = np.int8 if signed else np.uint8
        s = self.init(self.name("s"), scale)
        z = self.init(self.name("z"), dt(zp))
        q = self.node("QuantizeLinear", [x, s, z])
        d = self.node("DequantizeLinear", [q, s, z])
        self.q[d] = (float(scale), int(zp), bool(signed))
        return d

    def act_q(self, typical_real, signed, relu):
        """Output quantization for a tensor of typical magnitude ``typical_real`` (about 40 LSB)."""
        s = self.scale(max(typical_real, 1e-6) / 40.0)
        if signed:
            zp = 0 if self.pow2 else int(self.rng.integers(-8, 9))
            return s, zp, True
        zp = 0 if (relu or self.pow2) else int(self.rng.integers(100, 156))
        return s, zp, False

    def conv(self, x, C, O, k, s, pad=True):
        """Conv with int8 per-channel weights and an int32 bias; returns (float output, acc typical real magnitude)."""
        rng = self.rng
        s_in = self.q[x][0]
        w = rng.integers(-127, 128, (O, C, k, k))
        if O > 1 and rng.random() < 0.3:
            w[0] = 127 * (1 if rng.random() < 0.5 else -1)  # max magnitude channel
        if self.pow2:
            ws = np.float32(2.0) ** -rng.integers(5, 9, O).astype(np.float32)
        else:
            ws = rng.uniform(0.002, 0.02, O).astype(np.float32)
        wq = self.init(self.name("wq"), w.astype(np.int8))
        wsn = self.init(self.name("ws"), ws)
        wz = self.init(self.name("wz"), np.zeros(O, np.int8))
        wd = self.node("DequantizeLinear", [wq, wsn, wz], axis=0)
        bs = (np.float32(s_in) * ws).astype(np.float32)
        typ_int = 74.0 * 80.0 * math.sqrt(k * k * C)
        b = rng.integers(-int(typ_int), int(typ_int) + 1, O).astype(np.int32)
        bq = self.init(self.name("bq"), b)
        bsn = self.init(self.name("bs"), bs)
        bz = self.init(self.name("bz"), np.zeros(O, np.int32))
        bd = self.node("DequantizeLinear", [bq, bsn, bz], axis=0)
        p = k // 2 if pad else 0
        y = self.node("Conv", [x, wd, bd], kernel_shape=[k, k], pads=[p, p, p, p], strides=[s, s])
        return y, float(typ_int * s_in * float(np.mean(ws)))


def _out_hw(H, k, s, p):
    return (H + 2 * p - k) // s + 1


def onnx_model(spec: dict):
    """The QDQ ``onnx.ModelProto`` of a spec (deterministic)."""
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper

    rng = np.random.default_rng(spec["seed"])
    g = _Graph(rng, spec["scales"] == "pow2")
    H, W = spec["H"], spec["W"]
    signed = spec["in_signed"]
    in_s = g.scale(1.0 / 255.0 if not signed else 2.0 / 255.0)
    x = g.qdq("input", in_s, -128 if (signed and not g.pow2) else 0, signed)
    C = 3
    act_signed = lambda: bool(rng.random() < 0.5)  # noqa: E731

    def requant_out(y, typical, relu, sgn=None):
        if relu:
            y = g.node("Relu", [y])
        sgn = act_signed() if sgn is None else sgn
        s, zp, sg = g.act_q(typical, sgn and not relu, relu)
        return g.qdq(y, s, zp, sg)

    for b in spec["blocks"]:
        kind, k, s = b["kind"], b["k"], b["s"]
        O = b["c"]
        if min(H, W) < 2 and kind in ("maxpool", "avgpool"):
            kind = "plain"
        if kind in ("maxpool", "avgpool"):
            if kind == "maxpool" and k >= 3 and min(H, W) >= 3:
                x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
                H, W = _out_hw(H, 3, 2, 1), _out_hw(W, 3, 2, 1)
            elif kind == "maxpool":
                x = g.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
                H, W = H // 2, W // 2
            else:
                sq = g.q[x]
                y = g.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2])
                x = g.qdq(y, g.scale(sq[0] * rng.uniform(0.6, 1.2)), sq[1], sq[2])
                H, W = H // 2, W // 2
            if kind == "maxpool":
                g.q[x] = g.q[next(n.input[0] for n in g.nodes if n.output[0] == x)]
            continue
        if kind == "requant":
            sq = g.q[x]
            x = g.qdq(x, g.scale(sq[0] * rng.uniform(0.5, 2.0)), sq[1] if sq[2] else 0, sq[2])
            continue
        if kind == "identity":
            O = C  # identity shortcut keeps the channels
        if kind == "optA":
            O = max(O, C)
        if kind == "plain":
            y, typ = g.conv(x, C, O, k, s, pad=(k > 1 and (min(H, W) < k or rng.random() < 0.8)) or k == 1)
            p = (next(a.ints for a in g.nodes[-1].attribute if a.name == "pads"))[0]
            H, W = _out_hw(H, k, s, p), _out_hw(W, k, s, p)
            x = requant_out(y, typ, b["relu"])
            C = O
            continue
        # residual blocks: conv1 (stride s for proj/optA) -> conv2 (stride 1) + shortcut
        s1 = 1 if kind == "identity" else s
        y1, t1 = g.conv(x, C, O, k, s1)
        h1 = requant_out(y1, t1, True)
        Ho, Wo = _out_hw(H, k, s1, k // 2), _out_hw(W, k, s1, k // 2)
        y2, t2 = g.conv(h1, O, O, k, 1)
        if kind == "identity":
            sc = x
        elif kind == "proj":
            yp, tp = g.conv(x, C, O, 1, s1, pad=False)
            sc = requant_out(yp, tp, False, sgn=True)
        else:  # option A
            sc = x
            if s1 > 1:
                st = g.init(g.name("st"), np.array([0, 0], np.int64))
                en = g.init(g.name("en"), np.array([H, W], np.int64))
                ax = g.init(g.name("ax"), np.array([2, 3], np.int64))
                sp = g.init(g.name("sp"), np.array([s1, s1], np.int64))
                sc = g.node("Slice", [sc, st, en, ax, sp])
            if O > C:
                before = int(rng.integers(0, O - C + 1))
                pads = g.init(g.name("pads"), np.array([0, before, 0, 0, 0, O - C - before, 0, 0], np.int64))
                sc = g.node("Pad", [sc, pads], mode="constant")
        if b["merge"]:
            y = g.node("Add", [y2, sc])
            x = requant_out(y, max(t2, 40 * g.q[x][0] if kind != "proj" else t2), b["relu"])
        else:
            q2 = requant_out(y2, t2, False, sgn=True)
            y = g.node("Add", [q2, sc])
            x = requant_out(y, 40 * g.q[q2][0], b["relu"])
        H, W, C = Ho, Wo, O
        # option-A: the shortcut's quantization is the block input's (Slice/Pad keep it)
    # head
    head = spec["head"]
    if head == "gap":
        sq = g.q[x]
        y = g.node("GlobalAveragePool", [x])
        x = g.qdq(y, g.scale(sq[0] * rng.uniform(0.3, 0.8)), sq[1], sq[2])
        H = W = 1
    elif head == "gmp":
        sq = g.q[x]
        x = g.node("GlobalMaxPool", [x])
        g.q[x] = sq
        H = W = 1
    if head != "none" or H * W * C <= 1024:
        F = H * W * C
        fl = g.node("Flatten", [x], axis=1)
        g.q[fl] = g.q[x]
        K = spec["classes"]
        w = rng.integers(-127, 128, (K, F))
        ws = np.float32(2.0 ** -7) if g.pow2 else np.float32(rng.uniform(0.002, 0.02))
        s_in = g.q[x][0]
        wq = g.init(g.name("fcq"), w.astype(np.int8))
        wsn = g.init(g.name("fcs"), ws)
        wz = g.init(g.name("fcz"), np.int8(0))
        wd = g.node("DequantizeLinear", [wq, wsn, wz])
        bs = np.float32(np.float32(s_in) * ws)
        typ = 74.0 * 80.0 * math.sqrt(F)
        bq = g.init(g.name("fbq"), rng.integers(-int(typ), int(typ) + 1, K).astype(np.int32))
        bsn = g.init(g.name("fbs"), bs)
        bz = g.init(g.name("fbz"), np.int32(0))
        bd = g.node("DequantizeLinear", [bq, bsn, bz])
        y = g.node("Gemm", [fl, wd, bd], transB=1)
        if spec["raw_out"]:
            out = y
        else:
            out = requant_out(y, typ * float(bs), False, sgn=True)
        out_shape = [1, K]
    else:
        out = x
        out_shape = [1, C, H, W]
    g.node("Identity", [out], ["output"])
    graph = helper.make_graph(g.nodes, "fuzz", [helper.make_tensor_value_info("input", TP.FLOAT, [1, 3, spec["H"], spec["W"]])],
                              [helper.make_tensor_value_info("output", TP.FLOAT, out_shape)], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="rtlgen-fuzz")
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m


def import_net(spec: dict, name: str):
    from rtlgen.frontend import load_model

    return load_model(onnx_model(spec), name=name)


# ----------------------------------------------------------------------------------------------------------------
# random plans




def random_plan(net, seed: int, max_cycles: int = 6000, overrides: dict | None = None, uram: bool = True):
    """A random legal plan (every conv/dense layer's configuration drawn at random), re-costed by rtlgen.plan.search.recost;
    redrawn with more parallelism while the predicted cycles per frame exceed ``max_cycles``. ``overrides``
    ({layer: {field: value}}) are applied last (regression cases)."""
    from rtlgen import ir
    from rtlgen.cores.registry import core_cycles
    from rtlgen.plan import geometry, search

    rng = np.random.default_rng(seed)
    # tap parallelism is drawn from its own stream, so the other draws (and every plan of the earlier opt-in runs
    # apart from its tap_par) stay what they were
    trng = np.random.default_rng([seed, 0x7A9])
    plan = search.plan_network(net, "kv260")
    bias = 0.0  # grows: favours higher parallelism
    for _attempt in range(12):
        for lay in net.layers:
            lp = plan.layer(lay.name)
            lp.fifo_depth = int(rng.choice([1, 2, 3, 5, 16]))
            if not isinstance(lay, (ir.Conv, ir.Dense)):
                continue
            npix, O, C, KK, W, K = geometry.conv_dims(lay)
            src = net[lay.inputs[0]]
            src_lanes = plan.layer(src.name).och_par if isinstance(src, (ir.Conv, ir.Dense)) else plan.layer(src.name).lanes_out

            def par(n, match=None):
                """Random parallelism for n channels: the producer's lanes (no lane converter), a divisor of n (a
                cheap converter) or anything (the general packing converter: big RTL), at least n*bias."""
                lo = max(1, int(round(n * min(bias, 1.0))))
                r = rng.random()
                if match is not None and lo <= match <= n and r < 0.3:
                    return int(match)
                if r < 0.75:
                    divs = [d for d in range(lo, n + 1) if n % d == 0]
                    return int(rng.choice(divs))
                return int(rng.integers(lo, n + 1))

            lp.och_par, lp.ich_par = par(O), par(C, src_lanes)
            # the weight word read per cycle has a size limit (found by the opt-in fuzz, s167: a flatten dense at
            # och_par 10 x ich_par 1520 = 121,600 bits); clamped without drawing, so other plans stay as they were
            lp.tap_par = int(trng.choice(search._par_candidates(KK))) if (isinstance(lay, ir.Conv) and KK > 1
                                                                          and trng.random() < 0.5) else 1
            lp.ich_par = min(lp.ich_par, max(1, geometry.MAX_SIGNAL_BITS // geometry.weight_word_bits(lp.och_par, 1,
                                                                                               lp.tap_par)))
            if isinstance(lay, ir.Conv) and npix >= 2 and rng.random() < 0.5:
                lp.pix_par = 2
                lp.packing = bool(rng.random() < 0.6)
            else:
                lp.pix_par, lp.packing = 1, False
            lp.storage = str(rng.choice(["lut", "bram", "uram"]))  # drawn first: the same rng stream either way
            if lp.storage == "uram" and not uram:
                lp.storage = "bram"
            lp.mult = str(rng.choice(["dsp", "lut"]))
        search.recost(net, plan, exact_cycles=core_cycles)
        if plan.cycles_per_frame <= max_cycles:
            break
        bias += 0.2
    if overrides:
        for name, fields in overrides.items():
            for k, v in fields.items():
                setattr(plan.layer(name), k, v)
        search.recost(net, plan, exact_cycles=core_cycles)
    return plan


def plan_summary(net, plan) -> dict:
    from rtlgen import ir

    return {lp.name: [lp.och_par, lp.ich_par, lp.pix_par, int(lp.packing), lp.storage, lp.fifo_depth, lp.tap_par]
            for lp, lay in zip(plan.layers, net.layers) if isinstance(lay, (ir.Conv, ir.Dense))}


def describe(net) -> str:
    """One line per layer: kind, shapes (for failure reports)."""
    parts = []
    for lay in net.layers:
        extra = ""
        if lay.kind == "conv":
            extra = f" k{lay.kernel[0]}s{lay.stride[0]}p{lay.pads[0]}" + (f" +res({lay.residual})" if lay.residual else "")
            extra += f" rq={lay.requant.kind}"
        parts.append(f"{lay.name}:{lay.kind}{extra} {tuple(lay.in_shape)}->{tuple(lay.out_shape)}")
    return "; ".join(parts)


def load_regressions(folder: Path) -> list[dict]:
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        d = json.loads(p.read_text())
        d["_file"] = p.name
        out.append(d)
    return out
