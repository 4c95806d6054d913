"""Modelyard data plane: inference server, artifact loader, backends."""

from importlib import metadata as _metadata

try:  # the one version number is pyproject.toml's [project].version (images and chart carry the same)
    __version__ = _metadata.version("modelyard")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0.0.0+unknown"
