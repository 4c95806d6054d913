"""ModelDeployment: what should serve, where, and how a new version takes over.

The operator never writes ``spec`` (GitOps tools own it); everything it learns lives in ``status``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from modelyard_operator.api.common import (
    ApiModel,
    Condition,
    Duration,
    ModelName,
    ObjectMeta,
    Quantity,
    VersionName,
    schema_default,
)

Strategy = Literal["canary", "blueGreen", "immediate"]
TrafficRouter = Literal["replicas", "gatewayAPI", "inPod"]
LoadMode = Literal["static", "dynamic"]
MDPhase = Literal["Progressing", "Paused", "Healthy", "RolledBack", "Degraded"]
Template = Literal["errorRate", "latencyP95", "latencyP99"]

FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


class ResourcesSpec(ApiModel):
    """Resource requests and limits of the server container (Kubernetes quantities)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {cpu: '1', memory: 2Gi}.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="e.g. {nvidia.com/gpu: 1}.")


class Toleration(ApiModel):
    """A pod toleration (core/v1 Toleration)."""

    key: str | None = Field(default=None, max_length=316)
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = Field(default=None, max_length=63)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class PlacementSpec(ApiModel):
    """Where the pods may run."""

    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, description="Node labels the pods require."
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    affinity: FreeForm = Field(default_factory=dict, description="A core/v1 Affinity, passed through.")


class LoadingSpec(ApiModel):
    """How the server loads models."""

    mode: LoadMode = Field(
        default="static",
        description="static: load at start, ready after warm-up; dynamic: load on demand, evict LRU.",
    )
    memory_budget: Quantity | None = Field(default=None, description="Model memory budget in dynamic mode.")


class ServingSpec(ApiModel):
    """Ports of the inference server."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.httpPort != self.grpcPort", "message": "httpPort and grpcPort must differ"}
            ]
        }
    }

    http_port: int = Field(default=8080, ge=1024, le=65535, description="HTTP/REST port (also /metrics).")
    grpc_port: int = Field(default=8081, ge=1024, le=65535, description="gRPC port.")


class PauseStep(ApiModel):
    """Wait for a duration, or until approved when no duration is given."""

    duration: Duration | None = None


class AnalyzeStep(ApiModel):
    """Hold the weight and analyse metrics for at least minDuration, at most maxDuration."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.maxDuration) || duration(self.maxDuration) >= duration(self.minDuration)",
                    "message": "maxDuration must be at least minDuration",
                }
            ]
        }
    }

    min_duration: Duration = Field(default="1m", description="Shortest analysis before the step may pass.")
    max_duration: Duration | None = Field(
        default=None, description="Longest the step may wait for conclusive evidence; then it holds."
    )


class RolloutStep(ApiModel):
    """Exactly one of setWeight, pause or analyze."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.setWeight), has(self.pause), has(self.analyze)].filter(x, x).size() == 1",
                    "message": "each step sets exactly one of setWeight, pause or analyze",
                }
            ]
        }
    }

    set_weight: int | None = Field(default=None, ge=0, le=100, description="Percent of traffic to the canary.")
    pause: PauseStep | None = None
    analyze: AnalyzeStep | None = None


class Evidence(ApiModel):
    """How much traffic a step needs before a verdict counts."""

    min_requests: int = Field(default=100, ge=0, description="Canary requests since the step started.")


class CompareSpec(ApiModel):
    """Compare the canary with the stable version instead of an absolute bound."""

    against: Literal["stable"] = "stable"
    max_ratio: float | None = Field(default=None, gt=0, description="canary / stable must stay at or below this.")


class FailurePolicy(ApiModel):
    """When failed measurements of a non-critical metric lead to rollback."""

    consecutive: int | None = Field(default=None, ge=1, description="Fail after this many failures in a row.")
    total: int | None = Field(default=None, ge=1, description="Fail after this many failures in the step.")


class MetricSpec(ApiModel):
    """One analysed metric: a built-in template or raw PromQL, with bounds."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.template) != has(self.query)",
                    "message": "set exactly one of template or query",
                },
                {
                    "rule": "has(self.min) || has(self.max) || has(self.compare)",
                    "message": "set at least one of min, max or compare",
                },
            ]
        }
    }

    name: str = Field(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    template: Template | None = None
    query: str | None = Field(
        default=None, max_length=4096, description="PromQL with {{model}} {{version}} {{namespace}} {{window}}."
    )
    min: float | None = None
    max: float | None = None
    compare: CompareSpec | None = None
    critical: bool = Field(default=False, description="One failure rolls back.")
    failure_policy: FailurePolicy | None = None
    dry_run: bool = Field(default=False, description="Measure and record, never act.")


class AnalysisSpec(ApiModel):
    """How the canary is measured."""

    interval: Duration = Field(default="30s", description="Time between measurements.")
    evidence: Evidence = Field(default_factory=Evidence, json_schema_extra=schema_default(Evidence))
    metrics: list[MetricSpec] = Field(default_factory=list, max_length=16)


class PostPromotionAnalyze(ApiModel):
    duration: Duration


class PostPromotionSpec(ApiModel):
    """Keep watching after 100%."""

    analyze: PostPromotionAnalyze | None = None
    on_failure: Literal["rollback", "alert"] = "rollback"


class RolloutSpec(ApiModel):
    """How a new spec.version takes over."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.strategy != 'canary' || (has(self.steps) && size(self.steps) > 0)",
                    "message": "the canary strategy needs at least one step",
                }
            ]
        }
    }

    strategy: Strategy = Field(default="immediate", description="canary, blueGreen or immediate.")
    traffic_router: TrafficRouter = Field(default="replicas", description="replicas, gatewayAPI or inPod.")
    steps: list[RolloutStep] = Field(default_factory=list, max_length=32)
    analysis: AnalysisSpec | None = None
    post_promotion: PostPromotionSpec | None = None


class ModelDeploymentSpec(ApiModel):
    """Desired serving state; GitOps tools own it, the operator never writes it."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.model == oldSelf.model", "message": "model is immutable"},
            ]
        }
    }

    model: ModelName
    version: VersionName = Field(description="Desired version; names a ModelVersion of this model.")
    replicas: int = Field(default=1, ge=0, le=1000)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, json_schema_extra=schema_default(ResourcesSpec))
    placement: PlacementSpec = Field(default_factory=PlacementSpec, json_schema_extra=schema_default(PlacementSpec))
    loading: LoadingSpec = Field(default_factory=LoadingSpec, json_schema_extra=schema_default(LoadingSpec))
    serving: ServingSpec = Field(default_factory=ServingSpec, json_schema_extra=schema_default(ServingSpec))
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, json_schema_extra=schema_default(RolloutSpec))


class Weights(ApiModel):
    stable: int = Field(default=100, ge=0, le=100)
    canary: int = Field(default=0, ge=0, le=100)


class StepStatus(ApiModel):
    index: int = Field(ge=0)
    started_at: str | None = Field(default=None, max_length=64)
    evidence: int = Field(default=0, ge=0)


class MetricResult(ApiModel):
    name: str = Field(max_length=63)
    canary: float | None = None
    stable: float | None = None
    n: int | None = None
    verdict: str = Field(max_length=32)


class DecisionStatus(ApiModel):
    verdict: str = Field(max_length=32)
    reason: str = Field(default="", max_length=1024)
    at: str | None = Field(default=None, max_length=64)
    metrics: list[MetricResult] = Field(default_factory=list, max_length=16)


class HandledAction(ApiModel):
    type: str = Field(max_length=32)
    nonce: str = Field(max_length=253)


class HistoryEntry(ApiModel):
    version: str = Field(max_length=63)
    outcome: str = Field(max_length=32)
    at: str | None = Field(default=None, max_length=64)


class Endpoints(ApiModel):
    http: str | None = Field(default=None, max_length=512)
    grpc: str | None = Field(default=None, max_length=512)


class ModelDeploymentStatus(ApiModel):
    """Everything the operator needs to resume after a restart."""

    observed_generation: int | None = Field(default=None, ge=0)
    phase: MDPhase | None = None
    stable_version: str | None = Field(default=None, max_length=63)
    canary_version: str | None = Field(default=None, max_length=63)
    weights: Weights | None = None
    step: StepStatus | None = None
    last_decision: DecisionStatus | None = None
    last_handled_action: HandledAction | None = None
    history: list[HistoryEntry] = Field(default_factory=list, max_length=64)
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    endpoints: Endpoints | None = None


class ModelDeployment(ApiModel):
    """A ModelDeployment object as read from the API server."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
