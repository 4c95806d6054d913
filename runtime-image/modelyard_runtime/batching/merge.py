"""Merging requests into one batch and splitting the results back (pure: numpy only).

Each request carries the same named inputs with a leading batch dimension (its own batch size may be
larger than 1). ``merge`` concatenates along that dimension and records where each request's rows are;
``split`` cuts every output back at exactly those rows, so each caller gets what it would have got
alone. Requests whose non-batch dimensions or datatypes differ cannot share a batch; ``group_compatible``
keeps the queue's order while grouping them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Tensors = Mapping[str, npt.NDArray[np.generic]]
Signature = tuple[tuple[str, str, tuple[int, ...]], ...]  # names, dtypes and non-batch dimensions, sorted by name


class BatchError(ValueError):
    """Requests that cannot be merged, or outputs that cannot be split back."""


@dataclass(frozen=True)
class Batch:
    inputs: dict[str, npt.NDArray[np.generic]]
    offsets: tuple[int, ...]  # request i owns rows offsets[i]:offsets[i+1]

    @property
    def size(self) -> int:
        return self.offsets[-1]


def batch_size(request: Tensors) -> int:
    """The leading dimension shared by all inputs of one request."""
    sizes = {name: arr.shape[0] if arr.ndim else None for name, arr in request.items()}
    if not sizes or None in sizes.values():
        raise BatchError(f"every input needs a leading batch dimension: {sizes}")
    distinct = set(sizes.values())
    if len(distinct) != 1:
        raise BatchError(f"inputs disagree on the batch size: {sizes}")
    return int(distinct.pop())  # type: ignore[arg-type]


def signature(request: Tensors) -> Signature:
    """What must match for two requests to share a batch: names, dtypes, non-batch dimensions."""
    return tuple(sorted((name, arr.dtype.str, tuple(arr.shape[1:])) for name, arr in request.items()))


def group_compatible(
    requests: Sequence[Tensors],
    max_batch_size: int,
    signatures: Sequence[Signature] | None = None,
    sizes: Sequence[int] | None = None,
) -> list[list[int]]:
    """Indices of requests grouped into mergeable batches no larger than ``max_batch_size`` rows,
    in arrival order; a request at or above the limit forms a batch of its own. ``signatures`` and ``sizes``,
    when given, are each request's :func:`signature` and :func:`batch_size`, already computed."""
    groups: list[list[int]] = []
    open_groups: dict[Signature, tuple[list[int], int]] = {}
    for index, request in enumerate(requests):
        key = signatures[index] if signatures is not None else signature(request)
        rows = sizes[index] if sizes is not None else batch_size(request)
        if rows >= max_batch_size:  # too big to share: alone, without closing the open group
            groups.append([index])
            continue
        current = open_groups.get(key)
        if current is not None and current[1] + rows <= max_batch_size:
            current[0].append(index)
            open_groups[key] = (current[0], current[1] + rows)
            continue
        group = [index]
        groups.append(group)
        open_groups[key] = (group, rows)
    return groups


def merge(
    requests: Sequence[Tensors],
    out: Tensors | None = None,
    *,
    signature_of_all: Signature | None = None,
    sizes: Sequence[int] | None = None,
) -> Batch:
    """Concatenate compatible requests along the batch dimension.

    One request is passed through as it is (no copy). With ``out`` (one preallocated array per input, with at
    least as many rows as the batch; see :func:`allocate`) the rows are copied straight into its leading rows and
    the batch's inputs are views of them, so a batch costs one copy of each row and no allocation. A caller that
    grouped the requests with :func:`group_compatible` passes their common ``signature_of_all`` and ``sizes`` and
    skips checking them again.
    """
    if not requests:
        raise BatchError("nothing to merge")
    if signature_of_all is None:
        first = signature(requests[0])
        for i, request in enumerate(requests[1:], start=1):
            if signature(request) != first:
                raise BatchError(f"request {i} does not match request 0: {signature(request)} vs {first}")
    else:
        first = signature_of_all
    offsets = [0]
    for i, request in enumerate(requests):
        offsets.append(offsets[-1] + (sizes[i] if sizes is not None else batch_size(request)))
    if len(requests) == 1:
        return Batch(inputs=dict(requests[0]), offsets=tuple(offsets))
    names = [name for name, _, _ in first]
    if out is None:
        inputs = {name: np.concatenate([r[name] for r in requests], axis=0) for name in names}
        return Batch(inputs=inputs, offsets=tuple(offsets))
    rows = offsets[-1]
    inputs = {}
    for name, dtype, shape in first:
        buffer = out.get(name)
        if buffer is None or buffer.dtype.str != dtype or tuple(buffer.shape[1:]) != shape or len(buffer) < rows:
            found = None if buffer is None else (buffer.dtype.str, buffer.shape)
            raise BatchError(f"buffer for {name!r} cannot hold {rows} rows of {dtype} {shape}: {found}")
        inputs[name] = np.concatenate([r[name] for r in requests], axis=0, out=buffer[:rows])
    return Batch(inputs=inputs, offsets=tuple(offsets))


def allocate_for(key: Signature, rows: int) -> dict[str, npt.NDArray[np.generic]]:
    """Empty arrays for ``rows`` rows of requests with this :func:`signature` (for :func:`merge`'s ``out``)."""
    return {name: np.empty((rows, *shape), dtype=np.dtype(dtype)) for name, dtype, shape in key}


def shares_buffer(outputs: Tensors, buffers: Tensors) -> bool:
    """Whether an output may be a view of an input buffer (then the buffer must not be reused)."""
    return any(np.may_share_memory(o, b) for o in outputs.values() for b in buffers.values())


def split(batch: Batch, outputs: Tensors) -> list[dict[str, npt.NDArray[np.generic]]]:
    """Cut each output back into the rows of each request (views, no copies)."""
    for name, arr in outputs.items():
        if arr.ndim == 0 or arr.shape[0] != batch.size:
            raise BatchError(f"output {name!r} has shape {arr.shape}; expected {batch.size} rows")
    bounds = list(zip(batch.offsets[:-1], batch.offsets[1:], strict=True))
    return [{name: arr[start:end] for name, arr in outputs.items()} for start, end in bounds]
