"""Modelyard's control plane: a kopf operator for ModelVersion and ModelDeployment.

Layers (kept honest by the import-linter contracts in pyproject.toml):

- ``api``      pydantic models of the custom resources and the CRD generator (pure)
- ``render``   desired Kubernetes objects from a spec (pure)
- ``status``   status and conditions from observations (pure)
- ``kube``     the only module that talks to the Kubernetes API (adapter)
- ``handlers`` kopf handlers: parse, observe, call pure code, apply, return status
"""

__version__ = "0.1.0"
