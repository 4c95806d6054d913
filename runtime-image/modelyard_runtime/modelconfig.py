"""Per-model settings from ``DIR/<model>/config.yaml`` (parsing is pure; :func:`read_model_config` reads the file).

Example::

    max_batch_size: 32            # > 0: the first dimension is the batch; 0: no batching
    dynamic_batching:
      max_queue_delay_ms: 2       # how long a batch may wait to reach a preferred size (see server.batcher)
      preferred_batch_size: [4, 8]  # batch sizes to run at once when the queue can form them (as in Triton)
    warmup:
      runs: 1                     # inferences before the version is ready (0: none; with samples: 0 = one each)
      samples: /path/samples.json # optional: real inputs (a request body, or a list of them); else zero-filled
    version_weights: {"1": 90, "2": 10}   # how unversioned requests are split (default: highest version)
    shadow: {version: "3", percent: 100, compare: values, max_abs_diff: 0.001}  # copies to a candidate, compared
    backend: {...}                # see docs/backends.md
    inputs:
      image: {format: FORMAT_NCHW}          # image layout, reported in the model configuration (NCHW, NHWC)
    outputs:
      probs: {label_filename: labels.txt}  # class labels for the classification extension, one per line

Unknown keys are errors: a typo must not silently change how a model is served.

A version may carry its own ``backend`` and ``warmup`` (the server's ``--version-config MODEL:VERSION=JSON``, which
the operator renders from a ModelVersion's ``spec.runtime`` and ``spec.warmup``): :func:`overlay_version_config`
puts them over the model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
_TOP_KEYS = {
    "max_batch_size", "dynamic_batching", "warmup", "version_weights", "shadow", "backend", "inputs", "outputs",
}  # fmt: skip
INPUT_FORMATS = ("FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW")  # Triton's ModelInput.Format names


class ModelConfigError(ValueError):
    """config.yaml is malformed; the message names the key and what is allowed."""


@dataclass(frozen=True)
class ShadowConfig:
    """Requests served by another version are copied to ``version`` (``percent`` of them) and the answers compared;
    only the serving version's answer reaches the client (server.shadow)."""

    version: str
    percent: float = 100.0
    compare: str = "values"  # values: agree when no element differs by more than max_abs_diff; top1: same classes
    max_abs_diff: float = 1e-3


@dataclass(frozen=True)
class ModelConfig:
    max_batch_size: int | None = None  # None: the server's --max-batch-size
    max_queue_delay_ms: float | None = None  # None: the server's --max-queue-delay-ms
    preferred_batch_sizes: tuple[int, ...] = ()  # dynamic_batching.preferred_batch_size
    warmup_runs: int = 1
    warmup_samples: str | None = None  # a JSON file (or a folder holding one) of real inputs
    version_weights: dict[str, int] = field(default_factory=dict)
    backend: dict[str, Any] | None = None
    input_formats: dict[str, str] = field(default_factory=dict)  # input name -> one of INPUT_FORMATS
    label_files: dict[str, str] = field(default_factory=dict)  # output name -> its labels file's name
    shadow: ShadowConfig | None = None


def _int(value: Any, key: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelConfigError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _mapping(value: Any, key: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ModelConfigError(f"{key} must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(map(str, value)) - allowed)
    if unknown:
        raise ModelConfigError(f"unknown key(s) in {key}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return value


def _preferred(value: Any, max_batch: int | None) -> tuple[int, ...]:
    key = "dynamic_batching.preferred_batch_size"
    if not isinstance(value, list):
        raise ModelConfigError(f"{key} must be a list of integers, got {value!r}")
    sizes = tuple(sorted({_int(v, key, minimum=1) for v in value}))
    if max_batch is not None and sizes and sizes[-1] > max_batch:
        raise ModelConfigError(f"{key} {list(sizes)}: every size must be at most max_batch_size ({max_batch})")
    return sizes


def _by_name(value: Any, key: str) -> Mapping[str, Any]:
    """A mapping of tensor name to its settings (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ModelConfigError(f"{key} must be a mapping of tensor name to settings, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def parse_model_config(raw: Any) -> ModelConfig:
    """A config.yaml document (already loaded) → :class:`ModelConfig`; ``None`` (empty file) gives defaults."""
    if raw is None:
        return ModelConfig()
    top = _mapping(raw, "config.yaml", _TOP_KEYS)
    max_batch = _int(top["max_batch_size"], "max_batch_size") if "max_batch_size" in top else None
    delay: float | None = None
    preferred: tuple[int, ...] = ()
    if "dynamic_batching" in top:
        batching = _mapping(
            top["dynamic_batching"] or {}, "dynamic_batching", {"max_queue_delay_ms", "preferred_batch_size"}
        )
        if "max_queue_delay_ms" in batching:
            value = batching["max_queue_delay_ms"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ModelConfigError(f"dynamic_batching.max_queue_delay_ms must be a number >= 0, got {value!r}")
            delay = float(value)
        preferred = _preferred(batching.get("preferred_batch_size", []), max_batch)
    runs, samples = 1, None
    if "warmup" in top:
        warmup = top["warmup"]
        if isinstance(warmup, bool):
            runs = 1 if warmup else 0
        else:
            warmup = _mapping(warmup, "warmup", {"runs", "samples"})
            runs = _int(warmup.get("runs", 1), "warmup.runs")
            samples = warmup.get("samples")
            if samples is not None and (not isinstance(samples, str) or not samples):
                raise ModelConfigError(f"warmup.samples must be a path, got {samples!r}")
    raw_weights = top.get("version_weights") or {}
    if not isinstance(raw_weights, Mapping):
        raise ModelConfigError("version_weights must be a mapping of version to weight")
    weights = {str(v): _int(w, f"version_weights[{v}]") for v, w in raw_weights.items()}
    if weights and not any(weights.values()):
        raise ModelConfigError("version_weights: at least one version needs a weight above 0")
    shadow = _shadow(top["shadow"], weights) if top.get("shadow") is not None else None
    backend = top.get("backend")
    if backend is not None and not isinstance(backend, Mapping):
        raise ModelConfigError(f"backend must be a mapping, got {type(backend).__name__}")
    formats: dict[str, str] = {}
    for name, spec in _by_name(top.get("inputs"), "inputs").items():
        fmt = _mapping(spec or {}, f"inputs.{name}", {"format"}).get("format", "FORMAT_NONE")
        if fmt not in INPUT_FORMATS:
            raise ModelConfigError(f"inputs.{name}.format must be one of {', '.join(INPUT_FORMATS)}, got {fmt!r}")
        formats[str(name)] = fmt
    labels: dict[str, str] = {}
    for name, spec in _by_name(top.get("outputs"), "outputs").items():
        label_file = _mapping(spec or {}, f"outputs.{name}", {"label_filename"}).get("label_filename")
        if label_file is None:
            continue
        if not isinstance(label_file, str) or not label_file or "/" in label_file or label_file.startswith("."):
            raise ModelConfigError(
                f"outputs.{name}.label_filename must be a file name in the version or model folder, got {label_file!r}"
            )
        labels[str(name)] = label_file
    return ModelConfig(
        max_batch_size=max_batch,
        max_queue_delay_ms=delay,
        preferred_batch_sizes=preferred,
        warmup_runs=runs,
        warmup_samples=samples,
        version_weights=weights,
        backend=dict(backend) if backend is not None else None,
        input_formats=formats,
        label_files=labels,
        shadow=shadow,
    )


def _number(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ModelConfigError(f"{key} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _compare(value: Any) -> str:
    if value not in ("values", "top1"):
        raise ModelConfigError(f"shadow.compare must be values or top1, got {value!r}")
    return str(value)


def _shadow(value: Any, weights: Mapping[str, int]) -> ShadowConfig:
    body = _mapping(value, "shadow", {"version", "percent", "compare", "max_abs_diff"})
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, str | int) or not str(version):
        raise ModelConfigError(f"shadow.version must name a version, got {version!r}")
    if weights.get(str(version), 0) > 0:
        raise ModelConfigError(f"shadow.version {version}: it has weight {weights[str(version)]} in version_weights; "
                               "a shadowed version takes no user traffic (weight 0)")  # fmt: skip
    return ShadowConfig(
        version=str(version),
        percent=_number(body.get("percent", 100), "shadow.percent", 0, 100),
        compare=_compare(body.get("compare", "values")),
        max_abs_diff=_number(body.get("max_abs_diff", 1e-3), "shadow.max_abs_diff", 0, float("inf")),
    )


VERSION_KEYS = {"backend", "warmup", "dynamic_batching", "max_batch_size"}


def parse_version_config(raw: Any) -> dict[str, Any]:
    """A version's own settings (``backend``, ``warmup``, ``dynamic_batching``, ``max_batch_size``), checked like
    config.yaml;
    ModelConfigError otherwise."""
    top = _mapping(raw, "version config", VERSION_KEYS)
    parse_model_config(top)
    return dict(top)


VERSION_CONFIG_DIR = ".config"  # <repository>/<model>/.config/<version>.json: hidden, never taken for a version


def version_config_file(repository: Path, model: str, version: str) -> Path:
    """Where the loader sidecar leaves the settings of a version it added from its versions file, for the server."""
    return repository / model / VERSION_CONFIG_DIR / f"{version}.json"


def held_versions(repository: Path) -> set[tuple[str, str]]:
    """(model, version) of every version a loader sidecar holds for the pod: those with a settings file."""
    found: set[tuple[str, str]] = set()
    try:
        models = [p for p in repository.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return found
    for model in models:
        folder = model / VERSION_CONFIG_DIR
        if folder.is_dir():
            found |= {(model.name, f.name[: -len(".json")]) for f in folder.iterdir() if f.name.endswith(".json")
                      and not f.name.startswith(".")}  # fmt: skip
    return found


def own_version_config(
    flags: Mapping[tuple[str, str], Mapping[str, Any]], repository: Path, model: str, version: str
) -> Mapping[str, Any] | None:
    """A version's own settings: its ``--version-config``, else the file a loader sidecar wrote for it."""
    own = flags.get((model, version))
    return own if own is not None else read_version_config_file(version_config_file(repository, model, version))


def read_version_config_file(path: Path) -> dict[str, Any] | None:
    """The version settings in ``path`` (JSON, as ``--version-config``), None when there is no such file;
    ModelConfigError when it cannot be read or is not valid settings."""
    import json

    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ModelConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return parse_version_config(json.loads(text))
    except ValueError as exc:  # ModelConfigError is one
        raise ModelConfigError(f"{path}: {exc}") from None


def overlay_version_config(config: ModelConfig, raw: Mapping[str, Any]) -> ModelConfig:
    """``config`` with the keys a version sets (:func:`parse_version_config`) replaced by the version's."""
    own = parse_model_config(raw)
    changes: dict[str, Any] = {}
    if "backend" in raw:
        changes["backend"] = own.backend
    if "warmup" in raw:
        changes.update(warmup_runs=own.warmup_runs, warmup_samples=own.warmup_samples)
    if "max_batch_size" in raw:
        changes["max_batch_size"] = own.max_batch_size
    batching = raw.get("dynamic_batching") or {}
    if "preferred_batch_size" in batching:
        changes["preferred_batch_sizes"] = own.preferred_batch_sizes
    if "max_queue_delay_ms" in batching:
        changes["max_queue_delay_ms"] = own.max_queue_delay_ms
    return replace(config, **changes)


def read_model_config(*model_dirs: Path) -> ModelConfig:
    """Read ``config.yaml`` from each folder that has one; later folders' top-level keys win.

    The server reads the repository's ``<model>/config.yaml`` and then, when ``--model-config-dir`` is set, the one
    there (a mounted ConfigMap, which Kubernetes keeps current, unlike a file inside the emptyDir repository).
    Errors name the file.
    """
    merged: dict[str, Any] = {}
    for model_dir in model_dirs:
        path = model_dir / CONFIG_FILE
        if not path.is_file():
            continue
        import yaml  # only when a file is there: ~15 ms of static mode's start, before the first session opens

        try:
            document = yaml.safe_load(path.read_text())
            parse_model_config(document)  # each file must be valid on its own, so errors name it
        except yaml.YAMLError as exc:
            raise ModelConfigError(f"{path}: not valid YAML: {exc}") from None
        except ModelConfigError as exc:
            raise ModelConfigError(f"{path}: {exc}") from None
        merged.update(document or {})
    return parse_model_config(merged)


class WeightedPicker:
    """Smooth weighted round-robin: over any window the split follows the weights exactly, without randomness."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self.weights = {v: w for v, w in weights.items() if w > 0}
        self._current = dict.fromkeys(self.weights, 0)

    def pick(self) -> str:
        total = sum(self.weights.values())
        for version, weight in self.weights.items():
            self._current[version] += weight
        chosen = max(self._current, key=lambda v: self._current[v])
        self._current[chosen] -= total
        return chosen
