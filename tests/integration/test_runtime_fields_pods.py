"""ModelVersion spec.runtime, spec.warmup and spec.format on the real node (kubelet and containerd), with the
operator installed by the chart from the built images (the CPU runtime image: no GPU, no CUDA, no TensorRT):

1. a version on CPUExecutionProvider with warm-up requests over digest-pinned samples: its pod warms up with the real
   inputs before it is Ready, then answers;
2. a version asking for CUDAExecutionProvider: the CPU image lacks it, the server refuses to start and the
   ModelDeployment is Degraded with reason ExecutionProviderUnavailable (never a pod silently on the CPU);
3. a ModelDeployment asking for nvidia.com/gpu for the CPU-only version: a Warning Event says the GPU would idle;
4. a TensorRT plan: its validation needs a GPU node, there is none, and the ModelVersion says so in a condition;
5. an artifact changed in storage after its validation: the pods' loader (the init container, or the sidecar of
   dynamic loading) refuses it, and the ModelDeployment is Degraded with the loader's reason, with a Warning Event;
6. a PMML model exported by sklearn2pmml (format pmml): the validation Job compiles it to ONNX and records the compiled
   model's digest, each pod's loader compiles it again and checks that digest, and the served predictions and
   probabilities equal the reference evaluator's (jpmml_evaluator) on rows with missing values.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient

from devcluster import DevCluster
from realnode import GATEWAY, PLACEMENT

from ..conftest import Kubectl, real_node_fixtures, serve_directory, wait_for
from ..models import binary_op
from .test_pmml_reference import TOLERANCE, data, reference_scores, two_classes

pytestmark = pytest.mark.timeout(420)

A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 10, dtype=np.float32)
CUDA_FIRST = {"executionProviders": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


cluster, kube, ns = real_node_fixtures("runtime-fields", images=["modelyard-operator", "modelyard-runtime"], ns="rtf")


@pytest.fixture(scope="module")
def operator(cluster: DevCluster, ns: str) -> None:
    values = {"operator.watchNamespaces": "{" + ns + "}", "operator.loaderAllowHosts": "{" + GATEWAY + "}"}
    cluster.install_chart(values)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("runtime-fields-artifacts")
    binary_op(root / "adder.onnx")
    (root / "adder.plan").write_bytes(b"a serialized TensorRT engine would be here")
    sample = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in "AB"]}
    (root / "warmup.json").write_text(json.dumps([sample, sample]))
    binary_op(root / "changed.onnx")  # validated as it is, then replaced in storage
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}", root


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def apply(kube: Kubectl, ns: str, obj: dict[str, Any]) -> None:
    kube.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(obj))


def model_version(name: str, version: str, artifacts: tuple[str, Path], file: str = "adder.onnx",
                  **spec: Any) -> dict[str, Any]:  # fmt: skip
    url, root = artifacts
    artifact = {"uri": f"{url}/{file}", "digest": sha256(root / file)}
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": name},
            "spec": {"model": "adder", "version": version, "artifact": artifact, **spec}}  # fmt: skip


def model_deployment(name: str, version: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": "adder", "version": version, "replicas": 1, "placement": PLACEMENT,
                     "resources": {"requests": {"cpu": "100m"}}, **spec}}  # fmt: skip


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def phase(kube: Kubectl, kind: str, name: str, ns: str, wanted: str) -> dict[str, Any] | None:
    obj = kube.get(kind, name, ns)
    return obj if obj and (obj.get("status") or {}).get("phase") == wanted else None


def pods(kube: Kubectl, ns: str, md: str) -> list[dict[str, Any]]:
    return kube.get("pods", namespace=ns, labels=f"app.kubernetes.io/instance={md}")["items"]  # type: ignore[no-any-return]


def test_cpu_provider_with_warmup_samples_serves_after_warming_up(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    url, root = artifacts
    warmup = {"requests": 3, "samples": {"uri": f"{url}/warmup.json", "digest": sha256(root / "warmup.json")}}
    apply(kube, ns, model_version("adder-1", "1", artifacts, runtime={"executionProviders": ["CPUExecutionProvider"]},
                                  warmup=warmup))  # fmt: skip
    wait_for(lambda: phase(kube, "modelversion", "adder-1", ns, "Ready"), timeout=120, what="adder-1 validated")
    apply(kube, ns, model_deployment("cpu", "1"))
    wait_for(lambda: phase(kube, "modeldeployment", "cpu", ns, "Healthy"), timeout=180, what="cpu Healthy")
    (pod,) = pods(kube, ns, "cpu")
    logs = kube.run("logs", "-n", ns, pod["metadata"]["name"], "-c", "server").stdout
    assert "warmed up adder version 1 with 3 inference(s) on 2 sample(s)" in logs
    assert logs.index("warmed up adder version 1") < logs.index("ready:")
    client = httpclient.InferenceServerClient(f"{pod['status']['podIP']}:8080", connection_timeout=5)
    inputs = [httpclient.InferInput("A", [2, 4], "FP32"), httpclient.InferInput("B", [2, 4], "FP32")]
    inputs[0].set_data_from_numpy(A)
    inputs[1].set_data_from_numpy(B)
    np.testing.assert_array_equal(client.infer("adder", inputs).as_numpy("OUT0"), A + B)


def test_a_provider_the_image_lacks_is_degraded_not_a_pod_on_the_cpu(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    apply(kube, ns, model_version("adder-2", "2", artifacts, runtime=CUDA_FIRST))
    wait_for(lambda: phase(kube, "modelversion", "adder-2", ns, "Ready"), timeout=120, what="adder-2 validated")
    apply(kube, ns, model_deployment("gpu", "2"))
    md = wait_for(lambda: phase(kube, "modeldeployment", "gpu", ns, "Degraded"), timeout=150, what="gpu Degraded")
    degraded = condition(md, "Degraded")
    assert degraded["status"] == "True", degraded
    assert degraded["reason"] == "ExecutionProviderUnavailable", degraded
    assert "CUDAExecutionProvider (install onnxruntime-gpu" in degraded["message"]
    assert not any(c.get("ready") for p in pods(kube, ns, "gpu") for c in p["status"].get("containerStatuses", []))
    events = kube.get("events", namespace=ns)["items"]
    assert any(e["reason"] == "ExecutionProviderUnavailable" and e["involvedObject"]["name"] == "gpu" for e in events)


def test_a_gpu_request_for_a_cpu_only_version_gets_a_warning_event(kube: Kubectl, ns: str, operator: None) -> None:
    wait_for(lambda: phase(kube, "modelversion", "adder-1", ns, "Ready"), timeout=120, what="adder-1 validated")
    apply(kube, ns, model_deployment("idle", "1", resources={"limits": {"nvidia.com/gpu": 1}}))

    def warning() -> list[dict[str, Any]]:
        items = kube.get("events", namespace=ns)["items"]
        return [e for e in items if e["reason"] == "GPUIdle" and e["involvedObject"]["name"] == "idle"]

    (event,) = wait_for(warning, timeout=60, what="GPUIdle event")
    assert event["type"] == "Warning"
    assert "the GPU will sit idle" in event["message"]


def test_a_plan_without_a_gpu_node_says_so_in_a_condition(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    apply(kube, ns, model_version("adder-plan", "3", artifacts, file="adder.plan", format="tensorrt",
                                  runtime={"engine": "tensorrt"}))  # fmt: skip

    def validated() -> dict[str, Any]:
        found = condition(kube.get("modelversion", "adder-plan", ns), "Validated")
        return found if found.get("reason") == "NoGPUNodeForValidation" else {}

    found = wait_for(validated, timeout=90, what="NoGPUNodeForValidation")
    assert found["status"] == "Unknown"
    assert "nvidia.com/gpu" in found["message"]
    assert "holds no .onnx" not in found["message"]
    assert (kube.get("modelversion", "adder-plan", ns) or {})["status"]["phase"] == "Validating"


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_an_artifact_changed_after_validation_is_refused_by_the_loader_and_reported(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path], mode: str
) -> None:
    root = artifacts[1]
    if phase(kube, "modelversion", "adder-changed", ns, "Ready") is None:
        apply(kube, ns, model_version("adder-changed", "7", artifacts, file="changed.onnx"))
        wait_for(lambda: phase(kube, "modelversion", "adder-changed", ns, "Ready"), timeout=120,
                 what="adder-changed validated")  # fmt: skip
        binary_op(root / "changed.onnx", op="Sub")  # same name, other bytes: the pinned digest no longer matches
    name = f"changed-{mode}"
    apply(kube, ns, model_deployment(name, "7", loading={"mode": mode}))
    md = wait_for(lambda: phase(kube, "modeldeployment", name, ns, "Degraded"), timeout=150, what=f"{name} Degraded")
    degraded = condition(md, "Degraded")
    assert degraded["reason"] == "DigestMismatch", degraded
    assert "its loader failed" in degraded["message"]
    assert not any(c.get("ready") for p in pods(kube, ns, name) for c in p["status"].get("containerStatuses", []))
    events = kube.get("events", namespace=ns)["items"]
    warnings = [e for e in events if e["involvedObject"]["name"] == name and e["reason"] == "DigestMismatch"]
    assert [e["type"] for e in warnings] == ["Warning"]


def test_a_pmml_model_is_compiled_checked_by_each_pod_and_scores_as_the_reference_evaluator(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn2pmml import sklearn2pmml
    from sklearn2pmml.pipeline import PMMLPipeline

    root = artifacts[1]
    train = data(0)
    pipeline = PMMLPipeline([("model", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0))])
    pipeline.fit(train, two_classes(train))
    sklearn2pmml(pipeline, str(root / "scorer.pmml"))
    apply(kube, ns, model_version("scorer-1", "1", artifacts, file="scorer.pmml", model="scorer", format="pmml"))
    mv = wait_for(lambda: phase(kube, "modelversion", "scorer-1", ns, "Ready"), timeout=120, what="scorer-1 Ready")
    compiled = mv["status"]["compiled"]
    assert compiled["from"] == "scorer.pmml"
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", compiled["digest"])
    assert compiled["sizeBytes"] > 0
    assert [t["name"] for t in mv["status"]["signature"]["inputs"]] == ["x1", "x2", "x3", "x4"]
    assert {t["datatype"] for t in mv["status"]["signature"]["inputs"]} == {"FP64"}
    apply(kube, ns, model_deployment("pmml", "1", model="scorer"))
    wait_for(lambda: phase(kube, "modeldeployment", "pmml", ns, "Healthy"), timeout=180, what="pmml Healthy")
    (pod,) = pods(kube, ns, "pmml")
    loader = kube.run("logs", "-n", ns, pod["metadata"]["name"], "-c", "loader").stdout
    assert f"compiled scorer.pmml to model.onnx ({compiled['digest']})" in loader  # checked against the status
    rows = data(1, rows=64)
    rows.loc[rows.index[::7], "x1"] = np.nan
    client = httpclient.InferenceServerClient(f"{pod['status']['podIP']}:8080", connection_timeout=5)
    inputs = []
    for name in ["x1", "x2", "x3", "x4"]:
        tensor = httpclient.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(rows[name].to_numpy(np.float64))
        inputs.append(tensor)
    answer = client.infer("scorer", inputs)
    reference = reference_scores(root / "scorer.pmml", rows)
    labels = [v.decode() for v in answer.as_numpy("y")]
    missing = [v is None or (isinstance(v, float) and np.isnan(v)) for v in reference["y"]]
    assert 0 < sum(missing) < len(rows)  # rows the model cannot score (x1 missing) and rows it scores
    assert labels == ["" if m else str(v) for v, m in zip(reference["y"], missing, strict=True)]  # no label: ""
    for name in ("probability(no)", "probability(yes)"):
        got, want = answer.as_numpy(name), reference[name].to_numpy(np.float64)
        assert (np.isnan(got) == np.isnan(want)).all(), name
        assert float(np.nanmax(np.abs(got - want))) <= TOLERANCE, name


ADMIN_CALL = """
import json, sys, urllib.error, urllib.request
port, token = sys.argv[1], sys.argv[2]
codes = []
for header in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer " + token}):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/repository/index", data=b"{}", headers=header)
    try:
        codes.append(urllib.request.urlopen(req, timeout=5).status)
    except urllib.error.HTTPError as e:
        codes.append(e.code)
print(json.dumps(codes))
"""


def test_an_admin_token_secret_guards_the_admin_api_and_the_sidecar_sends_it(
    kube: Kubectl, ns: str, operator: None
) -> None:
    wait_for(lambda: phase(kube, "modelversion", "adder-1", ns, "Ready"), timeout=120, what="adder-1 validated")
    token = "modelyard-test-" + hashlib.sha256(ns.encode()).hexdigest()[:24]
    kube.run("create", "secret", "generic", "admin-token", "-n", ns, f"--from-literal=bearer={token}")
    loading = {"mode": "dynamic", "adminTokenSecret": {"name": "admin-token", "key": "bearer"}}
    apply(kube, ns, model_deployment("guarded", "1", loading=loading))
    # Healthy: the sidecar had the server load version 1 through the admin API, with the token
    wait_for(lambda: phase(kube, "modeldeployment", "guarded", ns, "Healthy"), timeout=180, what="guarded Healthy")
    (pod,) = pods(kube, ns, "guarded")
    server = next(c for c in pod["spec"]["containers"] if c["name"] == "server")
    port = server["args"][server["args"].index("--admin-port") + 1]
    out = kube.run("exec", "-n", ns, pod["metadata"]["name"], "-c", "server", "--", "python3", "-c", ADMIN_CALL,
                   port, token).stdout  # fmt: skip
    assert json.loads(out) == [401, 401, 200]  # no token, a wrong one, the Secret's


ENV_CALL = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'TRACE')}))"


def test_pod_settings_reach_the_running_pod(
    kube: Kubectl, ns: str, operator: None, artifacts: tuple[str, Path]
) -> None:
    apply(kube, ns, model_version("adder-8", "8", artifacts))
    wait_for(lambda: phase(kube, "modelversion", "adder-8", ns, "Ready"), timeout=120, what="adder-8 validated")
    objects = [
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": f"{ns}-serving"},
         "value": 1000},
        {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": f"{ns}-runc"}, "handler": "runc"},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "tracing"},
         "data": {"endpoint": "http://collector:4318"}},
    ]  # fmt: skip
    for obj in objects:
        apply(kube, ns, obj)
    pod_settings = {
        "labels": {"team": "risk"},
        "annotations": {"example.com/owner": "risk-ml"},
        "runtimeClassName": f"{ns}-runc",  # a RuntimeClass on the node's runc handler: the pod must really start
        "priorityClassName": f"{ns}-serving",
        "env": [{"name": "OMP_NUM_THREADS", "value": "2"},
                {"name": "TRACE", "valueFrom": {"configMapKeyRef": {"name": "tracing", "key": "endpoint"}}}],
        "loaderResources": {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "384Mi"}},
    }  # fmt: skip
    apply(kube, ns, model_deployment("tuned", "8", pod=pod_settings))
    wait_for(lambda: phase(kube, "modeldeployment", "tuned", ns, "Healthy"), timeout=180, what="tuned Healthy")
    (pod,) = pods(kube, ns, "tuned")
    assert pod["metadata"]["labels"]["team"] == "risk"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "risk-ml"
    assert pod["spec"]["runtimeClassName"] == f"{ns}-runc"
    assert (pod["spec"]["priorityClassName"], pod["spec"]["priority"]) == (f"{ns}-serving", 1000)  # admission set it
    loader = next(c for c in pod["spec"]["initContainers"] if c["name"] == "loader")
    assert loader["resources"] == {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"memory": "384Mi"}}
    out = kube.run("exec", "-n", ns, pod["metadata"]["name"], "-c", "server", "--", "python3", "-c", ENV_CALL).stdout
    assert json.loads(out) == {"OMP_NUM_THREADS": "2", "TRACE": "http://collector:4318"}  # in the server process
    kube.run("delete", f"priorityclass/{ns}-serving", f"runtimeclass/{ns}-runc", "--wait=false")
