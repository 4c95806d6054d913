"""Which file of a version folder is its ONNX model (pure: relative paths in, a relative path out).

One rule for the validator (``modelyard-loader validate``) and the server, so a version is served exactly when
it was validated, from the file that was validated: ``model.onnx`` nearest the top (shallowest, then by path),
else the only ``.onnx`` file anywhere below. The suffix is matched in any case (``Model.ONNX`` counts); the
preferred name is exactly ``model.onnx``. Paths with a hidden part (a folder or file whose name starts with a
dot) never count. Several ``.onnx`` files and none named ``model.onnx`` is no model.
"""

from __future__ import annotations

from collections.abc import Iterable

PREFERRED = "model.onnx"


class ModelFileError(ValueError):
    """No ONNX model, or several and none named ``model.onnx``; the message says which."""


def _hidden(path: str) -> bool:
    return any(part.startswith(".") for part in path.split("/"))


def onnx_candidates(files: Iterable[str]) -> list[str]:
    """The ``.onnx`` files (any case) outside hidden folders, shallowest first, then by path."""
    found = {f.strip("/") for f in files if f.lower().endswith(".onnx") and not _hidden(f.strip("/"))}
    return sorted(found, key=lambda f: (f.count("/"), f))


def choose_onnx(files: Iterable[str]) -> str:
    """The model among ``files`` (``/``-separated paths relative to the version folder); ModelFileError if none."""
    candidates = onnx_candidates(files)
    if not candidates:
        raise ModelFileError("the artifact holds no .onnx model")
    named = [f for f in candidates if f.rsplit("/", 1)[-1] == PREFERRED]
    if named:
        return named[0]
    if len(candidates) > 1:
        raise ModelFileError(f"several .onnx files and none named {PREFERRED}: {', '.join(candidates[:5])}")
    return candidates[0]


PLAN_SUFFIXES = (".plan", ".engine")
PREFERRED_PLAN = "model.plan"


def choose_plan(files: Iterable[str]) -> str:
    """The TensorRT plan among ``files``, by the rule of :func:`choose_onnx` with ``.plan``/``.engine`` files and
    ``model.plan`` preferred; ModelFileError if none (or several, none named ``model.plan``)."""
    found = {f.strip("/") for f in files if f.lower().endswith(PLAN_SUFFIXES) and not _hidden(f.strip("/"))}
    candidates = sorted(found, key=lambda f: (f.count("/"), f))
    if not candidates:
        raise ModelFileError("the artifact holds no TensorRT plan (.plan or .engine file)")
    named = [f for f in candidates if f.rsplit("/", 1)[-1] == PREFERRED_PLAN]
    if named:
        return named[0]
    if len(candidates) > 1:
        raise ModelFileError(f"several plans and none named {PREFERRED_PLAN}: {', '.join(candidates[:5])}")
    return candidates[0]


def choose_model(files: Iterable[str], model_format: str) -> str:
    """The file a ModelVersion of ``model_format`` (onnx or tensorrt) serves; ModelFileError naming the format."""
    listed = list(files)
    if model_format == "onnx":
        return choose_onnx(listed)
    if model_format == "tensorrt":
        return choose_plan(listed)
    raise ModelFileError(f"format {model_format} cannot be served yet (supported: onnx, tensorrt)")
