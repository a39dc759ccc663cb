"""Per-op registration of the importer's handlers (in the style of hls4ml's ``@onnx_handler`` converters): a handler
is a method of one op family's mixin, registered for its ONNX op types with :func:`onnx_handler`; the importer's
dispatch (:meth:`rtlgen.frontend.importer.Importer.visit`) looks the op up in :data:`HANDLERS`. A new op is one
decorated method."""

from __future__ import annotations

#: custom-op domains of QONNX graphs (their ``Quant``)
QONNX_DOMAINS = ("onnx.brevitas", "qonnx.custom_op.general", "finn.custom_op.general")

#: ONNX op type (default domain) -> handler ``(importer, node)``
HANDLERS: dict = {}
#: QONNX op type -> handler (domains :data:`QONNX_DOMAINS`)
QONNX_HANDLERS: dict = {}
#: ops the importer only ever folds (their inputs are constants: shape arithmetic of exporters)
FOLDED_OPS = ("Gather", "ConstantOfShape")


def onnx_handler(*ops: str, domains=("",)):
    """Register the decorated method as the handler of ``ops``."""

    def deco(fn):
        table = QONNX_HANDLERS if domains == QONNX_DOMAINS else HANDLERS
        for op in ops:
            table[op] = fn
        return fn

    return deco


def supported_ops() -> list[str]:
    """Every op type the importer reads (registered handlers and the folded-only ops), sorted."""
    return sorted(set(HANDLERS) | set(QONNX_HANDLERS) | set(FOLDED_OPS))
