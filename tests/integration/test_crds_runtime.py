"""ModelVersion spec.runtime, spec.warmup and spec.format on a real API server: what the pods cannot honour is
refused at admission with a message naming it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..conftest import Kubectl
from .test_crds import DIGEST, mv

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
PLAN = {"uri": "s3://models/fraud/1/model.plan", "digest": DIGEST}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("savedmodel on onnxruntime", mv(format="savedmodel"), "format savedmodel needs runtime.engine tensorflow"),
    ("onnx on the tensorflow engine", mv(runtime={"engine": "tensorflow"}),
     "format onnx needs runtime.engine onnxruntime"),
    ("pmml on the tensorflow engine", mv(format="pmml", runtime={"engine": "tensorflow"}),
     "format pmml needs runtime.engine onnxruntime"),
    ("pmml on the tensorrt engine", mv(format="pmml", runtime={"engine": "tensorrt"}),
     "format pmml needs runtime.engine onnxruntime"),
    ("onnx on the tensorrt engine", mv(runtime={"engine": "tensorrt"}), "format onnx needs runtime.engine onnxruntime"),
    ("provider no image has", mv(runtime={"executionProviders": ["ROCMExecutionProvider"]}),
     'Unsupported value: "ROCMExecutionProvider"'),
    ("cpu before cuda", mv(runtime={"executionProviders": [CPU, CUDA]}), "CPUExecutionProvider must come last"),
    ("provider twice", mv(runtime={"executionProviders": [CUDA, CUDA]}), "Duplicate value"),
    ("providers on the tensorrt engine", mv(format="tensorrt", artifact=PLAN,
                                             runtime={"engine": "tensorrt", "executionProviders": [CUDA, CPU]}),
     "executionProviders apply to engine onnxruntime only"),
    ("cuda options without cuda", mv(runtime={"cuda": {"useTf32": True}}),
     "cuda options need CUDAExecutionProvider in executionProviders"),
    ("tensorrt options for a plan", mv(format="tensorrt", artifact=PLAN,
                                        runtime={"engine": "tensorrt", "tensorrt": {"fp16": True}}),
     "tensorrt options need TensorrtExecutionProvider"),
    ("engine cache outside the cache volume", mv(runtime={"executionProviders": [TRT, CPU],
                                                          "tensorrt": {"engineCachePath": "/etc/engines"}}),
     "spec.runtime.tensorrt.engineCachePath"),
    ("samples without digest", mv(warmup={"samples": {"uri": "s3://models/fraud/1/warmup.json"}}),
     "spec.warmup.samples.digest: Required value"),
    ("preferred size above the largest batch", mv(batching={"maxBatchSize": 8, "preferredBatchSizes": [4, 16]}),
     "every preferredBatchSizes entry must be at most maxBatchSize"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "body", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_runtime_values_no_pod_can_honour_are_rejected(
    kubectl: Kubectl, namespace: str, case: str, body: dict[str, Any], message: str
) -> None:
    proc = kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(body), check=False)
    assert proc.returncode != 0, f"{case}: accepted but should be rejected"
    assert message in proc.stderr, proc.stderr


def test_a_gpu_runtime_with_options_and_samples_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    body = mv(
        runtime={"executionProviders": [TRT, CUDA, CPU], "deviceId": 1, "cuda": {"cudnnConvAlgoSearch": "HEURISTIC"},
                 "tensorrt": {"fp16": True, "int8": False, "engineCachePath": "/var/cache/modelyard/engines"}},
        warmup={"requests": 16, "samples": {"uri": "s3://models/fraud/1/warmup.json", "digest": DIGEST}},
    )  # fmt: skip
    kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    stored = kubectl.get("modelversion", "fraud-1", namespace)["spec"]
    engines = "/var/cache/modelyard/engines"
    assert stored["runtime"]["tensorrt"] == {"fp16": True, "int8": False, "engineCachePath": engines}
    assert stored["warmup"]["requests"] == 16
    plan = mv(format="tensorrt", artifact=PLAN, runtime={"engine": "tensorrt"})
    plan["metadata"]["name"] = "fraud-plan"
    kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(plan))
    assert kubectl.get("modelversion", "fraud-plan", namespace)["spec"]["runtime"]["executionProviders"] == [CPU]
    saved = mv(format="savedmodel", artifact={"uri": "s3://models/fraud/1/model.tar.gz", "digest": DIGEST},
               runtime={"engine": "tensorflow"})  # fmt: skip
    saved["metadata"]["name"] = "fraud-savedmodel"
    kubectl.run("create", "-n", namespace, "-f", "-", stdin=json.dumps(saved))
    assert kubectl.get("modelversion", "fraud-savedmodel", namespace)["spec"]["runtime"]["engine"] == "tensorflow"
