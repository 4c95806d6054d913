"""TensorFlow Serving's REST API on a real ``modelyard-server`` process, request by request against TF Serving's
documented examples: the exact requests of its ``g3doc/api_rest.md`` and ``g3doc/docker.md`` (the
``half_plus_three`` and ``half_plus_two`` models: y = 0.5x + 3, y = 0.5x + 2, as ONNX), of its REST handler's tests
(``model_servers/http_rest_api_handler_test.cc``) and of its JSON tests (``util/json_tensor_test.cc``), each
compared with the documented response (JSON compared as values: whitespace and key order aside).

Where the ONNX model differs from TF Serving's SavedModel it is said next to the case: each model here has the one
signature ``serving_default`` (TF Serving's test model also has classify and regress signatures), and one ONNX model
has one input rank (TF Serving's ``x`` takes any shape), so the handler test's 1-D and 2-D requests go to two
models of the same function.
"""

from __future__ import annotations

import base64
import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto

from ..serving import Server, run_server
from ..tfmodels import constant_outputs, half_plus, identities, tag_signal_sensor

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("tfserving")
    half_plus(repo / "saved_model_half_plus_three" / "123" / "model.onnx", 3.0)  # api_rest.md's example
    half_plus(repo / "half_plus_two" / "123" / "model.onnx", 2.0)  # docker.md's example
    half_plus(repo / "saved_model_half_plus_two_2_versions" / "123" / "model.onnx", 2.0, (None, 1))  # handler test
    half_plus(repo / "half_plus_two_matrix" / "123" / "model.onnx", 2.0, (None, None))
    for version in ("1", "2", "10"):
        half_plus(repo / "versions" / version / "model.onnx", float(version))
    tag_signal_sensor(repo / "tag_signal_sensor" / "1" / "model.onnx")
    constant_outputs(repo / "constants" / "1" / "model.onnx")
    identities(repo / "strings" / "1" / "model.onnx", {"str_tensor": (TensorProto.STRING, (None, None))}, "_bytes")
    identities(repo / "b64" / "1" / "model.onnx", {"default": (TensorProto.STRING, (None,))}, "_bytes")
    string_tensors = {
        "int_tensor": (TensorProto.INT32, (None, 3, 2)),
        "str_tensor": (TensorProto.STRING, (None,)),
        "bin_tensor": (TensorProto.STRING, ()),
    }
    identities(repo / "columnar" / "1" / "model.onnx", string_tensors)
    row_tensors = {
        "int_tensor": (TensorProto.INT32, (None, 3, 2)),
        "str_tensor": (TensorProto.STRING, (None, 2)),
        "float_tensor": (TensorProto.FLOAT, (None, 2)),
        "dbl_tensor": (TensorProto.DOUBLE, (None, 1)),
    }
    identities(repo / "rows" / "1" / "model.onnx", row_tensors)
    with run_server(repo, env={"MODELYARD_MAX_BODY_BYTES": "1Mi"}) as s:
        yield s


def call(
    server: Server, path: str, body: str | bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    """(status, JSON body read as Python's json reads it (NaN and Infinity included), Content-Type)."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(
        f"http://{server.http}{path}", data=data, method="GET" if data is None else "POST", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), response.headers["Content-Type"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), exc.headers["Content-Type"]


def same(actual: Any, documented: str) -> None:
    """JSON equal as values; NaN equal to NaN (compared through the standard library's canonical dump)."""
    assert json.dumps(actual, sort_keys=True) == json.dumps(json.loads(documented), sort_keys=True)


# --- api_rest.md, "Example" (the half_plus_three model, version 123) -----------------------------------------------


def test_api_rest_example_status(server: Server) -> None:
    status, doc, content_type = call(server, "/v1/models/saved_model_half_plus_three")
    assert status == 200
    assert content_type.startswith("application/json")
    same(
        doc,
        """{
     "model_version_status": [
      {
       "version": "123",
       "state": "AVAILABLE",
       "status": {
        "error_code": "OK",
        "error_message": ""
       }
      }
     ]
    }""",
    )


def test_api_rest_example_predict(server: Server) -> None:
    status, doc, _ = call(server, "/v1/models/saved_model_half_plus_three:predict", '{"instances": [1.0,2.0,5.0]}')
    assert status == 200
    same(doc, '{"predictions": [3.5, 4.0, 5.5]}')


def test_api_rest_example_unknown_model(server: Server) -> None:
    status, doc, content_type = call(server, "/v1/models/half:predict", '{"instances": [1.0,5.0]}')
    assert (status, content_type.split(";")[0]) == (404, "application/json")
    same(doc, '{ "error": "Servable not found for request: Latest(half)" }')


def test_api_rest_example_regress_is_refused_with_tf_servings_error_shape(server: Server) -> None:
    # documented: {"results": [3.5, 4.0]} from the SavedModel's regress signature; no model here has one
    body = '{"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}'
    for method in ("regress", "classify"):
        status, doc, _ = call(server, f"/v1/models/saved_model_half_plus_three:{method}", body)
        assert status == 400
        assert set(doc) == {"error"}
        assert f":{method} needs a {method} signature" in doc["error"]
        assert "use :predict" in doc["error"]
    assert call(server, "/v1/models/nope:classify", body)[:2] == (
        404,
        {"error": "Servable not found for request: Latest(nope)"},
    )


# --- docker.md (the half_plus_two model) ------------------------------------------------------------------------


def test_docker_example_predict(server: Server) -> None:
    status, doc, _ = call(server, "/v1/models/half_plus_two:predict", '{"instances": [1.0, 2.0, 5.0]}')
    assert status == 200
    same(doc, '{ "predictions": [2.5, 3.0, 4.5] }')


# --- http_rest_api_handler_test.cc (saved_model_half_plus_two_2_versions, version 123) ------------------------------


@pytest.mark.parametrize(
    ("path", "body", "documented"),
    [
        ("/v1/models/half_plus_two_matrix:predict", '{"instances": [[1.0, 2.0], [3.0, 4.0]]}',
         '{ "predictions": [[2.5, 3.0], [3.5, 4.0]] }'),
        ("/v1/models/half_plus_two/versions/123:predict", '{"instances": [1.0, 2.0]}', '{ "predictions": [2.5, 3.0] }'),
        ("/v1/models/half_plus_two/versions/123:predict",
         '{"signature_name": "serving_default", "instances": [3.0, 4.0]}', '{ "predictions": [3.5, 4.0] }'),
        ("/v1/models/half_plus_two/versions/123:predict",
         '{"signature_name": "serving_default", "inputs": [3.0, 4.0]}', '{ "outputs": [3.5, 4.0] }'),
    ],
)  # fmt: skip
def test_handler_predict(server: Server, path: str, body: str, documented: str) -> None:
    status, doc, content_type = call(server, path, body)
    assert status == 200
    assert content_type.split(";")[0] == "application/json"
    same(doc, documented)


def test_handler_get_status(server: Server) -> None:
    documented = """{"model_version_status": [{"version": "123", "state": "AVAILABLE",
                     "status": {"error_code": "OK", "error_message": ""}}]}"""
    for path in ("/v1/models/saved_model_half_plus_two_2_versions",
                 "/v1/models/saved_model_half_plus_two_2_versions/versions/123"):  # fmt: skip
        status, doc, _ = call(server, path)
        assert status == 200
        same(doc, documented)


def test_status_lists_every_version_highest_first(server: Server) -> None:
    status, doc, _ = call(server, "/v1/models/versions")
    assert status == 200
    assert [(v["version"], v["state"]) for v in doc["model_version_status"]] == [
        ("10", "AVAILABLE"), ("2", "AVAILABLE"), ("1", "AVAILABLE"),
    ]  # fmt: skip
    assert call(server, "/v1/models/versions:predict", '{"instances": [2.0]}')[1] == {"predictions": [11.0]}  # latest
    assert call(server, "/v1/models/versions/versions/2:predict", '{"instances": [2.0]}')[1] == {"predictions": [3.0]}
    assert call(server, "/v1/models/versions/versions/7") [:2] == (
        404, {"error": "Could not find version 7 of model versions"},
    )  # fmt: skip
    assert call(server, "/v1/models/nope")[:2] == (404, {"error": "Could not find any versions of model nope"})


def test_handler_get_model_metadata(server: Server) -> None:
    """saved_model_half_plus_two_2_versions_metadata.json, TF Serving's expected answer: its serving_default
    signature (the other five are classify/regress signatures of the SavedModel, which an ONNX model has not; the
    tensor names are the graph's, ``x:0`` in TensorFlow, ``x`` in ONNX)."""
    documented = """{
     "model_spec": {"name": "saved_model_half_plus_two_2_versions", "signature_name": "", "version": "123"},
     "metadata": {"signature_def": {"signature_def": {
      "serving_default": {
       "inputs": {"x": {"dtype": "DT_FLOAT",
                        "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
                                         "unknown_rank": false},
                        "name": "x:0"}},
       "outputs": {"y": {"dtype": "DT_FLOAT",
                         "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}],
                                          "unknown_rank": false},
                         "name": "y:0"}},
       "method_name": "tensorflow/serving/predict",
       "defaults": {}
      }}}}
    }"""
    expected = json.loads(documented)
    signature = expected["metadata"]["signature_def"]["signature_def"]["serving_default"]
    signature["inputs"]["x"]["name"], signature["outputs"]["y"]["name"] = "x", "y"
    for path in ("/v1/models/saved_model_half_plus_two_2_versions/metadata",
                 "/v1/models/saved_model_half_plus_two_2_versions/versions/123/metadata"):  # fmt: skip
        status, doc, _ = call(server, path)
        assert (status, doc) == (200, expected)
    assert call(server, "/v1/models/nope/metadata")[:2] == (
        404,
        {"error": "Servable not found for request: Latest(nope)"},
    )


@pytest.mark.parametrize(
    ("path", "body", "code", "message"),
    [
        ("/v1/models/foo:predict", '{ "instances": [1] }', 404, "Servable not found for request: Latest(foo)"),
        ("/v1/models/foo/versions/50:predict", '{ "instances": [1] }', 404,
         "Servable not found for request: Specific(foo, 50)"),
        ("/v1/models/half_plus_two/versions/99:predict", '{ "instances": [1] }', 404,
         "Servable not found for request: Specific(half_plus_two, 99)"),
        ("/v1/models/half_plus_two:predict", "", 400, "JSON Parse error: The document is empty"),
        ("/v1/models/half_plus_two:predict", "instances = [1, 2]", 400, "JSON Parse error"),
        ("/v1/models/half_plus_two:predict", '{ "instances": ["x", "y"] }', 400, "FP32 data must be numbers"),
        ("/v1/models/half_plus_two/labels/nonexistent:predict", '{ "instances": ["x", "y"] }', 400,
         "Unrecognized servable version label: nonexistent"),
        ("/v1/models/half_plus_two:predict", '{ "signature_name": 100 }', 400,
         "'signature_name' key must be a string value."),
        ("/v1/models/half_plus_two:predict", '{"signature_name": "other", "instances": [1.0]}', 400,
         'Serving signature name: "other" not found in signature def'),
    ],
)  # fmt: skip
def test_handler_predict_errors(server: Server, path: str, body: str, code: int, message: str) -> None:
    status, doc, content_type = call(server, path, body)
    assert (status, content_type.split(";")[0], set(doc)) == (code, "application/json", {"error"})
    assert message in doc["error"]


def test_labels_are_refused_on_every_route(server: Server) -> None:
    for path in ("/v1/models/half_plus_two/labels/stable", "/v1/models/half_plus_two/labels/stable/metadata"):
        status, doc, _ = call(server, path)
        assert status == 400
        assert doc["error"].startswith("Unrecognized servable version label: stable")


# --- json_tensor_test.cc: its request and response tensors, through a model ---------------------------------------


def test_json_tensor_multiple_named_tensor_row_format_with_nan(server: Server) -> None:
    body = """{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
         "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
         "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}
    ]}"""
    status, doc, _ = call(server, "/v1/models/rows:predict", body)
    assert status == 200
    same(
        doc,
        """{"predictions": [
        {"int_tensor_out": [[1,2],[3,4],[5,6]], "str_tensor_out": ["foo", "bar"], "float_tensor_out": [1.0, NaN],
         "dbl_tensor_out": [NaN]},
        {"int_tensor_out": [[7,8],[9,0],[1,2]], "str_tensor_out": ["baz", "bat"], "float_tensor_out": [2.0, Infinity],
         "dbl_tensor_out": [2.0]}]}""",
    )


def test_json_tensor_multiple_named_tensor_columnar_format(server: Server) -> None:
    body = """{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"],
                          "bin_tensor": { "b64" : "aGVsbG8=" }}}"""
    status, doc, _ = call(server, "/v1/models/columnar:predict", body)
    assert status == 200
    same(
        doc,
        """{"outputs": {"int_tensor_out": [[[1,2],[3,4],[5,6]]], "str_tensor_out": ["foo", "bar"],
                              "bin_tensor_out": "hello"}}""",
    )


def test_json_tensor_from_json_multiple_named_tensors(server: Server) -> None:
    """FromJsonMultipleNamedTensors' expected JSON, both formats: the model's outputs are its tensors."""
    status, doc, _ = call(server, "/v1/models/constants:predict", '{"instances": [0.0]}')
    assert status == 200
    same(
        doc,
        """{
    "predictions": [
      {
        "double_scalar_tensor": 8.0,
        "float_tensor": [1.0],
        "int_tensor": [[1, 2], [3, 4], [5, 6]],
        "str_tensor": ["foo", "bar"],
        "str_tensor_bytes": [ {"b64": "aGVsbG8="}, {"b64": "d29ybGQ="} ]
      },
      {
        "double_scalar_tensor": 9.0,
        "float_tensor": [2.0],
        "int_tensor": [[7, 8], [9, 0], [1, 2]],
        "str_tensor": ["baz", "bat"],
        "str_tensor_bytes": [ {"b64": "dGY="}, {"b64": "c2VydmluZw=="} ]
      }
    ]}""",
    )
    status, doc, _ = call(server, "/v1/models/constants:predict", '{"inputs": [0.0]}')
    assert status == 200
    same(
        doc,
        """{
    "outputs": {
      "double_scalar_tensor": [8.0, 9.0],
      "float_tensor": [[1.0], [2.0]],
      "int_tensor": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
      "str_tensor": [["foo", "bar"], ["baz", "bat"]],
      "str_tensor_bytes": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                           [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]
    }}""",
    )


def test_json_tensor_bytes(server: Server) -> None:
    """FromJsonSingleBytesTensor's expected JSON; the base64 requests of SingleUnnamedTensorBase64Scalars/Lists."""
    status, doc, _ = call(
        server, "/v1/models/strings:predict", '{"instances": [["hello", "world"], ["tf", "serving"]]}'
    )
    assert status == 200
    same(
        doc,
        """{
    "predictions": [
      [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
      [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]
    ]}""",
    )
    body = '{"instances": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}'
    same(call(server, "/v1/models/strings:predict", body)[1],
         '{"predictions": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}')  # fmt: skip
    body = '{"instances": [ { "b64" : "aGVsbG8=" }, { "b64": "d29ybGQ=" } ]}'
    same(call(server, "/v1/models/b64:predict", body)[1], '{"predictions": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}')
    encoded = base64.b64encode("h\u00e9llo\u0000w\u00f6rld \u2713".encode()).decode()  # base64 both ways
    status, doc, _ = call(server, "/v1/models/b64:predict", json.dumps({"inputs": [{"b64": encoded}]}))
    assert (status, doc) == (200, {"outputs": [{"b64": encoded}]})


# --- api_rest.md, "Specifying input tensors": several named inputs, row and columnar ------------------------------


ROW = """{
 "instances": [
   {
     "tag": "foo",
     "signal": [1, 2, 3, 4, 5],
     "sensor": [[1, 2], [3, 4]]
   },
   {
     "tag": "bar",
     "signal": [3, 4, 1, 2, 5],
     "sensor": [[4, 5], [6, 8]]
   }
 ]
}"""  # the documented request, less its typo (a stray "]" after bar's signal, which no JSON parser takes)
COLUMNAR = """{
 "inputs": {
   "tag": ["foo", "bar"],
   "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
   "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]
 }
}"""


def test_api_rest_named_inputs_row_and_columnar(server: Server) -> None:
    status, row, _ = call(server, "/v1/models/tag_signal_sensor:predict", ROW)
    assert status == 200
    assert row == {"predictions": [
        {"tag_bytes": {"b64": "Zm9v"}, "signal_twice": [2, 4, 6, 8, 10], "sensor_out": [[1, 2], [3, 4]]},
        {"tag_bytes": {"b64": "YmFy"}, "signal_twice": [6, 8, 2, 4, 10], "sensor_out": [[4, 5], [6, 8]]},
    ]}  # fmt: skip
    status, columnar, _ = call(server, "/v1/models/tag_signal_sensor:predict", COLUMNAR)
    assert status == 200
    assert columnar == {"outputs": {
        "tag_bytes": [{"b64": "Zm9v"}, {"b64": "YmFy"}],
        "signal_twice": [[2, 4, 6, 8, 10], [6, 8, 2, 4, 10]],
        "sensor_out": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
    }}  # fmt: skip
    typo = ROW.replace('"signal": [3, 4, 1, 2, 5],', '"signal": [3, 4, 1, 2, 5]],')
    status, doc, _ = call(server, "/v1/models/tag_signal_sensor:predict", typo)
    assert status == 400
    assert doc["error"].startswith("JSON Parse error")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"instances": [{"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},'
         ' {"tag": "bar", "signal": [3, 4, 1, 2], "sensor": [[4, 5], [6, 8]]}]}',
         "item 1 of 'instances', input 'signal': shape [4], but item 0 has [5]"),
        ('{"instances": [[1, 2, 3, 4, 5]]}', "'instances' is a plain list, but the model has 3 inputs"),
        ('{"inputs": {"tag": ["foo", "bar"], "signal": [[1, 2, 3, 4, 5]], "sensor": [[[1, 2], [3, 4]]]}}',
         "disagree"),
        ('{"inputs": {"tag": ["foo"], "signal": [[1, 2, 3, 4, 5]]}}', "Missing named input: sensor"),
    ],
)  # fmt: skip
def test_unequal_batches_and_missing_inputs_are_refused(server: Server, body: str, message: str) -> None:
    status, doc, _ = call(server, "/v1/models/tag_signal_sensor:predict", body)
    assert status == 400, doc
    assert message in doc["error"]


# --- the same limits, data plane and metrics as the Open Inference Protocol --------------------------------------


def test_same_model_same_answer_over_both_apis(server: Server) -> None:
    x = np.array([1.0, 2.0, 5.0], dtype=np.float32)
    client = httpclient.InferenceServerClient(server.http)
    tensor = httpclient.InferInput("x", [3], "FP32")
    tensor.set_data_from_numpy(x)
    oip = client.infer("half_plus_two", [tensor]).as_numpy("y")
    tf = call(server, "/v1/models/half_plus_two:predict", json.dumps({"instances": x.tolist()}))[1]["predictions"]
    assert oip.tolist() == tf == [2.5, 3.0, 4.5]


def test_limits_and_hardening(server: Server) -> None:
    big = '{"instances": [' + ",".join(["1.0"] * 300_000) + "]}"  # > 1 MiB
    status, doc, _ = call(server, "/v1/models/half_plus_two:predict", big)
    assert status == 413
    assert "too large" in doc["error"]
    status, doc, _ = call(server, "/v1/models/half_plus_two:predict", gzip.compress(big.encode()),
                          {"Content-Encoding": "gzip"})  # fmt: skip
    assert status == 413
    assert "once gzip-decoded" in doc["error"]
    deep = '{"instances": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert call(server, "/v1/models/half_plus_two:predict", deep)[0] == 400
    deep_nan = '{"instances": [NaN, ' + "[" * 100_000 + "]" * 100_000 + "]}"
    assert call(server, "/v1/models/half_plus_two:predict", deep_nan)[0] == 400
    status, doc, _ = call(server, "/v1/models/half_plus_two:predict", '{"instances": [1e400]}')
    assert status == 400
    status, doc, _ = call(server, "/v1/models/half_plus_two:predict", '{"instances": [[1.0]]}')
    assert status == 400
    assert "must have shape [-1]" in doc["error"]


def test_counted_with_protocol_tfserving(server: Server) -> None:
    def count(code: str, model: str = "half_plus_two_matrix") -> float:
        with urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10) as response:
            text = response.read().decode()
        for line in text.splitlines():
            if (
                line.startswith("modelyard_inference_requests_total{")
                and f'code="{code}"' in line
                and (f'model="{model}"' in line and 'protocol="tfserving"' in line)
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before_ok, before_bad, before_unknown = count("200"), count("400"), count("404", "(unknown)")
    assert call(server, "/v1/models/half_plus_two_matrix:predict", '{"instances": [[1.0]]}')[0] == 200
    assert call(server, "/v1/models/half_plus_two_matrix:predict", '{"instances": [1.0, [1.0]]}')[0] == 400
    assert call(server, "/v1/models/no_such_model:predict", '{"instances": [1.0]}')[0] == 404
    assert (count("200"), count("400"), count("404", "(unknown)")) == (
        before_ok + 1, before_bad + 1, before_unknown + 1,
    )  # fmt: skip
