"""``ModelDeployment.spec.pod``: what a user may set on the model pods the operator renders (pure: no I/O imports).

Only what cannot weaken the pod's guarantees: metadata, runtime and priority class, image pull Secrets, extra
environment variables for the server, and the loader's resources. Labels and variables that the operator's own
selectors and the server's configuration use are refused by the schema. The service account is not offered: model
pods run as the namespace's ``default`` account, which the chart's admission policy enforces (on some clouds a pod's
account alone, without a token, is a cloud identity: docs/security.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from modelyard_operator.api.common import ApiModel, Quantity

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
RESERVED_PREFIXES = ("app.kubernetes.io/", "modelyard.dev/")
LabelValue = Annotated[str, Field(max_length=63)]
AnnotationValue = Annotated[str, Field(max_length=4096)]


class LocalObjectReference(ApiModel):
    """A Secret in the ModelDeployment's namespace, by name."""

    name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN, description="The Secret's name.")


class ConfigMapKeyRef(ApiModel):
    """A key in a ConfigMap in the ModelDeployment's namespace."""

    name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN, description="ConfigMap name.")
    key: str = Field(max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key within the ConfigMap.")


class EnvSource(ApiModel):
    """Where a variable's value comes from: one key of a ConfigMap. Secrets are not offered: whoever may create a
    ModelDeployment could otherwise have the operator copy any Secret of the namespace into a pod (the artifact
    credentials Secret needs an opt-in label for the same reason, docs/security.md)."""

    config_map_key_ref: ConfigMapKeyRef = Field(description="A key of a ConfigMap.")


class EnvVar(ApiModel):
    """An environment variable of the server container (core/v1 EnvVar: a value, or a ConfigMap key)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "has(self.value) != has(self.valueFrom)", "message": "set exactly one of value and valueFrom"},
                {
                    "rule": "!self.name.startsWith('MODELYARD_')",
                    "message": "MODELYARD_ variables are the operator's (the server's flags come from the spec)",
                },
            ]
        }
    }

    name: str = Field(max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Variable name.")
    value: str | None = Field(default=None, max_length=32768, description="A literal value.")
    value_from: EnvSource | None = Field(default=None, description="A value read from a ConfigMap key.")


class LoaderResources(ApiModel):
    """Requests and limits of the loader container (init container, or dynamic mode's sidecar)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {cpu: 500m, memory: 256Mi}.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {memory: 1Gi}.")


_NOT_RESERVED = " && ".join(f"!k.startsWith('{p}')" for p in RESERVED_PREFIXES)


class PodOverrides(ApiModel):
    """Settings of the model pods (every version's, canaries' included) that the user chooses."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": f"!has(self.labels) || self.labels.all(k, {_NOT_RESERVED})",
                    "message": "labels under app.kubernetes.io/ and modelyard.dev/ are the operator's (its selectors)",
                },
                {
                    "rule": "!has(self.env) || self.env.all(e, self.env.exists_one(f, f.name == e.name))",
                    "message": "each env name at most once",
                },
            ]
        }
    }

    labels: dict[str, LabelValue] | None = Field(
        default=None, max_length=64, description="Extra labels on the pods (not app.kubernetes.io/ or modelyard.dev/)."
    )
    annotations: dict[str, AnnotationValue] | None = Field(
        default=None, max_length=64, description="Extra pod annotations."
    )
    runtime_class_name: str | None = Field(
        default=None, max_length=253, pattern=DNS1123_SUBDOMAIN, description="A RuntimeClass, e.g. nvidia or gvisor."
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, pattern=DNS1123_SUBDOMAIN, description="A PriorityClass for the pods."
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None,
        max_length=16,
        description="Secrets to pull the runtime image with, added to the installation's (runtime.imagePullSecrets).",
    )
    env: list[EnvVar] | None = Field(
        default=None, max_length=64, description="Extra environment variables of the server container."
    )
    loader_resources: LoaderResources | None = Field(
        default=None,
        description="The loader container's resources (default: requests 100m CPU and 128Mi, limit 512Mi memory).",
    )
