"""Frontend: quantized ONNX (QONNX ``Quant``, QDQ/QCDQ and QOperator graphs) -> :class:`rtlgen.ir.Network`.

How it works
------------
The graph is interpreted symbolically, node by node in topological order (:mod:`.importer`). Every ONNX tensor maps
to one of the values of :mod:`.values`:

* ``Const`` -- a constant array (initializers, ``Constant`` nodes and anything computed only from constants: the
  Shape/Gather/ConstantOfShape arithmetic exporters emit is folded; ``Shape`` of an activation is known because
  activations have static shapes).
* ``QConst`` -- a quantized constant (weights or bias): integers + scale (per tensor or per channel) + zero point.
  Produced by ``DequantizeLinear`` of an integer constant, QCDQ ``QuantizeLinear -> Clip -> DequantizeLinear`` on a
  float constant, or a QONNX ``Quant`` on a constant (chains allowed).
* ``Act`` -- an integer activation produced by an IR layer, with its :class:`~rtlgen.ir.QType`. The float view
  ``DequantizeLinear(q)`` maps to the same Act (it is lossless), so QDQ, QCDQ and QOperator graphs share one path.
* ``Pending`` -- the float result of a MAC layer (conv, dense, add, average pool) whose requantization is not yet
  known. ``Relu``/``Clip``, a residual ``Add`` of a quantized skip, a ``MatMul`` bias ``Add`` or a folded
  ``BatchNormalization`` may modify it; the next ``QuantizeLinear``/``Quant`` fixes its output type and turns it into
  an IR layer with an integer requantization. At the graph output a pending dense layer stays a raw int32 accumulator.

Op handlers, one module per op family, each registered per op type (:mod:`.registry`, ``@onnx_handler``):
:mod:`.qdq` (quantizers), :mod:`.compute` (conv, dense, pools, add, activations), :mod:`.shape` (constants, shapes,
layout), :mod:`.qoperator` (QLinear* ops); :mod:`.cleanup` prunes and folds the finished layer list.

Everything that cannot be implemented exactly (or within the float-scale tolerance) raises
:class:`~rtlgen.errors.ModelError` with a one-line message naming the node.
"""

from .importer import SUPPORTED_OPS, Importer, load_model

__all__ = ["load_model", "SUPPORTED_OPS", "Importer"]
