"""The pure merge/split core of dynamic batching: every caller gets exactly its own rows back."""

from __future__ import annotations

import numpy as np
import pytest

from modelyard_runtime.batching.merge import (
    BatchError,
    allocate_for,
    batch_size,
    group_compatible,
    merge,
    shares_buffer,
    signature,
    split,
)


def request(rows: int, seed: int, width: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.random((rows, width)).astype(np.float32),
        "ids": rng.integers(0, 100, (rows, 2)).astype(np.int64),
    }


def model(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A row-wise function: batching must not change any row's result."""
    return {
        "score": inputs["x"].sum(axis=1, keepdims=True) + inputs["ids"][:, :1],
        "twice": inputs["x"] * 2,
    }


def test_merge_then_split_equals_running_each_alone() -> None:
    requests = [request(1, 1), request(3, 2), request(2, 3)]
    batch = merge(requests)
    assert batch.size == 6
    assert batch.offsets == (0, 1, 4, 6)
    parts = split(batch, model(batch.inputs))
    assert len(parts) == 3
    for req, part in zip(requests, parts, strict=True):
        alone = model(req)
        for name in alone:
            np.testing.assert_allclose(part[name], alone[name], rtol=1e-6)
            assert part[name].shape == alone[name].shape


def test_single_request_passes_through_without_copy() -> None:
    req = request(2, 4)
    batch = merge([req])
    assert batch.inputs["x"] is req["x"]


def test_mismatched_shapes_or_dtypes_do_not_merge() -> None:
    with pytest.raises(BatchError, match="does not match"):
        merge([request(1, 1, width=3), request(1, 2, width=4)])
    other = request(1, 3)
    other["x"] = other["x"].astype(np.float64)
    with pytest.raises(BatchError, match="does not match"):
        merge([request(1, 1), other])


def test_inputs_must_agree_on_batch_size() -> None:
    bad = {"x": np.zeros((2, 3), np.float32), "ids": np.zeros((3, 2), np.int64)}
    with pytest.raises(BatchError, match="disagree"):
        batch_size(bad)
    with pytest.raises(BatchError, match="leading batch dimension"):
        batch_size({"x": np.float32(1.0)})  # type: ignore[dict-item]


def test_split_rejects_outputs_with_the_wrong_row_count() -> None:
    batch = merge([request(1, 1), request(2, 2)])
    with pytest.raises(BatchError, match="expected 3 rows"):
        split(batch, {"score": np.zeros((2, 1))})


def test_grouping_respects_limit_order_and_compatibility() -> None:
    requests = [request(2, 1), request(2, 2), request(1, 3, width=5), request(3, 4), request(9, 5), request(1, 6)]
    groups = group_compatible(requests, max_batch_size=4)
    assert groups == [[0, 1], [2], [3, 5], [4]]
    for group in groups:
        merged = merge([requests[i] for i in group])
        assert merged.size <= 4 or len(group) == 1


def test_merge_into_a_preallocated_buffer_copies_rows_once_and_splits_into_views() -> None:
    requests = [request(1, 1), request(3, 2), request(2, 3)]
    key = signature(requests[0])
    buffers = allocate_for(key, rows=8)
    assert {name: (arr.shape, arr.dtype) for name, arr in buffers.items()} == {
        "x": ((8, 3), np.dtype(np.float32)),
        "ids": ((8, 2), np.dtype(np.int64)),
    }
    batch = merge(requests, buffers)
    for name in ("x", "ids"):
        assert np.shares_memory(batch.inputs[name], buffers[name])  # the batch is the buffer's leading rows
        np.testing.assert_array_equal(batch.inputs[name], np.concatenate([r[name] for r in requests]))
    outputs = model(batch.inputs)
    parts = split(batch, outputs)
    for req, part in zip(requests, parts, strict=True):
        for name, arr in part.items():
            assert arr.base is outputs[name]  # a view, not a copy
            np.testing.assert_allclose(arr, model(req)[name], rtol=1e-6)
    assert not shares_buffer(outputs, buffers)
    assert shares_buffer({"same": batch.inputs["x"][:1]}, buffers)  # an output that is a view of the input


def test_merge_with_a_precomputed_signature_gives_the_same_batch() -> None:
    requests = [request(1, 1), request(2, 2)]
    checked = merge(requests)
    trusted = merge(requests, signature_of_all=signature(requests[0]), sizes=[1, 2])
    assert trusted.offsets == checked.offsets == (0, 1, 3)
    for name in checked.inputs:
        np.testing.assert_array_equal(trusted.inputs[name], checked.inputs[name])
    keys = [signature(r) for r in requests]
    assert group_compatible(requests, 4, keys, [1, 2]) == group_compatible(requests, 4) == [[0, 1]]


def test_a_buffer_that_cannot_hold_the_batch_is_refused() -> None:
    requests = [request(3, 1), request(3, 2)]
    with pytest.raises(BatchError, match="cannot hold 6 rows"):
        merge(requests, allocate_for(signature(requests[0]), rows=4))
    with pytest.raises(BatchError, match="cannot hold"):
        merge(requests, allocate_for(signature(request(1, 1, width=5)), rows=8))
    with pytest.raises(BatchError, match="cannot hold"):
        merge(requests, {"x": np.empty((8, 3), np.float32)})  # no buffer for "ids"
