"""Reference executors for the importer tests: ONNX Runtime and QONNX's own executor.

The float input is built from uint8 pixels exactly as documented (``zoo.float_input``):
``x = (float32(pixel) * float32(input_scale) - float32(mean)) / float32(std)`` in float32, NCHW (or NHWC).

* :func:`run_ort` runs any ONNX model (QDQ, QCDQ, QOperator, plain float) in ONNX Runtime, lowering
  ``ir_version`` and making the batch dimension dynamic first; it can also return intermediate tensors.
* :func:`run_qonnx` runs QONNX models (``Quant`` nodes) with ``qonnx.core.onnx_exec.execute_onnx`` after
  qonnx's cleanup and shape inference, with the batch size baked into the graph.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx

from rtlgen import ir

from zoo import IR_VERSION, float_input  # noqa: F401  (re-exported for tests)

_NP = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT16: np.int16,
}


def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        m = onnx.ModelProto()
        m.CopyFrom(model)
        return m
    return onnx.load(str(model))


def _dynamic_batch(m: onnx.ModelProto) -> None:
    inits = {i.name for i in m.graph.initializer}
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.name in inits:
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) >= 1:
            dims[0].Clear()
            dims[0].dim_param = "N"
    del m.graph.value_info[:]


def graph_input_names(model) -> list[str]:
    m = _load(model)
    inits = {i.name for i in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in inits]


def tensor_types(model) -> dict[str, int]:
    """Element type of every tensor that shape inference can type (initializers, inputs, node outputs)."""
    m = _load(model)
    m.ir_version = min(m.ir_version, IR_VERSION)
    try:
        m = onnx.shape_inference.infer_shapes(m)
    except Exception:  # noqa: BLE001 - custom domains: fall back to what is declared
        pass
    types = {}
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in m.graph.initializer:
        types[init.name] = init.data_type
    # contrib QLinear* ops (com.microsoft) are not typed by onnx shape inference: output type = output zero point's
    for node in m.graph.node:
        zi = _ZP_INPUT.get(node.op_type)
        if zi is not None and node.output[0] not in types and len(node.input) > zi and node.input[zi] in types:
            types[node.output[0]] = types[node.input[zi]]
    return types


#: index of the output zero-point input of the quantized operators
_ZP_INPUT = {"QuantizeLinear": 2, "QLinearConv": 7, "QLinearAdd": 7, "QLinearMul": 7, "QLinearMatMul": 7, "QGemm": 8,
             "QLinearAveragePool": 4, "QLinearGlobalAveragePool": 4, "QLinearSoftmax": 4, "QLinearConcat": 1}


@functools.lru_cache(maxsize=16)
def _session(path: str, mtime: float, extra_outputs: tuple[str, ...], optimize: bool = False):
    import onnxruntime as ort

    m = _load(path)
    m.ir_version = min(m.ir_version, IR_VERSION)
    if extra_outputs:
        types = tensor_types(m)
        existing = {o.name for o in m.graph.output}
        for name in extra_outputs:
            if name not in existing:
                m.graph.output.append(onnx.helper.make_tensor_value_info(name, types.get(name, onnx.TensorProto.FLOAT), None))
    _dynamic_batch(m)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    if not optimize:
        # no graph optimizations: ORT's QDQ fusions would run different (fused QLinear) kernels than the graph says
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=1)
def ort_integer_kernels_saturate() -> bool:
    """Whether ONNX Runtime's uint8 x int8 integer GEMM kernels saturate on this CPU (probed, not guessed).

    ORT's MLAS U8S8 kernels on x86-64 with AVX2 but no VNNI multiply-add pairs of u8 x s8 products into int16 with
    saturation (``vpmaddubsw``), a documented ORT limitation: ``255*127 + 255*127 = 64770`` comes out as 32767. Its
    fused QLinearConv / QLinearMatMul (QOperator models, and QDQ models with graph optimizations, which ORT also
    converts to u8 activations) then differ from the exact integer semantics by tens of LSBs, so they cannot serve as
    the reference there. Probe: ``MatMulInteger([255, 255], [[127], [127]])`` must be 64770.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, 2])], [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 1])],
        [helper.make_tensor("b", TensorProto.INT8, [2, 1], [127, 127])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"a": np.array([[255, 255]], np.uint8)})[0]
    return int(y.reshape(-1)[0]) != 64770


def skip_if_ort_integer_kernels_saturate():
    """Skip a comparison that runs ORT's integer kernels on a CPU where they saturate (see above)."""
    import pytest

    if ort_integer_kernels_saturate():
        pytest.skip("ONNX Runtime's u8 x s8 integer kernels saturate on this CPU (AVX2 without VNNI: "
                    "MatMulInteger(255*127*2) != 64770), so fused/QOperator ORT is not an exact reference here")


def run_ort(model_path, x: np.ndarray, outputs: list[str] | None = None, batch: int = 256, optimize: bool = False) -> dict:
    """Run ``model_path`` in ONNX Runtime on float input ``x``; returns {output name: array} (graph outputs first).

    ``outputs``: extra intermediate tensor names to fetch. ``optimize``: use ORT's default graph optimizations
    (fused QLinear kernels for QDQ) instead of executing the graph node by node; an extra output keeps its tensor
    (ORT does not fuse away a graph output), so fetch only what is needed there.
    """
    path = str(Path(model_path).resolve())
    extra = tuple(outputs or ())
    sess = _session(path, Path(path).stat().st_mtime, extra, bool(optimize))
    iname = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    res = {n: [] for n in names}
    for i in range(0, len(x), batch):
        outs = sess.run(names, {iname: x[i : i + batch]})
        for n, o in zip(names, outs):
            res[n].append(o)
    return {n: np.concatenate(v) for n, v in res.items()}


def ort_output(model_path, x: np.ndarray, **kw) -> np.ndarray:
    """The (first) graph output of ``model_path`` in ONNX Runtime."""
    m = _load(model_path)
    res = run_ort(model_path, x, **kw)
    return res[m.graph.output[0].name]


def qonnx_wrapper(model_path, batch: int):
    """qonnx ModelWrapper of the model with the batch dimension set to ``batch`` and shapes inferred.

    Only the parts of ``qonnx.util.cleanup.cleanup_model`` that keep tensor names are applied (its
    ``GiveReadableTensorNames`` would rename every tensor and lose the mapping to the golden model's layers):
    the Quant domain fix, ``RemoveStaticGraphInputs`` (Brevitas' biases are graph inputs with initializers),
    ``ChangeBatchSize`` and ``InferShapes``.
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.general import RemoveStaticGraphInputs
    from qonnx.transformation.infer_shapes import InferShapes

    m = _load(model_path)
    m.ir_version = min(m.ir_version, IR_VERSION)
    for node in m.graph.node:
        if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
            node.domain = "qonnx.custom_op.general"
    mw = ModelWrapper(m)
    mw = mw.transform(RemoveStaticGraphInputs())
    mw = mw.transform(ChangeBatchSize(batch))
    mw = mw.transform(InferShapes())
    return mw


def run_qonnx(model_path, x: np.ndarray, batch: int = 128, return_all: bool = False) -> dict:
    """Execute a QONNX model with qonnx's executor; returns {output name: array} (every tensor if ``return_all``)."""
    from qonnx.core.onnx_exec import execute_onnx

    res: dict[str, list] = {}
    wrappers = {}
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        n = len(xb)
        if n not in wrappers:
            wrappers[n] = qonnx_wrapper(model_path, n)
        mw = wrappers[n]
        iname = mw.graph.input[0].name
        out = execute_onnx(mw, {iname: xb}, return_full_exec_context=return_all)
        if return_all:
            inits = {t.name for t in mw.graph.initializer}
            out = {k: v for k, v in out.items() if k not in inits and isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n}
        for k, v in out.items():
            res.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in res.items()}


def qonnx_output(model_path, x: np.ndarray, **kw) -> np.ndarray:
    """The (first) graph output of a QONNX model (qonnx's cleanup keeps the output tensor name)."""
    m = _load(model_path)
    return run_qonnx(model_path, x, **kw)[m.graph.output[0].name]


# ----------------------------------------------------------------------------------------------------------------
# layer-by-layer comparison helpers

_QUANT_OPS = ("Quant", "QuantizeLinear", "QLinearConv", "QLinearAdd", "QLinearMatMul", "QGemm", "QLinearAveragePool",
              "QLinearGlobalAveragePool", "QLinearMul", "QLinearLeakyRelu")


def layer_tensors(net, model) -> dict[str, tuple[str, bool]]:
    """Golden layer name -> (reference tensor holding its quantized output, that tensor is float-dequantized).

    The tensor is the output of the last quantizing node among the layer's ``source_nodes``. QONNX ``Quant``
    outputs are float (dequantized); QuantizeLinear / QLinear* outputs are integers.
    """
    m = _load(model)
    nodes = {n.name: n for n in m.graph.node if n.name}
    out = {}
    for layer in net.layers:
        if layer.out_q is None:
            continue
        cands = [nodes[s] for s in layer.source_nodes if s in nodes and nodes[s].op_type in _QUANT_OPS]
        if cands:
            n = cands[-1]
            out[layer.name] = (n.output[0], n.op_type == "Quant")
    return out


def to_int_nhwc(v: np.ndarray, qt, is_float: bool) -> np.ndarray:
    """Reference tensor -> int64 NHWC integers of the layer's QType (exact for dequantized 8-bit values)."""
    if is_float:
        v = np.round(v.astype(np.float64) / qt.scale) + qt.zero_point
    v = v.astype(np.int64)
    if v.ndim == 4:
        v = v.transpose(0, 2, 3, 1)
    return v.reshape(v.shape[0], -1)


def compare_layers(net, model, golden_all: dict, ref_all: dict, layout: str = "NCHW") -> dict[str, dict]:
    """Per layer: fraction of identical integers, max |diff|, and the first mismatching (index, golden, ref)."""
    res = {}
    for lname, (tname, is_float) in layer_tensors(net, model).items():
        if tname not in ref_all or lname not in golden_all:
            continue
        r = ref_all[tname]
        if layout == "NHWC" and r.ndim == 4 and lname == net.layers[0].name:
            r = r.transpose(0, 3, 1, 2)  # int8 NHWC graph input: reference already NHWC
        g = golden_all[lname].reshape(golden_all[lname].shape[0], -1)
        rq = to_int_nhwc(r, net[lname].out_q, is_float)
        if rq.shape != g.shape:
            res[lname] = {"tensor": tname, "shape_mismatch": (g.shape, rq.shape)}
            continue
        diff = np.abs(g - rq)
        bad = np.argwhere(diff > 0)
        res[lname] = {
            "tensor": tname,
            "equal": float((diff == 0).mean()),
            "max_diff": int(diff.max()) if diff.size else 0,
            "first": (tuple(int(i) for i in bad[0]), int(g[tuple(bad[0])]), int(rq[tuple(bad[0])])) if len(bad) else None,
        }
    return res


#: a position is a rounding tie when its exact pre-rounding value is within this distance of k + 1/2
TIE_EPS = 1e-6


def exact_values(layer, args: list[np.ndarray] | None = None, pixels=None, bias_scale=None) -> np.ndarray | None:
    """Exact real-valued result of ``layer`` before rounding, in units of the output LSB plus the output zero point.

    Computed in float64 from the integer inputs and the source model's scales (``in_q.scale``, ``w_scale``,
    ``out_q.scale``; exact float32 values) and, for conv/dense, the bias's own scale ``bias_scale`` as the model
    stores it (:func:`bias_scale`; default ``s_in * s_w``, QLinearConv's implied bias scale): the QDQ semantics
    ``round(real / s_out) + zp_out`` without any float32 approximation (ONNX Runtime computes ``real`` in float32, the golden model uses a 24-bit fixed-point ratio).
    The integer accumulators are exact (``golden.conv_acc``); the float64 products and quotients add a relative error
    of a few 1e-16, far below :data:`TIE_EPS`. Returns [N, outputs] (NHWC flatten order), or None for layers that do
    not round (max pooling, option-A shortcut, raw accumulator outputs).
    """
    from rtlgen import golden

    q = layer.out_q
    if q is None:
        return None
    so = float(q.scale)
    if isinstance(layer, ir.InputStage):
        pre = layer.preprocess
        px = np.asarray(pixels, np.float64)
        x = (px * pre["input_scale"] - np.asarray(pre["mean"], np.float64)) / np.asarray(pre["std"], np.float64)
        v = x / so
    elif isinstance(layer, (ir.Conv, ir.Dense)):
        # sum_k (x_k - zp_in) * w_k exactly (integers, |.| < 2**31), and the source model's bias integer
        O = layer.weights.shape[0]
        zp_sum = layer.in_q.zero_point * layer.weights.reshape(O, -1).sum(1)
        if isinstance(layer, ir.Conv):
            acc0 = golden.grouped_conv_acc(args[0], layer.weights, np.zeros(O, np.int64), layer.stride, layer.pads,
                                           layer.pad_value, layer.in_q, layer.group)
        else:
            acc0 = np.asarray(args[0], np.float64).reshape(len(args[0]), -1) @ layer.weights.T.astype(np.float64)
        mac = acc0 - zp_sum  # the padding value is the input zero point: padded taps add nothing
        b_int = layer.bias + zp_sum  # the bias as stored in the model (the importer folds -zp_in * sum(w) into it)
        s_acc = float(layer.in_q.scale) * np.asarray(layer.w_scale, np.float64)  # exact: product of two float32
        b_scale = s_acc if bias_scale is None else np.asarray(bias_scale, np.float64)
        real = mac * s_acc + b_int * b_scale
        if isinstance(layer, ir.Conv) and layer.residual is not None:
            real = real + (np.asarray(args[1], np.float64) - layer.res_zp) * float(layer.res_q.scale)
        v = real / so
    elif isinstance(layer, ir.Add):
        a = (np.asarray(args[0], np.float64) - layer.a_q.zero_point) * float(layer.a_q.scale)
        b = (np.asarray(args[1], np.float64) - layer.b_q.zero_point) * float(layer.b_q.scale)
        v = (a + b) / so
    elif isinstance(layer, ir.Pool) and layer.mode == "avg":
        x = np.asarray(args[0], np.float64) - layer.in_q.zero_point
        if layer.is_global:
            s = x.sum(axis=(1, 2))
            div = layer.in_shape[0] * layer.in_shape[1]
        else:
            s = golden.windows(golden.pad_nhwc(x, layer.pads, 0.0), layer.kernel, layer.stride).sum(axis=(3, 4))
            div = layer.kernel[0] * layer.kernel[1]  # the importer refuses count_include_pad=0 with padding
        v = s * float(layer.in_q.scale) / (div * so)
    elif isinstance(layer, ir.Requantize):
        v = (np.asarray(args[0], np.float64) - layer.in_q.zero_point) * float(layer.in_q.scale) / so
    else:
        return None
    v = np.asarray(v, np.float64)
    return v.reshape(v.shape[0], -1) + q.zero_point


def bias_scale(model, layer) -> np.ndarray | None:
    """Scale of the bias of conv/dense ``layer`` as stored in the source model (the DequantizeLinear / Quant scale of
    the Conv/Gemm bias input or of the MatMul's bias Add), per output channel; None where the bias scale is implied
    (QLinearConv/QGemm: ``s_in * s_w``) or there is no bias. ONNX Runtime's quantizer stores
    ``float32(s_in * s_w)``, which differs from the exact product by up to 2**-24 relative."""
    if not isinstance(layer, (ir.Conv, ir.Dense)):
        return None
    m = _load(model)
    nodes = {n.name: n for n in m.graph.node if n.name}
    prod = {o: n for n in m.graph.node for o in n.output}
    inits = {t.name: t for t in m.graph.initializer}

    def scale_of(tensor):
        p = prod.get(tensor)
        if p is not None and p.op_type in ("DequantizeLinear", "Quant") and p.input[0] in inits and p.input[1] in inits:
            return onnx.numpy_helper.to_array(inits[p.input[1]]).astype(np.float64)
        return None

    for nm in layer.source_nodes:
        n = nodes.get(nm)
        if n is None:
            continue
        cands = []
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2]:
            cands = [n.input[2]]
        elif n.op_type == "Add":
            cands = list(n.input)
        for t in cands:
            s = scale_of(t)
            if s is not None:
                return np.broadcast_to(s.reshape(-1), (layer.weights.shape[0],)).copy()
    return None


def tie_mask(layer, exact: np.ndarray | None) -> np.ndarray | None:
    """Positions whose exact value lies within :data:`TIE_EPS` of a rounding tie ``k + 1/2`` where both neighbours
    survive the output clamp differently (there, float32 noise alone decides which way ONNX Runtime rounds)."""
    if exact is None:
        return None
    fl = np.floor(exact)
    near = np.abs(exact - fl - 0.5) < TIE_EPS
    q = layer.out_q
    return near & (np.clip(fl, q.lo, q.hi) != np.clip(fl + 1, q.lo, q.hi))


def isolated_layers(net, model, ref_all: dict, pixels=None) -> dict[str, dict]:
    """Each golden layer run on the *reference's* input integers, compared with the reference's output.

    This separates a layer's own disagreement from differences propagated from upstream layers. ``pixels``
    (uint8 NHWC) checks the input stage too. Each entry also counts the rounding ties (:func:`tie_mask`): ``ties``
    positions in all, ``ties_differing`` of them where golden and reference differ, and ``equal_excl_ties``, the
    fraction identical among the other positions.
    """
    from rtlgen import golden

    tens = layer_tensors(net, model)
    res = {}
    for layer in net.layers:
        if layer.name not in tens or tens[layer.name][0] not in ref_all:
            continue
        tname, is_float = tens[layer.name]
        if layer.kind == "input":
            if pixels is None:
                continue
            g = golden.run_input(layer, pixels)
            ties = tie_mask(layer, exact_values(layer, pixels=pixels))
        else:
            args = []
            for i in layer.inputs:
                v = _ref_ints(net, tens, ref_all, i)
                if v is None:
                    break
                args.append(v)
            else:
                g = golden.run_layer(layer, args)
                ties = tie_mask(layer, exact_values(layer, args, bias_scale=bias_scale(model, layer)))
                _fill(res, layer, g, ref_all[tname], is_float, tname, ties)
            continue
        _fill(res, layer, g, ref_all[tname], is_float, tname, ties)
    return res


def _ref_ints(net, tens, ref_all, name):
    """NHWC integers of layer ``name`` as the reference computed them: its reference tensor, or for a layer without
    one that only moves data (option-A shortcut: subsample + zero-point channel padding, exact) the golden layer
    applied to its own input's reference integers. None if unavailable."""
    from rtlgen import golden

    if name in tens and tens[name][0] in ref_all:
        t, f = tens[name]
        v = to_int_nhwc(ref_all[t], net[name].out_q, f)
        return v.reshape((v.shape[0], *net[name].out_shape))
    layer = net[name]
    if isinstance(layer, ir.ShortcutA):
        x = _ref_ints(net, tens, ref_all, layer.inputs[0])
        return None if x is None else golden.run_shortcut_a(layer, x)
    return None


def _fill(res, layer, g, r, is_float, tname, ties=None):
    g = g.reshape(g.shape[0], -1)
    rq = to_int_nhwc(r, layer.out_q, is_float)
    diff = np.abs(g - rq)
    bad = np.argwhere(diff > 0)
    if ties is None:
        ties = np.zeros(diff.shape, dtype=bool)
    keep = ~ties
    res[layer.name] = {
        "tensor": tname,
        "equal": float((diff == 0).mean()),
        "equal_excl_ties": float((diff[keep] == 0).mean()) if keep.any() else 1.0,
        "ties": int(ties.sum()),
        "ties_differing": int((ties & (diff > 0)).sum()),
        "size": int(diff.size),
        "max_diff": int(diff.max()) if diff.size else 0,
        "n_diff": int(len(bad)),
        "first": (tuple(int(i) for i in bad[0]), int(g[tuple(bad[0])]), int(rq[tuple(bad[0])])) if len(bad) else None,
    }


def float_scale_layer_failures(res: dict, min_equal: float = 0.999, max_diff: int = 1) -> dict:
    """Layers of :func:`isolated_layers` failing the float-scale criterion: ``equal_excl_ties < min_equal`` (exact
    rounding ties excluded from the identical-count) or any value, ties included, more than ``max_diff`` LSB off."""
    return {k: v for k, v in res.items() if v["equal_excl_ties"] < min_equal or v["max_diff"] > max_diff}


def ties_summary(res: dict) -> str:
    """One-line account of the excluded rounding ties, for assertion messages."""
    parts = [f"{k}: {v['ties']} ties ({v['ties_differing']} differing) of {v['size']}" for k, v in res.items() if v["ties"]]
    return "excluded exact rounding ties (|exact - (k+1/2)| < %g): " % TIE_EPS + ("; ".join(parts) if parts else "none")
