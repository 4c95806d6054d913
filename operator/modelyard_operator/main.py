"""``modelyard-operator``: runs the kopf operator against the current kubeconfig or in-cluster account.

Every flag is also an environment variable (``--runtime-image`` ↔ ``MODELYARD_RUNTIME_IMAGE``); flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from modelyard_operator import __version__, logs
from modelyard_operator.config import DEFAULT_IMAGE, DEFAULT_TF_IMAGE, EgressRule, NetworkPolicySettings, OperatorConfig
from modelyard_operator.netpol import parse_egress_rules


def _env(name: str, default: str) -> str:
    return os.environ.get(f"MODELYARD_{name}", default)


ARTIFACT_STORE = re.compile(r"^oci://[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+/?$")


def _artifact_store(text: str) -> str:
    """``--artifact-store``: an OCI registry and a repository prefix (lower case), e.g. oci://registry.local/models."""
    if not ARTIFACT_STORE.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected oci://REGISTRY[:PORT]/PREFIX, e.g. oci://registry.example/models (lower-case prefix)"
        )
    return text.rstrip("/")


def _placement(text: str) -> dict[str, Any]:
    """``--validation-placement``: a JSON object with nodeSelector and/or tolerations, nothing else."""
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or set(value) - {"nodeSelector", "tolerations"}:
        raise argparse.ArgumentTypeError('expected {"nodeSelector": {...}, "tolerations": [...]}')
    if not isinstance(value.get("nodeSelector", {}), dict) or not isinstance(value.get("tolerations", []), list):
        raise argparse.ArgumentTypeError("nodeSelector must be an object and tolerations a list")
    return value


def _egress(text: str) -> tuple[EgressRule, ...]:
    """``--network-policy-egress``: JSON ``[{"cidr": ..., "ports": [...], "except": [...]}, ...]``."""
    try:
        return parse_egress_rules(json.loads(text or "[]"))
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        raise argparse.ArgumentTypeError(str(exc)) from None


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated list of namespace names (DNS-1123 labels): a typo is a usage error at start-up, not a
    NetworkPolicy the API server refuses for every ModelDeployment."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    bad = [n for n in names if len(n) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", n)]
    if bad:
        raise argparse.ArgumentTypeError(f"not namespace names: {', '.join(bad)}")
    return names


def _flag(name: str, default: bool = False) -> bool:
    raw = _env(name, "")
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    if value:  # a typo must not silently turn a safety setting off (or on)
        sys.exit(f"modelyard-operator: MODELYARD_{name}={raw!r} is not a boolean (true or false)")
    return default


# host directories a node cache must never be put in (or below): the node's own state and secrets
_SENSITIVE_HOST_DIRS = ("/boot", "/dev", "/etc", "/proc", "/root", "/run", "/sys", "/var/lib/kubelet", "/var/run")


def _host_dir(text: str) -> str:
    """``--artifact-cache-dir``: an absolute, normalized directory on the nodes, away from their system state."""
    path = text.strip()
    if not path.startswith("/") or os.path.normpath(path) != path or "/.." in path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a normalized absolute path, e.g. /var/cache/modelyard")
    if path == "/" or any(path == d or path.startswith(d + "/") for d in _SENSITIVE_HOST_DIRS):
        raise argparse.ArgumentTypeError(f"{text!r}: refusing a node system directory; use e.g. /var/cache/modelyard")
    return path


def _own_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def _endpoint(text: str) -> str:
    """``--s3-endpoint``: an http(s) URL without a path."""
    value = text.strip().rstrip("/")
    if not value.startswith(("http://", "https://")) or "/" in value.split("://", 1)[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected http(s)://HOST[:PORT]")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="modelyard-operator", description=__doc__.splitlines()[0])
    p.add_argument("--namespace", action="append", default=[], help="watch only these namespaces (repeat)")
    p.add_argument("--runtime-image", default=_env("RUNTIME_IMAGE", DEFAULT_IMAGE), help="image of model pods")
    p.add_argument(
        "--runtime-tf-image",
        default=_env("RUNTIME_TF_IMAGE", DEFAULT_TF_IMAGE),
        help="image of model pods and validation Jobs of savedmodel versions (the runtime-tf variant, with TensorFlow)",
    )
    p.add_argument("--image-pull-policy", default=_env("IMAGE_PULL_POLICY", "IfNotPresent"))
    p.add_argument(
        "--model-image-pull-secrets",
        default=_env("MODEL_IMAGE_PULL_SECRETS", ""),
        help="comma-separated Secrets (in each model namespace) that model pods and validation Jobs pull images with",
    )
    p.add_argument("--allow-unpinned-artifacts", action="store_true", default=_flag("ALLOW_UNPINNED_ARTIFACTS"))
    p.add_argument("--allow-file-uris", action="store_true", default=_flag("ALLOW_FILE_URIS"))
    p.add_argument("--cluster-domain", default=_env("CLUSTER_DOMAIN", "cluster.local"))
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "0")), help="0: no metrics server")
    p.add_argument(
        "--health-port", type=int, default=int(_env("HEALTH_PORT", "0")), help="/healthz and /readyz; 0: none"
    )
    p.add_argument(
        "--watch-dead-seconds",
        type=float,
        default=float(_env("WATCH_DEAD_SECONDS", "60")),
        help="/healthz fails once a watch stream has been down this long",
    )
    p.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_flag("LEADER_ELECT"),
        help="act only while holding a Lease, so several replicas can run and exactly one acts",
    )
    p.add_argument(
        "--leader-elect-namespace",
        default=_env("LEADER_ELECT_NAMESPACE", "") or _own_namespace(),
        help="namespace of the Lease (default: the pod's own)",
    )
    p.add_argument("--leader-elect-lease", default=_env("LEADER_ELECT_LEASE", "modelyard-operator"), help="its name")
    p.add_argument(
        "--prometheus-url",
        default=_env("PROMETHEUS_URL", "") or None,
        help="Prometheus for rollout analysis, e.g. http://prometheus.monitoring:9090 (unset: analysis holds)",
    )
    p.add_argument("--prometheus-timeout", type=float, default=float(_env("PROMETHEUS_TIMEOUT", "5")))
    p.add_argument(
        "--model-validation",
        choices=["job", "off"],
        default=_env("MODEL_VALIDATION", "job"),
        help="job: fetch, verify and load every new ModelVersion once in a Job before it may serve; off: skip that "
        "(the loader in each pod still verifies digests and signatures)",
    )
    p.add_argument("--validation-timeout", type=float, default=float(_env("VALIDATION_TIMEOUT", "1800")))
    p.add_argument("--validation-memory", default=_env("VALIDATION_MEMORY", "2Gi"), help="memory limit of the Job")
    p.add_argument(
        "--sigstore-trust-root-configmap",
        default=_env("SIGSTORE_TRUST_ROOT_CONFIGMAP", "") or None,
        help="ConfigMap (key trust_root.json) for keyless signature verification",
    )
    p.add_argument(
        "--validation-placement",
        type=_placement,
        # a string default goes through type= too: a bad value in the environment is a usage error, like the flag's
        default=_env("VALIDATION_PLACEMENT", "{}"),
        help='JSON {"nodeSelector": {...}, "tolerations": [...]} for validation pods',
    )
    p.add_argument(
        "--artifact-store",
        type=_artifact_store,
        default=_env("ARTIFACT_STORE", "") or None,
        help="oci://REGISTRY/PREFIX where derived versions (spec.derivedFrom) go, as PREFIX/NAMESPACE/MODEL:VERSION",
    )
    p.add_argument(
        "--artifact-store-secret",
        default=_env("ARTIFACT_STORE_SECRET", "") or None,
        help="Secret (in each namespace with derived versions, labelled modelyard.dev/artifact-credentials=true) "
        "with the store's username/password or .dockerconfigjson",
    )
    p.add_argument(
        "--artifact-store-plain-http",
        action=argparse.BooleanOptionalAction,
        default=_env("ARTIFACT_STORE_PLAIN_HTTP", "false").lower() in ("1", "true", "yes"),
        help="talk plain http to the artifact store (a registry without TLS, e.g. a local one)",
    )
    p.add_argument(
        "--loader-allow-hosts",
        default=_env("LOADER_ALLOW_HOSTS", ""),
        help="comma-separated hosts, IPs or CIDRs the loader may fetch from despite its SSRF guard",
    )
    p.add_argument(
        "--s3-endpoint",
        type=_endpoint,
        default=_env("S3_ENDPOINT", "") or None,
        help="default S3 endpoint of loaders, e.g. https://minio.storage.svc:9000 (unset: AWS's)",
    )
    p.add_argument("--s3-region", default=_env("S3_REGION", "") or None, help="default S3 signing region")
    p.add_argument(
        "--s3-addressing-style",
        choices=["path", "virtual"],
        default=_env("S3_ADDRESSING_STYLE", "") or None,
        help="default S3 addressing (unset: virtual on AWS, path elsewhere)",
    )
    p.add_argument(
        "--loader-ca-bundle",
        default=_env("LOADER_CA_BUNDLE", "") or None,
        help="ConfigMap (key ca.crt) of CA certificates loaders trust for https, mounted into every loader",
    )
    p.add_argument(
        "--artifact-cache-dir",
        type=_host_dir,
        default=_env("ARTIFACT_CACHE_DIR", "") or None,
        help="directory on every node where loaders share verified artifacts by digest, each namespace's "
        "loaders in <dir>/<namespace> only (a hostPath), e.g. /var/cache/modelyard/artifacts; unset: no cache "
        "(see docs/loader.md, 'Node cache in a cluster')",
    )
    p.add_argument(
        "--artifact-cache-verify",
        action=argparse.BooleanOptionalAction,
        default=_flag("ARTIFACT_CACHE_VERIFY", default=True),
        help="check each cache hit against the pinned digest before it is published (default: on)",
    )
    p.add_argument(
        "--network-policies",
        action=argparse.BooleanOptionalAction,
        default=_flag("NETWORK_POLICIES"),
        help="render a NetworkPolicy per ModelDeployment (default: off; the chart turns it on)",
    )
    p.add_argument(
        "--network-policy-ingress-namespaces",
        type=_names,
        default=_env("NETWORK_POLICY_INGRESS_NAMESPACES", ""),
        help="comma-separated namespaces (gateways, clients) whose pods may reach the inference ports, besides the "
        "ModelDeployment's own",
    )
    p.add_argument(
        "--network-policy-prometheus-namespaces",
        type=_names,
        default=_env("NETWORK_POLICY_PROMETHEUS_NAMESPACES", ""),
        help="comma-separated namespaces whose pods may scrape /metrics (the HTTP port)",
    )
    p.add_argument(
        "--network-policy-egress",
        type=_egress,
        default=_env("NETWORK_POLICY_EGRESS", "[]"),
        help='JSON [{"cidr": "203.0.113.0/24", "ports": [443], "except": []}]: where loaders may fetch artifacts '
        "named by host name (an IP in a URI is allowed exactly)",
    )
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"))
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=_env("LOG_FORMAT", "text"),
        help="text, or one JSON object per line (kopf's JSON formatter: time, level, logger, message, fields); "
        "model pods (server and loader) get the same format",
    )
    p.add_argument("--version", action="version", version=f"modelyard-operator {__version__}")
    args = p.parse_args(argv)
    if args.log_format not in ("text", "json"):  # a default from the environment skips choices=
        p.error(f"MODELYARD_LOG_FORMAT must be text or json, not {args.log_format!r}")
    return args


def config_from_args(args: argparse.Namespace) -> OperatorConfig:
    """The settings the parsed flags describe."""
    return OperatorConfig(
        runtime_image=args.runtime_image,
        runtime_tf_image=args.runtime_tf_image,
        image_pull_policy=args.image_pull_policy,
        image_pull_secrets=tuple(n.strip() for n in args.model_image_pull_secrets.split(",") if n.strip()),
        allow_unpinned_artifacts=args.allow_unpinned_artifacts,
        allow_file_uris=args.allow_file_uris,
        cluster_domain=args.cluster_domain,
        prometheus_url=args.prometheus_url,
        prometheus_timeout=args.prometheus_timeout,
        model_validation=args.model_validation,
        validation_timeout_seconds=args.validation_timeout,
        validation_memory=args.validation_memory,
        sigstore_trust_root_configmap=args.sigstore_trust_root_configmap,
        validation_placement=args.validation_placement,
        loader_allow_hosts=tuple(h.strip() for h in args.loader_allow_hosts.split(",") if h.strip()),
        artifact_store=args.artifact_store,
        artifact_store_secret=args.artifact_store_secret,
        artifact_store_plain_http=args.artifact_store_plain_http,
        artifact_cache_dir=args.artifact_cache_dir,
        artifact_cache_verify=args.artifact_cache_verify,
        network_policies=NetworkPolicySettings(
            enabled=args.network_policies,
            ingress_namespaces=args.network_policy_ingress_namespaces,
            prometheus_namespaces=args.network_policy_prometheus_namespaces,
            artifact_egress=args.network_policy_egress,
        ),
        s3_endpoint=args.s3_endpoint,
        s3_region=args.s3_region,
        s3_addressing_style=args.s3_addressing_style,
        loader_ca_bundle_configmap=args.loader_ca_bundle,
        log_format=args.log_format,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    if args.log_level.upper() != "DEBUG":  # one INFO line per request: with leader election, one every 2 s
        logging.getLogger("httpx2").setLevel(logging.WARNING)
    asyncio.run(_operate(args))
    sys.exit(0)


async def _operate(args: argparse.Namespace) -> None:
    """Probes first; then, electing, wait to hold the Lease; then kopf, until it stops or the Lease is lost."""
    # Imported late: importing kopf registers nothing, importing handlers registers our handlers.
    import kopf
    from prometheus_client import start_http_server

    from modelyard_operator import handlers, health, leader  # noqa: F401  (handlers registers the handlers)
    from modelyard_operator.metrics import OperatorMetrics

    config = config_from_args(args)
    metrics = OperatorMetrics()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="0.0.0.0", registry=metrics.registry)
    watches = health.Watches()
    health.track_watches(watches)
    expected = [(plural, ns) for plural in health.WATCHED for ns in (args.namespace or [""])]
    probes = health.Probes(watches, args.watch_dead_seconds, expected)
    runner = await health.serve(probes, args.health_port) if args.health_port else None
    elector, keeper = None, None
    if args.leader_elect:
        elector = leader.elector(args.leader_elect_namespace, args.leader_elect_lease)
        probes.elector = elector
        await elector.acquire()
        keeper = asyncio.create_task(elector.keep())
        keeper.add_done_callback(_stop_when_lost)
    probes.acting = True
    watches.expect(expected)
    try:
        await kopf.operator(
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            memo=kopf.Memo(config=config, metrics=metrics),
        )
    finally:
        if keeper is not None and elector is not None:
            keeper.remove_done_callback(_stop_when_lost)
            keeper.cancel()
            await leader.close(elector)
        if runner is not None:
            await runner.cleanup()


def _stop_when_lost(task: asyncio.Task[None]) -> None:
    """The Lease could not be renewed: stop acting now, before another replica may take over (its term has not
    run out yet). Exiting is the only stop that leaves no handler half-way; Kubernetes restarts the container,
    which stands by as a candidate."""
    if task.cancelled():
        return
    logging.getLogger("modelyard.operator").error("leader election lost: %s; exiting", task.exception())
    logging.shutdown()
    os._exit(1)
