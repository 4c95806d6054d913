"""Modelyard data plane: inference server, artifact loader, backends."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def version() -> str:
    """The one version number, pyproject.toml's [project].version (images and chart carry the same). Read on first
    use, not at import: importlib.metadata costs the server ~25 ms of start-up, before the model may open."""
    from importlib import metadata

    try:
        return metadata.version("modelyard")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
