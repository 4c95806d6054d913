"""What a ModelVersion's ``spec.runtime`` and ``spec.warmup`` become in the server container (pure).

The server takes them as ``--version-config MODEL:VERSION=JSON``: the ``backend`` and ``warmup`` keys of its
config.yaml (docs/backends.md), for that version only. Everything is spelled out, defaults included, so a pod never
serves a version with settings that the ModelVersion does not show (``warmup.requests: 0`` is no warm-up, not the
server's default of one).
"""

from __future__ import annotations

import json
from typing import Any

from modelyard_operator.api.modeldeployment import ModelDeployment
from modelyard_operator.api.modelversion import GPU_PROVIDERS, ModelVersion, RuntimeSpec

Obj = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
WARMUP_DIR = "/models/.warmup"  # hidden: the server's repository scan skips it

# spec field → ONNX Runtime provider option (backends/options.py checks the names and values again)
_CUDA_OPTIONS = {
    "gpu_mem_limit": "gpu_mem_limit",
    "cudnn_conv_algo_search": "cudnn_conv_algo_search",
    "use_tf32": "use_tf32",
    "enable_cuda_graph": "enable_cuda_graph",
}
_TENSORRT_OPTIONS = {
    "fp16": "trt_fp16_enable",
    "int8": "trt_int8_enable",
    "max_workspace_size": "trt_max_workspace_size",
    "engine_cache_path": "trt_engine_cache_path",
    "timing_cache_path": "trt_timing_cache_path",
}


def _options(spec: Any, names: dict[str, str]) -> Obj:
    if spec is None:
        return {}
    return {option: getattr(spec, field) for field, option in names.items() if getattr(spec, field) is not None}


def provider_options(runtime: RuntimeSpec, provider: str) -> Obj:
    """The options of one execution provider, from ``runtime.cuda`` / ``runtime.tensorrt``."""
    if provider == "CUDAExecutionProvider":
        return _options(runtime.cuda, _CUDA_OPTIONS)
    if provider == "TensorrtExecutionProvider":
        options = _options(runtime.tensorrt, _TENSORRT_OPTIONS)
        if "trt_engine_cache_path" in options and "trt_timing_cache_path" not in options:
            options["trt_timing_cache_path"] = options["trt_engine_cache_path"]
        return options
    return {}


def backend_config(runtime: RuntimeSpec) -> Obj:
    """The ``backend:`` mapping of the server's config for this runtime (never a fallback to other providers)."""
    if runtime.engine == "tensorflow":  # a SavedModel's serving_default signature, on the CPU
        return {"kind": "tensorflow"}
    backend: Obj = {"kind": runtime.engine, "device_id": runtime.device_id, "allow_fallback": False}
    if runtime.engine == "onnxruntime":
        providers: list[Any] = []
        for name in runtime.execution_providers:
            options = provider_options(runtime, name)
            providers.append({"name": name, "options": options} if options else name)
        backend["providers"] = providers
    return backend


def warmup_samples_dir(mv: ModelVersion) -> str:
    return f"{WARMUP_DIR}/{mv.spec.model}/{mv.spec.version}"


def version_config(mv: ModelVersion) -> Obj:
    warmup: Obj = {"runs": mv.spec.warmup.requests}
    if mv.spec.warmup.samples is not None:
        warmup["samples"] = warmup_samples_dir(mv)
    batching = mv.spec.batching
    document: Obj = {"backend": backend_config(mv.spec.runtime), "warmup": warmup}
    # the version's own batching, also where it shares a server with another version (the inPod router)
    document["max_batch_size"] = batching.max_batch_size
    document["dynamic_batching"] = {"max_queue_delay_ms": batching.max_queue_delay_ms}
    if batching.preferred_batch_sizes:
        document["dynamic_batching"]["preferred_batch_size"] = list(batching.preferred_batch_sizes)
    return document


def version_config_args(mv: ModelVersion) -> list[str]:
    """``--version-config MODEL:VERSION=JSON`` for the server."""
    document = json.dumps(version_config(mv), separators=(",", ":"), sort_keys=True)
    return ["--version-config", f"{mv.spec.model}:{mv.spec.version}={document}"]


def _asks_for_gpu(md: ModelDeployment) -> bool:
    for amounts in (md.spec.resources.requests, md.spec.resources.limits):
        value = amounts.get(GPU_RESOURCE)
        if value is not None and str(value).strip() not in ("0", ""):
            return True
    return False


def gpu_idle_warning(md: ModelDeployment, mv: ModelVersion) -> str | None:
    """The Warning to give when the pods get a GPU that the version's providers will never use; None otherwise."""
    runtime = mv.spec.runtime
    if not _asks_for_gpu(md) or runtime.engine != "onnxruntime":
        return None
    if any(p in GPU_PROVIDERS for p in runtime.execution_providers):
        return None
    return (
        f"resources ask for {GPU_RESOURCE} but ModelVersion {mv.metadata.name} runs on "
        f"{', '.join(runtime.execution_providers)} only: the GPU will sit idle (list CUDAExecutionProvider or "
        "TensorrtExecutionProvider in spec.runtime.executionProviders, or drop the GPU request)"
    )
