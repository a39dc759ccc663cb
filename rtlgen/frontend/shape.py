"""Constants, shapes and layout: constant folding's inputs (``Constant``, ``Shape``, ``Cast``), ``Identity``/``Dropout``, and
the layout ops exporters put around the compute (``Transpose``, ``Flatten``, ``Reshape``, ``Squeeze``, ``Unsqueeze``,
``Slice`` (option-A shortcuts), ``Pad``, ``Concat``)."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from .. import ir
from .registry import onnx_handler
from .values import Act, Const, GraphInput, Pending, QConst, _attrs, _err, _hwc, _s, conv_as_dense


class ShapeOps:
    """Mixin of :class:`rtlgen.frontend.importer.Importer` (handlers registered with :func:`~rtlgen.frontend.registry.onnx_handler`)."""

    # --- constants & shapes --------------------------------------------------------------------------------------
    @onnx_handler("Constant")
    def op_Constant(self, node):
        a = _attrs(node)
        if "value" in a:
            v = numpy_helper.to_array(a["value"])
        elif "value_float" in a:
            v = np.array(a["value_float"], dtype=np.float32)
        elif "value_floats" in a:
            v = np.array(a["value_floats"], dtype=np.float32)
        elif "value_int" in a:
            v = np.array(a["value_int"], dtype=np.int64)
        elif "value_ints" in a:
            v = np.array(a["value_ints"], dtype=np.int64)
        else:
            raise _err(node, "unsupported Constant attribute")
        self.out(node, Const(v))

    @onnx_handler("Shape")
    def op_Shape(self, node):
        v = self.get(node, 0)
        if isinstance(v, (Act, GraphInput)):
            shape = np.array(v.shape, dtype=np.int64)
        elif isinstance(v, Pending):
            shape = np.array(v.shape, dtype=np.int64)
        else:
            return self.fold(node)
        a = _attrs(node)
        start, end = a.get("start", 0), a.get("end", None)
        self.out(node, Const(shape[start:end]))

    @onnx_handler("Identity", "Dropout")
    def op_Identity(self, node):
        self.out(node, self.get(node, 0))

    @onnx_handler("Cast")
    def op_Cast(self, node):
        v = self.get(node, 0)
        if isinstance(v, Const):
            return self.fold(node)
        raise _err(node, "Cast of an activation is not supported")

    # --- layout ops -------------------------------------------------------------------------------------------------
    @onnx_handler("Transpose")
    def op_Transpose(self, node):
        v = self.get(node, 0)
        perm = _attrs(node).get("perm")
        if isinstance(v, (GraphInput, Act)):
            if perm is None:
                perm = list(reversed(range(len(v.shape))))
            shape = tuple(v.shape[p] for p in perm)
            axes = tuple(v.axes[p] for p in perm)
            if isinstance(v, GraphInput):
                nv = GraphInput(v.name, shape, axes, v.elem_type, v.q)
                self.input = nv
            else:
                if v.flat_order is not None and len(v.shape) > 2:
                    raise _err(node, "transpose of a flattened tensor")
                nv = Act(v.layer, v.q, shape, axes, v.flat_order)
            self.out(node, nv)
            return
        raise _err(node, "Transpose is supported on the graph input and on quantized activations only")

    def _flatten_to(self, node, v: Act, new_shape):
        if int(np.prod(new_shape)) != int(np.prod(v.shape)):
            raise _err(node, f"reshape {v.shape} -> {tuple(new_shape)} changes the element count")
        new_shape = tuple(int(d) for d in new_shape)
        if new_shape == tuple(v.shape):
            return v
        if len(new_shape) == 2 and new_shape[0] == 1:
            if v.flat_order is not None:
                return Act(v.layer, v.q, new_shape, ("N", "F"), v.flat_order)
            order = tuple(a for a in v.axes if a != "N")
            return Act(v.layer, v.q, new_shape, ("N", "F"), order)
        if len(new_shape) == 4 and v.flat_order is not None or (len(new_shape) == 4 and np.prod(new_shape[2:]) == 1 and new_shape[1] == np.prod(v.shape[1:])):
            H, W, C = _hwc(v)
            if H * W == 1 and new_shape[2] * new_shape[3] == 1:
                return Act(v.layer, v.q, new_shape, ("N", "C", "H", "W"))
        raise _err(node, f"reshape {tuple(v.shape)} -> {new_shape} is not a flatten (only flattening before a dense layer is supported)")

    @onnx_handler("Flatten")
    def op_Flatten(self, node):
        v = self.get(node, 0)
        if isinstance(v, Pending):
            return self.out(node, conv_as_dense(node, v, "Flatten"))
        x = self.act(node, 0)
        axis = _attrs(node).get("axis", 1)
        if axis != 1:
            raise _err(node, "Flatten axis must be 1")
        self.out(node, self._flatten_to(node, x, (1, int(np.prod(x.shape[1:])))))

    @onnx_handler("Reshape")
    def op_Reshape(self, node):
        v = self.get(node, 0)
        shape = [int(s) for s in self.const(node, 1, what="shape")]
        if isinstance(v, Pending):
            return self.out(node, conv_as_dense(node, v, "Reshape"))
        x = self.act(node, 0)
        total = int(np.prod(x.shape))
        shape = [x.shape[k] if s == 0 else s for k, s in enumerate(shape)]
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1]))
            shape = [total // known if s == -1 else s for s in shape]
        shape[0] = 1 if shape[0] in (1, -1) else shape[0]
        self.out(node, self._flatten_to(node, x, shape))

    @onnx_handler("Squeeze")
    def op_Squeeze(self, node):
        v = self.get(node, 0)
        if isinstance(v, Pending):
            return self.out(node, conv_as_dense(node, v, "Squeeze"))
        x = self.act(node, 0)
        axes = _attrs(node).get("axes")
        if axes is None:
            ax = self.const(node, 1, optional=True)
            axes = [int(a) for a in ax] if ax is not None else [k for k, d in enumerate(x.shape) if d == 1 and k > 0]
        shape = [d for k, d in enumerate(x.shape) if k not in [a % len(x.shape) for a in axes]]
        if shape and shape[0] != 1:
            shape = [1] + shape
        self.out(node, self._flatten_to(node, x, shape))

    @onnx_handler("Unsqueeze")
    def op_Unsqueeze(self, node):
        x = self.act(node, 0)
        axes = _attrs(node).get("axes")
        if axes is None:
            axes = [int(a) for a in self.const(node, 1)]
        shape = list(x.shape)
        for a in sorted(a % (len(shape) + len(axes)) for a in axes):
            shape.insert(a, 1)
        self.out(node, self._flatten_to(node, x, shape))

    @onnx_handler("Slice")
    def op_Slice(self, node):
        x = self.act(node, 0)
        if x.axes != ("N", "C", "H", "W"):
            raise _err(node, "Slice is only supported on NCHW activations")
        starts = self.const(node, 1)
        ends = self.const(node, 2)
        axes = self.const(node, 3, optional=True)
        steps = self.const(node, 4, optional=True)
        axes = list(range(len(starts))) if axes is None else [int(a) % 4 for a in axes]
        steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
        H, W, C = _hwc(x)
        sub = {}
        for a, s, e, st in zip(axes, starts, ends, steps):
            dim = x.shape[a]
            s, e = int(s), int(e)
            s = max(0, s + dim if s < 0 else min(s, dim))
            e = max(0, min(e + dim if e < 0 else e, dim))
            if (s, e, st) == (0, dim, 1):
                continue
            if a in (2, 3) and s == 0 and e >= dim and st >= 1:
                sub[a] = st
                continue
            raise _err(node, f"slice on axis {a} ({s}:{e}:{st}) is not supported (only stride-s spatial subsampling, option A)")
        if not sub:
            self.out(node, x)
            return
        # exporters write x[:, :, ::2, ::2] as one Slice on both axes or as two single-axis Slices (often with a
        # Q/DQ pair between them): a single-axis subsample of a fresh single-axis ShortcutA completes it
        prev = next((lay for lay in self.layers if lay.name == x.layer), None)
        half = self.half_slices.get(x.layer)
        if half is not None and isinstance(prev, ir.ShortcutA) and len(sub) == 1:
            (ax, st), = sub.items()
            if ax in half[0] or st != half[1] or any(x.layer in lay.inputs for lay in self.layers):
                raise _err(node, "unsupported chain of subsampling slices")
            Hp, Wp, Cp = prev.in_shape
            Ho, Wo = -(-Hp // st), -(-Wp // st)
            prev.out_shape = (Ho, Wo, Cp)
            prev.source_nodes.append(node.name)
            del self.half_slices[x.layer]
            self.out(node, Act(prev.name, x.q, (1, Cp, Ho, Wo), x.axes))
            return
        st = max(sub.values())
        if len(sub) == 2 and sub[2] != sub[3]:
            raise _err(node, "unequal subsampling strides on H and W")
        Ho = -(-H // st) if 2 in sub else H
        Wo = -(-W // st) if 3 in sub else W
        lay = self.add_layer(ir.ShortcutA(self.uname("shortcut"), [x.layer], (H, W, C), (Ho, Wo, C), x.q, [node.name],
                                          stride=st, pad_value=x.q.zero_point))
        if len(sub) == 1:
            self.half_slices[lay.name] = (set(sub), st)
        self.out(node, Act(lay.name, x.q, (1, C, Ho, Wo), x.axes))

    @onnx_handler("Pad")
    def op_Pad(self, node):
        x = self.act(node, 0)
        a = _attrs(node)
        mode = _s(a.get("mode", "constant"))
        if mode != "constant":
            raise _err(node, f"pad mode {mode} is not supported")
        pads = [int(p) for p in (a["pads"] if "pads" in a else self.const(node, 1))]
        val = self.get(node, 2, optional=True)
        value = float(self.const(node, 2)) if val is not None else 0.0
        axes_in = self.const(node, 3, optional=True)
        n = len(x.shape)
        full = [0] * (2 * n)
        axes = list(range(n)) if axes_in is None else [int(v) % n for v in axes_in]
        for k, ax in enumerate(axes):
            full[ax], full[ax + n] = pads[k], pads[k + len(axes)]
        if any(full[k] or full[k + n] for k in (0, 2, 3)) or x.axes != ("N", "C", "H", "W"):
            raise _err(node, "only channel zero-padding (option-A shortcut) is supported for Pad")
        qv = value / x.q.scale + x.q.zero_point
        if abs(qv - round(qv)) > 1e-6:
            raise _err(node, f"pad value {value} is not representable in the activation's quantization")
        qv = int(round(qv))
        H, W, C = _hwc(x)
        Co = C + full[1] + full[1 + n]
        lay = next((lay for lay in self.layers if lay.name == x.layer), None)
        if isinstance(lay, ir.ShortcutA) and lay.name == x.layer and x.layer not in self.half_slices and lay.pad_before == lay.pad_after == 0 and qv == lay.pad_value \
                and not any(x.layer in other.inputs for other in self.layers):
            lay.pad_before, lay.pad_after = full[1], full[1 + n]
            lay.out_shape = (H, W, Co)
            lay.source_nodes.append(node.name)
        else:
            lay = self.add_layer(ir.ShortcutA(self.uname("shortcut"), [x.layer], (H, W, C), (H, W, Co), x.q, [node.name],
                                              stride=1, pad_before=full[1], pad_after=full[1 + n], pad_value=qv))
        self.out(node, Act(lay.name, x.q, (1, Co, H, W), x.axes))

    @onnx_handler("Concat")
    def op_Concat(self, node):
        ins = [self.get(node, i) for i in range(len(node.input))]
        acts = [v for v in ins if isinstance(v, Act)]
        if len(acts) != 1:
            raise _err(node, "Concat of activations is only supported as zero channel padding (option-A shortcut)")
        axis = _attrs(node).get("axis", 1) % 4
        x = acts[0]
        if axis != 1 or x.axes != ("N", "C", "H", "W"):
            raise _err(node, "Concat is only supported along channels")
        k = ins.index(x)
        before = after = 0
        for j, v in enumerate(ins):
            if v is x:
                continue
            val = v.real() if isinstance(v, QConst) else (v.value if isinstance(v, Const) else None)
            if val is None or np.any(val != 0):
                raise _err(node, "Concat operand other than zeros")
            if j < k:
                before += val.shape[1]
            else:
                after += val.shape[1]
        H, W, C = _hwc(x)
        lay = self.add_layer(ir.ShortcutA(self.uname("shortcut"), [x.layer], (H, W, C), (H, W, C + before + after), x.q, [node.name],
                                          stride=1, pad_before=before, pad_after=after, pad_value=x.q.zero_point))
        self.out(node, Act(lay.name, x.q, (1, C + before + after, H, W), x.axes))
