"""Shared building blocks of the API models: naming rules, durations, quantities, conditions.

The models are the single source of the CRD schemas (``make generate``): every constraint that the API
server can enforce is expressed here as a JSON-schema keyword or a CEL rule, so an invalid manifest is
rejected at admission instead of surfacing later as a crash.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "modelyard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Also a valid label value (it becomes modelyard.dev/version), hence alphanumeric at both ends.
VERSION_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
DIGEST = r"^sha256:[a-f0-9]{64}$"
# Go duration syntax (what CEL's duration() accepts), restricted to units that make sense here.
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The object as it appears in a manifest (camelCase, no unset optional fields)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def schema_default(model: type[ApiModel]) -> dict[str, Any]:
    """A CRD ``default`` for a nested object: its defaults spelled out, so CEL rules see every field."""
    return {"default": model().to_wire()}


ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Model name: a DNS-1123 label (lower-case letters, digits and '-').",
    ),
]
NamespaceName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="A namespace's name (a DNS-1123 label).",
    ),
]
VersionName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=VERSION_NAME,
        description="Version name: 1-63 characters of [A-Za-z0-9._-], alphanumeric at both ends.",
    ),
]
Duration = Annotated[
    str,
    Field(max_length=32, pattern=DURATION, description="A duration such as 30s, 2m or 1h30m."),
]
# Kubernetes quantities and int-or-string values: the API server validates and keeps them as given.
Quantity = Annotated[
    int | str,
    WithJsonSchema({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
]

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration (``1h30m``, ``250ms``) into a timedelta; ValueError on bad input."""
    if not re.fullmatch(DURATION, text):
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 2m, 1h30m")
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


class SecretKeyRef(ApiModel):
    """A key in a Secret in the resource's namespace."""

    name: str = Field(max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", description="Secret name.")
    key: str = Field(max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key within the Secret.")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A kstatus condition (the shape of metav1.Condition)."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(default="", max_length=1024, description="One CamelCase word saying why.")
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    last_transition_time: str | None = Field(
        default=None, max_length=64, description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was computed from."
    )


class ObjectMeta(BaseModel):
    """The few metadata fields the operator reads; the rest is passed through untouched."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, alias_generator=to_camel, frozen=True)

    name: str
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
