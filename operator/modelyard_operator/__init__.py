"""Modelyard's control plane: a kopf operator for ModelVersion and ModelDeployment.

Layers (kept honest by the import-linter contracts in pyproject.toml):

- ``api``      pydantic models of the custom resources and the CRD generator (pure)
- ``render``   desired Kubernetes objects from a spec (pure)
- ``status``   status and conditions from observations (pure)
- ``kube``     the only module that talks to the Kubernetes API (adapter)
- ``handlers`` kopf handlers: parse, observe, call pure code, apply, return status
"""

from importlib import metadata as _metadata

try:  # the one version number is pyproject.toml's [project].version (images and chart carry the same)
    __version__ = _metadata.version("modelyard")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0.0.0+unknown"
