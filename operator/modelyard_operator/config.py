"""Operator settings (pure data): read once at start-up from flags/environment, passed down explicitly."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from modelyard_operator import __version__

FIELD_MANAGER = "modelyard-operator"
DEFAULT_IMAGE = f"ghcr.io/modelyard/modelyard-runtime:{__version__}"  # the chart's default too (make images)
# the runtime-tf variant: the CPU image plus TensorFlow, for format savedmodel (engine tensorflow)
DEFAULT_TF_IMAGE = f"ghcr.io/modelyard/modelyard-runtime-tf:{__version__}"


@dataclass(frozen=True)
class EgressRule:
    """A destination the loader may reach: a CIDR (minus ``except_``) on some TCP ports (none: every port)."""

    cidr: str
    ports: tuple[int, ...] = ()
    except_: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        block: dict[str, Any] = {"cidr": self.cidr}
        if self.except_:
            block["except"] = list(self.except_)
        rule: dict[str, Any] = {"to": [{"ipBlock": block}]}
        if self.ports:
            rule["ports"] = [{"protocol": "TCP", "port": p} for p in self.ports]
        return rule


@dataclass(frozen=True)
class NetworkPolicySettings:
    """The installation's choices (chart ``operator.networkPolicies``; on there, off for a bare process)."""

    enabled: bool = False
    ingress_namespaces: tuple[str, ...] = ()  # gateways / clients outside the model's namespace
    prometheus_namespaces: tuple[str, ...] = ()  # may scrape /metrics on the HTTP port
    artifact_egress: tuple[EgressRule, ...] = ()  # for artifact hosts given by name


@dataclass(frozen=True)
class OperatorConfig:
    """What rendering and reconciliation need to know about the installation."""

    runtime_image: str = DEFAULT_IMAGE
    runtime_tf_image: str = DEFAULT_TF_IMAGE  # model pods and validation Jobs of savedmodel versions
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: tuple[str, ...] = ()  # Secrets in each model namespace: MODELYARD_MODEL_IMAGE_PULL_SECRETS
    allow_unpinned_artifacts: bool = False
    allow_file_uris: bool = False
    cluster_domain: str = "cluster.local"
    resync_seconds: float = 30.0
    prometheus_url: str | None = None
    prometheus_timeout: float = 5.0
    model_validation: str = "job"  # job: a validation Job per ModelVersion; off: versions are Ready at once
    validation_timeout_seconds: float = 1800.0  # activeDeadlineSeconds of a validation Job
    validation_memory: str = "2Gi"  # memory limit of a validation pod (it loads the model once)
    sigstore_trust_root_configmap: str | None = None  # ConfigMap with trust_root.json for keyless verification
    # where validation pods may run: {"nodeSelector": {...}, "tolerations": [...]} (core/v1 shapes)
    validation_placement: dict[str, Any] = field(default_factory=dict)
    # hosts the loader's SSRF guard lets through (e.g. an in-cluster object store): MODELYARD_LOADER_ALLOW_HOSTS
    loader_allow_hosts: tuple[str, ...] = ()
    # a directory on every node that loaders share as their artifact cache (None: no cache). Entries are keyed by
    # pinned digest; a loader mounts only its namespace's folder <dir>/<namespace> (a hostPath):
    # MODELYARD_ARTIFACT_CACHE_DIR
    artifact_cache_dir: str | None = None
    artifact_cache_verify: bool = True  # check each cache hit against the pinned digest (--cache-verify)
    # a NetworkPolicy per ModelDeployment (netpol.py): MODELYARD_NETWORK_POLICIES and friends
    network_policies: NetworkPolicySettings = field(default_factory=NetworkPolicySettings)
    # chart-wide S3 defaults for loaders (a ModelVersion's artifact.s3 and its credentials Secret's keys win):
    # MODELYARD_S3_ENDPOINT, MODELYARD_S3_REGION, MODELYARD_S3_ADDRESSING_STYLE
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_addressing_style: str | None = None  # path | virtual
    # ConfigMap (key ca.crt) of CAs every loader trusts for https (S3, HTTP, OCI): MODELYARD_LOADER_CA_BUNDLE
    loader_ca_bundle_configmap: str | None = None
    # where derived versions (spec.derivedFrom) are pushed: oci://REGISTRY/PREFIX (each goes to
    # PREFIX/<namespace>/<model>:<version>); None: derived versions fail with NoArtifactStore. MODELYARD_ARTIFACT_STORE*
    artifact_store: str | None = None
    artifact_store_secret: str | None = None  # Secret (in the version's namespace) with the registry's credentials
    artifact_store_plain_http: bool = False  # a registry without TLS (a local one): builds and loaders use plain http
    # text | json: the operator's own log format, passed to model pods' server and loader (MODELYARD_LOG_FORMAT)
    log_format: str = "text"


def runtime_image_for(config: OperatorConfig, formats: Iterable[str]) -> str:
    """The image of a pod that loads versions of ``formats``: the runtime-tf variant when one is a SavedModel
    (only that image has TensorFlow), else the runtime image."""
    return config.runtime_tf_image if "savedmodel" in formats else config.runtime_image
