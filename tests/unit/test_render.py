"""Rendering against golden files (``UPDATE_GOLDEN=1 pytest tests/unit/test_render.py`` rewrites them)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.inpod import render_in_pod_deployment
from modelyard_operator.render import render_children
from modelyard_operator.validation import render_validation_job

from .samples import DIGEST, model_deployment, model_version

GOLDEN = Path(__file__).parent / "golden"
CONFIG = OperatorConfig(runtime_image="registry.local/modelyard/runtime:test")

CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "static-cpu": (model_deployment(), model_version()),
    "dynamic-gpu": (
        model_deployment(
            loading={"mode": "dynamic", "memoryBudget": "8Gi"},
            resources={"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"nvidia.com/gpu": 1}},
            placement={
                "nodeSelector": {"nvidia.com/gpu.present": "true"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            serving={"httpPort": 9000, "grpcPort": 9001},
        ),
        model_version(
            batching={"maxBatchSize": 32, "maxQueueDelayMs": 2},
            runtime={
                "executionProviders": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                "deviceId": 0,
                "cuda": {"cudnnConvAlgoSearch": "HEURISTIC"},
                "tensorrt": {"fp16": True, "engineCachePath": "/var/cache/modelyard/trt"},
            },
            warmup={"requests": 4},
            artifact={
                "uri": "oci://registry.local/models/fraud:42",
                "digest": "sha256:" + "cd" * 32,
                "credentialsSecret": "registry-creds",
            },
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_render_matches_golden(case: str) -> None:
    md, mv = CASES[case]
    rendered = render_children(ModelDeployment.model_validate(md), ModelVersion.model_validate(mv), CONFIG)
    text = yaml.safe_dump_all(rendered, sort_keys=True)
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"rendering changed; inspect and rerun with UPDATE_GOLDEN=1 if intended ({path})"


def rendered(case: str = "static-cpu") -> list[dict[str, Any]]:
    md, mv = CASES[case]
    return render_children(ModelDeployment.model_validate(md), ModelVersion.model_validate(mv), CONFIG)


def test_every_child_is_owned_by_the_model_deployment() -> None:
    for obj in rendered():
        (owner,) = obj["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "modelyard.dev/v1alpha1",
            "kind": "ModelDeployment",
            "name": "fraud",
            "uid": "uid-md",
            "controller": True,
            "blockOwnerDeletion": True,
        }


def test_pod_is_restricted_and_has_no_token() -> None:
    pod = rendered()[0]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["initContainers"] + pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"] == {"drop": ["ALL"]}


def test_server_contract() -> None:
    pod = rendered()[0]["spec"]["template"]["spec"]
    (server,) = pod["containers"]
    assert server["command"] == ["modelyard-server"]
    assert server["args"][:2] == ["--model-repository", "/models"]
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"http": 8080, "grpc": 8081}
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert "startupProbe" in server


def flag(args: list[str], name: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == name]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_admin_api_stays_on_loopback_and_out_of_the_service(case: str) -> None:
    deployment, *services = rendered(case)
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert flag(server["args"], "--admin-host") == ["127.0.0.1"]
    (port,) = flag(server["args"], "--admin-port")
    assert int(port) not in {p["containerPort"] for p in server["ports"]}
    assert {p["name"] for p in server["ports"]} == {"http", "grpc"}
    for service in services:
        assert {p["targetPort"] for p in service["spec"]["ports"]} == {"http", "grpc"}


def test_the_admin_port_avoids_the_inference_ports() -> None:
    md, mv = CASES["static-cpu"]
    md = model_deployment(serving={"httpPort": 8082, "grpcPort": 8083})
    (deployment, *_) = render_children(ModelDeployment.model_validate(md), ModelVersion.model_validate(mv), CONFIG)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag(args, "--admin-port") == ["8084"]


def test_readiness_requires_the_versions_the_pod_is_for() -> None:
    for case in CASES:
        server = rendered(case)[0]["spec"]["template"]["spec"]["containers"][0]
        assert flag(server["args"], "--serve") == ["fraud:42"]
    md = ModelDeployment.model_validate(model_deployment())
    stable = ModelVersion.model_validate(model_version())
    artifact = {"uri": "s3://models/fraud/43/model.onnx", "digest": DIGEST, "credentialsSecret": "other-store"}
    canary = ModelVersion.model_validate(model_version("fraud-43", version="43", artifact=artifact))
    pod = render_in_pod_deployment(md, stable, canary, CONFIG, replicas=1)["spec"]["template"]["spec"]
    assert flag(pod["containers"][0]["args"], "--serve") == ["fraud:42", "fraud:43"]  # a loader of its own: required
    alone = render_in_pod_deployment(md, stable, None, CONFIG, replicas=1)["spec"]["template"]["spec"]
    assert flag(alone["containers"][0]["args"], "--serve") == ["fraud:42"]
    listed = ModelVersion.model_validate(model_version("fraud-43", version="43"))  # through the versions list
    pod = render_in_pod_deployment(md, stable, listed, CONFIG, replicas=1)["spec"]["template"]["spec"]
    assert flag(pod["containers"][0]["args"], "--serve") == ["fraud:42"]  # loading it never takes a pod out


def test_static_loader_is_an_init_container_and_dynamic_a_native_sidecar() -> None:
    (static_loader,) = rendered("static-cpu")[0]["spec"]["template"]["spec"]["initContainers"]
    assert "restartPolicy" not in static_loader
    assert static_loader["args"][:5] == [
        "fetch",
        "--uri",
        "s3://models/fraud/42/model.onnx",
        "--dest",
        "/models/fraud/42",
    ]
    assert "--digest" in static_loader["args"]
    (dynamic_loader,) = rendered("dynamic-gpu")[0]["spec"]["template"]["spec"]["initContainers"]
    assert dynamic_loader["restartPolicy"] == "Always"
    assert dynamic_loader["args"][0] == "sidecar"
    # the sidecar has the server load what it publishes, on the server's admin port (loopback), never the Service's
    (server,) = rendered("dynamic-gpu")[0]["spec"]["template"]["spec"]["containers"]
    assert flag(dynamic_loader["args"], "--server-admin") == [
        f"http://127.0.0.1:{flag(server['args'], '--admin-port')[0]}"
    ]
    assert "--server-admin" not in static_loader["args"]


def test_an_admin_token_secret_reaches_the_server_and_every_loader_that_calls_it() -> None:
    token = {"name": "fraud-admin", "key": "bearer"}
    stable = ModelVersion.model_validate(model_version())
    canary = ModelVersion.model_validate(model_version("fraud-43", version="43"))
    for mode in ("static", "dynamic"):
        md = ModelDeployment.model_validate(model_deployment(loading={"mode": mode, "adminTokenSecret": token}))
        pod = render_in_pod_deployment(md, stable, canary, CONFIG, replicas=1)["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "admin-token"]
        assert volume["secret"] == {"secretName": "fraud-admin", "items": [{"key": "bearer", "path": "token"}],
                                    "defaultMode": 0o444}  # fmt: skip
        mount = {"name": "admin-token", "mountPath": "/var/run/secrets/modelyard/admin", "readOnly": True}
        server = pod["containers"][0]
        assert flag(server["args"], "--admin-token-file") == ["/var/run/secrets/modelyard/admin/token"], mode
        assert mount in server["volumeMounts"]
        loaders = {c["name"]: c for c in pod["initContainers"] if "loader" in c["name"]}
        # the canary is in the versions list, which the sidecar follows: dynamic loading's own, or static's extra one
        assert list(loaders) == (["loader", "versions-loader"] if mode == "static" else ["loader"])
        for loader in loaders.values():  # only the sidecars call the admin API; a static init container gets no token
            sidecar = loader.get("restartPolicy") == "Always"
            assert sidecar is (mode == "dynamic" or loader["name"] == "versions-loader")
            sends = flag(loader["args"], "--server-admin-token-file")
            assert sends == (["/var/run/secrets/modelyard/admin/token"] if sidecar else []), mode
            assert (mount in loader["volumeMounts"]) is sidecar, mode
    plain = rendered("dynamic-gpu")[0]["spec"]["template"]["spec"]
    assert not [v for v in plain["volumes"] if v["name"] == "admin-token"]
    assert "--admin-token-file" not in plain["containers"][0]["args"]


def test_a_failed_fetch_says_why_and_the_server_waits_for_the_sidecar() -> None:
    """Both loaders write a failure's reason to the termination message; the sidecar has a startup probe (its API is on
    loopback: an exec probe), so the kubelet starts the server only once the pod's version is published."""
    (static_loader,) = rendered("static-cpu")[0]["spec"]["template"]["spec"]["initContainers"]
    (dynamic_loader,) = rendered("dynamic-gpu")[0]["spec"]["template"]["spec"]["initContainers"]
    for loader in (static_loader, dynamic_loader):
        assert flag(loader["args"], "--termination-log") == ["/dev/termination-log"]
    assert "startupProbe" not in static_loader  # an init container: the server starts when it exits 0
    probe = dynamic_loader["startupProbe"]
    assert probe["exec"]["command"] == ["modelyard-loader", "health", "--listen", "127.0.0.1:8090"]
    assert probe["periodSeconds"] * probe["failureThreshold"] == 600


def test_in_pod_dynamic_sidecars_listen_and_are_probed_on_ports_of_their_own() -> None:
    md = ModelDeployment.model_validate(
        model_deployment(loading={"mode": "dynamic"}, serving={"httpPort": 8091, "grpcPort": 8092})
    )
    stable = ModelVersion.model_validate(model_version())
    artifact = {"uri": "s3://models/fraud/43/model.onnx", "digest": DIGEST, "credentialsSecret": "other-store"}
    canary = ModelVersion.model_validate(model_version("fraud-43", version="43", artifact=artifact))
    pod = render_in_pod_deployment(md, stable, canary, OperatorConfig(), replicas=1)["spec"]["template"]["spec"]
    first, second = pod["initContainers"]  # a canary with other credentials: a sidecar of its own
    assert "--listen" not in first["args"]  # the default, 127.0.0.1:8090
    assert flag(second["args"], "--listen") == ["127.0.0.1:8093"]  # 8091 and 8092 are the inference ports
    assert second["startupProbe"]["exec"]["command"][-1] == "127.0.0.1:8093"
    assert first["startupProbe"]["exec"]["command"][-1] == "127.0.0.1:8090"


def test_labels_and_selectors() -> None:
    deployment, main_svc, stable_svc = rendered()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "modelyard-server"
    assert labels["app.kubernetes.io/instance"] == "fraud"
    assert labels["app.kubernetes.io/managed-by"] == "modelyard"
    assert labels["modelyard.dev/model"] == "fraud"
    assert labels["modelyard.dev/version"] == "42"
    assert labels["modelyard.dev/deployment"] == "fraud"
    assert deployment["metadata"]["name"] == "fraud-42"
    assert "modelyard.dev/version" not in main_svc["spec"]["selector"]
    assert stable_svc["metadata"]["name"] == "fraud-stable"
    assert stable_svc["spec"]["selector"]["modelyard.dev/version"] == "42"
    for key, value in deployment["spec"]["selector"]["matchLabels"].items():
        assert labels[key] == value


CHAIN = {"name": "ca", "key": "c"}


def test_signed_artifacts_get_their_trust_material_as_mounted_files() -> None:
    signed = model_version(
        artifact={
            "uri": "s3://models/fraud/42/model.onnx",
            "digest": "sha256:" + "ab" * 32,
            "credentialsSecret": "store",
            "signature": {
                "uri": "s3://models/fraud/42/model.sig",
                "certificateChainSecret": {"name": "ca", "key": "c"},
            },
        }
    )
    mv = ModelVersion.model_validate(signed)
    md = ModelDeployment.model_validate(model_deployment())
    deployment = next(o for o in render_children(md, mv, OperatorConfig()) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    loader = pod["initContainers"][0]
    args = loader["args"]
    assert args[args.index("--signature") + 1] == "s3://models/fraud/42/model.sig"
    assert args[args.index("--certificate-chain") + 1] == "/var/run/secrets/modelyard/signing/chain.pem"
    assert args[args.index("--credentials-dir") + 1] == "/var/run/secrets/modelyard/credentials"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["signing"]["secret"] == {"secretName": "ca", "items": [{"key": "c", "path": "chain.pem"}]}
    assert {m["name"] for m in loader["volumeMounts"]} >= {"signing", "credentials"}
    assert all(m.get("readOnly") for m in loader["volumeMounts"] if m["name"] in ("signing", "credentials"))
    # the inPod router: a canary with its own secrets mounts them beside the stable's, under other names
    canary = ModelVersion.model_validate(
        model_version("fraud-43", version="43", artifact={"uri": "s3://m/43.onnx", "credentialsSecret": "other"})
    )
    both = render_in_pod_deployment(md, mv, canary, OperatorConfig(), replicas=1)["spec"]["template"]["spec"]
    canary_loader = both["initContainers"][1]
    assert {m["name"] for m in canary_loader["volumeMounts"]} & {"signing", "credentials"} == set()
    assert "credentials-canary" in {m["name"] for m in canary_loader["volumeMounts"]}
    assert {v["name"]: v for v in both["volumes"]}["credentials-canary"]["secret"]["secretName"] == "other"
    assert "--signature" not in canary_loader["args"]


CACHED = OperatorConfig(artifact_cache_dir="/var/cache/modelyard/artifacts")


def cached_pod(config: OperatorConfig = CACHED, **artifact: Any) -> dict[str, Any]:
    mv = model_version(artifact=artifact) if artifact else model_version()
    md = ModelDeployment.model_validate(model_deployment())
    children = render_children(md, ModelVersion.model_validate(mv), config)
    pod: dict[str, Any] = children[0]["spec"]["template"]["spec"]
    return pod


def test_the_node_cache_is_a_host_directory_only_the_loader_mounts() -> None:
    pod = cached_pod()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["artifact-cache"] == {
        "name": "artifact-cache",
        # the namespace's own folder and nothing above it: a hit skips the store, so namespaces must not share
        # entries, and a loader must not reach another namespace's
        "hostPath": {"path": "/var/cache/modelyard/artifacts/ml", "type": "DirectoryOrCreate"},
    }
    (loader,) = pod["initContainers"]
    assert {"name": "artifact-cache", "mountPath": "/var/cache/modelyard-artifacts"} in loader["volumeMounts"]
    args = loader["args"]
    assert args[args.index("--cache") + 1] == "/var/cache/modelyard-artifacts"
    assert "--cache-verify" in args
    assert args[args.index("--digest") + 1] == DIGEST
    (server,) = pod["containers"]
    assert "artifact-cache" not in {m["name"] for m in server["volumeMounts"]}
    assert not any("modelyard-artifacts" in a for a in server["args"])


def test_no_node_cache_without_a_digest_or_a_directory() -> None:
    for pod in (
        cached_pod(uri="https://models.example.com/m.onnx"),  # unpinned: the cache is keyed by digest
        cached_pod(OperatorConfig()),  # the default: no cache directory
    ):
        assert "artifact-cache" not in {v["name"] for v in pod["volumes"]}
        assert not any("hostPath" in v for v in pod["volumes"])
        assert "--cache" not in pod["initContainers"][0]["args"]
    # an OCI reference pins its digest by itself
    oci = cached_pod(uri="oci://registry.example.com/m/fraud@" + DIGEST)
    assert "--cache" in oci["initContainers"][0]["args"]


def test_each_namespace_mounts_only_its_own_cache_folder() -> None:
    """Two namespaces' pods and validation Jobs get disjoint node folders, none of them the cache root or above."""
    folders: dict[str, set[str]] = {}
    for namespace in ("team-a", "team-b"):
        mv = ModelVersion.model_validate({**model_version(), "metadata": {"name": "fraud-42", "namespace": namespace}})
        md = ModelDeployment.model_validate(
            {**model_deployment(), "metadata": {"name": "fraud", "namespace": namespace}}
        )
        config = OperatorConfig(artifact_cache_dir="/var/cache/modelyard/artifacts/")  # a trailing / changes nothing
        pods = [
            render_children(md, mv, config)[0]["spec"]["template"]["spec"],
            render_validation_job(mv, config)["spec"]["template"]["spec"],
        ]
        folders[namespace] = {v["hostPath"]["path"] for pod in pods for v in pod["volumes"] if "hostPath" in v}
    assert folders == {
        "team-a": {"/var/cache/modelyard/artifacts/team-a"},
        "team-b": {"/var/cache/modelyard/artifacts/team-b"},
    }


def test_node_cache_verification_can_be_turned_off() -> None:
    config = OperatorConfig(artifact_cache_dir="/srv/cache", artifact_cache_verify=False)
    args = cached_pod(config)["initContainers"][0]["args"]
    assert "--cache" in args
    assert "--cache-verify" not in args


def test_in_pod_loaders_share_one_node_cache_volume() -> None:
    md = ModelDeployment.model_validate(model_deployment())
    stable = ModelVersion.model_validate(model_version())
    canary = ModelVersion.model_validate(model_version("fraud-43", version="43"))
    unpinned = ModelVersion.model_validate(
        model_version("fraud-44", version="44", artifact={"uri": "https://models.example.com/44.onnx"})
    )
    pod = render_in_pod_deployment(md, stable, canary, CACHED, replicas=1)["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]].count("artifact-cache") == 1
    for loader in pod["initContainers"]:
        assert "artifact-cache" in {m["name"] for m in loader["volumeMounts"]}
        assert "--cache" in loader["args"]
    pod = render_in_pod_deployment(md, stable, unpinned, CACHED, replicas=1)["spec"]["template"]["spec"]
    loaders = {c["name"]: c for c in pod["initContainers"]}
    stable_loader, canary_loader = loaders["loader"], loaders["loader-44"]
    assert "artifact-cache" in {m["name"] for m in stable_loader["volumeMounts"]}
    assert "artifact-cache" not in {m["name"] for m in canary_loader["volumeMounts"]}
    assert "--cache" not in canary_loader["args"]
    pod = render_in_pod_deployment(md, unpinned, canary, CACHED, replicas=1)["spec"]["template"]["spec"]
    loaders = {c["name"]: c for c in pod["initContainers"]}
    assert [v["name"] for v in pod["volumes"]].count("artifact-cache") == 1
    assert "artifact-cache" in {m["name"] for m in loaders["loader-43"]["volumeMounts"]}
    assert "artifact-cache" not in {m["name"] for m in loaders["loader"]["volumeMounts"]}


def test_savedmodel_versions_run_on_the_runtime_tf_image() -> None:
    config = OperatorConfig(runtime_image="reg/runtime:1", runtime_tf_image="reg/runtime-tf:1")
    md = ModelDeployment.model_validate(model_deployment(version="7"))
    saved = model_version(
        "fraud-7", version="7", format="savedmodel", runtime={"engine": "tensorflow"},
        warmup={"samples": {"uri": "s3://models/fraud/7/warmup.json", "digest": DIGEST}},
    )  # fmt: skip
    tf_version = ModelVersion.model_validate(saved)
    onnx_version = ModelVersion.model_validate(model_version())

    def images(pod: dict[str, Any]) -> set[str]:
        return {c["image"] for c in [*pod["initContainers"], *pod["containers"]]}

    def deployment_pod(mv: ModelVersion) -> dict[str, Any]:
        (deployment,) = [o for o in render_children(md, mv, config) if o["kind"] == "Deployment"]
        pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
        return pod

    pod = deployment_pod(tf_version)
    assert images(pod) == {"reg/runtime-tf:1"}
    loader_args = pod["initContainers"][0]["args"]
    assert loader_args[loader_args.index("--format") + 1] == "savedmodel"
    job = render_validation_job(tf_version, config)
    assert {c["image"] for c in job["spec"]["template"]["spec"]["containers"]} == {"reg/runtime-tf:1"}
    assert images(deployment_pod(onnx_version)) == {"reg/runtime:1"}
    # an inPod canary that is a SavedModel: the one server loads both versions, so the whole pod needs TensorFlow
    in_pod = render_in_pod_deployment(md, onnx_version, tf_version, config, replicas=1)["spec"]["template"]["spec"]
    assert images(in_pod) == {"reg/runtime-tf:1"}
    plain = render_in_pod_deployment(md, onnx_version, onnx_version, config, replicas=1)["spec"]["template"]["spec"]
    assert images(plain) == {"reg/runtime:1"}
