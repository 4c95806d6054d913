"""The model repository on disk: which versions exist and which file each serves (no loading here)."""

from __future__ import annotations

import os
from pathlib import Path

from modelyard_runtime.modelfile import (
    PLAN_SUFFIXES,
    SAVED_MODEL_PB,
    ModelFileError,
    choose_onnx,
    choose_plan,
    choose_savedmodel,
)

MODEL_FILES = ("model.onnx", "model.plan", f"model.savedmodel/{SAVED_MODEL_PB}", SAVED_MODEL_PB)


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort numerically and above names: "10" > "9" > "beta"."""
    return (1, int(version)) if version.isdigit() else (0, version)


def _model_files(version_dir: Path, suffixes: tuple[str, ...] = (".onnx",)) -> list[str]:
    """Relative paths of the files with ``suffixes`` (any case) below ``version_dir``; hidden folders are not
    entered."""
    found: list[str] = []
    for folder, dirs, files in os.walk(version_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        here = Path(folder)
        rel = here.relative_to(version_dir)
        found.extend((rel / f).as_posix() for f in files if f.lower().endswith(suffixes) and (here / f).is_file())
    return found


def model_file(version_dir: Path) -> Path | None:
    """``model.onnx``, ``model.plan`` or a SavedModel's ``saved_model.pb`` (in ``model.savedmodel/``, Triton's
    name, or in the version folder itself), else what the validator (``modelyard-loader validate``) loads, by the
    same function (:func:`modelyard_runtime.modelfile.choose_onnx`). The loader publishes a single-file artifact
    under its URI's file name (``.../adder-v1.onnx``) and extracts archives as they are laid out, so the server
    must find exactly the file that passed validation."""
    for name in MODEL_FILES:
        if (version_dir / name).is_file():
            return version_dir / name
    try:
        return version_dir / choose_onnx(_model_files(version_dir))
    except ModelFileError:
        pass
    try:  # a TensorRT plan published under its own name (format tensorrt)
        return version_dir / choose_plan(_model_files(version_dir, PLAN_SUFFIXES))
    except ModelFileError:
        pass
    try:  # a SavedModel in a folder of another name (format savedmodel): its saved_model.pb
        return version_dir / choose_savedmodel(_model_files(version_dir, (".pb",)))
    except ModelFileError:
        return None


def scan_repository(root: Path) -> dict[str, dict[str, Path]]:
    """``root/<model>/<version>/model.onnx`` (or ``model.plan``, a SavedModel's ``saved_model.pb``, or one other
    ``.onnx``) → {model: {version: path}}."""
    found: dict[str, dict[str, Path]] = {}
    if not root.is_dir():
        return found
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for version_dir in sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (path := model_file(version_dir)) is not None:
                found.setdefault(model_dir.name, {})[version_dir.name] = path
    return found


def mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime  # follows the symlinks a ConfigMap volume swaps on update
    except OSError:
        return 0.0


def size_on_disk(model_file: Path) -> int:
    """The model file and anything beside it (external data), as the estimate before loading."""
    return sum(p.stat().st_size for p in model_file.parent.rglob("*") if p.is_file())
