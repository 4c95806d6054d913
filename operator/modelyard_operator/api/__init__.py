"""API models of the ``modelyard.dev/v1alpha1`` resources (pure: no I/O imports)."""

from modelyard_operator.api.common import GROUP, VERSION, Condition
from modelyard_operator.api.modeldeployment import ModelDeployment, ModelDeploymentSpec, ModelDeploymentStatus
from modelyard_operator.api.modelversion import ModelVersion, ModelVersionSpec, ModelVersionStatus

__all__ = [
    "GROUP",
    "VERSION",
    "Condition",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
]
