"""Desired Kubernetes objects for a ModelDeployment (pure: dicts in, dicts out, no I/O).

Every object carries the owner reference that makes the garbage collector remove it with its owner,
and the labels of DESIGN.md §2. The pod follows the restricted Pod Security profile: non-root,
read-only root filesystem, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault
and no service-account token (model pods never talk to the API server).
"""

from __future__ import annotations

from typing import Any

from modelyard_operator.api.common import API_VERSION
from modelyard_operator.api.modeldeployment import ModelDeployment
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig, runtime_image_for
from modelyard_operator.names import (
    LABEL_COMPONENT,
    common_labels,
    deployment_name,
    selector,
    version_labels,
)
from modelyard_operator.podoverrides import apply_pod_overrides, loader_resources, pod_metadata
from modelyard_operator.rollout.routers import render_http_route
from modelyard_operator.runtime_config import version_config_args, warmup_samples_dir

MODELS_DIR = "/models"
CREDENTIALS_DIR = "/var/run/secrets/modelyard/credentials"
SIGNING_DIR = "/var/run/secrets/modelyard/signing"
CACHE_DIR = "/var/cache/modelyard"
DRAIN_SECONDS = 5  # well inside terminationGracePeriodSeconds (30)
TRUST_ROOT_DIR = "/var/run/modelyard/trust-root"
CA_BUNDLE_DIR = "/var/run/modelyard/ca-bundle"  # the chart's loader CA bundle (ConfigMap key ca.crt)
PVC_ROOT = "/mnt/pvc"  # pvc://CLAIM/PATH is read at PVC_ROOT/CLAIM/PATH (the loader's default --pvc-root)
ARTIFACT_CACHE_DIR = "/var/cache/modelyard-artifacts"  # where a loader sees the node's artifact cache
ARTIFACT_CACHE_VOLUME = "artifact-cache"
RUN_AS = 65532
TERMINATION_LOG = "/dev/termination-log"  # a server that cannot start writes {reason, message} here
HTTP_PORT_NAME = "http"
GRPC_PORT_NAME = "grpc"
# The server's admin API (repository load/unload) listens on the pod's loopback only: never a containerPort, never
# in a Service. The loader sidecar's API (8090) is on loopback too, so neither may take the other's port.
ADMIN_PORTS = (8082, 8083, 8084)
LOADER_API_PORT = 8090
TERMINATION_LOG = "/dev/termination-log"

Obj = dict[str, Any]


def owner_reference(kind: str, name: str, uid: str) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_security_context() -> Obj:
    """Every pod the operator renders runs as a fixed non-root user under the RuntimeDefault seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> Obj:
    """Every container the operator renders: no privilege escalation, read-only root, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def artifact_access(
    mv: ModelVersion, config: OperatorConfig, *, suffix: str = ""
) -> tuple[list[str], list[Obj], list[Obj]]:
    """The loader's flags for reaching and trusting ``mv``'s artifact, with the volumes and mounts they need.

    Credentials and trust material travel as mounted files, never as arguments. ``suffix`` keeps volume names
    apart when two versions' loaders share a pod (the inPod router); the node cache's volume keeps its name,
    as it is the same directory for every loader of the pod.
    """
    artifact = mv.artifact
    args: list[str] = []
    volumes: list[Obj] = []
    mounts: list[Obj] = []

    def mount(name: str, path: str, source: Obj) -> None:
        volumes.append({"name": f"{name}{suffix}", **source})
        mounts.append({"name": f"{name}{suffix}", "mountPath": path, "readOnly": True})

    if artifact.credentials_secret:
        args += ["--credentials-dir", CREDENTIALS_DIR]
        mount("credentials", CREDENTIALS_DIR, {"secret": {"secretName": artifact.credentials_secret}})
    if artifact.s3 is not None:
        for flag, value in (
            ("--s3-endpoint", artifact.s3.endpoint),
            ("--s3-region", artifact.s3.region),
            ("--s3-addressing-style", artifact.s3.addressing_style),
        ):
            if value:
                args += [flag, value]
    if config.loader_ca_bundle_configmap:
        # optional: a namespace without the ConfigMap gets a loader that says so (exit 2), not a pod stuck creating
        bundle = {
            "name": config.loader_ca_bundle_configmap,
            "items": [{"key": "ca.crt", "path": "ca.crt"}],
            "optional": True,
        }
        mount("ca-bundle", CA_BUNDLE_DIR, {"configMap": bundle})
    # pvc:// artifacts and signatures: each claim read-only, in the loader only (the server never sees the claim)
    claims = [uri.split("/", 3)[2] for uri in _uris(mv) if uri.startswith("pvc://")]
    for i, claim in enumerate(dict.fromkeys(claims)):
        mount(f"pvc-{i}", f"{PVC_ROOT}/{claim}", {"persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    signature = artifact.signature
    if signature is not None:
        args += ["--signature", signature.uri]
        if signature.public_key_secret is not None:
            ref, flag, file = signature.public_key_secret, "--public-key", "key.pem"
        elif signature.certificate_chain_secret is not None:
            ref, flag, file = signature.certificate_chain_secret, "--certificate-chain", "chain.pem"
        else:
            ref, flag, file = None, "", ""
        if ref is not None:
            args += [flag, f"{SIGNING_DIR}/{file}"]
            items = [{"key": ref.key, "path": file}]
            mount("signing", SIGNING_DIR, {"secret": {"secretName": ref.name, "items": items}})
        elif signature.sigstore is not None:
            args += ["--sigstore-identity", signature.sigstore.identity, "--sigstore-issuer", signature.sigstore.issuer]
            args += ["--trust-root", f"{TRUST_ROOT_DIR}/trust_root.json"]
            if config.sigstore_trust_root_configmap:
                mount("trust-root", TRUST_ROOT_DIR, {"configMap": {"name": config.sigstore_trust_root_configmap}})
    if mv.spec.derived_from is not None and config.artifact_store_plain_http:
        args += ["--oci-plain-http"]  # a derived version is in the artifact store, which speaks plain http
    if config.allow_file_uris:
        args += ["--allow-file"]
    if config.loader_allow_hosts:
        args += ["--allow-hosts", ",".join(config.loader_allow_hosts)]
    cache_args, cache_volumes, cache_mounts = artifact_cache(mv, config)
    return args + cache_args, volumes + cache_volumes, mounts + cache_mounts


def _uris(mv: ModelVersion) -> list[str]:
    signature = mv.artifact.signature
    return [mv.artifact.uri] + ([signature.uri] if signature is not None else [])


def loader_env(config: OperatorConfig) -> list[Obj]:
    """The chart-wide loader settings, as environment variables: a ModelVersion's flags and its credentials
    Secret's keys win over them (docs/loader.md, "S3")."""
    env = [
        {"name": name, "value": value}
        for name, value in (
            ("AWS_ENDPOINT_URL_S3", config.s3_endpoint),
            ("AWS_REGION", config.s3_region),
            ("MODELYARD_LOADER_S3_ADDRESSING_STYLE", config.s3_addressing_style),
            ("MODELYARD_LOADER_CA_FILE", f"{CA_BUNDLE_DIR}/ca.crt" if config.loader_ca_bundle_configmap else None),
        )
        if value
    ]
    return env + log_env(config)


def log_env(config: OperatorConfig) -> list[Obj]:
    """The installation's log format for a model pod's containers (server, loader): none for the default, text."""
    return [{"name": "MODELYARD_LOG_FORMAT", "value": config.log_format}] if config.log_format != "text" else []


def artifact_cache(mv: ModelVersion, config: OperatorConfig) -> tuple[list[str], list[Obj], list[Obj]]:
    """The node's artifact cache for ``mv``'s loader: ``--cache`` flags, a hostPath volume and its mount.

    Nothing unless the operator has ``artifact_cache_dir`` and the version is pinned (the cache is keyed by
    digest). The volume is the namespace's own folder, ``<artifact_cache_dir>/<namespace>``, and nothing above
    it: an entry is served without contacting the store, so a loader that could reach another namespace's
    folder would hand that tenant's artifact to anyone who knows its digest, without the credentials. Only
    loader containers mount it, never the server.
    """
    if not config.artifact_cache_dir or not _pinned(mv):
        return [], [], []
    args = ["--cache", ARTIFACT_CACHE_DIR]
    if config.artifact_cache_verify:
        args.append("--cache-verify")
    # DirectoryOrCreate: a node without the folder gets an empty (root-owned) one rather than a pod that cannot
    # start; a loader that cannot write there fetches without the cache (docs/loader.md).
    host = {"path": node_cache_dir(config.artifact_cache_dir, mv.metadata.namespace), "type": "DirectoryOrCreate"}
    volume = {"name": ARTIFACT_CACHE_VOLUME, "hostPath": host}
    return args, [volume], [{"name": ARTIFACT_CACHE_VOLUME, "mountPath": ARTIFACT_CACHE_DIR}]


def node_cache_dir(root: str, namespace: str) -> str:
    """The node folder of ``namespace``'s artifact cache (a namespace name is a DNS label: no ``/``, no ``..``)."""
    return f"{root.rstrip('/')}/{namespace}"


def _pinned(mv: ModelVersion) -> bool:
    """Whether the loader will know the artifact's digest up front (``--digest``, or an OCI reference's)."""
    artifact = mv.artifact
    return bool(artifact.digest) or (artifact.uri.startswith("oci://") and "@sha256:" in artifact.uri)


def loader_args(subcommand: str, mv: ModelVersion, dest: str, access_args: list[str]) -> list[str]:
    """Arguments of ``modelyard-loader <subcommand>`` for ``mv``'s artifact, written to ``dest``.

    ``access_args`` are the flags of :func:`artifact_access` for it, which the caller computes once per pod
    (it needs the volumes and mounts too).
    """
    artifact = mv.artifact
    args = [subcommand, "--uri", artifact.uri, "--dest", dest]
    if artifact.digest:
        args += ["--digest", artifact.digest]
    return args + access_args


def format_args(mv: ModelVersion) -> list[str]:
    """The loader's ``--format`` for a model other than ONNX; for PMML, which the loader compiles to ONNX, also the
    compiled model's digest that the validation recorded, which each pod's compilation must match."""
    if mv.spec.format == "onnx":
        return []
    args = ["--format", mv.spec.format]
    compiled = mv.status.compiled
    if mv.spec.format == "pmml" and compiled is not None and compiled.digest:
        args += ["--compiled-digest", compiled.digest]
    return args


def serving_loader_args(md: ModelDeployment, mv: ModelVersion, access_args: list[str]) -> list[str]:
    """The model pod's loader: fetch for static loading, sidecar for dynamic, into the model repository. The sidecar
    has the server load what it publishes on request, through the server's admin API on the pod's loopback."""
    spec = mv.spec
    dest = f"{MODELS_DIR}/{spec.model}/{spec.version}"
    failure = ["--termination-log", TERMINATION_LOG]  # a failed fetch's reason: the container's termination message
    if md.spec.loading.mode == "static":
        return [*loader_args("fetch", mv, dest, access_args), *format_args(mv), *failure]
    return [*loader_args("sidecar", mv, dest, access_args), *format_args(mv), *server_admin_args(md), *failure]


def server_admin_args(md: ModelDeployment) -> list[str]:
    """A loader sidecar's way to the server's admin API (loopback, with the token when there is one)."""
    admin = ["--server-admin", f"http://127.0.0.1:{admin_port(md)}"]
    if md.spec.loading.admin_token_secret is not None:
        admin += ["--server-admin-token-file", ADMIN_TOKEN_FILE]
    return admin


def sidecar_startup_probe(port: int = LOADER_API_PORT) -> Obj:
    """Dynamic mode's loader sidecar has started once its API answers, which it opens only after the pod's version is
    published: the kubelet starts the server after that. The API is on the pod's loopback, out of an HTTP probe's
    reach, so the probe runs ``modelyard-loader health`` in the container; up to 10 minutes for a large artifact."""
    command = ["modelyard-loader", "health", "--listen", f"127.0.0.1:{port}"]
    return {"exec": {"command": command}, "periodSeconds": 2, "failureThreshold": 300, "timeoutSeconds": 5}


ADMIN_TOKEN_VOLUME = "admin-token"  # noqa: S105  (a volume name, not a secret)
ADMIN_TOKEN_DIR = "/var/run/secrets/modelyard/admin"  # noqa: S105  (a mount path)
ADMIN_TOKEN_FILE = f"{ADMIN_TOKEN_DIR}/token"


def admin_token_volumes(md: ModelDeployment) -> list[Obj]:
    """The Secret of ``spec.loading.adminTokenSecret`` as a volume (its one key as ``token``), if there is one."""
    ref = md.spec.loading.admin_token_secret
    if ref is None:
        return []
    items = [{"key": ref.key, "path": "token"}]
    return [{"name": ADMIN_TOKEN_VOLUME, "secret": {"secretName": ref.name, "items": items, "defaultMode": 0o444}}]


def admin_token_mounts(md: ModelDeployment) -> list[Obj]:
    """The token's read-only mount, for the server and for the loaders that call its admin API."""
    if md.spec.loading.admin_token_secret is None:
        return []
    return [{"name": ADMIN_TOKEN_VOLUME, "mountPath": ADMIN_TOKEN_DIR, "readOnly": True}]


def admin_port(md: ModelDeployment) -> int:
    """The admin API's loopback port: the first of ADMIN_PORTS that the inference ports leave free."""
    taken = {md.spec.serving.http_port, md.spec.serving.grpc_port, LOADER_API_PORT}
    return next(p for p in ADMIN_PORTS if p not in taken)  # two inference ports cannot take all three


def serve_arg(mv: ModelVersion) -> list[str]:
    """``--serve model:version``: the server reports not ready while this version is unloaded or not published, so
    a pod that cannot serve it leaves the Service's endpoints."""
    return ["--serve", f"{mv.spec.model}:{mv.spec.version}"]


def server_args(md: ModelDeployment, mv: ModelVersion) -> list[str]:
    s = md.spec
    args = [
        "--model-repository",
        MODELS_DIR,
        "--http-port",
        str(s.serving.http_port),
        "--grpc-port",
        str(s.serving.grpc_port),
        "--load-mode",
        s.loading.mode,
        "--drain-seconds",  # on deletion: fail readiness, keep answering while endpoints drop the pod
        str(DRAIN_SECONDS),
        "--admin-host",  # load/unload: the pod's own containers only (the inference ports answer 403)
        "127.0.0.1",
        "--admin-port",
        str(admin_port(md)),
        "--termination-log",
        TERMINATION_LOG,
        *serve_arg(mv),
        *version_config_args(mv),
    ]
    if s.loading.memory_budget is not None:
        args += ["--memory-budget", str(s.loading.memory_budget)]
    if s.loading.admin_token_secret is not None:
        args += ["--admin-token-file", ADMIN_TOKEN_FILE]
    if mv.spec.batching.max_batch_size > 0:
        args += [
            "--max-batch-size",
            str(mv.spec.batching.max_batch_size),
            "--max-queue-delay-ms",
            str(mv.spec.batching.max_queue_delay_ms),
        ]
    return args


def _probe(path: str, *, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": HTTP_PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 2,
    }


def work_mounts() -> list[Obj]:
    """The model repository and /tmp (emptyDirs), which the loader and the server both mount."""
    return [{"name": "models", "mountPath": MODELS_DIR}, {"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108  (an emptyDir in the pod)


def render_pod_spec(md: ModelDeployment, mv: ModelVersion, config: OperatorConfig) -> Obj:
    s = md.spec
    mounts = work_mounts()
    access_args, access_volumes, access_mounts = artifact_access(mv, config)
    image = runtime_image_for(config, [mv.spec.format])
    loader: Obj = {
        "name": "loader",
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["modelyard-loader"],
        "args": serving_loader_args(md, mv, access_args),
        "volumeMounts": [*work_mounts(), *access_mounts],
        **({"env": env} if (env := loader_env(config)) else {}),
        "securityContext": container_security(),
        "resources": loader_resources(md),
    }
    volumes: list[Obj] = [{"name": "models", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}, *access_volumes]
    volumes += admin_token_volumes(md)
    if s.loading.mode == "dynamic":
        loader["restartPolicy"] = "Always"  # native sidecar: keeps fetching versions on request
        loader["startupProbe"] = sidecar_startup_probe()
        loader["volumeMounts"] += admin_token_mounts(md)
    server: Obj = {
        "name": "server",
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["modelyard-server"],
        "args": server_args(md, mv),
        "ports": [
            {"name": HTTP_PORT_NAME, "containerPort": s.serving.http_port, "protocol": "TCP"},
            {"name": GRPC_PORT_NAME, "containerPort": s.serving.grpc_port, "protocol": "TCP"},
        ],
        # a short period: the pod takes traffic within ~2 s of loading, and stops within ~4 s when it cannot serve
        "readinessProbe": _probe("/v2/health/ready", period=2, failures=2),
        "livenessProbe": _probe("/v2/health/live", period=10, failures=3),
        # Large models take long to load: the startup probe allows up to 10 minutes before liveness applies;
        # probed every second, because readiness is only probed once it has passed
        "startupProbe": _probe("/v2/health/live", period=1, failures=600),
        # the root filesystem is read-only: engine and timing caches (TensorRT) need a writable place
        "env": [{"name": "MODELYARD_CACHE_DIR", "value": CACHE_DIR}, *log_env(config)],
        "volumeMounts": [*mounts, {"name": "cache", "mountPath": CACHE_DIR}, *admin_token_mounts(md)],
        "securityContext": container_security(),
        # the operator reads why a start failed (a missing execution provider, a model that does not load) here
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    volumes.append({"name": "cache", "emptyDir": {}})
    init = [loader, *warmup_samples_containers(mv, config, volumes)]
    resources = {
        key: value for key, value in (("requests", s.resources.requests), ("limits", s.resources.limits)) if value
    }
    if resources:
        server["resources"] = resources
    pod: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "initContainers": init,
        "containers": [server],
        "volumes": volumes,
        "terminationGracePeriodSeconds": 30,
    }
    if s.placement.node_selector:
        pod["nodeSelector"] = dict(s.placement.node_selector)
    if s.placement.tolerations:
        pod["tolerations"] = [t.to_wire() for t in s.placement.tolerations]
    if s.placement.affinity:
        pod["affinity"] = dict(s.placement.affinity)
    apply_pod_overrides(pod, md, config)
    return pod


def warmup_samples_containers(
    mv: ModelVersion, config: OperatorConfig, volumes: list[Obj], suffix: str = ""
) -> list[Obj]:
    """The init container that fetches ``spec.warmup.samples`` (digest-pinned) for the server's warm-up: none
    without samples. It runs after the version's loader (which, in dynamic mode, is a sidecar that is already
    up), reaches the store with the artifact's credentials but not its signature (the samples are not the signed
    model), and adds the volumes it needs to ``volumes``."""
    samples = mv.spec.warmup.samples
    if samples is None:
        return []
    unsigned = mv.artifact.model_copy(update={"uri": samples.uri, "digest": samples.digest, "signature": None})
    fetch_mv = mv.model_copy(update={"spec": mv.spec.model_copy(update={"artifact": unsigned})})
    access_args, access_volumes, access_mounts = artifact_access(fetch_mv, config, suffix=suffix)
    present = {v["name"] for v in volumes}
    volumes += [v for v in access_volumes if v["name"] not in present]
    return [
        {
            "name": f"warmup-samples{suffix}",
            "image": runtime_image_for(config, [mv.spec.format]),
            "imagePullPolicy": config.image_pull_policy,
            "command": ["modelyard-loader"],
            "args": loader_args("fetch", fetch_mv, warmup_samples_dir(mv), access_args),
            "volumeMounts": [*work_mounts(), *access_mounts],
            **({"env": env} if (env := log_env(config)) else {}),
            "securityContext": container_security(),
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        }
    ]


def render_deployment(md: ModelDeployment, mv: ModelVersion, config: OperatorConfig, *, replicas: int | None) -> Obj:
    """The Deployment that serves one version of the model. ``replicas`` None: an autoscaler owns them, and the
    applied object leaves the field out, so server-side apply never takes it back (:func:`render_autoscaler`)."""
    meta = md.metadata
    version = mv.spec.version
    labels = {**version_labels(meta.name, md.spec.model, version), LABEL_COMPONENT: "predictor"}
    spec: Obj = {
        "selector": {"matchLabels": selector(meta.name, version)},
        # A replacement pod is Ready before an old one goes: capacity never dips during an update.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"metadata": pod_metadata(md, dict(labels)), "spec": render_pod_spec(md, mv, config)},
    }
    metadata: Obj = {
        "name": deployment_name(meta.name, version),
        "namespace": meta.namespace,
        "labels": labels,
        "ownerReferences": [owner_reference("ModelDeployment", meta.name, meta.uid)],
    }
    if replicas is None:
        metadata["annotations"] = {ANNOTATION_AUTOSCALER: meta.name}
    else:
        spec = {"replicas": replicas, **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


ANNOTATION_AUTOSCALER = "modelyard.dev/autoscaler"  # on a Deployment whose replicas an HPA of that name owns


# The Pods metrics of the custom metrics API that spec.autoscaling.metric names, as prometheus-adapter serves them
# with the rules of the chart's autoscaling.prometheusAdapter.rules (docs/operator.md).
AUTOSCALING_METRICS = {
    "inflight": "modelyard_inference_inflight_requests",
    "queueTime": "modelyard_inference_queue_milliseconds",
    "rps": "modelyard_inference_requests_per_second",
}


def quantity(value: float) -> str:
    """A Kubernetes quantity for a per-pod average: whole numbers as they are, anything else in thousandths."""
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def render_autoscaler(md: ModelDeployment, version: str) -> Obj:
    """The HorizontalPodAutoscaler of ``spec.autoscaling``, on the Deployment that serves ``version``."""
    meta, scaling = md.metadata, md.spec.autoscaling
    assert scaling is not None
    metric: Obj
    if scaling.metric == "cpu":
        target = {"type": "Utilization", "averageUtilization": scaling.target_cpu_utilization}
        metric = {"type": "Resource", "resource": {"name": "cpu", "target": target}}
    else:
        assert scaling.target is not None  # the schema requires it
        metric = {
            "type": "Pods",
            "pods": {
                "metric": {"name": AUTOSCALING_METRICS[scaling.metric]},
                "target": {"type": "AverageValue", "averageValue": quantity(scaling.target)},
            },
        }
    spec: Obj = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(meta.name, version)},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [metric],
    }
    if scaling.scale_down_stabilization_seconds is not None:
        spec["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": common_labels(meta.name, md.spec.model),
            "ownerReferences": [owner_reference("ModelDeployment", meta.name, meta.uid)],
        },
        "spec": spec,
    }


def render_service(md: ModelDeployment, *, name: str, version: str | None, version_label: bool = True) -> Obj:
    """A ClusterIP Service over the model's pods (all versions, or one version; the main Service, whose
    selected version changes during a rollout, carries no version label)."""
    meta = md.metadata
    s = md.spec.serving
    labels = {**version_labels(meta.name, md.spec.model, version or "all")}
    if version is None or not version_label:
        labels.pop("modelyard.dev/version")
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference("ModelDeployment", meta.name, meta.uid)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector(meta.name, version),
            "ports": [
                {"name": HTTP_PORT_NAME, "port": s.http_port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"},
                {
                    "name": GRPC_PORT_NAME,
                    "port": s.grpc_port,
                    "targetPort": GRPC_PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
            ],
        },
    }


def render_children(md: ModelDeployment, stable: ModelVersion, config: OperatorConfig) -> list[Obj]:
    """Everything one ModelDeployment serving one version needs: its Deployment and Services, and its
    HorizontalPodAutoscaler under ``spec.autoscaling``."""
    name = md.metadata.name
    scaled = md.spec.autoscaling is not None
    children = [
        render_deployment(md, stable, config, replicas=None if scaled else md.spec.replicas),
        render_service(md, name=name, version=None),
        render_service(md, name=f"{name}-stable", version=stable.spec.version),
    ]
    return [*children, render_autoscaler(md, stable.spec.version)] if scaled else children


def render_route(md: ModelDeployment, canary_weight: int, *, has_canary: bool) -> Obj:
    """The HTTPRoute of the gatewayAPI router (weights to ``<md>-stable`` / ``<md>-canary``)."""
    meta = md.metadata
    labels = common_labels(meta.name, md.spec.model)
    return render_http_route(
        name=meta.name,
        namespace=meta.namespace,
        labels=labels,
        owner=owner_reference("ModelDeployment", meta.name, meta.uid),
        port=md.spec.serving.http_port,
        settings=md.spec.rollout.gateway_api,
        canary_weight=canary_weight,
        has_canary=has_canary,
    )
