"""Which file of a version folder is its model (pure: relative paths in, a relative path out).

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


def _candidates(files: Iterable[str], suffixes: tuple[str, ...]) -> list[str]:
    """The files ending in one of ``suffixes`` (any case) outside hidden folders, shallowest first, then by path."""
    found = {f.strip("/") for f in files if f.lower().endswith(suffixes) and not _hidden(f.strip("/"))}
    return sorted(found, key=lambda f: (f.count("/"), f))


def _choose(files: Iterable[str], suffixes: tuple[str, ...], preferred: str, what: str, several: str) -> str:
    """The file named ``preferred`` nearest the top, else the only candidate; ModelFileError naming ``what``."""
    candidates = _candidates(files, suffixes)
    if not candidates:
        raise ModelFileError(f"the artifact holds no {what}")
    named = [f for f in candidates if f.rsplit("/", 1)[-1] == preferred]
    if named:
        return named[0]
    if len(candidates) > 1:
        raise ModelFileError(f"several {several} and none named {preferred}: {', '.join(candidates[:5])}")
    return candidates[0]


def onnx_candidates(files: Iterable[str]) -> list[str]:
    """The ``.onnx`` files (any case) outside hidden folders, shallowest first, then by path."""
    return _candidates(files, (".onnx",))


def choose_onnx(files: Iterable[str]) -> str:
    """The model among ``files`` (``/``-separated paths relative to the version folder); ModelFileError if none."""
    return _choose(files, (".onnx",), PREFERRED, ".onnx model", ".onnx files")


PLAN_SUFFIXES = (".plan", ".engine")
PREFERRED_PLAN = "model.plan"


def choose_plan(files: Iterable[str]) -> str:
    """The TensorRT plan among ``files``, by the rule of :func:`choose_onnx` with ``.plan``/``.engine`` files and
    ``model.plan`` preferred; ModelFileError if none (or several, none named ``model.plan``)."""
    return _choose(files, PLAN_SUFFIXES, PREFERRED_PLAN, "TensorRT plan (.plan or .engine file)", "plans")


PMML_SUFFIXES = (".pmml", ".xml")
PREFERRED_PMML = "model.pmml"


def choose_pmml(files: Iterable[str]) -> str:
    """The PMML document among ``files`` (``.pmml``, or ``.xml``), by the rule of :func:`choose_onnx` with
    ``model.pmml`` preferred; ModelFileError if none (or several, none named ``model.pmml``)."""
    return _choose(files, PMML_SUFFIXES, PREFERRED_PMML, "PMML document (.pmml or .xml file)", "PMML documents")


SAVED_MODEL_PB = "saved_model.pb"
PREFERRED_SAVEDMODEL = "model.savedmodel"  # Triton's folder name for a SavedModel in a version folder


def choose_savedmodel(files: Iterable[str]) -> str:
    """The ``saved_model.pb`` of the SavedModel among ``files``: the one in ``model.savedmodel/`` nearest the top,
    else the only one (the version folder itself may be the SavedModel); ModelFileError if none, or several and
    none in a ``model.savedmodel`` folder. The SavedModel is the folder holding the returned file."""
    candidates = [f for f in _candidates(files, (".pb",)) if f.rsplit("/", 1)[-1] == SAVED_MODEL_PB]
    if not candidates:
        raise ModelFileError("the artifact holds no SavedModel (a folder with saved_model.pb)")
    named = [f for f in candidates if f.count("/") >= 1 and f.rsplit("/", 2)[-2] == PREFERRED_SAVEDMODEL]
    if named:
        return named[0]
    if len(candidates) > 1:
        raise ModelFileError(
            f"several SavedModels and none in a folder named {PREFERRED_SAVEDMODEL}: {', '.join(candidates[:5])}"
        )
    return candidates[0]


def choose_model(files: Iterable[str], model_format: str) -> str:
    """The file a ModelVersion of ``model_format`` (onnx, tensorrt, pmml or savedmodel) is read from; ModelFileError
    naming the format. A PMML document is compiled to ``model.onnx`` by the loader, which the server then serves; a
    SavedModel is read from the folder of the returned ``saved_model.pb``."""
    listed = list(files)
    if model_format == "onnx":
        return choose_onnx(listed)
    if model_format == "tensorrt":
        return choose_plan(listed)
    if model_format == "pmml":
        return choose_pmml(listed)
    if model_format == "savedmodel":
        return choose_savedmodel(listed)
    raise ModelFileError(f"format {model_format} cannot be served yet (supported: onnx, tensorrt, pmml, savedmodel)")
