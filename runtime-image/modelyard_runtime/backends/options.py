"""Backend options from the ``backend:`` mapping of ``DIR/<model>/config.yaml`` (pure: no onnxruntime, no tensorrt).

Parsing validates everything a typo could get wrong (unknown keys, provider names, option names and value types)
so that a bad config fails at load with a message naming the key and the allowed values, instead of ONNX Runtime
ignoring an option or a GPU session quietly running on the CPU. :func:`render_ort_providers` turns the result into
exactly what ``onnxruntime.InferenceSession(providers=...)`` receives, which is what the unit tests pin down.

Defaults: the backend kind comes from the model file name (``*.onnx`` → ``onnxruntime``, ``*.plan``/``*.engine`` →
``tensorrt``, a SavedModel's ``saved_model.pb`` → ``tensorflow``); ONNX Runtime runs on the CPU provider only;
TensorRT engine and timing caches live in ``<cache root>/tensorrt/<model>/<version>/`` where the cache root is the
``cache_root`` argument, else ``$MODELYARD_CACHE_DIR``, else ``~/.cache/modelyard``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Kind = Literal["onnxruntime", "tensorrt", "tensorflow"]
KINDS: tuple[Kind, ...] = ("onnxruntime", "tensorrt", "tensorflow")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
PROVIDER_ALIASES = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT, "trt": TENSORRT}
GPU_PROVIDERS = (CUDA, TENSORRT)

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
EXECUTION_MODES = ("sequential", "parallel")
_SUFFIX_KINDS: dict[str, Kind] = {
    ".onnx": "onnxruntime", ".plan": "tensorrt", ".engine": "tensorrt", ".savedmodel": "tensorflow",
}  # fmt: skip
SAVED_MODEL_PB = "saved_model.pb"
DEFAULT_SIGNATURE = "serving_default"
_KEYS = (
    "kind",
    "providers",
    "intra_op_threads",
    "inter_op_threads",
    "graph_optimization",
    "execution_mode",
    "thread_spinning",
    "allow_fallback",
    "cache_dir",
    "device_id",
    "signature",
)
_ORT_ONLY_KEYS = (
    "providers", "intra_op_threads", "inter_op_threads", "graph_optimization", "execution_mode", "thread_spinning",
)  # fmt: skip
CACHE_ENV = "MODELYARD_CACHE_DIR"


@dataclass(frozen=True)
class _Bool:
    pass


@dataclass(frozen=True)
class _Int:
    minimum: int = 0


@dataclass(frozen=True)
class _Str:
    pass


@dataclass(frozen=True)
class _Enum:
    values: tuple[str, ...]


_OptionType = _Bool | _Int | _Str | _Enum
_B, _I, _S = _Bool(), _Int(), _Str()

# Provider options ONNX Runtime accepts (names as its CUDA and TensorRT execution providers parse them). Options
# that take a pointer (user_compute_stream, custom allocators) or a decryption library cannot come from YAML.
PROVIDER_OPTIONS: dict[str, dict[str, _OptionType]] = {
    CPU: {},
    CUDA: {
        "device_id": _I,
        "gpu_mem_limit": _I,
        "arena_extend_strategy": _Enum(("kNextPowerOfTwo", "kSameAsRequested")),
        "cudnn_conv_algo_search": _Enum(("EXHAUSTIVE", "HEURISTIC", "DEFAULT")),
        "do_copy_in_default_stream": _B,
        "cudnn_conv_use_max_workspace": _B,
        "cudnn_conv1d_pad_to_nc1d": _B,
        "enable_cuda_graph": _B,
        "enable_skip_layer_norm_strict_mode": _B,
        "use_tf32": _B,
        "prefer_nhwc": _B,
        "use_ep_level_unified_stream": _B,
        "tunable_op_enable": _B,
        "tunable_op_tuning_enable": _B,
        "tunable_op_max_tuning_duration_ms": _I,
    },
    TENSORRT: {
        "device_id": _I,
        "trt_max_workspace_size": _I,
        "trt_max_partition_iterations": _I,
        "trt_min_subgraph_size": _I,
        "trt_fp16_enable": _B,
        "trt_bf16_enable": _B,
        "trt_int8_enable": _B,
        "trt_int8_calibration_table_name": _S,
        "trt_int8_use_native_calibration_table": _B,
        "trt_dla_enable": _B,
        "trt_dla_core": _I,
        "trt_dump_subgraphs": _B,
        "trt_engine_cache_enable": _B,
        "trt_engine_cache_path": _S,
        "trt_engine_cache_prefix": _S,
        "trt_timing_cache_enable": _B,
        "trt_timing_cache_path": _S,
        "trt_force_timing_cache": _B,
        "trt_force_sequential_engine_build": _B,
        "trt_context_memory_sharing_enable": _B,
        "trt_layer_norm_fp32_fallback": _B,
        "trt_detailed_build_log": _B,
        "trt_build_heuristics_enable": _B,
        "trt_sparsity_enable": _B,
        "trt_builder_optimization_level": _I,
        "trt_auxiliary_streams": _Int(minimum=-1),
        "trt_tactic_sources": _S,
        "trt_extra_plugin_lib_paths": _S,
        "trt_profile_min_shapes": _S,
        "trt_profile_opt_shapes": _S,
        "trt_profile_max_shapes": _S,
        "trt_cuda_graph_enable": _B,
        "trt_dump_ep_context_model": _B,
        "trt_ep_context_file_path": _S,
        "trt_ep_context_embed_mode": _I,
        "trt_engine_hw_compatible": _B,
        "trt_weight_stripped_engine_enable": _B,
        "trt_onnx_model_folder_path": _S,
        "trt_op_types_to_exclude": _S,
    },
}

# Defaults the TensorRT provider gets unless the config sets them: caches on (the first build of an engine takes
# minutes; a cached engine loads in seconds), in the model's cache directory.
_TRT_CACHE_DEFAULTS = {"trt_engine_cache_enable": True, "trt_timing_cache_enable": True}


@dataclass(frozen=True)
class ProviderSpec:
    """One ONNX Runtime execution provider and its options, values already in ONNX Runtime's string form."""

    name: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, key: str) -> str | None:
        return dict(self.options).get(key)


@dataclass(frozen=True)
class BackendOptions:
    kind: Kind = "onnxruntime"
    providers: tuple[ProviderSpec, ...] = (ProviderSpec(CPU),)
    intra_op_threads: int = 0  # 0: ONNX Runtime's default (one per physical core)
    inter_op_threads: int = 0  # 0: ONNX Runtime's default; only used with execution_mode parallel
    graph_optimization: str = "all"
    execution_mode: str = "sequential"
    # ONNX Runtime's worker threads spin between runs by default; in a server they would burn the cores that parse
    # and answer requests (measured: 0.4-0.8 of 2 cores), so they sleep unless the config asks for spinning
    thread_spinning: bool = False
    allow_fallback: bool = False
    cache_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "modelyard" / "tensorrt")
    device_id: int = 0
    signature: str = DEFAULT_SIGNATURE  # kind tensorflow: the SavedModel signature served

    @property
    def provider_names(self) -> list[str]:
        return [p.name for p in self.providers]


def _fail(key: str, message: str) -> ValueError:
    return ValueError(f"backend.{key}: {message}")


def _render_value(key: str, value: Any, kind: _OptionType) -> str:
    """A YAML value → the string ONNX Runtime parses ("True"/"False" for booleans, as Python's str() gives)."""
    if isinstance(kind, _Bool):
        if not isinstance(value, bool):
            raise _fail(key, f"must be true or false, got {value!r}")
        return str(value)
    if isinstance(kind, _Int):
        if isinstance(value, bool) or not isinstance(value, int) or value < kind.minimum:
            raise _fail(key, f"must be an integer >= {kind.minimum}, got {value!r}")
        return str(value)
    if isinstance(kind, _Enum):
        if value not in kind.values:
            raise _fail(key, f"must be one of {', '.join(kind.values)}, got {value!r}")
        return str(value)
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _fail(key, f"must be a string, got {value!r}")
    return str(value)


def provider_name(raw: Any, where: str = "providers") -> str:
    """``cpu``/``cuda``/``tensorrt`` (any case) or a full provider name → the full name ONNX Runtime uses."""
    allowed = f"{', '.join(PROVIDER_ALIASES)} or {', '.join(PROVIDER_OPTIONS)}"
    if not isinstance(raw, str):
        raise _fail(where, f"a provider is a name or {{name, options}}, got {raw!r}; allowed names: {allowed}")
    if raw in PROVIDER_OPTIONS:
        return raw
    full = PROVIDER_ALIASES.get(raw.lower())
    if full is None:
        raise _fail(where, f"unknown execution provider {raw!r}; allowed: {allowed}")
    return full


def _parse_provider(raw: Any, index: int) -> ProviderSpec:
    where = f"providers[{index}]"
    raw_options: Any = {}
    if isinstance(raw, Mapping):
        unknown = sorted(set(map(str, raw)) - {"name", "options"})
        if unknown:
            raise _fail(where, f"unknown key(s) {', '.join(unknown)}; allowed: name, options")
        if "name" not in raw:
            raise _fail(where, "needs a name (cpu, cuda or tensorrt)")
        name = provider_name(raw["name"], where)
        raw_options = raw.get("options") or {}
        if not isinstance(raw_options, Mapping):
            raise _fail(f"{where}.options", f"must be a mapping, got {type(raw_options).__name__}")
    else:
        name = provider_name(raw, where)
    table = PROVIDER_OPTIONS[name]
    rendered: list[tuple[str, str]] = []
    for key, value in raw_options.items():
        if key not in table:
            allowed = ", ".join(sorted(table)) or "none (use intra_op_threads / inter_op_threads for the CPU)"
            raise _fail(f"{where}.options", f"unknown option {key!r} for {name}; allowed: {allowed}")
        rendered.append((str(key), _render_value(f"{where}.options.{key}", value, table[key])))
    return ProviderSpec(name, tuple(rendered))


def _parse_providers(raw: Any) -> tuple[ProviderSpec, ...]:
    if isinstance(raw, str | Mapping):
        raw = [raw]
    if not isinstance(raw, list | tuple) or not raw:
        raise _fail("providers", f"must be a non-empty list such as [tensorrt, cuda, cpu], got {raw!r}")
    specs = tuple(_parse_provider(item, i) for i, item in enumerate(raw))
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fail("providers", f"{', '.join(duplicates)} listed more than once")
    if CPU in names and names.index(CPU) != len(names) - 1:
        # ONNX Runtime assigns nodes in list order and the CPU provider takes every node: nothing after it would run.
        raise _fail("providers", f"cpu must come last (providers after it would never get a node), got {names}")
    return specs


def _int_key(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(key, f"must be an integer >= 0, got {value!r}")
    return value


def _bool_key(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise _fail(key, f"must be true or false, got {value!r}")
    return value


def _choice(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = raw.get(key, default)
    if value not in allowed:
        raise _fail(key, f"must be one of {' | '.join(allowed)}, got {value!r}")
    return str(value)


def default_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    configured = env.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "modelyard"


def model_cache_dir(model_file: Path, cache_root: Path) -> Path:
    """``<cache_root>/tensorrt/<model>/<version>`` for ``DIR/<model>/<version>/model.*``."""
    version_dir = model_file.parent
    return cache_root / "tensorrt" / version_dir.parent.name / version_dir.name


def _suffix_kind(model_file: Path) -> Kind | None:
    if model_file.name == SAVED_MODEL_PB:
        return "tensorflow"
    return _SUFFIX_KINDS.get(model_file.suffix.lower())


def _kind(raw: Mapping[str, Any], model_file: Path) -> Kind:
    if "kind" in raw:
        value = raw["kind"]
        if value not in KINDS:
            raise _fail("kind", f"must be one of {' | '.join(KINDS)}, got {value!r}")
        kind: Kind = value
    else:
        guessed = _suffix_kind(model_file)
        if guessed is None:
            raise _fail(
                "kind",
                f"cannot tell the backend from the file name {model_file.name!r} "
                f"(known: {', '.join(_SUFFIX_KINDS)}); set kind: {' | '.join(KINDS)}",
            )
        kind = guessed
    suffix_kind = _suffix_kind(model_file)
    if kind == "tensorflow" and suffix_kind != "tensorflow":
        raise _fail("kind", f"{model_file.name} is not a SavedModel; kind tensorflow serves a saved_model.pb folder")
    if kind != "tensorflow" and suffix_kind == "tensorflow":
        raise _fail("kind", f"{model_file.name} is a TensorFlow SavedModel; only kind tensorflow serves it")
    if kind == "tensorrt" and suffix_kind == "onnxruntime":
        raise _fail(
            "kind",
            f"{model_file.name} is an ONNX model; the tensorrt backend runs serialized TensorRT engines (model.plan). "
            "For TensorRT through ONNX Runtime use kind: onnxruntime with providers: [tensorrt, cuda, cpu]",
        )
    if kind == "onnxruntime" and suffix_kind == "tensorrt":
        raise _fail("kind", f"{model_file.name} is a TensorRT engine; ONNX Runtime cannot load it (use kind: tensorrt)")
    return kind


def parse_backend_options(
    raw: Mapping[str, Any] | None,
    *,
    model_file: Path,
    cache_root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> BackendOptions:
    """The ``backend:`` mapping of config.yaml (``None`` when absent) → validated :class:`BackendOptions`.

    Raises ``ValueError`` naming the bad key and the allowed values; unknown keys are errors, not ignored.
    ``environ`` defaults to ``os.environ`` (only ``MODELYARD_CACHE_DIR`` is read).
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ValueError(f"backend must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(map(str, raw)) - set(_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) in backend: {', '.join(unknown)}; allowed: {', '.join(_KEYS)}")
    kind = _kind(raw, model_file)
    if kind == "tensorrt":
        misplaced = [k for k in _ORT_ONLY_KEYS if k in raw]
        if misplaced:
            raise _fail(misplaced[0], "applies to kind onnxruntime only (a TensorRT plan is already optimized)")
    if kind == "tensorflow":
        misplaced = [k for k in _KEYS if k in raw and k not in ("kind", "signature")]
        if misplaced:
            raise _fail(misplaced[0], "does not apply to kind tensorflow (its only setting is signature)")
    elif "signature" in raw:
        raise _fail("signature", "applies to kind tensorflow only (a SavedModel's signature)")
    signature = raw.get("signature", DEFAULT_SIGNATURE)
    if not isinstance(signature, str) or not signature:
        raise _fail("signature", f"must be a non-empty signature name, got {signature!r}")
    providers = _parse_providers(raw["providers"]) if "providers" in raw else (ProviderSpec(CPU),)
    allow_fallback = raw.get("allow_fallback", False)
    if not isinstance(allow_fallback, bool):
        raise _fail("allow_fallback", f"must be true or false, got {allow_fallback!r}")
    if "cache_dir" in raw:
        value = raw["cache_dir"]
        if not isinstance(value, str) or not value:
            raise _fail("cache_dir", f"must be a non-empty path, got {value!r}")
        cache_dir = Path(value).expanduser()
        if not cache_dir.is_absolute():  # relative to the model's directory, where config.yaml lives
            cache_dir = model_file.parent.parent / cache_dir
    else:
        cache_dir = model_cache_dir(model_file, cache_root or default_cache_root(environ))
    return BackendOptions(
        kind=kind,
        providers=providers,
        intra_op_threads=_int_key(raw, "intra_op_threads", 0),
        inter_op_threads=_int_key(raw, "inter_op_threads", 0),
        graph_optimization=_choice(raw, "graph_optimization", GRAPH_OPTIMIZATION_LEVELS, "all"),
        execution_mode=_choice(raw, "execution_mode", EXECUTION_MODES, "sequential"),
        thread_spinning=_bool_key(raw, "thread_spinning", False),
        allow_fallback=allow_fallback,
        cache_dir=cache_dir,
        device_id=_int_key(raw, "device_id", 0),
        signature=signature,
    )


def render_ort_providers(options: BackendOptions) -> list[tuple[str, dict[str, str]]]:
    """What ``onnxruntime.InferenceSession(providers=...)`` receives: (name, options) in priority order.

    The GPU providers get ``device_id`` from the top level unless their options set it; the TensorRT provider gets
    engine and timing caches switched on, both in ``options.cache_dir``, unless its options say otherwise.
    """
    rendered: list[tuple[str, dict[str, str]]] = []
    for spec in options.providers:
        opts = dict(spec.options)
        if spec.name in GPU_PROVIDERS:
            opts.setdefault("device_id", str(options.device_id))
        if spec.name == TENSORRT:
            for key, value in _TRT_CACHE_DEFAULTS.items():
                opts.setdefault(key, str(value))
            opts.setdefault("trt_engine_cache_path", str(options.cache_dir))
            opts.setdefault("trt_timing_cache_path", str(options.cache_dir))
        rendered.append((spec.name, opts))
    return rendered


def ort_fallback_chain(rendered: list[tuple[str, dict[str, str]]]) -> list[list[tuple[str, dict[str, str]]]]:
    """The provider lists to try in turn when fallback is allowed: drop the first provider until only the CPU is left.

    ``[tensorrt, cuda, cpu]`` → ``[tensorrt, cuda, cpu]``, ``[cuda, cpu]``, ``[cpu]``.
    """
    chain = [rendered]
    current = rendered
    while any(name != CPU for name, _ in current):
        current = current[1:] or [(CPU, {})]
        chain.append(current)
    return chain


def trt_cache_dirs(rendered: list[tuple[str, dict[str, str]]]) -> list[Path]:
    """Directories the TensorRT provider will write caches into (to create before the session); [] without it."""
    dirs: list[Path] = []
    for name, opts in rendered:
        if name != TENSORRT:
            continue
        if opts.get("trt_engine_cache_enable", "False").lower() == "true":
            dirs.append(Path(opts.get("trt_engine_cache_path", ".")))
        if opts.get("trt_timing_cache_enable", "False").lower() == "true":
            dirs.append(Path(opts.get("trt_timing_cache_path", ".")))
    return list(dict.fromkeys(dirs))
