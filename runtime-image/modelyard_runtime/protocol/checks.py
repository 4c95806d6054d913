"""Limits on what a request may declare, and its inputs checked against a model's signature (pure).

Every check here runs before anything is allocated for a tensor: a shape is a claim by the client, and the bytes
or values actually present bound what it may claim. What fails is the client's fault and says so in a
BadRequestError (HTTP 400, gRPC INVALID_ARGUMENT) that names the input and the rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from modelyard_runtime.errors import BadRequestError, UnsupportedFeatureError

SHARED_MEMORY = "shared-memory tensors are not supported; send tensors in the request (or as binary data)"
SEQUENCES = "sequence batching (sequence_id, sequence_start, sequence_end) is not supported; send stateless requests"

MAX_DIMS = 64  # what numpy (and Triton) allow
MAX_ELEMENTS = 2**40  # product of a shape's non-zero dimensions: far above any body, far below any overflow


class ShapeError(ValueError):
    """A shape that no tensor may have (a client error)."""


def checked_count(shape: Sequence[object]) -> int:
    """The element count of ``shape`` after checking it: integers (not booleans), none negative, at most
    MAX_DIMS of them, and at most MAX_ELEMENTS elements counting the non-zero dimensions only (so ``[0, 2**62]``,
    empty but impossible to lay out, is refused like ``[2**62, 2**62]``). Raises ShapeError."""
    if len(shape) > MAX_DIMS:
        raise ShapeError(f"shape has {len(shape)} dimensions; at most {MAX_DIMS} are allowed")
    count, span = 1, 1
    for dim in shape:
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ShapeError(f"shape must be a list of integers, got {list(shape)!r}"[:200])
        if dim < 0:
            raise ShapeError(f"shape {list(shape)} has a negative dimension")
        count *= dim
        span *= max(dim, 1)
        if span > MAX_ELEMENTS:
            raise ShapeError(f"shape {list(shape)} has more than {MAX_ELEMENTS} (2**40) elements")
    return count


def check_header_length(value: str | None) -> int | None:
    """``Inference-Header-Content-Length`` as a number of bytes: ASCII digits only (``int()`` would take '١٢')."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise BadRequestError(
            f"Inference-Header-Content-Length must be a decimal number of bytes (ASCII digits), got {shown!r}"
        )
    return int(value)


def check_supported(
    request_parameters: Mapping[str, object], tensor_parameters: Sequence[Mapping[str, object]]
) -> None:
    """UnsupportedFeatureError (HTTP 400, gRPC UNIMPLEMENTED) for requests that need a feature this server does not
    serve, rather than running them as if the feature did not matter: sequence parameters on the request, a
    shared-memory region on an input or requested output."""
    if any(request_parameters.get(key) for key in ("sequence_id", "sequence_start", "sequence_end")):
        raise UnsupportedFeatureError(SEQUENCES)
    if any("shared_memory_region" in params for params in tensor_parameters):
        raise UnsupportedFeatureError(SHARED_MEMORY)


class TensorSpec(Protocol):
    """What a model declares about one input (``modelyard_runtime.backends.TensorMeta`` has this shape)."""

    @property
    def name(self) -> str: ...

    @property
    def datatype(self) -> str: ...

    @property
    def shape(self) -> list[int]: ...

    @property
    def dim_names(self) -> tuple[str | None, ...]: ...


def check_inputs(
    model: str,
    specs: Sequence[TensorSpec],
    shapes: Mapping[str, Sequence[int]],
    datatypes: Mapping[str, str],
    max_batch_size: int = 0,
) -> None:
    """The request's inputs (their shapes and datatypes) against the model's: every input present and no other,
    each datatype and shape as declared, and dimensions the model names alike (``batch`` on A and on B) equal
    across inputs, so that no model ever sees inputs whose batch dimensions disagree."""
    expected = {s.name: s for s in specs}
    for name in shapes:
        if name not in expected:
            raise BadRequestError(f"model {model} has no input {name!r}; inputs: {', '.join(expected)}")
    named: dict[str, tuple[str, int]] = {}  # dimension name -> (first input that has it, its size there)
    for name, spec in expected.items():
        if name not in shapes:
            raise BadRequestError(f"missing input {name!r} for model {model}")
        if datatypes[name] != spec.datatype:
            raise BadRequestError(f"input {name!r} must be {spec.datatype}, got {datatypes[name]}")
        shape = list(shapes[name])
        if len(shape) != len(spec.shape) or any(e not in (-1, s) for e, s in zip(spec.shape, shape, strict=True)):
            raise BadRequestError(f"input {name!r} must have shape {spec.shape}, got {shape}")
        for dim_name, size in zip(spec.dim_names, shape, strict=False):
            if dim_name is None:
                continue
            first, first_size = named.setdefault(dim_name, (name, size))
            if first_size != size:
                raise BadRequestError(
                    f"inputs of model {model} disagree on dimension {dim_name!r}: "
                    f"{first!r} has {first_size}, {name!r} has {size}"
                )
    if max_batch_size > 0:
        rows = {shape[0] for shape in shapes.values() if len(shape)}
        if len(rows) > 1:
            raise BadRequestError(f"inputs of model {model} disagree on the batch size: {sorted(rows)}")
        if rows and (n := rows.pop()) > max_batch_size:
            raise BadRequestError(f"batch size {n} is above the model's max_batch_size {max_batch_size}")
