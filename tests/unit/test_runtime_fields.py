"""ModelVersion spec.runtime, spec.warmup and spec.format: what reaches the rendered pod and the validation Job, and
how a server's failed start and an idle GPU reach the ModelDeployment (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.inpod import render_in_pod_deployment
from modelyard_operator.podhealth import start_failures
from modelyard_operator.reconcile import plan
from modelyard_operator.render import render_deployment
from modelyard_operator.runtime_config import backend_config, version_config
from modelyard_operator.status import Reason
from modelyard_operator.validation import (
    Outcome,
    outcome_status,
    render_validation_job,
    unschedulable,
    unsupported_format,
    waiting_for_node_status,
)
from modelyard_runtime.backends.options import parse_backend_options, render_ort_providers
from modelyard_runtime.config import parse_server_args
from modelyard_runtime.modelconfig import ModelConfig, overlay_version_config

from .samples import DIGEST, deployment, model_deployment, model_version

CONFIG = OperatorConfig(runtime_image="registry.local/modelyard/runtime:test")
NOW = "2026-12-05T12:00:00Z"


def mv(**spec: Any) -> ModelVersion:
    return ModelVersion.model_validate(model_version(**spec))


def server(md: dict[str, Any], version: ModelVersion) -> dict[str, Any]:
    pod = render_deployment(ModelDeployment.model_validate(md), version, CONFIG, replicas=1)["spec"]["template"]["spec"]
    return pod


def version_config_flag(args: list[str], target: str = "fraud:42") -> dict[str, Any]:
    values = [args[i + 1] for i, a in enumerate(args) if a == "--version-config"]
    (document,) = [v.split("=", 1)[1] for v in values if v.split("=", 1)[0] == target]
    return dict(json.loads(document))


def test_the_default_runtime_is_the_cpu_provider_without_fallback_and_no_warmup() -> None:
    args = server(model_deployment(), mv())["containers"][0]["args"]
    assert version_config_flag(args) == {
        "backend": {"kind": "onnxruntime", "device_id": 0, "allow_fallback": False,
                    "providers": ["CPUExecutionProvider"]},
        "warmup": {"runs": 0},
        "max_batch_size": 0, "dynamic_batching": {"max_queue_delay_ms": 0.0},
    }  # fmt: skip


def test_providers_and_their_options_reach_the_server_as_onnx_runtime_receives_them(tmp_path: Any) -> None:
    version = mv(
        runtime={
            "executionProviders": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
            "deviceId": 1,
            "cuda": {"gpuMemLimit": 2 << 30, "useTf32": False},
            "tensorrt": {"fp16": True, "int8": True, "maxWorkspaceSize": 1 << 30,
                         "engineCachePath": "/var/cache/modelyard/engines"},
        }
    )  # fmt: skip
    pod = server(model_deployment(), version)
    args = pod["containers"][0]["args"]
    # the server parses the flag exactly as rendered, and ONNX Runtime would get these providers
    config = parse_server_args(["--model-repository", str(tmp_path), *args[args.index("--version-config") :]])
    own = config.version_configs[("fraud", "42")]
    merged = overlay_version_config(ModelConfig(), own)
    options = parse_backend_options(merged.backend, model_file=tmp_path / "fraud" / "42" / "model.onnx")
    assert render_ort_providers(options) == [
        ("TensorrtExecutionProvider", {
            "trt_fp16_enable": "True", "trt_int8_enable": "True", "trt_max_workspace_size": str(1 << 30),
            "trt_engine_cache_path": "/var/cache/modelyard/engines",
            "trt_timing_cache_path": "/var/cache/modelyard/engines",
            "device_id": "1", "trt_engine_cache_enable": "True", "trt_timing_cache_enable": "True",
        }),
        ("CUDAExecutionProvider", {"gpu_mem_limit": str(2 << 30), "use_tf32": "False", "device_id": "1"}),
        ("CPUExecutionProvider", {}),
    ]  # fmt: skip
    assert options.allow_fallback is False
    # the engine cache is on the pod's writable cache volume
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert "/var/cache/modelyard" in mounts


def test_engine_tensorrt_gets_no_onnx_runtime_providers() -> None:
    version = mv(format="tensorrt", runtime={"engine": "tensorrt", "deviceId": 2})
    assert backend_config(version.spec.runtime) == {"kind": "tensorrt", "device_id": 2, "allow_fallback": False}


@pytest.mark.parametrize(
    "runtime",
    [
        {"executionProviders": ["ROCMExecutionProvider"]},  # no image of the project has it
        {"executionProviders": ["CPUExecutionProvider", "CPUExecutionProvider"], "bogus": 1},
        {"tensorrt": {"engineCachePath": "/etc/engines"}},  # not writable in the pod
        {"deviceId": -1},
    ],
)
def test_runtime_values_the_pod_cannot_honour_are_refused(runtime: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        mv(runtime=runtime)


def test_warmup_requests_and_samples_reach_the_server_and_the_samples_are_fetched_pinned() -> None:
    samples = {"uri": "s3://models/fraud/42/warmup.json", "digest": "sha256:" + "cd" * 32}
    version = mv(
        warmup={"requests": 8, "samples": samples},
        artifact={"uri": "s3://models/fraud/42/model.onnx", "digest": DIGEST, "credentialsSecret": "s3-creds",
                  "signature": {"uri": "s3://models/fraud/42/model.sig", "publicKeySecret": {"name": "k", "key": "p"}}},
    )  # fmt: skip
    pod = server(model_deployment(), version)
    assert version_config_flag(pod["containers"][0]["args"])["warmup"] == {
        "runs": 8,
        "samples": "/models/.warmup/fraud/42",
    }
    loader, fetch = pod["initContainers"]
    assert loader["name"] == "loader"
    assert fetch["name"] == "warmup-samples"
    assert fetch["args"][:7] == ["fetch", "--uri", samples["uri"], "--dest", "/models/.warmup/fraud/42",
                                 "--digest", samples["digest"]]  # fmt: skip
    assert "--signature" not in fetch["args"]  # the model's signature does not cover the samples
    assert fetch["args"][fetch["args"].index("--credentials-dir") + 1] == "/var/run/secrets/modelyard/credentials"
    assert sorted(v["name"] for v in pod["volumes"]).count("credentials") == 1


def test_samples_need_a_digest() -> None:
    with pytest.raises(ValidationError):
        mv(warmup={"requests": 1, "samples": {"uri": "s3://models/fraud/42/warmup.json"}})


def test_in_pod_canary_gets_its_own_version_config_and_samples() -> None:
    stable = mv()
    canary = ModelVersion.model_validate(
        model_version(
            "fraud-43", version="43",
            runtime={"executionProviders": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
            warmup={"samples": {"uri": "s3://models/fraud/43/warmup.json", "digest": DIGEST}},
        )
    )  # fmt: skip
    md = ModelDeployment.model_validate(model_deployment(rollout={"trafficRouter": "inPod", "strategy": "canary"}))
    pod = render_in_pod_deployment(md, stable, canary, CONFIG, replicas=1)["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert version_config_flag(args, "fraud:42")["backend"]["providers"] == ["CPUExecutionProvider"]
    assert version_config_flag(args, "fraud:43") == {
        "backend": {"kind": "onnxruntime", "device_id": 0, "allow_fallback": False,
                    "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
        "warmup": {"runs": 0, "samples": "/models/.warmup/fraud/43"},
        "max_batch_size": 0, "dynamic_batching": {"max_queue_delay_ms": 0.0},
    }  # fmt: skip
    names = [c["name"] for c in pod["initContainers"]]
    assert names == ["loader", "loader-43", "warmup-samples-canary", "versions-loader"]  # samples: a loader of its own


def test_server_reports_start_failures_in_its_termination_message() -> None:
    container = server(model_deployment(), mv())["containers"][0]
    assert container["args"][container["args"].index("--termination-log") + 1] == "/dev/termination-log"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def crashing_pod(version: str, message: str, *, exit_code: int = 1) -> dict[str, Any]:
    terminated = {"exitCode": exit_code, "reason": "Error", "message": message}
    return {
        "metadata": {"name": f"fraud-{version}-abc", "labels": {"modelyard.dev/version": version}},
        "status": {"containerStatuses": [
            {"name": "server", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": terminated}},
        ]},
    }  # fmt: skip


MISSING_CUDA = json.dumps(
    {
        "reason": "ExecutionProviderUnavailable",
        "message": "cannot load fraud version 42: execution provider not available: CUDAExecutionProvider",
    }
)


def test_start_failures_are_read_from_the_server_containers_termination_message() -> None:
    failures = start_failures([crashing_pod("42", MISSING_CUDA), crashing_pod("41", "plain log text")])
    assert set(failures) == {"42"}
    assert failures["42"].reason == "ExecutionProviderUnavailable"
    assert failures["42"].pod == "fraud-42-abc"
    assert start_failures([crashing_pod("42", MISSING_CUDA, exit_code=0)]) == {}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_missing_provider_makes_the_model_deployment_degraded_not_silently_cpu() -> None:
    failures = start_failures([crashing_pod("42", MISSING_CUDA)])
    rollout = [deployment("fraud-42", "42", available=0)]
    result = plan(model_deployment(), [model_version()], rollout, CONFIG, NOW, failures)
    assert result.status is not None
    assert result.status.status["phase"] == "Degraded"
    assert conditions(result.status.status)["Degraded"] == ("True", "ExecutionProviderUnavailable")
    assert ("Warning", "ExecutionProviderUnavailable") in [(t, r) for t, r, _ in result.status.events]
    assert any(obj["kind"] == "Deployment" for obj in result.apply)  # the pods stay, to recover when fixed
    # once the version's Deployment is rolled out, an old crash is history
    done = plan(model_deployment(), [model_version()], [deployment("fraud-42", "42")], CONFIG, NOW, failures)
    assert done.status is not None
    assert done.status.status["phase"] == "Healthy"


def failing_loader_pod(version: str, message: str, *, sidecar: bool) -> dict[str, Any]:
    """A pod whose loader (the init container, or the native sidecar of dynamic loading) exited with ``message``."""
    terminated = {"exitCode": 2, "reason": "Error", "message": message}
    loader = {
        "name": "loader",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": terminated},
    }
    server = {"name": "server", "state": {"waiting": {"reason": "PodInitializing"}}}
    meta = {"name": f"fraud-{version}-{'dyn' if sidecar else 'st'}", "labels": {"modelyard.dev/version": version}}
    return {"metadata": meta,
            "status": {"initContainerStatuses": [loader], "containerStatuses": [server]}}  # fmt: skip


TAMPERED = json.dumps({"reason": "DigestMismatch", "message": "sha256 of the artifact is 9f…, the pinned digest 5f…"})


@pytest.mark.parametrize("sidecar", [False, True])
def test_a_failing_loader_makes_the_model_deployment_degraded_with_its_reason_and_an_event(sidecar: bool) -> None:
    failures = start_failures([failing_loader_pod("42", TAMPERED, sidecar=sidecar)])
    assert failures["42"].container == "loader"
    result = plan(model_deployment(), [model_version()], [deployment("fraud-42", "42", available=0)], CONFIG, NOW,
                  failures)  # fmt: skip
    assert result.status is not None
    assert conditions(result.status.status)["Degraded"] == ("True", "DigestMismatch")
    events = [(t, r, m) for t, r, m in result.status.events]
    assert [(t, r) for t, r, _ in events] == [("Warning", "DigestMismatch")]
    assert "its loader failed: sha256 of the artifact" in events[0][2]


def test_an_unknown_loader_reason_is_loader_failed_and_log_text_is_ignored() -> None:
    odd = json.dumps({"reason": "Error", "message": "unexpected"})
    pods = [failing_loader_pod("42", odd, sidecar=True), failing_loader_pod("41", "a log line", sidecar=False)]
    failures = start_failures(pods)
    assert set(failures) == {"42"}
    result = plan(model_deployment(), [model_version()], [deployment("fraud-42", "42", available=0)], CONFIG, NOW,
                  failures)  # fmt: skip
    assert result.status is not None
    assert conditions(result.status.status)["Degraded"] == ("True", "LoaderFailed")


def gpu_md(**status: Any) -> dict[str, Any]:
    md = model_deployment(resources={"limits": {"nvidia.com/gpu": 1}})
    if status:
        md["status"] = status
    return md


def test_a_gpu_request_for_a_cpu_only_version_gets_one_warning() -> None:
    result = plan(gpu_md(), [model_version()], [], CONFIG, NOW)
    assert result.status is not None
    warnings = [(t, m) for t, r, m in result.status.events if r == Reason.GPU_IDLE]
    assert len(warnings) == 1
    assert warnings[0][0] == "Warning"
    assert "the GPU will sit idle" in warnings[0][1]
    # not again on a resync of the same generation once the pods are rendered
    again = plan(gpu_md(**result.status.status), [model_version()], [], CONFIG, NOW)
    assert again.status is not None
    assert Reason.GPU_IDLE not in [r for _, r, _ in again.status.events]


def test_no_warning_when_the_version_uses_a_gpu_provider_or_no_gpu_is_asked_for() -> None:
    gpu_version = model_version(runtime={"executionProviders": ["CUDAExecutionProvider", "CPUExecutionProvider"]})
    for md, version in ((gpu_md(), gpu_version), (model_deployment(), model_version())):
        result = plan(md, [version], [], CONFIG, NOW)
        assert result.status is not None
        assert Reason.GPU_IDLE not in [r for _, r, _ in result.status.events]


def test_validation_checks_the_format_and_plans_go_to_a_gpu_node() -> None:
    onnx_job = render_validation_job(mv(), CONFIG)
    (container,) = onnx_job["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--format") + 1] == "onnx"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    plan_version = mv(format="tensorrt", runtime={"engine": "tensorrt"},
                      artifact={"uri": "s3://models/fraud/42/model.plan", "digest": DIGEST})  # fmt: skip
    (container,) = render_validation_job(plan_version, CONFIG)["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--format") + 1] == "tensorrt"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_an_unschedulable_plan_validation_is_a_condition_naming_the_missing_gpu_node() -> None:
    pending = {"status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}]}}  # fmt: skip
    why = unschedulable([pending])
    assert why is not None
    assert "Insufficient nvidia.com/gpu" in why
    assert unschedulable([{"status": {"phase": "Running"}}]) is None
    plan_version = mv(format="tensorrt", runtime={"engine": "tensorrt"})
    patch = waiting_for_node_status({"phase": "Validating"}, plan_version, why, 1, NOW)
    (validated,) = [c for c in patch["conditions"] if c["type"] == "Validated"]
    assert (validated["status"], validated["reason"]) == ("Unknown", "NoGPUNodeForValidation")
    assert "holds no .onnx" not in validated["message"]
    assert "GPU node" in validated["message"]


@pytest.mark.parametrize("fmt", ["onnx", "tensorrt", "pmml", "savedmodel"])
def test_every_format_of_the_api_is_servable(fmt: str) -> None:
    engine = {"onnx": "onnxruntime", "pmml": "onnxruntime", "tensorrt": "tensorrt", "savedmodel": "tensorflow"}[fmt]
    assert unsupported_format(mv(format=fmt, runtime={"engine": engine})) is None


def test_a_savedmodel_version_runs_the_tensorflow_engine_alone() -> None:
    assert version_config(mv(format="savedmodel", runtime={"engine": "tensorflow"}))["backend"] == {
        "kind": "tensorflow"
    }


def test_version_config_is_spelled_out_for_the_server() -> None:
    assert version_config(mv(warmup={"requests": 3})) == {
        "backend": {"kind": "onnxruntime", "device_id": 0, "allow_fallback": False,
                    "providers": ["CPUExecutionProvider"]},
        "warmup": {"runs": 3},
        "max_batch_size": 0, "dynamic_batching": {"max_queue_delay_ms": 0.0},
    }  # fmt: skip


def test_batching_reaches_the_server_with_its_preferred_sizes() -> None:
    version = mv(batching={"maxBatchSize": 16, "maxQueueDelayMs": 2, "preferredBatchSizes": [8, 16]})
    args = server(model_deployment(), version)["containers"][0]["args"]
    assert args[args.index("--max-batch-size") + 1] == "16"
    assert args[args.index("--max-queue-delay-ms") + 1] == "2.0"
    assert version_config_flag(args)["dynamic_batching"] == {"max_queue_delay_ms": 2.0, "preferred_batch_size": [8, 16]}
    assert version_config_flag(args)["max_batch_size"] == 16  # the version's own, also beside another version
    # the server parses what the operator renders, and schedules with it
    document = version_config_flag(args)
    assert overlay_version_config(ModelConfig(), document).preferred_batch_sizes == (8, 16)
    unbatched = version_config_flag(server(model_deployment(), mv())["containers"][0]["args"])
    assert "preferred_batch_size" not in unbatched["dynamic_batching"]
    assert unbatched["max_batch_size"] == 0


COMPILED = "sha256:" + "c" * 64


def test_a_pmml_version_is_compiled_by_the_validation_and_each_pod_checks_the_recorded_digest() -> None:
    pmml = {"uri": "s3://models/fraud/42/model.pmml", "digest": DIGEST}
    version = mv(format="pmml", artifact=pmml)
    assert unsupported_format(version) is None
    job = render_validation_job(version, CONFIG)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert job[job.index("--format") + 1] == "pmml"
    assert "--compiled-digest" not in job  # the validation is what finds it out
    result = {"ok": True, "compiled": {"from": "model.pmml", "model": "model.onnx", "digest": COMPILED,
                                       "sizeBytes": 2048, "seconds": 0.01234}}  # fmt: skip
    status = outcome_status({}, Outcome(True, "Validated", "ok", result), 1, NOW)
    assert status["compiled"] == {"from": "model.pmml", "digest": COMPILED, "sizeBytes": 2048, "seconds": 0.012}
    validated = ModelVersion.model_validate({**model_version(format="pmml", artifact=pmml), "status": status})
    assert validated.status.compiled is not None
    assert validated.status.compiled.digest == COMPILED
    for mode in ("static", "dynamic"):
        md = model_deployment(loading={"mode": mode})
        pod = render_deployment(ModelDeployment.model_validate(md), validated, CONFIG, replicas=1)["spec"]["template"]
        (loader,) = [c for c in pod["spec"].get("initContainers", []) if c["name"].startswith("loader")]
        args = loader["args"]
        assert args[args.index("--format") + 1] == "pmml", mode
        assert args[args.index("--compiled-digest") + 1] == COMPILED, mode
    onnx_args = server(model_deployment(), mv())["initContainers"][0]["args"]
    assert "--format" not in onnx_args
    assert "--compiled-digest" not in onnx_args


@pytest.mark.parametrize("compiled", [None, "not a dict", {"digest": "md5:abc"}, {"sizeBytes": 3}])
def test_a_validation_result_without_a_compiled_digest_records_none(compiled: Any) -> None:
    status = outcome_status({}, Outcome(True, "Validated", "ok", {"ok": True, "compiled": compiled}), 1, NOW)
    assert "compiled" not in status
