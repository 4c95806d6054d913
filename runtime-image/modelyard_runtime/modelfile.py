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
