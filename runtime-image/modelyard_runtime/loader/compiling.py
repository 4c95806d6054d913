"""Formats served through a compiler: a verified PMML document becomes ``model.onnx`` beside it, before publishing.

The compiler is pure and deterministic (:mod:`modelyard_runtime.pmml`), so the validation Job and every pod compile
the same bytes. The validation records the compiled model's digest in the ModelVersion's status; a pod's loader is
given it (``--compiled-digest``) and publishes nothing when its own compilation differs (a runtime image with another
compiler, say). The artifact itself is verified, cached and signed as fetched; only the published tree gains the
compiled file, which the server serves as it serves any ``model.onnx``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from modelyard_runtime.loader.errors import CompiledDigestError, CompileError, FormatMismatchError
from modelyard_runtime.modelfile import PREFERRED, ModelFileError, choose_model

COMPILED_FORMATS = ("pmml",)


@dataclass(frozen=True)
class Compiled:
    source: str  # the compiled file, relative to the version folder
    model: str  # the compiled model, relative to the version folder
    digest: str
    size: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {"from": self.source, "model": self.model, "digest": self.digest, "sizeBytes": self.size,
                "seconds": round(self.seconds, 4)}  # fmt: skip


def compile_into(tree: Path, files: list[str], model_format: str, expected: str | None, label: str) -> Compiled:
    """Compile the ``model_format`` model among ``files`` (paths under ``tree``) to ``tree/model.onnx``."""
    if model_format != "pmml":
        raise FormatMismatchError(f"format {model_format} is not compiled (compiled: {', '.join(COMPILED_FORMATS)})")
    try:
        source = choose_model(files, model_format)
    except ModelFileError as e:
        raise FormatMismatchError(f"{label}: format {model_format}: {e}") from None
    if any(f.strip("/").lower() == PREFERRED for f in files):
        raise FormatMismatchError(f"{label}: holds a {PREFERRED} already, where the compiled PMML model goes")
    from modelyard_runtime.pmml import PMMLError, compile_pmml  # onnx is imported only when a format needs it

    start = time.perf_counter()
    try:
        data = compile_pmml((tree / source).read_bytes()).SerializeToString(deterministic=True)
    except PMMLError as e:
        raise CompileError(f"{label}: {source}: {e}") from None
    except Exception as e:  # a compiler bug fails this version clearly, never the loader as "internal error"
        raise CompileError(f"{label}: {source}: the compiler failed ({type(e).__name__}: {str(e)[:300]})") from None
    seconds = time.perf_counter() - start
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if expected and digest != expected:
        raise CompiledDigestError(
            f"{label}: {source} compiles to {digest}, but the validation recorded {expected} "
            "(a runtime image with another compiler?)"
        )
    (tree / PREFERRED).write_bytes(data)
    return Compiled(source, PREFERRED, digest, len(data), seconds)
