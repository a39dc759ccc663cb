"""Users' own inputs: ``rtlgen run`` (the golden model on the ONNX graph input's own form) and ``rtlgen sim --inputs``
(the RTL on uint8 pixels, or on graph-form inputs that map exactly onto pixels).

Two forms of an input frame
---------------------------
* **Graph form**: what the ONNX graph input takes: its dtype (float32 for the bundled and Brevitas/ONNX Runtime models,
  int8/uint8 for TFLite-converter graphs) and its layout (NCHW ``[N, C, H, W]``, NHWC ``[N, H, W, C]`` or a feature
  vector ``[N, F]``). A float input is quantized by the graph's *own* first quantizer (its scale, zero point, clamp
  range and rounding: ``QuantizeLinear`` rounds half to even, a QONNX ``Quant`` by its ``rounding_mode``); an integer
  input already holds the first quantized tensor's codes. Either way this gives the codes the network's first layer
  reads (:func:`graph_codes`), and the golden model runs from there (:func:`rtlgen.golden.run_codes`).
* **Pixels**: what the hardware takes: raw uint8 pixels, NHWC beats, mapped by the input stage's per-channel table
  ``quantize((pixel*S - mean)/std)``. Graph-form inputs are turned into pixels only where that is exact: every code
  must be produced by some pixel through the table (:func:`pixels_for_codes`), so the RTL computes exactly what the
  golden model computes on the graph-form inputs. uint8 arrays are pixels, except for a model whose graph input is
  itself uint8 with an input stage other than the identity: there they are taken in the graph's form.

Every problem is an :class:`InputsError` naming ``--inputs`` (CLI: one line, exit 2).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ir
from .errors import InputsError, OptionError


@dataclass
class GraphInput:
    """The ONNX graph input and the network's first quantizer."""

    name: str
    shape: tuple  # per-sample shape (without the batch axis), in the graph's layout
    dtype: np.dtype
    axes: tuple  # axis names of the full input, e.g. ("N", "C", "H", "W")
    q: ir.QType  # the first quantized tensor (the input stage's output)
    rounding: str  # rounding of the first quantizer (float inputs)

    @property
    def layout(self) -> str:
        return "".join(self.axes)

    @property
    def is_int(self) -> bool:
        return np.issubdtype(self.dtype, np.integer)

    def describe(self) -> str:
        return f"'{self.name}' N x {' x '.join(str(d) for d in self.shape)} {self.dtype.name} {self.layout}"

    def to_nhwc(self, x: np.ndarray) -> np.ndarray:
        """[N, *shape] in the graph layout -> [N, H, W, C]."""
        if self.axes == ("N", "F"):
            return x.reshape(x.shape[0], 1, 1, -1)
        return np.ascontiguousarray(x.transpose([self.axes.index(a) for a in "NHWC"]))


def graph_input(net: ir.Network, model_path) -> GraphInput:
    """The graph input of the ONNX file ``model_path`` (which imported as ``net``) and its first quantizer."""
    import onnx

    from .frontend import Importer
    from .quant import QONNX_ROUNDING

    m = onnx.load(str(model_path), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    vi = next(i for i in m.graph.input if i.name not in inits)
    imp = Importer(m, net.name, {})
    imp._graph_input(vi)  # the importer's own reading of the input's shape and layout
    gi = imp.input
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(gi.elem_type))
    # the first quantizer: the node that reads the graph input (through layout-only ops); a QONNX Quant rounds by
    # its rounding_mode, QuantizeLinear half to even
    rounding, t = "half_even", gi.name
    for _ in range(len(m.graph.node)):
        node = next((n for n in m.graph.node if t in n.input), None)
        if node is None:
            break
        if node.op_type in ("Transpose", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze") and node.output:
            t = node.output[0]
            continue
        if node.op_type == "Quant":
            for a in node.attribute:
                if a.name == "rounding_mode":
                    rounding = QONNX_ROUNDING[onnx.helper.get_attribute_value(a).decode().upper()]
        break
    return GraphInput(gi.name, tuple(gi.shape[1:]), dtype, tuple(gi.axes), net.input.out_q, rounding)


def load(path) -> np.ndarray:
    """Read a ``.npy`` array (no pickles)."""
    p = Path(path)
    if not p.is_file():
        raise InputsError(f"--inputs: file {str(p)!r} does not exist")
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic[:4] == b"PK\x03\x04":
        raise InputsError(f"--inputs: {str(p)!r} is an .npz archive; give one .npy array (np.save)")
    if magic != b"\x93NUMPY":
        raise InputsError(f"--inputs: {str(p)!r} is not a NumPy .npy file (write it with numpy.save)")
    try:
        a = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - anything unreadable is a bad --inputs file
        raise InputsError(f"--inputs: {str(p)!r} is not a NumPy .npy array ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:120]})") from None
    if a.dtype.kind not in "biuf":
        raise InputsError(f"--inputs: {str(p)!r} holds {a.dtype} values; give a numeric array")
    return a


def _batched(x: np.ndarray, shape: tuple, what: str) -> tuple[np.ndarray, bool]:
    """``x`` as [N, *shape]; a single sample without the batch axis is accepted. Returns (array, had_batch_axis)."""
    if x.ndim == len(shape) + 1 and tuple(x.shape[1:]) == tuple(shape):
        if x.shape[0] < 1:
            raise InputsError(f"--inputs: no samples (shape {x.shape})")
        return x, True
    if x.ndim == len(shape) and tuple(x.shape) == tuple(shape):
        return x[None], False
    raise InputsError(f"--inputs: shape {x.shape} does not match {what}")


def graph_codes(gi: GraphInput, x: np.ndarray) -> tuple[np.ndarray, bool]:
    """Graph-form inputs -> the first quantized tensor's codes, NHWC int64 [N, H, W, C]. Returns (codes, batched)."""
    from .quant import quantize

    if x.dtype != gi.dtype:
        hint = " (uint8 pixels: rtlgen sim --inputs takes them)" if x.dtype == np.uint8 else ""
        raise InputsError(f"--inputs: dtype {x.dtype.name}, the graph input takes {gi.describe()}{hint}")
    x, batched = _batched(x, gi.shape, f"the graph input {gi.describe()}")
    x = gi.to_nhwc(x)
    if gi.is_int:
        codes = x.astype(np.int64)
        bad = (codes < gi.q.lo) | (codes > gi.q.hi)
        if bad.any():
            raise InputsError(f"--inputs: value {int(codes[bad][0])} outside the input's range [{gi.q.lo}, {gi.q.hi}]")
        return codes, batched
    if np.isnan(x).any():
        raise InputsError("--inputs: the array holds NaN")
    return quantize(x, np.float32(gi.q.scale), gi.q.zero_point, gi.q.lo, gi.q.hi, gi.rounding), batched


def pixels_for_codes(net: ir.Network, codes: np.ndarray, uint8_graph: bool = False) -> np.ndarray:
    """NHWC codes -> uint8 pixels that the input stage maps onto exactly those codes (the smallest such pixel);
    an :class:`InputsError` where a code is produced by no pixel."""
    table = net.input.table  # [C, 256]
    out = np.empty(codes.shape, dtype=np.uint8)
    lo = int(min(table.min(), codes.min()))
    for c in range(table.shape[0]):
        inv = np.full(int(max(table.max(), codes.max())) - lo + 1, -1, dtype=np.int64)
        inv[table[c, ::-1] - lo] = np.arange(255, -1, -1)  # smallest pixel wins (written last)
        px = inv[codes[..., c] - lo]
        if (px < 0).any():
            k = int(codes[..., c][px < 0][0])
            pre = net.input.preprocess
            have = np.unique(table[c])
            raise InputsError(
                f"--inputs: graph-form values do not map exactly onto uint8 pixels: channel {c} needs code {k}, which "
                f"no pixel produces through the input stage (pixel*{pre.get('input_scale'):g} - {pre['mean'][c]:g})/"
                f"{pre['std'][c]:g} (codes {int(have.min())}..{int(have.max())}, {len(have)} of them); "
                + ("uint8 arrays are this model's graph form (its graph input is uint8): build with --input-scale/--mean/"
                   "--std whose input stage produces these codes" if uint8_graph else
                   "give uint8 pixels N x H x W x C instead")
                + ", or use rtlgen run for the golden model alone")
        out[..., c] = px
    return out


def pixels(net: ir.Network, gi: GraphInput, x: np.ndarray) -> np.ndarray:
    """``rtlgen sim --inputs``: uint8 pixels [N, H, W, C] (or [N, C, H, W] when the graph input is NCHW; one frame
    without the batch axis too), or graph-form inputs that map exactly onto pixels."""
    H, W, C = net.input.out_shape
    if x.dtype == np.uint8 and not (gi.is_int and gi.dtype == np.uint8 and _pixel_codes_differ(net)):
        shapes = [("NHWC", (H, W, C))]
        if gi.layout == "NCHW":
            shapes.append(("NCHW", (C, H, W)))
        if gi.layout == "NF":
            shapes.append(("NF", (C,)))
        for lay, shp in reversed(shapes):  # the graph's own layout first where several fit
            if x.ndim in (len(shp), len(shp) + 1) and tuple(x.shape[x.ndim - len(shp):]) == shp:
                xb = x if x.ndim == len(shp) + 1 else x[None]
                if len(xb) < 1:
                    raise InputsError(f"--inputs: no frames (shape {x.shape})")
                if lay == "NCHW":
                    xb = xb.transpose(0, 2, 3, 1)
                return np.ascontiguousarray(xb.reshape(len(xb), H, W, C))
        if gi.dtype != np.uint8:
            raise InputsError(f"--inputs: uint8 pixels must be N x {H} x {W} x {C}"
                              + (f" (or N x {C} x {H} x {W})" if gi.layout == "NCHW" else "")
                              + (f" (or N x {C})" if gi.layout == "NF" else "") + f", got shape {x.shape}")
    if x.dtype != gi.dtype:
        raise InputsError(f"--inputs: dtype {x.dtype.name}: give uint8 pixels N x {H} x {W} x {C}"
                          + (f" (or N x {C} x {H} x {W})" if gi.layout == "NCHW" else "")
                          + f", or the graph input's own form {gi.describe()} where it maps exactly onto pixels")
    codes, _ = graph_codes(gi, x)
    return pixels_for_codes(net, codes, uint8_graph=gi.dtype == np.uint8)


def _pixel_codes_differ(net: ir.Network) -> bool:
    """True when the input stage is not the identity on uint8 values (pixel p -> code p)."""
    t = net.input.table
    return not np.array_equal(t, np.tile(np.arange(256), (t.shape[0], 1)))


def save_atomic(path, arr: np.ndarray) -> None:
    """Write ``arr`` as .npy at exactly ``path`` (temporary file + rename: never half-written)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OptionError(f"--out: folder {str(parent)!r} does not exist")
    if p.is_dir():
        raise OptionError(f"--out: {str(p)!r} is a folder")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, arr)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
