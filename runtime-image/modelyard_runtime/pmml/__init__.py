"""PMML compiled to ONNX (pure): see :func:`modelyard_runtime.pmml.compile.compile_pmml` and docs/formats.md."""

from .compile import compile_pmml
from .document import PMMLError

__all__ = ["PMMLError", "compile_pmml"]
