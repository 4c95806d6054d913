"""Backend options: parsing config.yaml's ``backend:`` mapping and rendering what ONNX Runtime receives (pure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelyard_runtime.backends.options import (
    CPU,
    CUDA,
    TENSORRT,
    BackendOptions,
    ProviderSpec,
    default_cache_root,
    ort_fallback_chain,
    parse_backend_options,
    render_ort_providers,
    trt_cache_dirs,
)

MODEL = Path("/models/fraud/42/model.onnx")
PLAN = Path("/models/fraud/42/model.plan")
SAVED = Path("/models/fraud/42/model.savedmodel/saved_model.pb")


def parse(raw: dict[str, Any] | None, model_file: Path = MODEL, **kwargs: Any) -> BackendOptions:
    kwargs.setdefault("environ", {})
    return parse_backend_options(raw, model_file=model_file, **kwargs)


def test_defaults_cpu_only_and_kind_from_file_name() -> None:
    options = parse(None, cache_root=Path("/cache"))
    assert options.kind == "onnxruntime"
    assert options.provider_names == [CPU]
    assert (options.intra_op_threads, options.inter_op_threads) == (0, 0)
    assert options.graph_optimization == "all"
    assert options.execution_mode == "sequential"
    assert options.allow_fallback is False
    assert options.device_id == 0
    assert options.cache_dir == Path("/cache/tensorrt/fraud/42")
    assert render_ort_providers(options) == [(CPU, {})]
    assert parse(None, PLAN).kind == "tensorrt"
    assert parse({}, Path("/m/x/1/model.engine")).kind == "tensorrt"


def test_the_documented_example() -> None:
    options = parse(
        {
            "providers": [{"name": "tensorrt", "options": {"trt_fp16_enable": True}}, "cuda", "cpu"],
            "intra_op_threads": 2,
            "inter_op_threads": 1,
            "graph_optimization": "extended",
            "allow_fallback": False,
            "cache_dir": "/var/cache/modelyard/trt",
        }
    )
    assert options.provider_names == [TENSORRT, CUDA, CPU]
    assert (options.intra_op_threads, options.inter_op_threads) == (2, 1)
    assert options.graph_optimization == "extended"
    assert render_ort_providers(options) == [
        (
            TENSORRT,
            {
                "trt_fp16_enable": "True",
                "device_id": "0",
                "trt_engine_cache_enable": "True",
                "trt_timing_cache_enable": "True",
                "trt_engine_cache_path": "/var/cache/modelyard/trt",
                "trt_timing_cache_path": "/var/cache/modelyard/trt",
            },
        ),
        (CUDA, {"device_id": "0"}),
        (CPU, {}),
    ]


@pytest.mark.parametrize(
    ("raw", "full"),
    [
        ("cpu", CPU),
        ("CPU", CPU),
        ("cuda", CUDA),
        ("tensorrt", TENSORRT),
        ("trt", TENSORRT),
        ("CUDAExecutionProvider", CUDA),
        ("TensorrtExecutionProvider", TENSORRT),
        ("CPUExecutionProvider", CPU),
    ],
)
def test_provider_aliases_and_full_names(raw: str, full: str) -> None:
    assert parse({"providers": [raw]}).provider_names == [full]


def test_a_single_provider_may_be_given_without_a_list() -> None:
    assert parse({"providers": "cuda"}).provider_names == [CUDA]


def test_option_values_render_as_onnx_runtime_parses_them() -> None:
    options = parse(
        {
            "device_id": 1,
            "providers": [
                {
                    "name": "cuda",
                    "options": {
                        "cudnn_conv_algo_search": "HEURISTIC",
                        "arena_extend_strategy": "kSameAsRequested",
                        "gpu_mem_limit": 2147483648,
                        "do_copy_in_default_stream": False,
                    },
                },
                {"name": "cpu"},
            ],
        }
    )
    assert render_ort_providers(options)[0] == (
        CUDA,
        {
            "cudnn_conv_algo_search": "HEURISTIC",
            "arena_extend_strategy": "kSameAsRequested",
            "gpu_mem_limit": "2147483648",
            "do_copy_in_default_stream": "False",
            "device_id": "1",
        },
    )


def test_provider_options_override_the_rendered_defaults() -> None:
    options = parse(
        {
            "device_id": 1,
            "providers": [
                {
                    "name": "tensorrt",
                    "options": {
                        "device_id": 3,
                        "trt_engine_cache_enable": False,
                        "trt_timing_cache_path": "/elsewhere",
                        "trt_max_workspace_size": 1 << 30,
                        "trt_auxiliary_streams": -1,
                    },
                }
            ],
        },
        cache_root=Path("/c"),
    )
    (name, rendered), *_ = render_ort_providers(options)
    assert name == TENSORRT
    assert rendered["device_id"] == "3"
    assert rendered["trt_engine_cache_enable"] == "False"
    assert rendered["trt_timing_cache_enable"] == "True"
    assert rendered["trt_timing_cache_path"] == "/elsewhere"
    assert rendered["trt_engine_cache_path"] == "/c/tensorrt/fraud/42"
    assert rendered["trt_max_workspace_size"] == str(1 << 30)
    assert rendered["trt_auxiliary_streams"] == "-1"
    # only the enabled cache needs a directory
    assert trt_cache_dirs(render_ort_providers(options)) == [Path("/elsewhere")]


def test_cache_dirs_only_for_the_tensorrt_provider() -> None:
    assert trt_cache_dirs(render_ort_providers(parse({"providers": ["cuda", "cpu"]}))) == []
    options = parse({"providers": ["tensorrt"]}, cache_root=Path("/c"))
    assert trt_cache_dirs(render_ort_providers(options)) == [Path("/c/tensorrt/fraud/42")]


def test_cache_root_precedence_argument_then_environment_then_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert parse(None, cache_root=Path("/arg"), environ={"MODELYARD_CACHE_DIR": "/env"}).cache_dir == Path(
        "/arg/tensorrt/fraud/42"
    )
    assert parse(None, environ={"MODELYARD_CACHE_DIR": "/env"}).cache_dir == Path("/env/tensorrt/fraud/42")
    assert parse(None, environ={}).cache_dir == Path("/home/someone/.cache/modelyard/tensorrt/fraud/42")
    assert default_cache_root({"MODELYARD_CACHE_DIR": ""}) == Path("/home/someone/.cache/modelyard")


def test_explicit_cache_dir_absolute_or_relative_to_the_model_directory() -> None:
    assert parse({"cache_dir": "/var/cache/trt"}).cache_dir == Path("/var/cache/trt")
    assert parse({"cache_dir": "trt-cache"}).cache_dir == Path("/models/fraud/trt-cache")


def test_fallback_chain_drops_providers_from_the_front_down_to_the_cpu() -> None:
    rendered = render_ort_providers(parse({"providers": ["tensorrt", "cuda", "cpu"]}))
    chain = ort_fallback_chain(rendered)
    assert [[name for name, _ in attempt] for attempt in chain] == [[TENSORRT, CUDA, CPU], [CUDA, CPU], [CPU]]
    chain = ort_fallback_chain(render_ort_providers(parse({"providers": ["cuda"]})))
    assert [[name for name, _ in attempt] for attempt in chain] == [[CUDA], [CPU]]
    assert ort_fallback_chain([(CPU, {})]) == [[(CPU, {})]]


def test_options_are_frozen_and_comparable() -> None:
    assert parse({"providers": ["cuda", "cpu"]}) == parse({"providers": ["CUDAExecutionProvider", "cpu"]})
    assert ProviderSpec(CUDA, (("device_id", "1"),)).option("device_id") == "1"
    with pytest.raises(AttributeError):
        parse(None).kind = "tensorrt"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "model_file", "message"),
    [
        ({"provider": ["cpu"]}, MODEL, r"unknown key\(s\) in backend: provider; allowed: kind, providers"),
        ({"kind": "openvino"}, MODEL, "backend.kind: must be one of onnxruntime | tensorrt, got 'openvino'"),
        ({}, Path("/m/x/1/model.pt"), "cannot tell the backend from the file name 'model.pt'"),
        ({"kind": "tensorflow"}, MODEL, "backend.kind: model.onnx is not a SavedModel"),
        ({"kind": "onnxruntime"}, SAVED, "backend.kind: saved_model.pb is a TensorFlow SavedModel"),
        ({"kind": "tensorflow", "providers": ["cpu"]}, SAVED, "backend.providers: does not apply to kind tensorflow"),
        ({"signature": "predict"}, MODEL, "backend.signature: applies to kind tensorflow only"),
        ({"signature": ""}, SAVED, "backend.signature: must be a non-empty signature name"),
        ({"kind": "tensorrt"}, MODEL, "use kind: onnxruntime with providers: \\[tensorrt, cuda, cpu\\]"),
        ({"kind": "onnxruntime"}, PLAN, "is a TensorRT engine; ONNX Runtime cannot load it"),
        ({"providers": ["cuda"]}, PLAN, "backend.providers: applies to kind onnxruntime only"),
        ({"intra_op_threads": 2}, PLAN, "backend.intra_op_threads: applies to kind onnxruntime only"),
        ({"providers": []}, MODEL, "backend.providers: must be a non-empty list"),
        ({"providers": ["rocm"]}, MODEL, r"unknown execution provider 'rocm'; allowed: cpu, cuda, tensorrt"),
        ({"providers": [3]}, MODEL, r"backend.providers\[0\]: a provider is a name or \{name, options\}"),
        ({"providers": ["cuda", "CUDAExecutionProvider"]}, MODEL, "CUDAExecutionProvider listed more than once"),
        ({"providers": ["cpu", "cuda"]}, MODEL, "cpu must come last"),
        ({"providers": [{"options": {}}]}, MODEL, r"providers\[0\]: needs a name"),
        ({"providers": [{"name": "cuda", "opts": {}}]}, MODEL, r"unknown key\(s\) opts; allowed: name, options"),
        ({"providers": [{"name": "cuda", "options": [1]}]}, MODEL, r"providers\[0\].options: must be a mapping"),
        (
            {"providers": [{"name": "cuda", "options": {"trt_fp16_enable": True}}]},
            MODEL,
            "unknown option 'trt_fp16_enable' for CUDAExecutionProvider; allowed: arena_extend_strategy",
        ),
        (
            {"providers": [{"name": "cpu", "options": {"threads": 2}}]},
            MODEL,
            "unknown option 'threads' for CPUExecutionProvider; allowed: none",
        ),
        (
            {"providers": [{"name": "tensorrt", "options": {"trt_fp16_enable": "yes"}}]},
            MODEL,
            r"backend.providers\[0\].options.trt_fp16_enable: must be true or false, got 'yes'",
        ),
        (
            {"providers": [{"name": "cuda", "options": {"cudnn_conv_algo_search": "FAST"}}]},
            MODEL,
            "must be one of EXHAUSTIVE, HEURISTIC, DEFAULT, got 'FAST'",
        ),
        (
            {"providers": [{"name": "cuda", "options": {"gpu_mem_limit": -1}}]},
            MODEL,
            "gpu_mem_limit: must be an integer >= 0, got -1",
        ),
        (
            {"providers": [{"name": "tensorrt", "options": {"trt_engine_cache_path": ["a"]}}]},
            MODEL,
            "trt_engine_cache_path: must be a string",
        ),
        ({"intra_op_threads": -1}, MODEL, "backend.intra_op_threads: must be an integer >= 0, got -1"),
        ({"inter_op_threads": True}, MODEL, "backend.inter_op_threads: must be an integer >= 0, got True"),
        ({"graph_optimization": "max"}, MODEL, "must be one of disable | basic | extended | all, got 'max'"),
        ({"execution_mode": "async"}, MODEL, "must be one of sequential | parallel, got 'async'"),
        ({"allow_fallback": "yes"}, MODEL, "backend.allow_fallback: must be true or false, got 'yes'"),
        ({"cache_dir": ""}, MODEL, "backend.cache_dir: must be a non-empty path"),
        ({"device_id": "0"}, MODEL, "backend.device_id: must be an integer >= 0, got '0'"),
    ],
)
def test_bad_config_names_the_key_and_what_is_allowed(raw: dict[str, Any], model_file: Path, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(raw, model_file)


def test_backend_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="backend must be a mapping, got list"):
        parse_backend_options(["cpu"], model_file=MODEL)  # type: ignore[arg-type]


def test_importing_backends_and_parsing_options_loads_no_inference_library() -> None:
    code = (
        "import sys; from pathlib import Path; import modelyard_runtime.backends as b; "
        "o = b.parse_backend_options({'providers': ['tensorrt', 'cpu']}, model_file=Path('/m/a/1/model.onnx')); "
        "b.render_ort_providers(o); import modelyard_runtime.backends.plan; "
        "print(sorted(m for m in ('onnxruntime', 'tensorrt', 'cuda', 'cupy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_thread_spinning_is_off_unless_asked_for() -> None:
    assert parse(None).thread_spinning is False
    assert parse({"thread_spinning": True}).thread_spinning is True
    with pytest.raises(ValueError, match=r"backend\.thread_spinning: must be true or false"):
        parse({"thread_spinning": "yes"})


def test_a_savedmodel_runs_on_tensorflow_with_serving_default_unless_the_config_names_a_signature() -> None:
    assert parse_backend_options(None, model_file=SAVED).kind == "tensorflow"
    assert parse_backend_options(None, model_file=Path("/m/x/1/saved_model.pb")).signature == "serving_default"
    options = parse_backend_options({"kind": "tensorflow", "signature": "predict"}, model_file=SAVED)
    assert (options.kind, options.signature) == ("tensorflow", "predict")
