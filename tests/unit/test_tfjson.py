"""TensorFlow Serving's REST JSON (protocol.tfjson), pure: the request and response cases of TF Serving's own
``util/json_tensor_test.cc`` (same JSON in, same tensors or JSON out), and its error rules."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from modelyard_runtime.errors import BadRequestError
from modelyard_runtime.protocol import tfjson
from modelyard_runtime.protocol.tfjson import Format, build_predict_response, parse_predict

pytestmark = pytest.mark.unit


@dataclass
class Spec:
    name: str
    datatype: str
    shape: list[int]
    dim_names: tuple[str | None, ...] = ()


def specs(**datatypes: str) -> list[Spec]:
    return [Spec(name, datatype, []) for name, datatype in datatypes.items()]


def parse(body: str, **datatypes: str) -> tfjson.PredictRequest:
    return parse_predict(body.encode(), specs(**datatypes))


def test_single_unnamed_tensor_row() -> None:
    parsed = parse('{"instances": [[1,2],[3,4],[5,6]]}', default="INT32")
    assert parsed.format is Format.ROW
    np.testing.assert_array_equal(parsed.inputs["default"], np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int32))
    assert parsed.inputs["default"].dtype == np.int32
    assert parsed.datatypes == {"default": "INT32"}


def test_mixed_numbers_for_float_and_double() -> None:
    f = parse('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', default="FP32").inputs["default"]
    assert f.dtype == np.float32
    assert f.shape == (7,)
    np.testing.assert_allclose(f, [1, 2, 3, 4, 5.003, 0.007, 0], rtol=1e-6)
    d = parse('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', default="FP64").inputs["default"]
    assert d.dtype == np.float64
    assert d.tolist() == [1, 2, 3, 4, 0.662, 0, 0]


def test_signature_name_serving_default_and_absent_are_the_same() -> None:
    for body in ('{"signature_name": "serving_default", "instances": [[1,2]]}', '{"instances": [[1,2]]}'):
        assert parse(body, default="INT32").inputs["default"].shape == (1, 2)


def test_base64_scalars_and_lists() -> None:
    scalars = parse('{"instances": [ { "b64" : "aGVsbG8=" }, { "b64": "d29ybGQ=" } ]}', default="BYTES")
    assert scalars.inputs["default"].tolist() == [b"hello", b"world"]
    lists = parse('{"instances": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}', default="BYTES")
    assert lists.inputs["default"].shape == (2, 1)
    named = parse(
        '{"instances": [{"default": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}]}', default="BYTES"
    )
    assert named.inputs["default"].shape == (1, 2, 1)
    assert named.inputs["default"].reshape(-1).tolist() == [b"hello", b"world"]


def test_multiple_named_tensors_row_with_nan_and_infinity() -> None:
    body = """{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
         "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
         "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}
    ]}"""
    parsed = parse(body, int_tensor="INT32", str_tensor="BYTES", float_tensor="FP32", dbl_tensor="FP64")
    assert parsed.inputs["int_tensor"].shape == (2, 3, 2)
    assert parsed.inputs["int_tensor"].reshape(-1).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    assert parsed.inputs["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    f = parsed.inputs["float_tensor"]
    assert f.shape == (2, 2)
    assert f[0, 0] == 1
    assert np.isnan(f[0, 1])
    assert f[1, 1] == np.inf
    assert parsed.inputs["dbl_tensor"].shape == (2, 1)
    assert np.isnan(parsed.inputs["dbl_tensor"][0, 0])


def test_columnar_single_and_named() -> None:
    named = parse('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}', int_tensor="INT32")
    plain = parse('{"inputs": [[[1,2],[3,4],[5,6]]]}', int_tensor="INT32")
    for parsed in (named, plain):
        assert parsed.format is Format.COLUMNAR
        assert parsed.inputs["int_tensor"].shape == (1, 3, 2)
    body = """{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"],
                          "bin_tensor": {"b64": "aGVsbG8="}}}"""
    parsed = parse(body, int_tensor="INT32", str_tensor="BYTES", bin_tensor="BYTES")
    assert parsed.inputs["str_tensor"].tolist() == [b"foo", b"bar"]
    assert parsed.inputs["bin_tensor"].shape == ()
    assert parsed.inputs["bin_tensor"].item() == b"hello"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "document is empty"),
        ("instances = [1, 2]", "JSON Parse error"),
        ('{"signature_name": 5, "instances": [[1,2]]}', "must be a string value"),
        ('{"signature_name": "predict_images", "instances": [[1,2]]}', 'Serving signature name: "predict_images" not'),
        ('{"instances": [[1,2]], "inputs": [[1,2]]}', "only one of 'inputs' or 'instances'"),
        ('{"instances": [[1,2],[3,4],[5,6,7]]}', "item 2 of 'instances': shape [3], but item 0 has [2]"),
        ('{"instances": [[1,2],[3,4],[[5,6]]]}', "shape [1, 2], but item 0 has [2]"),
        ('{"instances": [1, [1]]}', "shape [1], but item 0 has []"),
        ('{"instances": [[1,2],["a", "b"]]}', "INT32 data must be integers"),
        ('{"instances": [[1,2],[3,4.5]]}', "INT32 data must be integers"),
        ('{"instances": []}', "no values in the 'instances' list"),
        ('{"instances": {"default": [1]}}', "'instances' must be a list"),
        ('{"other": 1}', "Missing 'inputs' or 'instances' key"),
        ("[1, 2]", "must be a JSON object"),
        ('{"instances": [{"b64": "aGVsbG8="}]}', "an object where DT_INT32 needs numbers"),
        ('{"instances": [[1, [2]]]}', "must be integers"),
        ('{"inputs": [[1, 2], [3]]}', "a list of 1 at level 2 where shape [2, 2] needs 2"),
        ('{"inputs": [[1, 2], 3]}', "a value at level 2 where shape [2, 2] needs a list"),
        ('{"instances": ' + "[" * 70 + "1" + "]" * 70 + "}", "nested deeper than 64 levels"),
        ('{"instances": ' + "[" * 5000 + "]" * 5000 + "}", "JSON Parse error"),
        ('{"instances": [NaN, ' + "[" * 5000 + "]" * 5000 + "]}", "nested too deeply"),
    ],
)
def test_single_unnamed_tensor_errors(body: str, message: str) -> None:
    with pytest.raises(BadRequestError) as exc:
        parse(body, default="INT32")
    assert message in exc.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},'
         ' {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]}', "every instance must have the same"),
        ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["foo", "bar"]},'
         ' {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"]}]}', "every instance must have the same"),
        ('{"instances": [{"int_tensor": [[1,2]], "str_tensor": ["foo"]}, [1, 20, 30]]}',
         "expecting an object but got a value or list at item 1"),
        ('{"instances": [[1, 2], [3, 4]]}', "'instances' is a plain list, but the model has 2 inputs"),
        ('{"instances": [{"int_tensor": [1]}]}', "must have exactly the keys int_tensor, str_tensor"),
        ('{"inputs": [1, 2]}', "'inputs' is a plain value or list, but the model has 2 inputs"),
        ('{"inputs": {"int_tensor": [1]}}', "Missing named input: str_tensor in 'inputs' object."),
        ('{"inputs": {"int_tensor": [1], "str_tensor": [{"b64": "!!"}]}}', "unable to base64 decode"),
        ('{"inputs": {"int_tensor": [1], "str_tensor": [{"b64": "aA==", "x": 1}]}}', 'not {"b64"'),
        ('{"inputs": {"int_tensor": [1], "str_tensor": [1]}}', "BYTES data must be strings"),
    ],
)  # fmt: skip
def test_multiple_named_tensor_errors(body: str, message: str) -> None:
    with pytest.raises(BadRequestError) as exc:
        parse(body, int_tensor="INT32", str_tensor="BYTES")
    assert message in exc.value.message


def test_value_list_then_object_is_refused() -> None:
    with pytest.raises(BadRequestError, match="expecting a value or list but got an object at item 1"):
        parse('{"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]}', str_tensor="BYTES")


def test_columnar_ignores_keys_the_model_does_not_take() -> None:
    parsed = parse('{"inputs": {"x": [1], "extra": "ignored"}}', x="INT32")
    assert list(parsed.inputs) == ["x"]


def respond(outputs: dict[str, np.ndarray], fmt: Format) -> object:
    return json.loads(build_predict_response(outputs, fmt))  # the standard library reads NaN and Infinity


INT_TENSOR = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2], dtype=np.int32).reshape(2, 3, 2)


def strings(*values: bytes, shape: tuple[int, ...]) -> np.ndarray:
    array = np.empty(len(values), dtype=np.object_)
    array[:] = list(values)
    return array.reshape(shape)


def test_from_json_single_tensor() -> None:
    assert respond({"int_tensor": INT_TENSOR}, Format.ROW) == {
        "predictions": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]
    }
    assert respond({"int_tensor": INT_TENSOR}, Format.COLUMNAR) == {
        "outputs": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]
    }
    five = np.arange(1, 6, dtype=np.int32)
    assert respond({"int_tensor": five}, Format.ROW) == {"predictions": [1, 2, 3, 4, 5]}
    assert respond({"int_tensor": five}, Format.COLUMNAR) == {"outputs": [1, 2, 3, 4, 5]}


def test_from_json_single_bytes_tensor() -> None:
    tensor = strings(b"hello", b"world", b"tf", b"serving", shape=(2, 2))
    assert respond({"str_tensor_bytes": tensor}, Format.ROW) == {
        "predictions": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]
    }
    assert respond({"str_tensor": tensor}, Format.ROW) == {"predictions": [["hello", "world"], ["tf", "serving"]]}


def test_floats_are_written_in_their_shortest_form() -> None:
    tensor = np.array([9000000, 999999, 0.5, 0.0003, 0.00003, 555557.5, 0.1], dtype=np.float32)
    body = build_predict_response({"float_tensor": tensor}, Format.COLUMNAR)
    assert body == b'{"outputs":[9000000.0,999999.0,0.5,0.0003,0.00003,555557.5,0.1]}'  # 0.1f, not 0.10000000149


def test_from_json_non_finite_floats() -> None:
    tensor = np.array([[np.nan, np.inf], [3, -np.inf]], dtype=np.float32)
    body = build_predict_response({"float_tensor": tensor}, Format.ROW)
    assert body == b'{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}'


def test_from_json_multiple_named_tensors() -> None:
    outputs = {
        "int_tensor": INT_TENSOR,
        "str_tensor": strings(b"foo", b"bar", b"baz", b"bat", shape=(2, 2)),
        "float_tensor": np.array([[1.0], [2.0]], dtype=np.float32),
        "double_scalar_tensor": np.array([8.0, 9.0]),
        "str_tensor_bytes": strings(b"hello", b"world", b"tf", b"serving", shape=(2, 2)),
    }
    assert respond(outputs, Format.ROW) == {"predictions": [
        {"double_scalar_tensor": 8.0, "float_tensor": [1.0], "int_tensor": [[1, 2], [3, 4], [5, 6]],
         "str_tensor": ["foo", "bar"], "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]},
        {"double_scalar_tensor": 9.0, "float_tensor": [2.0], "int_tensor": [[7, 8], [9, 0], [1, 2]],
         "str_tensor": ["baz", "bat"], "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]},
    ]}  # fmt: skip
    assert respond(outputs, Format.COLUMNAR) == {"outputs": {
        "double_scalar_tensor": [8.0, 9.0],
        "float_tensor": [[1.0], [2.0]],
        "int_tensor": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
        "str_tensor": [["foo", "bar"], ["baz", "bat"]],
        "str_tensor_bytes": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]],
    }}  # fmt: skip


def test_row_format_needs_one_batch_size() -> None:
    outputs = {"int_tensor": np.zeros((2, 3), np.int32), "str_tensor": strings(b"foo", b"bar", b"baz", shape=(1, 3))}
    with pytest.raises(BadRequestError, match="batch size 1, another output 2"):
        build_predict_response(outputs, Format.ROW)
    with pytest.raises(BadRequestError, match="no batch dimension"):
        build_predict_response({"s": np.float32(1.0) * np.ones((), np.float32)}, Format.ROW)
    assert respond({"s": np.ones((), np.float32), "b": np.array(True)}, Format.COLUMNAR) == {
        "outputs": {"s": 1.0, "b": True}
    }


def test_metadata_is_tf_servings_signature_def() -> None:
    x = Spec("x", "FP32", [-1, 1])
    doc = tfjson.model_metadata("m", "123", [x], [Spec("y", "FP16", [-1, 1], ("batch", None))])
    signature = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert doc["model_spec"] == {"name": "m", "signature_name": "", "version": "123"}
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert signature["inputs"]["x"] == {
        "dtype": "DT_FLOAT",
        "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}], "unknown_rank": False},
        "name": "x",
    }
    assert signature["outputs"]["y"]["dtype"] == "DT_HALF"
    assert signature["outputs"]["y"]["tensor_shape"]["dim"][0]["name"] == "batch"
    assert set(tfjson.TF_DTYPES.values()) >= {"DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_INT64", "DT_STRING", "DT_BOOL"}


@pytest.mark.parametrize(
    ("state", "reason", "tf_state", "code"),
    [
        ("READY", "", "AVAILABLE", "OK"),
        ("LOADING", "", "LOADING", "OK"),
        ("UNAVAILABLE", "", "START", "OK"),
        ("UNAVAILABLE", "unloaded", "END", "OK"),
        ("UNAVAILABLE", "evicted (least recently used)", "END", "OK"),
        ("UNAVAILABLE", "cannot load m version 1: bad file", "END", "UNKNOWN"),
    ],
)
def test_version_status(state: str, reason: str, tf_state: str, code: str) -> None:
    entry = tfjson.version_status("1", state, reason)
    assert entry["state"] == tf_state
    assert entry["status"]["error_code"] == code
    assert entry["status"]["error_message"] == ("" if code == "OK" else reason)
