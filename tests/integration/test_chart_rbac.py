"""The operator's least privilege, proven on the real API server with the chart installed (docs/security.md).

- What the operator's service account may do (``kubectl auth can-i --list`` in a watched and an unwatched namespace,
  and an all-namespaces access matrix) equals the reviewed golden files in ``tests/integration/golden/``: any
  widening fails with a diff (a narrowing too: the files must stay a true record; ``UPDATE_GOLDEN=1`` rewrites them).
- The chart's ValidatingAdmissionPolicy admits what the operator renders (from ``render.py`` and ``validation.py``
  themselves) when the operator's service account sends it, and denies, with its message, objects without the
  operator's label or with a privileged container, a hostPath other than its namespace's folder of the artifact cache
  (the cache's root and another namespace's folder included), a token, host namespaces.
- The real operator, running with a token of the chart's service account, does its work in both RBAC modes with the
  policy active, and nothing outside its namespaces.

No node and no image are needed: the chart is installed without ``--wait`` and the operator runs here as a process.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster import DevCluster
from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.inpod import render_in_pod_deployment
from modelyard_operator.render import render_children
from modelyard_operator.validation import render_validation_job

from ..conftest import Kubectl, dev_cluster, running_operator, wait_for

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
SYSTEM = "modelyard-system"
SA_NAME = "modelyard-operator"
SA = f"system:serviceaccount:{SYSTEM}:{SA_NAME}"
WATCHED, UNWATCHED = "team-a", "team-b"
CACHE = "/var/cache/modelyard/artifacts"
POLICY = "ValidatingAdmissionPolicy 'modelyard-operator-workloads'"
DIGEST = "sha256:" + "5f" * 32
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevCluster, Kubectl]]:
    with dev_cluster(tmp_path_factory.mktemp("rbac-cluster"), crds=False, nodes=False) as cl:
        kube = Kubectl(cl.bin / "kubectl", cl.kubeconfig)
        for ns in (SYSTEM, WATCHED, UNWATCHED):
            kube.run("create", "namespace", ns)
        yield cl, kube


def install(cl: DevCluster, values: dict[str, Any]) -> None:
    """``helm upgrade --install`` of the chart with ``values`` (no --wait: no node runs the operator's pod here)."""
    values_file = cl.dir / "values.json"
    values_file.write_text(json.dumps(values))
    proc = subprocess.run(
        [str(cl.bin / "helm"), "upgrade", "--install", "modelyard", str(REPO / "charts" / "modelyard"),
         "--namespace", SYSTEM, "--reset-values", "-f", str(values_file)],
        env={**os.environ, "KUBECONFIG": str(cl.kubeconfig)}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


# --- what the service account may do ----------------------------------------------------------------------------

_ROW = re.compile(r"^(\S*)\s+\[(.*?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s*$")


def normalise_can_i_list(text: str) -> list[str]:
    """``kubectl auth can-i --list``'s table as sorted ``resource[names]: verbs`` / ``url: verbs`` lines, rows that
    name the same thing merged and verbs sorted: the same permissions always read the same."""
    rows: dict[str, set[str]] = {}
    lines = text.splitlines()
    assert lines, text
    assert lines[0].split()[:1] == ["Resources"], text
    for line in lines[1:]:
        match = _ROW.match(line)
        assert match, f"unexpected kubectl auth can-i line: {line!r}"
        resource, urls, names, verbs = match.groups()
        keys = [f"{url} (non-resource)" for url in urls.split()] or [resource + (f" [{names}]" if names else "")]
        for key in keys:
            rows.setdefault(key, set()).update(verbs.split())
    return [f"{key}: {' '.join(sorted(verbs))}" for key, verbs in sorted(rows.items())]


def can_i_list(kube: Kubectl, namespace: str | None) -> list[str]:
    args = ["auth", "can-i", "--list", f"--as={SA}"] + (["-n", namespace] if namespace else [])
    return normalise_can_i_list(kube.run(*args).stdout)


VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
# (group, resource, subresource): what the operator uses, and what an attacker holding its token would want
MATRIX = [
    ("modelyard.dev", "modelversions", ""),
    ("modelyard.dev", "modeldeployments", ""),
    ("modelyard.dev", "modelversions", "status"),
    ("modelyard.dev", "modeldeployments", "status"),
    ("modelyard.dev", "modeldeployments", "finalizers"),
    ("apps", "deployments", ""),
    ("apps", "statefulsets", ""),
    ("apps", "daemonsets", ""),
    ("batch", "jobs", ""),
    ("batch", "cronjobs", ""),
    ("", "pods", ""),
    ("", "pods", "exec"),
    ("", "pods", "log"),
    ("", "services", ""),
    ("", "configmaps", ""),
    ("", "secrets", ""),
    ("", "serviceaccounts", ""),
    ("", "serviceaccounts", "token"),
    ("", "events", ""),
    ("", "namespaces", ""),
    ("", "nodes", ""),
    ("", "persistentvolumeclaims", ""),
    ("gateway.networking.k8s.io", "httproutes", ""),
    ("networking.k8s.io", "networkpolicies", ""),
    ("coordination.k8s.io", "leases", ""),
    ("apiextensions.k8s.io", "customresourcedefinitions", ""),
    ("rbac.authorization.k8s.io", "roles", ""),
    ("rbac.authorization.k8s.io", "rolebindings", ""),
    ("rbac.authorization.k8s.io", "clusterroles", ""),
    ("rbac.authorization.k8s.io", "clusterrolebindings", ""),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies", ""),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings", ""),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", ""),
]


def all_namespaces_matrix(kube: Kubectl) -> list[str]:
    """What ``kubectl auth can-i VERB RESOURCE --all-namespaces --as=SA`` answers yes to, for every verb and resource
    of :data:`MATRIX`, asked in one call (the same SelfSubjectAccessReviews, namespace empty: all namespaces, or
    the cluster scope for cluster-scoped resources)."""
    reviews = [
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"group": g, "resource": r, "subresource": s, "verb": v, "namespace": ""}},
        }
        for g, r, s in MATRIX
        for v in VERBS
    ]
    out = kube.run(
        "create", f"--as={SA}", "-o", "json", "-f", "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": reviews}),
    ).stdout  # fmt: skip
    answers, decoder, at = [], json.JSONDecoder(), 0
    while out[at:].strip():  # kubectl prints one JSON document per created review
        answer, at = decoder.raw_decode(out, len(out) - len(out[at:].lstrip()))
        answers.append(answer)
    assert len(answers) == len(reviews)
    allowed: dict[str, list[str]] = {}
    for answer in answers:
        attrs = answer["spec"]["resourceAttributes"]
        if answer["status"]["allowed"]:
            name = attrs["resource"] + (f".{attrs['group']}" if attrs.get("group") else "")
            name += f"/{attrs['subresource']}" if attrs.get("subresource") else ""
            allowed.setdefault(name, []).append(attrs["verb"])
    return [f"{name}: {' '.join(sorted(verbs))}" for name, verbs in sorted(allowed.items())] or ["(nothing)"]


def permissions(kube: Kubectl) -> str:
    sections = {
        f"kubectl auth can-i --list --as={SA} -n {WATCHED}": can_i_list(kube, WATCHED),
        f"kubectl auth can-i --list --as={SA} -n {UNWATCHED}": can_i_list(kube, UNWATCHED),
        f"kubectl auth can-i --list --as={SA} -n {SYSTEM}   (the release namespace: the leader election Lease)": (
            can_i_list(kube, SYSTEM)
        ),
        f"kubectl auth can-i --list --as={SA}   (no -n: kubectl asks for the context's namespace, default)": (
            can_i_list(kube, None)
        ),
        f"kubectl auth can-i VERB RESOURCE --all-namespaces --as={SA}: the yes answers of {len(VERBS)} verbs "
        f"({' '.join(VERBS)}) x {len(MATRIX)} resources (test_chart_rbac.MATRIX)": all_namespaces_matrix(kube),
    }
    return "".join(f"# {title}\n" + "".join(f"{line}\n" for line in lines) + "\n" for title, lines in sections.items())


def _grants(text: str) -> set[tuple[str, str, str]]:
    out = set()
    section = ""
    for line in text.splitlines():
        if line.startswith("# "):
            section = line
        elif ": " in line:
            key, verbs = line.rsplit(": ", 1)
            out |= {(section, key, verb) for verb in verbs.split()}
    return out


def assert_matches_golden(name: str, actual: str) -> None:
    path = GOLDEN / f"{name}.txt"
    header = (
        f"# The modelyard-operator service account's permissions with the chart installed ({name}), as the API\n"
        "# server answers them: written by tests/integration/test_chart_rbac.py, reviewed in docs/security.md.\n"
        "# Any change fails that test; rerun it with UPDATE_GOLDEN=1 only for a change that was reviewed.\n\n"
    )
    actual = header + actual
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual)
    expected = path.read_text()
    if actual == expected:
        return
    widened = sorted(_grants(actual) - _grants(expected))
    diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), str(path), "API server"))
    kind = "WIDENED: new grants " + ", ".join(f"{k} {v}" for _, k, v in widened) if widened else "narrowed or changed"
    pytest.fail(f"the operator's permissions {kind}\n{diff}")


def test_rbac_watching_some_namespaces_matches_the_golden_file(cluster: tuple[DevCluster, Kubectl]) -> None:
    cl, kube = cluster
    install(cl, {"operator": {"watchNamespaces": [WATCHED]}})
    roles = kube.get("roles,rolebindings", namespace=WATCHED, labels="app.kubernetes.io/name=modelyard")["items"]
    assert {r["kind"] for r in roles} == {"Role", "RoleBinding"}
    assert kube.get("roles", namespace=UNWATCHED)["items"] == []
    assert kube.get("clusterrole", SA_NAME) is None  # no cluster-wide grant of the namespaced rules
    text = permissions(kube)
    print(text)
    assert_matches_golden("rbac-watch-namespaces", text)
    # the sections say what the golden file must: nothing in the unwatched namespace, nothing secret anywhere
    grants = _grants(text)
    assert not {g for g in grants if UNWATCHED in g[0] and g[1].split(".")[0] in ("deployments", "jobs", "pods")}
    # Secrets: only 'get', for the credentialsSecret opt-in check (read as metadata; docs/security.md)
    assert not {g for g in grants if ("secrets" in g[1] and g[2] != "get") or "exec" in g[1] or g[1].startswith("*")}
    assert not {g for g in grants if UNWATCHED in g[0] and "secrets" in g[1]}


def test_rbac_watching_all_namespaces_matches_the_golden_file(cluster: tuple[DevCluster, Kubectl]) -> None:
    cl, kube = cluster
    install(cl, {})
    assert kube.get("roles", namespace=WATCHED)["items"] == []
    text = permissions(kube)
    print(text)
    assert_matches_golden("rbac-all-namespaces", text)
    assert not {
        g for g in _grants(text) if ("secrets" in g[1] and g[2] != "get") or "exec" in g[1] or g[1] == "namespaces"
    }


def test_normalised_list_is_deterministic() -> None:
    table = (
        "Resources                 Non-Resource URLs   Resource Names   Verbs\n"
        "deployments.apps          []                  []               [watch list]\n"
        "                          [/healthz]          []               [get]\n"
        "                          [/healthz]          []               [get]\n"
        "deployments.apps          []                  []               [create]\n"
    )
    assert normalise_can_i_list(table) == ["/healthz (non-resource): get", "deployments.apps: create list watch"]


def test_several_replicas_need_leader_election(cluster: tuple[DevCluster, Kubectl]) -> None:
    """The chart refuses replicas > 1 without leader election (every replica would act); with it, it renders them."""
    cl, _ = cluster

    def template(*sets: str) -> subprocess.CompletedProcess[str]:
        args = [arg for s in sets for arg in ("--set", s)]
        return subprocess.run([str(cl.bin / "helm"), "template", "m", str(REPO / "charts" / "modelyard"), *args],
                              capture_output=True, text=True, check=False)  # fmt: skip

    refused = template("operator.replicas=2", "operator.leaderElection.enabled=false")
    assert refused.returncode != 0
    assert "replicas" in refused.stderr, refused.stderr
    rendered = template("operator.replicas=3")
    assert rendered.returncode == 0, rendered.stderr
    assert "replicas: 3" in rendered.stdout
    assert 'MODELYARD_LEADER_ELECT, value: "true"' in rendered.stdout
    single = template("operator.leaderElection.enabled=false")
    assert single.returncode == 0, single.stderr
    assert "type: Recreate" in single.stdout
    assert "leases" not in single.stdout


# --- the admission policy ---------------------------------------------------------------------------------------

CONFIG = OperatorConfig(
    runtime_image="registry.local/modelyard/modelyard-runtime:test",
    artifact_cache_dir=CACHE,
    sigstore_trust_root_configmap="trust-root",
)


def _mv(name: str, version: str, **artifact: Any) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "apiVersion": "modelyard.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": name, "namespace": WATCHED, "uid": f"uid-{name}", "generation": 1},
            "spec": {
                "model": "fraud",
                "version": version,
                "artifact": {"uri": f"s3://models/fraud/{version}.onnx", "digest": DIGEST, **artifact},
            },
        }
    )


def rendered_objects() -> dict[str, dict[str, Any]]:
    """Deployments and Jobs exactly as the operator renders them, with everything a pod can mount: credentials and
    signing Secrets, the sigstore trust root, the node cache, the inPod router's ConfigMap and second loader."""
    signed = _mv(
        "fraud-1",
        "1",
        credentialsSecret="store",
        signature={"uri": "s3://m/1.sig", "publicKeySecret": {"name": "k", "key": "p"}},
    )
    keyless = _mv(
        "fraud-2", "2", signature={"uri": "s3://m/2.sig", "sigstore": {"identity": "a@b.c", "issuer": "https://i"}}
    )
    md = ModelDeployment.model_validate(
        {
            "apiVersion": "modelyard.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "fraud", "namespace": WATCHED, "uid": "uid-md", "generation": 1},
            "spec": {"model": "fraud", "version": "1", "replicas": 1},
        }
    )
    static = next(o for o in render_children(md, signed, CONFIG) if o["kind"] == "Deployment")
    in_pod = render_in_pod_deployment(md, signed, keyless, CONFIG, replicas=1)
    in_pod["metadata"]["name"] = "fraud-inpod"
    objects = {
        "Deployment (static)": static,
        "Deployment (inPod, two loaders)": in_pod,
        "Job (validation, signed)": render_validation_job(signed, CONFIG),
        "Job (validation, keyless)": render_validation_job(keyless, CONFIG),
        "Job (validation, pvc)": render_validation_job(
            _mv("fraud-3", "3", uri="pvc://model-store/fraud/3.onnx", signature=None), CONFIG
        ),
    }
    for obj in objects.values():  # their owners do not exist here: the garbage collector would remove them
        obj["metadata"].pop("ownerReferences")
    return objects


def as_operator(kube: Kubectl, obj: dict[str, Any], *, dry_run: bool = False) -> subprocess.CompletedProcess[str]:
    """Server-side apply as the operator's service account (its own call: PATCH with create)."""
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=modelyard-operator", f"--as={SA}"]
    return kube.run(*args, *(["--dry-run=server"] if dry_run else []), "-f", "-", stdin=json.dumps(obj), check=False)


def _pod(obj: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = obj["spec"]["template"]["spec"]
    return pod


def _without_label(obj: dict[str, Any]) -> None:
    del obj["metadata"]["labels"]["app.kubernetes.io/managed-by"]


def _privileged(obj: dict[str, Any]) -> None:
    _pod(obj)["containers"][0]["securityContext"].update(privileged=True, allowPrivilegeEscalation=True)


def _writable_claim(obj: dict[str, Any]) -> None:
    _pod(obj)["volumes"].append({"name": "rw", "persistentVolumeClaim": {"claimName": "model-store"}})


def _host_path_etc(obj: dict[str, Any]) -> None:
    _pod(obj)["volumes"].append({"name": "etc", "hostPath": {"path": "/etc"}})
    _pod(obj)["containers"][0]["volumeMounts"].append({"name": "etc", "mountPath": "/host-etc", "readOnly": True})


def _cache_folder(path: str) -> Any:
    """A mutation that points the node cache's volume at ``path`` instead of the namespace's own folder."""

    def mutate(obj: dict[str, Any]) -> None:
        (volume,) = [v for v in _pod(obj)["volumes"] if "hostPath" in v]
        assert volume["hostPath"]["path"] == f"{CACHE}/{WATCHED}"  # what the operator renders
        volume["hostPath"]["path"] = path

    return mutate


def _token(obj: dict[str, Any]) -> None:
    _pod(obj)["automountServiceAccountToken"] = True


def _other_service_account(obj: dict[str, Any]) -> None:
    _pod(obj)["serviceAccountName"] = SA_NAME


def _projected_token(obj: dict[str, Any]) -> None:
    source = {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
    _pod(obj)["volumes"].append({"name": "token", "projected": {"sources": [source]}})


def _host_network(obj: dict[str, Any]) -> None:
    _pod(obj)["hostNetwork"] = True


def _root(obj: dict[str, Any]) -> None:
    _pod(obj)["securityContext"].update(runAsNonRoot=False, runAsUser=0)
    for container in _pod(obj)["containers"] + _pod(obj).get("initContainers", []):
        container["securityContext"].pop("runAsNonRoot")


def _added_capability(obj: dict[str, Any]) -> None:
    _pod(obj)["initContainers"][0]["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]


# mutation of a conforming object -> a part of the policy's message for it
VIOLATIONS = {
    "no managed-by label": (_without_label, "labelled app.kubernetes.io/managed-by=modelyard"),
    "privileged container": (_privileged, "must not be privileged"),
    "hostPath /etc": (_host_path_etc, f"hostPath only at their namespace's artifact cache {CACHE}/{WATCHED}"),
    # the node cache's root would reach every namespace's entries, another namespace's folder that tenant's
    "cache root": (_cache_folder(CACHE), f"hostPath only at their namespace's artifact cache {CACHE}/{WATCHED}"),
    "another namespace's cache": (_cache_folder(f"{CACHE}/{UNWATCHED}"), f"artifact cache {CACHE}/{WATCHED}"),
    "service account token": (_token, "automountServiceAccountToken: false"),
    "another service account": (_other_service_account, "default service account"),
    "projected token volume": (_projected_token, "emptyDir, Secret and ConfigMap volumes"),
    "hostNetwork": (_host_network, "must not use hostNetwork"),
    "writable claim": (_writable_claim, "read-only claims"),
    "root": (_root, "runAsNonRoot"),
    "added capability": (_added_capability, "add no capabilities"),
}


@pytest.fixture(scope="module")
def with_policy(cluster: tuple[DevCluster, Kubectl]) -> tuple[DevCluster, Kubectl]:
    cl, kube = cluster
    install(cl, {"operator": {"watchNamespaces": [WATCHED], "artifactCache": {"hostPath": CACHE}}})
    kube.run("wait", "--for=create", "validatingadmissionpolicybinding/modelyard-operator-workloads", "--timeout=30s")
    # The API server's policy informer sees a new or changed policy within a moment. Until then the previous one
    # (no cache directory) may still refuse the node cache, or none may deny yet: wait until this one decides.
    good = rendered_objects()["Deployment (static)"]
    bad = _broken(good, _privileged)

    def active() -> bool:
        return as_operator(kube, good, dry_run=True).returncode == 0 and as_operator(kube, bad, dry_run=True).returncode

    wait_for(active, timeout=30, what="the policy with the cache directory to be active")
    return cl, kube


def test_policy_admits_what_the_operator_renders(with_policy: tuple[DevCluster, Kubectl]) -> None:
    _, kube = with_policy
    objects = rendered_objects()
    for what, obj in objects.items():
        proc = as_operator(kube, obj)
        assert proc.returncode == 0, f"{what} refused:\n{proc.stderr}"
        print(f"admitted as {SA}: {what} {obj['metadata']['name']}")
    # an update by the operator is admitted too (UPDATE is matched as well as CREATE)
    static = copy.deepcopy(objects["Deployment (static)"])
    static["spec"]["replicas"] = 2
    proc = as_operator(kube, static)
    assert proc.returncode == 0, proc.stderr
    assert kube.get("deployment", static["metadata"]["name"], WATCHED)["spec"]["replicas"] == 2


def _broken(obj: dict[str, Any], mutate: Any) -> dict[str, Any]:
    bad = copy.deepcopy(obj)
    bad["metadata"]["name"] += "-bad"
    mutate(bad)
    return bad


@pytest.mark.parametrize("violation", sorted(VIOLATIONS))
def test_policy_denies_non_conforming_deployments(with_policy: tuple[DevCluster, Kubectl], violation: str) -> None:
    _, kube = with_policy
    mutate, message = VIOLATIONS[violation]
    bad = _broken(rendered_objects()["Deployment (static)"], mutate)
    proc = as_operator(kube, bad)
    assert proc.returncode != 0, f"{violation}: admitted"
    assert POLICY in proc.stderr, proc.stderr
    assert message in proc.stderr, proc.stderr
    print(f"{violation}: denied: {proc.stderr.strip()[-300:]}")
    # the policy only binds the operator: the cluster admin may create the same object (server-side dry run)
    admin = kube.run("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=json.dumps(bad), check=False)
    assert admin.returncode == 0, admin.stderr


def test_policy_denies_non_conforming_jobs_and_updates(with_policy: tuple[DevCluster, Kubectl]) -> None:
    _, kube = with_policy
    objects = rendered_objects()
    job = objects["Job (validation, signed)"]
    for mutate, message in (VIOLATIONS["no managed-by label"], VIOLATIONS["hostPath /etc"]):
        proc = as_operator(kube, _broken(job, mutate))
        assert proc.returncode != 0, "admitted"
        assert POLICY in proc.stderr, proc.stderr
        assert message in proc.stderr, proc.stderr
    # an update of an admitted Deployment into a privileged one is denied too
    static = objects["Deployment (static)"]
    assert as_operator(kube, static).returncode == 0
    privileged = copy.deepcopy(static)
    _privileged(privileged)
    proc = as_operator(kube, privileged)
    assert proc.returncode != 0, "admitted"
    assert POLICY in proc.stderr, proc.stderr


def test_policy_without_the_cache_value_denies_any_host_path(cluster: tuple[DevCluster, Kubectl]) -> None:
    cl, kube = cluster
    install(cl, {"operator": {"watchNamespaces": [WATCHED]}})
    cached = rendered_objects()["Deployment (static)"]  # mounts CACHE, which the chart was not told about
    proc = wait_for(lambda: (p := as_operator(kube, cached, dry_run=True)).returncode and p, timeout=20, what="deny")
    assert "no hostPath: no artifact cache is configured" in proc.stderr, proc.stderr
    install(cl, {"operator": {"watchNamespaces": [WATCHED]}, "admissionPolicy": {"enabled": False}})
    wait_for(lambda: as_operator(kube, cached, dry_run=True).returncode == 0, timeout=20, what="admitted, policy off")
    assert kube.get("validatingadmissionpolicy", "modelyard-operator-workloads") is None


# --- the real operator under the chart's RBAC and policy --------------------------------------------------------


def service_account_kubeconfig(cl: DevCluster, kube: Kubectl, path: Path) -> Path:
    """A kubeconfig with a short-lived token of the chart's service account (what its pod would mount)."""
    token = kube.run("create", "token", SA_NAME, "-n", SYSTEM, "--duration=1h").stdout.strip()
    admin = json.loads(kube.run("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = admin["clusters"][0]["cluster"]
    conf = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev", "cluster": cluster}],
        "users": [{"name": SA_NAME, "user": {"token": token}}],
        "contexts": [{"name": "dev", "context": {"cluster": "dev", "user": SA_NAME, "namespace": SYSTEM}}],
        "current-context": "dev",
    }
    path.write_text(json.dumps(conf))
    return path


def _model(kube: Kubectl, namespace: str, name: str) -> None:
    kube.apply(
        [
            {
                "apiVersion": "modelyard.dev/v1alpha1",
                "kind": "ModelVersion",
                "metadata": {"name": f"{name}-1"},
                "spec": {
                    "model": name,
                    "version": "1",
                    "artifact": {"uri": f"https://models.example.com/{name}.onnx", "digest": DIGEST},
                },
            },
            {
                "apiVersion": "modelyard.dev/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": name},
                "spec": {"model": name, "version": "1", "replicas": 1},
            },
        ],
        namespace,
    )


def _bad_log_lines(log: Path) -> list[str]:
    words = ("Forbidden", " 403", "denied", "ERROR", "Not enough permissions")
    return [line for line in log.read_text().splitlines() if any(w in line for w in words)]


@pytest.mark.parametrize("mode", ["watch-namespaces", "all-namespaces"])
def test_operator_works_with_the_charts_rbac_and_policy(
    cluster: tuple[DevCluster, Kubectl], tmp_path: Path, mode: str
) -> None:
    cl, kube = cluster
    name = "ops" if mode == "watch-namespaces" else "opa"
    watched, unwatched = f"{name}-in", f"{name}-out"
    for ns in (watched, unwatched):
        kube.run("create", "namespace", ns)
    namespaces = [watched] if mode == "watch-namespaces" else []
    install(cl, {"operator": {"watchNamespaces": namespaces, "artifactCache": {"hostPath": CACHE}}})
    kubeconfig = service_account_kubeconfig(cl, kube, tmp_path / "sa.kubeconfig")
    for ns in (watched, unwatched):
        _model(kube, ns, "fraud")
    # leader election as the chart configures it: the Lease in the release namespace, with the chart's grant
    flags = [f"--namespace={ns}" for ns in namespaces] + [f"--artifact-cache-dir={CACHE}"]
    flags += ["--leader-elect", f"--leader-elect-namespace={SYSTEM}"]
    expected = [watched] if namespaces else [watched, unwatched]

    began = time.monotonic()
    log = tmp_path / "operator-job.log"
    with running_operator(kubeconfig, log, *flags, "--model-validation=job"):
        for ns in expected:  # the validation Job, with its namespace's node cache folder: admitted by the policy
            job = wait_for(lambda ns=ns: kube.get("job", "fraud-1-validate", ns), timeout=30, what=f"Job in {ns}")
            assert {v["hostPath"]["path"] for v in _pod(job)["volumes"] if "hostPath" in v} == {f"{CACHE}/{ns}"}
    print(f"{mode}: validation Jobs created in {time.monotonic() - began:.1f}s")
    assert _bad_log_lines(log) == [], log.read_text()[-5000:]

    log = tmp_path / "operator-off.log"
    with running_operator(kubeconfig, log, *flags, "--model-validation=off", "--network-policies"):
        for ns in expected:  # the model's Deployment, Services and NetworkPolicy, server-side applied
            wait_for(lambda ns=ns: kube.get("deployment", "fraud-1", ns), timeout=30, what=f"Deployment in {ns}")
            wait_for(lambda ns=ns: kube.get("service", "fraud-stable", ns), timeout=10, what=f"Services in {ns}")
            wait_for(lambda ns=ns: kube.get("networkpolicy", "fraud", ns), timeout=10, what=f"NetworkPolicy in {ns}")
            md = wait_for(lambda ns=ns: (kube.get("md", "fraud", ns) or {}).get("status"), timeout=10, what="status")
            assert md["phase"] == "Progressing"
    assert _bad_log_lines(log) == [], log.read_text()[-5000:]
    assert "holds the Lease and acts" in log.read_text()
    assert kube.get("lease", "modelyard-operator", SYSTEM)["spec"]["leaseTransitions"] >= 1  # the second run took it
    if namespaces:  # nothing happened outside the watched namespace
        assert kube.get("deployment", "fraud-1", unwatched) is None
        assert kube.get("job", "fraud-1-validate", unwatched) is None
        assert kube.get("networkpolicy", "fraud", unwatched) is None
        assert "status" not in kube.get("mv", "fraud-1", unwatched)
