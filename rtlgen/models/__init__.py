"""Bundled int8 models (ONNX, QONNX format) and their model cards."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelError

HERE = Path(__file__).parent
DEFAULT = "resnet8"


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.onnx"))


def resolve(model: str | None) -> str:
    """An .onnx path, or a bundled model name (``resnet8``, ``resnet20``...); None means the default model."""
    if model is None:
        model = DEFAULT
    p = Path(model)
    if p.suffix == ".onnx" or p.exists() or "/" in str(model):
        return str(p)
    b = HERE / f"{model}.onnx"
    if b.exists():
        return str(b)
    names = ", ".join(available()) or "none bundled yet"
    raise ModelError(f"unknown model {model!r}: not a file and not a bundled model ({names})")
