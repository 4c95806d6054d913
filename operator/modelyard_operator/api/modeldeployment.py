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
    NamespaceName,
    ObjectMeta,
    Quantity,
    SecretKeyRef,
    VersionName,
    schema_default,
)
from modelyard_operator.api.pod import PodOverrides

Strategy = Literal["canary", "blueGreen", "immediate"]
TrafficRouter = Literal["replicas", "gatewayAPI", "inPod"]
LoadMode = Literal["static", "dynamic"]
MDPhase = Literal["Progressing", "Paused", "Healthy", "RolledBack", "Degraded"]
Template = Literal["errorRate", "latencyP95", "latencyP99", "agreement"]
ActionType = Literal["approve", "abort", "promoteFull", "retry"]
ACTION_ANNOTATION = "modelyard.dev/action"

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

    key: str | None = Field(default=None, max_length=316, description="Taint key to tolerate; empty with Exists: all.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Equal (the default): key and value match; Exists: any value of the key."
    )
    value: str | None = Field(default=None, max_length=63, description="Taint value to match with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty: every effect."
    )
    toleration_seconds: int | None = Field(
        default=None, description="With NoExecute: how long the pod stays bound after the taint appears."
    )


class PlacementSpec(ApiModel):
    """Where the pods may run."""

    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict, description="Node labels the pods require."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Taints the pods tolerate (core/v1 Tolerations)."
    )
    affinity: FreeForm = Field(default_factory=dict, description="A core/v1 Affinity, passed through.")


class LoadingSpec(ApiModel):
    """How the server loads models."""

    mode: LoadMode = Field(
        default="static",
        description="static: load at start, ready after warm-up; dynamic: load on demand, evict LRU.",
    )
    memory_budget: Quantity | None = Field(default=None, description="Model memory budget in dynamic mode.")
    admin_token_secret: SecretKeyRef | None = Field(
        default=None,
        description="A key of a Secret in this namespace holding a bearer token. The server's admin API (load and "
        "unload, on the pod's loopback only) then answers only requests that carry it, and dynamic mode's loader "
        "sidecars send it; both read the mounted file on each call, so a rotated Secret applies without a restart.",
    )


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
    allow_from_namespaces: list[NamespaceName] | None = Field(
        default=None,
        max_length=16,
        description="Namespaces whose pods may reach the inference ports, besides this one and those the "
        "installation allows (operator.networkPolicies.ingressNamespaces): added to the NetworkPolicy the operator "
        "renders for the pods when the installation has network policies on.",
    )


AutoscalingMetric = Literal["cpu", "inflight", "queueTime", "rps"]


class AutoscalingSpec(ApiModel):
    """A HorizontalPodAutoscaler (autoscaling/v2) on the serving Deployment; the operator then never sets that
    Deployment's replicas (the autoscaler owns them) and ``spec.replicas`` is not used."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.maxReplicas >= self.minReplicas", "message": "maxReplicas must be at least minReplicas"},
                {
                    "rule": "!has(self.metric) || self.metric == 'cpu' || has(self.target)",
                    "message": "metric inflight, queueTime and rps need a target",
                },
                {
                    "rule": "!has(self.target) || (has(self.metric) && self.metric != 'cpu')",
                    "message": "target is for metric inflight, queueTime or rps; cpu uses targetCPUUtilization",
                },
            ]
        }
    }

    min_replicas: int = Field(default=1, ge=1, le=1000, description="Fewest pods the autoscaler keeps.")
    max_replicas: int = Field(ge=1, le=1000, description="Most pods the autoscaler starts.")
    metric: AutoscalingMetric = Field(
        default="cpu",
        description="What the autoscaler holds at its target: cpu (percent of the CPU request, targetCPUUtilization), "
        "inflight (average requests in flight per pod), queueTime (average time a request waits in the batch "
        "queue, milliseconds) or rps (requests per second per pod). The last three are Pods metrics of the custom "
        "metrics API, which prometheus-adapter serves from the server's Prometheus metrics with the rules in "
        "docs/operator.md.",
    )
    target: float | None = Field(
        default=None,
        gt=0,
        le=1000000,
        description="The per-pod average to aim for with metric inflight (requests), queueTime (milliseconds) or rps "
        "(requests per second).",
    )
    target_cpu_utilization: int = Field(
        default=80,
        alias="targetCPUUtilization",
        ge=1,
        le=1000,
        description="With metric cpu: average CPU use the autoscaler aims for, in percent of the server container's "
        "CPU request (set resources.requests.cpu); needs the resource metrics API (metrics-server) in the cluster.",
    )
    scale_down_stabilization_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description="How long the autoscaler looks back before it removes pods (the HPA's "
        "behavior.scaleDown.stabilizationWindowSeconds; unset: the HPA's default, 300).",
    )


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

    against: Literal["stable"] = Field(default="stable", description="The version compared with: stable.")
    max_ratio: float | None = Field(default=None, gt=0, description="canary / stable must stay at or below this.")


class FailurePolicy(ApiModel):
    """When failed measurements of a non-critical metric lead to rollback (default: the first failure).

    ``consecutive``: that many Fail verdicts in a row (a Pass resets the run); ``total``: that many Fail
    verdicts in the whole rollout (a Pass resets nothing). Set one of them.
    """

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.consecutive) != has(self.total)",
                    "message": "set exactly one of consecutive or total",
                }
            ]
        }
    }

    consecutive: int | None = Field(default=None, ge=1, description="Fail after this many failures in a row.")
    total: int | None = Field(
        default=None,
        ge=1,
        description="Fail after this many failures in the whole rollout, counted across its steps (flapping adds up).",
    )


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

    name: str = Field(
        max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Metric name, unique in the list."
    )
    template: Template | None = Field(
        default=None,
        description="Built-in query: errorRate (share of failed requests), latencyP95, latencyP99, or agreement (share "
        "of shadowed requests the canary agreed on; needs rollout.shadow, measured only while the canary shadows).",
    )
    query: str | None = Field(
        default=None, max_length=4096, description="PromQL with {{model}} {{version}} {{namespace}} {{window}}."
    )
    min: float | None = Field(default=None, description="The value must be at least this.")
    max: float | None = Field(default=None, description="The value must be at most this.")
    compare: CompareSpec | None = None
    critical: bool = Field(default=False, description="One failure rolls back.")
    failure_policy: FailurePolicy | None = None
    dry_run: bool = Field(default=False, description="Measure and record, never act.")


class AnalysisSpec(ApiModel):
    """How the canary is measured."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self.window) >= duration(self.scrapeInterval) + duration(self.scrapeInterval)",
                    "message": "window must be at least twice scrapeInterval (a shorter rate window has no data)",
                },
                {
                    "rule": "duration(self.interval) >= duration('1s')",
                    "message": "interval must be at least 1s",
                },
            ]
        }
    }

    interval: Duration = Field(default="30s", description="Time between measurements.")
    window: Duration = Field(
        default="1m", description="Range of the rate/quantile queries ({{window}}); at least 2x scrapeInterval."
    )
    scrape_interval: Duration = Field(
        default="15s", description="Prometheus' scrape interval for the model pods (for the window and staleness)."
    )
    evidence: Evidence = Field(default_factory=Evidence, json_schema_extra=schema_default(Evidence))
    metrics: list[MetricSpec] = Field(
        default_factory=list, max_length=16, description="Metrics measured at each interval; all must pass."
    )
    on_inconclusive: Literal["hold", "rollback"] = Field(
        default="hold",
        description="After maxDuration without a conclusive Pass (no data, low evidence, backend errors): "
        "hold the weight (AnalysisHealthy=False) or roll back.",
    )


class PostPromotionAnalyze(ApiModel):
    """Analyse the new version at 100% for a while after promotion."""

    duration: Duration = Field(description="How long the analysis runs after promotion.")


class PostPromotionSpec(ApiModel):
    """Keep watching after 100%."""

    analyze: PostPromotionAnalyze | None = None
    on_failure: Literal["rollback", "alert"] = Field(
        default="rollback", description="rollback: back to the previous version; alert: a Warning Event only."
    )


class RolloutAction(ApiModel):
    """A one-shot manual action. It is applied once per nonce: re-applying the same manifest (a GitOps
    tool syncing) or reverting to an older nonce does nothing."""

    type: ActionType = Field(description="approve, abort, promoteFull or retry.")
    nonce: str = Field(
        min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:-]+$", description="Any new value fires the action."
    )


class BlueGreenSpec(ApiModel):
    """A full second copy of the new version gets no traffic, is analysed, then takes all of it at once."""

    analyze: AnalyzeStep = Field(default_factory=AnalyzeStep, json_schema_extra=schema_default(AnalyzeStep))
    auto_promote: bool = Field(default=True, description="Switch after a passing analysis; false: wait for approve.")


class ParentRef(ApiModel):
    """A Gateway the HTTPRoute attaches to."""

    name: str = Field(max_length=253, description="Name of the Gateway.")
    namespace: str | None = Field(
        default=None, max_length=63, description="Namespace of the Gateway; default: the ModelDeployment's."
    )
    section_name: str | None = Field(
        default=None, max_length=253, description="A listener of the Gateway; default: all of them."
    )


class HeaderMatch(ApiModel):
    """Requests carrying this header value always go to the canary."""

    name: str = Field(max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$", description="HTTP header name.")
    value: str = Field(max_length=4096, description="Exact header value that selects the canary.")


class GatewayAPISpec(ApiModel):
    """Settings of the gatewayAPI traffic router (an HTTPRoute named after the ModelDeployment)."""

    parent_refs: list[ParentRef] = Field(
        default_factory=list, max_length=16, description="Gateways the HTTPRoute attaches to."
    )
    hostnames: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=16, description="Host names the HTTPRoute matches; empty: all."
    )
    canary_headers: list[HeaderMatch] = Field(
        default_factory=list, max_length=8, description="Header matches that send a request to the canary."
    )
    mirror_percent: int = Field(default=0, ge=0, le=100, description="Copy this share of stable traffic to canary.")


class ShadowSpec(ApiModel):
    """While the canary's weight is 0, each pod copies requests the stable version answers to the canary, compares
    the answers and returns only the stable one (inPod router). The agreement analysis template gates on it."""

    percent: int = Field(default=100, ge=1, le=100, description="Share of answered requests copied to the canary.")
    compare: Literal["top1", "values"] = Field(
        default="top1",
        description="top1: a request agrees when the canary names the same class on every row (classifiers, "
        "quantized or distilled); values: when no output element differs by more than maxAbsDiff.",
    )
    max_abs_diff: float = Field(default=0.001, ge=0, description="The tolerance of compare: values.")


class RolloutSpec(ApiModel):
    """How a new spec.version takes over."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.strategy != 'canary' || (has(self.steps) && size(self.steps) > 0)",
                    "message": "the canary strategy needs at least one step",
                },
                {
                    "rule": "!has(self.shadow) || (self.trafficRouter == 'inPod' && self.strategy != 'immediate')",
                    "message": "shadow needs trafficRouter inPod (pods copy requests to the canary inside themselves) "
                    "and a canary or blueGreen strategy",
                },
                {
                    "rule": "has(self.shadow) || !has(self.analysis) || !has(self.analysis.metrics) || "
                    "!self.analysis.metrics.exists(m, has(m.template) && m.template == 'agreement')",
                    "message": "the agreement template measures shadowed requests: set rollout.shadow",
                },
            ]
        }
    }

    strategy: Strategy = Field(default="immediate", description="canary, blueGreen or immediate.")
    traffic_router: TrafficRouter = Field(default="replicas", description="replicas, gatewayAPI or inPod.")
    steps: list[RolloutStep] = Field(
        default_factory=list, max_length=32, description="Canary steps, in order (setWeight, pause or analyze)."
    )
    blue_green: BlueGreenSpec | None = None
    gateway_api: GatewayAPISpec | None = Field(default=None, alias="gatewayAPI")
    analysis: AnalysisSpec | None = None
    post_promotion: PostPromotionSpec | None = None
    shadow: ShadowSpec | None = None
    action: RolloutAction | None = Field(
        default=None, description="A manual action; also settable as annotation modelyard.dev/action: TYPE:NONCE."
    )


class ModelDeploymentSpec(ApiModel):
    """Desired serving state; GitOps tools own it, the operator never writes it."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self.model == oldSelf.model", "message": "model is immutable"},
                {
                    "rule": "!has(self.autoscaling) || !has(self.rollout) || ((!has(self.rollout.strategy) "
                    "|| self.rollout.strategy != 'blueGreen') && (!has(self.rollout.trafficRouter) "
                    "|| self.rollout.trafficRouter != 'inPod'))",
                    "message": "autoscaling works with rollout strategies immediate and canary, and not with the "
                    "inPod router (blueGreen and inPod under an autoscaler are not supported yet)",
                },
            ]
        }
    }

    model: ModelName
    version: VersionName = Field(description="Desired version; names a ModelVersion of this model.")
    replicas: int = Field(
        default=1, ge=0, le=1000, description="Pods of the serving Deployment (unused with autoscaling)."
    )
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Scale with a HorizontalPodAutoscaler instead of a fixed replicas count."
    )
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec, json_schema_extra=schema_default(ResourcesSpec))
    placement: PlacementSpec = Field(default_factory=PlacementSpec, json_schema_extra=schema_default(PlacementSpec))
    loading: LoadingSpec = Field(default_factory=LoadingSpec, json_schema_extra=schema_default(LoadingSpec))
    serving: ServingSpec = Field(default_factory=ServingSpec, json_schema_extra=schema_default(ServingSpec))
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, json_schema_extra=schema_default(RolloutSpec))
    pod: PodOverrides | None = Field(
        default=None,
        description="Settings of the model pods the user chooses: labels, annotations, runtime and "
        "priority class, image pull Secrets, server environment, loader resources.",
    )


class Weights(ApiModel):
    """The traffic split in effect (percent): with the replicas router, Ready pods of each version over all
    Ready pods behind the Service; with the other routers, the weights applied on the wire."""

    stable: int = Field(default=100, ge=0, le=100, description="Percent of traffic the stable version answers.")
    canary: int = Field(default=0, ge=0, le=100, description="Percent of traffic the canary answers.")


class StepStatus(ApiModel):
    """The step in progress: its index in the (effective) step list, when it started, canary requests since."""

    index: int = Field(ge=0, description="Index of the step in progress.")
    started_at: str | None = Field(default=None, max_length=64, description="When the step started (RFC 3339).")
    evidence: int = Field(default=0, ge=0, description="Canary requests since the step started.")
    post_promotion: bool = Field(default=False, description="Watching the new version at 100% after the steps.")
    promote_full: bool = Field(default=False, description="A promoteFull action skips the remaining steps.")


class MetricCounters(ApiModel):
    """Failure counters of one metric within the current rollout (restart-safe policy state)."""

    name: str = Field(max_length=63, description="The metric's name.")
    failures: int = Field(default=0, ge=0, description="Fail verdicts in this rollout.")
    consecutive: int = Field(default=0, ge=0, description="Fail verdicts in a row.")
    last_verdict: str | None = Field(default=None, max_length=32, description="The latest verdict.")


class AnalysisStatus(ApiModel):
    """The analysis of the current rollout."""

    last_measured_at: str | None = Field(default=None, max_length=64, description="Last measurement (RFC 3339).")
    metrics: list[MetricCounters] = Field(default_factory=list, max_length=16, description="Counters per metric.")


class MetricResult(ApiModel):
    """One metric's measurement in a decision."""

    name: str = Field(max_length=63, description="The metric's name.")
    canary: float | None = Field(default=None, description="The canary's value.")
    stable: float | None = Field(default=None, description="The stable version's value (compare only).")
    n: int | None = Field(default=None, description="Requests the value was computed from.")
    verdict: str = Field(max_length=32, description="Pass, Fail or Inconclusive.")
    reason: str | None = Field(default=None, max_length=64, description="Why the verdict (one CamelCase word).")
    message: str | None = Field(default=None, max_length=1024, description="Human-readable details.")


class DecisionStatus(ApiModel):
    """The rollout's latest decision."""

    verdict: str = Field(max_length=32, description="What was decided, e.g. Advance, Hold, Promote, Rollback.")
    reason: str = Field(default="", max_length=1024, description="Why (one CamelCase word).")
    message: str = Field(default="", max_length=2048, description="Human-readable details.")
    at: str | None = Field(default=None, max_length=64, description="When (RFC 3339).")
    requests: int | None = Field(default=None, description="Canary requests since the step started.")
    metrics: list[MetricResult] = Field(
        default_factory=list, max_length=16, description="The measurements it was based on."
    )


class HandledAction(ApiModel):
    """The last manual action applied."""

    type: str = Field(max_length=32, description="approve, abort, promoteFull or retry.")
    nonce: str = Field(max_length=253, description="The action's nonce.")
    at: str | None = Field(default=None, max_length=64, description="When it was applied (RFC 3339).")
    result: str | None = Field(default=None, max_length=64, description="What it did.")


class HistoryEntry(ApiModel):
    """One finished rollout."""

    version: str = Field(max_length=63, description="The version rolled out.")
    outcome: str = Field(max_length=32, description="Promoted or RolledBack.")
    at: str | None = Field(default=None, max_length=64, description="When it ended (RFC 3339).")


class Endpoints(ApiModel):
    """Where clients reach the model (the Service in front of the pods)."""

    http: str | None = Field(default=None, max_length=512, description="HTTP/REST base URL (Open Inference Protocol).")
    grpc: str | None = Field(default=None, max_length=512, description="gRPC address, host:port.")


class ModelDeploymentStatus(ApiModel):
    """Everything the operator needs to resume after a restart."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status was computed from."
    )
    phase: MDPhase | None = Field(default=None, description="Progressing, Paused, Healthy, RolledBack or Degraded.")
    stable_version: str | None = Field(default=None, max_length=63, description="The version serving as stable.")
    canary_version: str | None = Field(
        default=None, max_length=63, description="The version being rolled out, while a rollout runs."
    )
    weights: Weights | None = None
    requested_weight: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The canary weight the rollout's steps have set (percent); weights.canary is the split in "
        "effect, which the replicas router can only approximate with whole pods.",
    )
    step: StepStatus | None = None
    last_decision: DecisionStatus | None = None
    last_handled_action: HandledAction | None = None
    handled_nonces: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=32, description="Recent action nonces already applied (newest last)."
    )
    analysis: AnalysisStatus | None = None
    history: list[HistoryEntry] = Field(default_factory=list, max_length=64, description="Finished rollouts.")
    rolled_back_versions: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list, max_length=64, description="Versions not re-attempted until a retry action."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Progressing, Degraded, Paused, AnalysisHealthy, and kstatus's Reconciling (work in "
        "progress) and Stalled (no progress without a change).",
    )
    endpoints: Endpoints | None = None
    replicas: int | None = Field(
        default=None,
        ge=0,
        description="Ready pods of the model, all versions together (what `kubectl scale` and the scale "
        "subresource read as the current count).",
    )
    selector: str | None = Field(
        default=None,
        max_length=1024,
        description="Label selector of the model's pods, as a string (scale subresource).",
    )


class ModelDeployment(ApiModel):
    """A ModelDeployment object as read from the API server."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    metadata: ObjectMeta
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)
