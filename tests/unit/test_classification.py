"""The classification extension and the JSON rule for NaN and infinities (pure)."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from modelyard_runtime.errors import BadRequestError, UnsupportedFeatureError
from modelyard_runtime.protocol.checks import check_supported
from modelyard_runtime.protocol.classification import class_count, classify
from modelyard_runtime.protocol.rest import RequestedOutput, build_infer_response, parse_infer_request


def test_top_classes_per_batch_row_with_labels() -> None:
    scores = np.array([[1, 5, 10, 4], [3, 2, 1, 0]], np.float32)
    out = classify(scores, 2, batched=True, labels=["a", "b", "c"])
    assert out.tolist() == [[b"10.000000:2:c", b"5.000000:1:b"], [b"3.000000:0:a", b"2.000000:1:b"]]


def test_without_batching_the_whole_tensor_is_one_row_and_the_count_is_clamped() -> None:
    out = classify(np.array([[1, 5], [10, 4]], np.int32), 9, batched=False)
    assert out.shape == (4,)
    assert out.tolist() == [b"10:2", b"5:1", b"4:3", b"1:0"]  # integers as they are; indexes flat in the row


def test_ties_keep_the_lower_index_and_nan_sorts_last() -> None:
    out = classify(np.array([[np.nan, 2, 2, 1]], np.float32), 4, batched=True)
    assert [v.split(b":")[1] for v in out[0]] == [b"1", b"2", b"3", b"0"]


@pytest.mark.parametrize("value", [-1, 1.5, "3", True, None, 2**31])
def test_class_count_must_be_a_non_negative_integer(value: object) -> None:
    with pytest.raises(BadRequestError, match="classification must be a non-negative integer"):
        class_count(value, "probs")


def test_classify_refuses_non_numeric_outputs() -> None:
    with pytest.raises(BadRequestError, match="classification needs a numeric output"):
        classify(np.array([b"x"], dtype=np.object_), 1, batched=False, output="s")


def test_http_request_carries_the_class_count() -> None:
    wanted = {"name": "Y", "parameters": {"classification": 3, "binary_data": True}}
    body = orjson.dumps(
        {"inputs": [{"name": "A", "datatype": "INT32", "shape": [1], "data": [1]}], "outputs": [wanted]}
    )
    parsed = parse_infer_request(body, None)
    assert parsed.outputs == [RequestedOutput("Y", True, 3)]


def test_non_finite_json_outputs_are_written_as_tokens_that_python_json_reads_back() -> None:
    request = parse_infer_request(b'{"inputs": []}', None)
    outputs = {"Y": np.array([np.nan, np.inf, -np.inf, 1.5], np.float32), "S": np.array([b"NaN"], dtype=np.object_)}
    body, binary = build_infer_response("m", "1", request, outputs)
    assert binary is None
    assert b'"data":[NaN,Infinity,-Infinity,1.5]' in body
    doc = json.loads(body)  # the dialect tritonclient's parser reads too
    y = np.array(doc["outputs"][0]["data"], np.float32)
    assert np.isnan(y[0])
    assert y[1:].tolist() == [np.inf, -np.inf, 1.5]
    assert doc["outputs"][1]["data"] == ["NaN"]  # a string stays a string


def test_finite_outputs_stay_strict_json() -> None:
    request = parse_infer_request(b'{"inputs": []}', None)
    body, _ = build_infer_response("m", "1", request, {"Y": np.array([1.0, 2.0], np.float32)})
    assert orjson.loads(body)["outputs"][0]["data"] == [1.0, 2.0]


def test_nan_in_a_json_request_says_to_send_binary_data() -> None:
    body = b'{"inputs": [{"name": "A", "datatype": "FP32", "shape": [1], "data": [NaN]}]}'
    with pytest.raises(BadRequestError, match="send such a tensor as binary data"):
        parse_infer_request(body, None)


@pytest.mark.parametrize(
    ("params", "tensors", "match"),
    [({"sequence_id": 7}, [], "sequence batching"), ({"sequence_start": True}, [], "sequence batching"),
     ({}, [{"shared_memory_region": "r"}], "shared-memory tensors are not supported")],
)  # fmt: skip
def test_unsupported_features_are_refused(
    params: dict[str, object], tensors: list[dict[str, object]], match: str
) -> None:
    with pytest.raises(UnsupportedFeatureError, match=match):
        check_supported(params, tensors)
    check_supported({"sequence_id": 0, "priority": 1}, [{"binary_data_size": 4}])  # none of them: nothing raised
