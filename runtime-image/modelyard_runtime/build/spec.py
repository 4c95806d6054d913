"""What a derived version asks for, checked before anything runs: the transforms (in order) and the gate.

The shape is that of ``ModelVersion.spec.derivedFrom`` without ``version``::

    transforms:
      - quantize: {mode: dynamic, weightType: int8, perChannel: false}
      - float16: {keepIO: true}
      - prune: {sparsity: 0.5, method: magnitude}
      - convert: onnx
    gate: {samples: {uri: samples.json, digest: "sha256:..."}, maxAbsDiff: 0.05, rmse: 0.01, top1Agreement: 0.99}

Every error is a :class:`SpecError` naming the transform (by its position) and the key at fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class SpecError(ValueError):
    """The transforms or the gate are not valid; the message names the key."""


@dataclass(frozen=True)
class Pinned:
    """A file named by URI (a local path for ``modelyard-build``) and pinned by its sha256 digest."""

    uri: str
    digest: str | None


@dataclass(frozen=True)
class Convert:
    to: str = "onnx"


@dataclass(frozen=True)
class Quantize:
    mode: str = "dynamic"  # dynamic | static
    weight_type: str = "int8"  # int8 | uint8
    per_channel: bool = False
    calibration: Pinned | None = None


@dataclass(frozen=True)
class Float16:
    keep_io: bool = True


@dataclass(frozen=True)
class Prune:
    sparsity: float = 0.5
    method: str = "magnitude"


@dataclass(frozen=True)
class TensorrtPlan:
    precision: str = "fp16"


Transform = Convert | Quantize | Float16 | Prune | TensorrtPlan


@dataclass(frozen=True)
class Gate:
    samples: Pinned | None = None
    generated: int = 64  # rows of seeded random inputs when there are no samples
    seed: int = 0
    max_abs_diff: float | None = None
    rmse: float | None = None
    top1_agreement: float | None = None


@dataclass(frozen=True)
class BuildSpec:
    transforms: tuple[Transform, ...]
    gate: Gate


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _only(body: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _choice(body: dict[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    value = body.get(key, choices[0])
    if value not in choices:
        raise SpecError(f"{where}.{key}: {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _bool(body: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


def _number(body: dict[str, Any], key: str, where: str, low: float, high: float) -> float | None:
    if key not in body or body[key] is None:
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SpecError(f"{where}.{key}: expected a number from {low} to {high}, got {value!r}")
    return float(value)


def pinned(value: Any, where: str) -> Pinned:
    body = _mapping(value, where)
    _only(body, {"uri", "digest"}, where)
    uri, digest = body.get("uri"), body.get("digest")
    if not isinstance(uri, str) or not uri:
        raise SpecError(f"{where}.uri: required")
    if digest is not None and (not isinstance(digest, str) or not DIGEST.match(digest)):
        raise SpecError(f"{where}.digest: expected sha256:<64 hex digits>, got {digest!r}")
    return Pinned(uri, digest)


def _transform(item: Any, where: str) -> Transform:
    if not isinstance(item, dict) or len(item) != 1:
        raise SpecError(f"{where}: expected one of convert, quantize, float16, prune, tensorrtPlan as its only key")
    ((kind, value),) = item.items()
    where = f"{where}.{kind}"
    if kind == "convert":
        if value != "onnx":
            raise SpecError(f"{where}: only onnx is a conversion target, got {value!r}")
        return Convert()
    body = _mapping(value, where)
    if kind == "quantize":
        _only(body, {"mode", "weightType", "perChannel", "calibration"}, where)
        mode = _choice(body, "mode", ("dynamic", "static"), where)
        calibration = pinned(body["calibration"], f"{where}.calibration") if body.get("calibration") else None
        if mode == "static" and calibration is None:
            raise SpecError(f"{where}.calibration: static quantization needs calibration data (uri and digest)")
        return Quantize(mode, _choice(body, "weightType", ("int8", "uint8"), where),
                        _bool(body, "perChannel", False, where), calibration)  # fmt: skip
    if kind == "float16":
        _only(body, {"keepIO"}, where)
        return Float16(_bool(body, "keepIO", True, where))
    if kind == "prune":
        _only(body, {"sparsity", "method"}, where)
        sparsity = _number(body, "sparsity", where, 0.0, 0.99)
        return Prune(0.5 if sparsity is None else sparsity, _choice(body, "method", ("magnitude",), where))
    if kind == "tensorrtPlan":
        _only(body, {"precision"}, where)
        return TensorrtPlan(_choice(body, "precision", ("fp16", "int8", "fp32"), where))
    raise SpecError(f"{where}: unknown transform (known: convert, quantize, float16, prune, tensorrtPlan)")


def _gate(value: Any) -> Gate:
    body = _mapping(value, "gate")
    _only(body, {"samples", "generated", "seed", "maxAbsDiff", "rmse", "top1Agreement"}, "gate")
    generated = body.get("generated", 64)
    if isinstance(generated, bool) or not isinstance(generated, int) or not 1 <= generated <= 100_000:
        raise SpecError(f"gate.generated: expected a count of rows from 1 to 100000, got {generated!r}")
    seed = body.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError(f"gate.seed: expected a non-negative integer, got {seed!r}")
    return Gate(
        samples=pinned(body["samples"], "gate.samples") if body.get("samples") else None,
        generated=generated,
        seed=seed,
        max_abs_diff=_number(body, "maxAbsDiff", "gate", 0.0, float("inf")),
        rmse=_number(body, "rmse", "gate", 0.0, float("inf")),
        top1_agreement=_number(body, "top1Agreement", "gate", 0.0, 1.0),
    )


def parse_spec(document: Any) -> BuildSpec:
    """``{transforms: [...], gate: {...}}`` as a :class:`BuildSpec`; SpecError on anything else."""
    body = _mapping(document, "spec")
    _only(body, {"transforms", "gate"}, "spec")
    items = body.get("transforms")
    if not isinstance(items, list) or not items:
        raise SpecError("transforms: expected a non-empty list")
    transforms = tuple(_transform(item, f"transforms[{i}]") for i, item in enumerate(items))
    for i, t in enumerate(transforms):
        if isinstance(t, Convert) and i:
            raise SpecError(f"transforms[{i}].convert: a conversion comes first (it changes the model's format)")
        if isinstance(t, TensorrtPlan) and i != len(transforms) - 1:
            raise SpecError(f"transforms[{i}].tensorrtPlan: a TensorRT plan is the last transform (nothing reads it)")
    return BuildSpec(transforms, _gate(body.get("gate")))
