"""Triton's classification extension (pure): an output asked for with ``class_count`` N comes back as its top N
classes, each the BYTES string ``"<value>:<index>[:<label>]"``.

Over HTTP the request asks with ``outputs[i].parameters.classification: N``; over gRPC with the output's
``parameters["classification"].int64_param``; tritonclient sets both from ``InferRequestedOutput(name,
class_count=N)``. The top N are the N highest values of each batch row (the whole tensor without batching), highest
first, ties by the lower index; ``<index>`` is the flat index within the row and ``<label>`` line ``<index>`` of the
output's labels file when it has one. The result has shape ``[batch, N]`` (``[N]`` without batching), N clamped to
the number of classes. Floats are written with six decimals, as Triton writes them; integers as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.errors import BadRequestError

MAX_CLASS_COUNT = 2**31 - 1


def class_count(value: Any, output: str) -> int:
    """A requested ``classification`` parameter, checked: a non-negative integer (0: no classification)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CLASS_COUNT:
        raise BadRequestError(f"output {output!r}: classification must be a non-negative integer, got {value!r}"[:300])
    return value


def _text(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):f}"
    return str(value)


def classify(
    array: npt.NDArray[Any], count: int, *, batched: bool, labels: Sequence[str] = (), output: str = ""
) -> npt.NDArray[np.object_]:
    """The top ``count`` classes of ``array`` as BYTES strings (see the module docstring)."""
    if array.dtype.kind not in "biuf":
        raise BadRequestError(f"output {output!r} is not numeric: classification needs a numeric output")
    rows = array.reshape(array.shape[0], -1) if batched and array.ndim else array.reshape(1, -1)
    n = min(count, rows.shape[1])
    result = np.empty((rows.shape[0], n), dtype=np.object_)
    for r, row in enumerate(rows):
        order = np.argsort(-row.astype(np.float64), kind="stable")[:n]  # NaN sorts last
        for k, index in enumerate(order):
            text = f"{_text(row[index].item())}:{int(index)}"
            if int(index) < len(labels):
                text += f":{labels[int(index)]}"
            result[r, k] = text.encode()
    return result if batched and array.ndim else result.reshape(n)
