"""Operator settings (pure data): read once at start-up from flags/environment, passed down explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from modelyard_operator import __version__

FIELD_MANAGER = "modelyard-operator"
DEFAULT_IMAGE = f"ghcr.io/modelyard/runtime:{__version__}"


@dataclass(frozen=True)
class OperatorConfig:
    """What rendering and reconciliation need to know about the installation."""

    runtime_image: str = DEFAULT_IMAGE
    image_pull_policy: str = "IfNotPresent"
    allow_unpinned_artifacts: bool = False
    allow_file_uris: bool = False
    cluster_domain: str = "cluster.local"
    resync_seconds: float = 30.0
