"""Conformance with Triton's own Python example clients (its client repository's ``src/python/examples``).

Each test makes the calls one example makes, with the real ``tritonclient`` against a real ``modelyard-server``
process serving ONNX equivalents of Triton's example models (``simple``, ``simple_string``, ``simple_identity``,
``simple_int8``, an image classifier with a labels file). The examples themselves are not vendored; the test names
say which example each one mirrors. Features docs/server.md lists as unsupported (shared memory, sequences,
streaming) must fail with a message that says so.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Iterator
from functools import partial
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.model_config_pb2 as mc
import tritonclient.http as httpclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from ..models import image_classifier, non_finite, triton_identity, triton_simple, triton_simple_string
from ..serving import Server, run_server

LABELS = ["red", "green", "blue", "dark red", "dark green"]
IN0 = np.arange(16, dtype=np.int32).reshape(1, 16)
IN1 = np.ones((1, 16), dtype=np.int32)
Client = Any  # tritonclient.http or tritonclient.grpc InferenceServerClient


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("triton-examples")
    batched = "max_batch_size: 8\n"
    triton_simple(repo / "simple" / "1" / "model.onnx")
    (repo / "simple" / "config.yaml").write_text(batched)
    triton_simple(repo / "simple_int8" / "1" / "model.onnx", "INT8")
    (repo / "simple_int8" / "config.yaml").write_text(batched)
    triton_simple_string(repo / "simple_string" / "1" / "model.onnx")
    (repo / "simple_string" / "config.yaml").write_text(batched + "warmup: false\n")  # "" is no number
    triton_identity(repo / "simple_identity" / "1" / "model.onnx")
    (repo / "simple_identity" / "config.yaml").write_text(batched)
    image_classifier(repo / "image" / "1" / "model.onnx")
    (repo / "image" / "1" / "labels.txt").write_text("\n".join(LABELS) + "\n")  # in the version folder
    (repo / "image" / "config.yaml").write_text(
        "max_batch_size: 4\ninputs:\n  data: {format: FORMAT_NCHW}\noutputs:\n  probs: {label_filename: labels.txt}\n"
    )
    image_classifier(repo / "image_nhwc" / "1" / "model.onnx", nhwc=True, batch=False)
    (repo / "image_nhwc" / "labels.txt").write_text("\n".join(LABELS) + "\n")  # in the model folder
    (repo / "image_nhwc" / "config.yaml").write_text(
        "inputs:\n  data: {format: FORMAT_NHWC}\noutputs:\n  probs: {label_filename: labels.txt}\n"
    )
    non_finite(repo / "div" / "1" / "model.onnx")
    with run_server(repo) as s:
        yield s


def client_for(server: Server, protocol: str, **kw: Any) -> Client:
    if protocol == "http":
        return httpclient.InferenceServerClient(server.http, **kw)
    return grpcclient.InferenceServerClient(server.grpc, **kw)


def module(protocol: str) -> Any:
    return httpclient if protocol == "http" else grpcclient


PROTOCOLS = pytest.mark.parametrize("protocol", ["http", "grpc"])


def completion(done: queue.Queue[tuple[Any, Any]], result: Any, error: Any) -> None:
    """The examples' completion callback: tritonclient calls it with ``result`` and ``error`` keywords."""
    done.put((result, error))


def simple_inputs(mod: Any, in0: np.ndarray = IN0, in1: np.ndarray = IN1, datatype: str = "INT32") -> list[Any]:
    inputs = [mod.InferInput("INPUT0", list(in0.shape), datatype), mod.InferInput("INPUT1", list(in1.shape), datatype)]
    inputs[0].set_data_from_numpy(in0)
    inputs[1].set_data_from_numpy(in1)
    return inputs


# --- simple_{http,grpc}_infer_client.py, simple_*_custom_args, simple_grpc_keepalive_client.py --------------------


@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_simple_http_infer_client(server: Server, compression: str | None) -> None:
    client = httpclient.InferenceServerClient(server.http)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"), httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_data_from_numpy(IN0, binary_data=False)
    inputs[1].set_data_from_numpy(IN1, binary_data=True)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)]  # fmt: skip
    result = client.infer("simple", inputs, outputs=outputs, query_params={"test_1": 1, "test_2": 2},
                          request_compression_algorithm=compression,
                          response_compression_algorithm=compression)  # fmt: skip
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), IN0 + IN1)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), IN0 - IN1)
    assert result.get_response()["model_name"] == "simple"


@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_simple_grpc_infer_client(server: Server, compression: str | None) -> None:
    client = grpcclient.InferenceServerClient(
        server.grpc,
        keepalive_options=grpcclient.KeepAliveOptions(keepalive_time_ms=2**31 - 1),
        channel_args=[("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)],
    )
    outputs = [grpcclient.InferRequestedOutput("OUTPUT0"), grpcclient.InferRequestedOutput("OUTPUT1")]
    result = client.infer("simple", simple_inputs(grpcclient), outputs=outputs, request_id="7", client_timeout=10,
                          headers={"test": "1"}, compression_algorithm=compression)  # fmt: skip
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), IN0 + IN1)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), IN0 - IN1)
    assert result.get_response().id == "7"


# --- simple_{http,grpc}_async_infer_client.py, simple_grpc_aio_infer_client.py ----------------------------------


def test_simple_http_async_infer_client(server: Server) -> None:
    client = httpclient.InferenceServerClient(server.http, concurrency=4)
    handles = [client.async_infer("simple", simple_inputs(httpclient, IN0 * i)) for i in range(8)]
    for i, handle in enumerate(handles):
        np.testing.assert_array_equal(handle.get_result().as_numpy("OUTPUT0"), IN0 * i + IN1)


def test_simple_grpc_async_infer_client(server: Server) -> None:
    client = grpcclient.InferenceServerClient(server.grpc)
    done: queue.Queue[tuple[Any, Any]] = queue.Queue()
    for _ in range(4):
        client.async_infer("simple", simple_inputs(grpcclient), partial(completion, done))
    for _ in range(4):
        result, error = done.get(timeout=10)
        assert error is None
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), IN0 - IN1)


async def _aio_infer(url: str) -> np.ndarray:
    import tritonclient.grpc.aio as aioclient

    async with aioclient.InferenceServerClient(url) as client:
        assert await client.is_model_ready("simple")
        result = await client.infer("simple", simple_inputs(aioclient))
        return result.as_numpy("OUTPUT0")  # type: ignore[no-any-return]


def test_simple_grpc_aio_infer_client(server: Server) -> None:
    import asyncio

    np.testing.assert_array_equal(asyncio.run(_aio_infer(server.grpc)), IN0 + IN1)


# --- simple_{http,grpc}_health_metadata.py ------------------------------------------------------------------------


@PROTOCOLS
def test_health_metadata(server: Server, protocol: str) -> None:
    client = client_for(server, protocol)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("simple")
    assert client.is_model_ready("simple", "1")
    # an unknown model or version is not ready (Triton answers so over gRPC too, not NOT_FOUND)
    assert client.is_model_ready("no_such_model") is False
    assert client.is_model_ready("simple", "9") is False
    meta = client.get_server_metadata()
    extensions = meta["extensions"] if protocol == "http" else list(meta.extensions)
    assert "classification" in extensions
    model = client.get_model_metadata("simple")
    inputs = model["inputs"] if protocol == "http" else [{"name": t.name, "datatype": t.datatype} for t in model.inputs]
    assert [(t["name"], t["datatype"]) for t in inputs] == [("INPUT0", "INT32"), ("INPUT1", "INT32")]
    with pytest.raises(InferenceServerException, match="unknown model 'no_such_model'"):
        client.get_model_metadata("no_such_model")


# --- TYPE_STRING in the model configuration (perf_analyzer -i grpc, tritonclient) ---------------------------------


@PROTOCOLS
def test_bytes_tensors_are_type_string_in_the_model_config(server: Server, protocol: str) -> None:
    client = client_for(server, protocol)
    if protocol == "http":
        config = client.get_model_config("simple_string")
        types = {t["name"]: t["data_type"] for t in [*config["input"], *config["output"]]}
        assert set(types.values()) == {"TYPE_STRING"}
    else:
        config = client.get_model_config("simple_string").config
        assert {t.data_type for t in [*config.input, *config.output]} == {mc.TYPE_STRING}
        assert config.max_batch_size == 8
        assert list(config.input[0].dims) == [16]


# --- simple_{http,grpc}_string_infer_client.py, grpc_explicit_byte_content_client.py -----------------------------


@PROTOCOLS
def test_simple_string_infer_client(server: Server, protocol: str) -> None:
    mod, client = module(protocol), client_for(server, protocol)
    in0 = np.array([str(x).encode() for x in IN0.reshape(-1)], dtype=np.object_).reshape(1, 16)
    in1 = np.array([str(x).encode() for x in IN1.reshape(-1)], dtype=np.object_).reshape(1, 16)
    inputs = [mod.InferInput("INPUT0", [1, 16], "BYTES"), mod.InferInput("INPUT1", [1, 16], "BYTES")]
    if protocol == "http":
        inputs[0].set_data_from_numpy(in0, binary_data=True)
        inputs[1].set_data_from_numpy(in1, binary_data=False)
        outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True),
                   httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)]  # fmt: skip
    else:
        inputs[0].set_data_from_numpy(in0)
        inputs[1].set_data_from_numpy(in1)
        outputs = [grpcclient.InferRequestedOutput("OUTPUT0"), grpcclient.InferRequestedOutput("OUTPUT1")]
    result = client.infer("simple_string", inputs, outputs=outputs)
    assert [int(x) for x in result.as_numpy("OUTPUT0").reshape(-1)] == list((IN0 + IN1).reshape(-1))
    assert [int(x) for x in result.as_numpy("OUTPUT1").reshape(-1)] == list((IN0 - IN1).reshape(-1))


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("data", [[b"he\x00llo"] * 16, [b"\x00\x01\x02\x03"] * 16], ids=["null-char", "bytes"])
def test_simple_http_string_identity(server: Server, binary: bool, data: list[bytes]) -> None:
    client = httpclient.InferenceServerClient(server.http)
    array = np.array(data, dtype=np.object_).reshape(1, 16)
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "BYTES")]
    inputs[0].set_data_from_numpy(array, binary_data=binary)
    result = client.infer("simple_identity", inputs, outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary)])
    out = result.as_numpy("OUTPUT0")
    assert [x if isinstance(x, bytes) else str(x).encode() for x in out.reshape(-1)] == data


def grpc_stub(server: Server) -> service_pb2_grpc.GRPCInferenceServiceStub:
    return service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))


def test_grpc_explicit_byte_content_client(server: Server) -> None:
    request = service_pb2.ModelInferRequest(model_name="simple_string")
    for name, values in (("INPUT0", IN0), ("INPUT1", IN1)):
        tensor = request.inputs.add(name=name, datatype="BYTES", shape=[1, 16])
        tensor.contents.bytes_contents.extend(str(v).encode() for v in values.reshape(-1))
    request.outputs.add(name="OUTPUT0")
    response = grpc_stub(server).ModelInfer(request)
    raw = response.raw_output_contents[0]
    values, offset = [], 0
    while offset < len(raw):
        length = int.from_bytes(raw[offset : offset + 4], "little")
        values.append(int(raw[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    assert values == list((IN0 + IN1).reshape(-1))


# --- grpc_explicit_int_content_client.py, grpc_explicit_int8_content_client.py ------------------------------------


@pytest.mark.parametrize(
    ("model", "datatype", "dtype"), [("simple", "INT32", np.int32), ("simple_int8", "INT8", np.int8)]
)
def test_grpc_explicit_int_content_client(server: Server, model: str, datatype: str, dtype: Any) -> None:
    request = service_pb2.ModelInferRequest(model_name=model, model_version="")
    for name, values in (("INPUT0", IN0), ("INPUT1", IN1)):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[1, 16])
        tensor.contents.int_contents.extend(int(v) for v in values.reshape(-1))
    request.outputs.add(name="OUTPUT0")
    request.outputs.add(name="OUTPUT1")
    response = grpc_stub(server).ModelInfer(request)
    sums = np.frombuffer(response.raw_output_contents[0], dtype=dtype)
    diffs = np.frombuffer(response.raw_output_contents[1], dtype=dtype)
    np.testing.assert_array_equal(sums, (IN0 + IN1).reshape(-1).astype(dtype))
    np.testing.assert_array_equal(diffs, (IN0 - IN1).reshape(-1).astype(dtype))


# --- reuse_infer_objects_client.py ------------------------------------------------------------------------------


@PROTOCOLS
def test_reuse_infer_objects_client(server: Server, protocol: str) -> None:
    mod, client = module(protocol), client_for(server, protocol)
    inputs = simple_inputs(mod)
    outputs = [mod.InferRequestedOutput("OUTPUT0"), mod.InferRequestedOutput("OUTPUT1")]
    for i in range(3):
        in0 = IN0 * (i + 2)
        if protocol == "http":
            inputs[0].set_data_from_numpy(in0, binary_data=i % 2 == 0)  # switch between JSON and binary
        else:
            inputs[0].set_data_from_numpy(in0)
        result = client.infer("simple", inputs, outputs=outputs)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), in0 + IN1)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), in0 - IN1)


# --- image_client.py (and grpc_image_client.py): input format from the config, class_count with labels ----------


def image_parameters(metadata: Any, config: Any, protocol: str) -> tuple[int, str, str, int, int, int, int]:
    """What image_client.py's parse_model reads: batch size, names, C/H/W and the format (as the enum)."""
    if protocol == "http":
        max_batch, fmt_name = config["max_batch_size"], config["input"][0].get("format", "FORMAT_NONE")
        shape, in_name, out_name = (
            metadata["inputs"][0]["shape"],
            metadata["inputs"][0]["name"],
            metadata["outputs"][0]["name"],
        )
        fmt = mc.ModelInput.Format.Value(fmt_name)
        assert metadata["outputs"][0]["datatype"] == "FP32"
    else:
        max_batch, fmt = config.max_batch_size, config.input[0].format
        shape, in_name, out_name = list(metadata.inputs[0].shape), metadata.inputs[0].name, metadata.outputs[0].name
        assert metadata.outputs[0].datatype == "FP32"
    assert fmt in (mc.ModelInput.FORMAT_NCHW, mc.ModelInput.FORMAT_NHWC)
    dims = shape[1:] if max_batch > 0 else shape
    assert len(dims) == 3
    c, h, w = dims if fmt == mc.ModelInput.FORMAT_NCHW else (dims[2], dims[0], dims[1])
    return max_batch, in_name, out_name, c, h, w, fmt


@PROTOCOLS
@pytest.mark.parametrize("model", ["image", "image_nhwc"])
def test_image_client_with_class_count(server: Server, protocol: str, model: str) -> None:
    mod, client = module(protocol), client_for(server, protocol)
    metadata = client.get_model_metadata(model)
    config = client.get_model_config(model)
    config = config if protocol == "http" else config.config
    max_batch, in_name, out_name, c, h, w, fmt = image_parameters(metadata, config, protocol)
    assert (c, h, w) == (3, 8, 8)
    images = []
    for channel in (0, 1):  # a red image and a green one, as H x W x C like a decoded picture
        hwc = np.zeros((h, w, c), np.float32)
        hwc[..., channel] = 1.0
        images.append(np.transpose(hwc, (2, 0, 1)) if fmt == mc.ModelInput.FORMAT_NCHW else hwc)
    batch = np.stack(images) if max_batch > 0 else images[0]
    inputs = [mod.InferInput(in_name, list(batch.shape), "FP32")]
    inputs[0].set_data_from_numpy(batch)
    result = client.infer(model, inputs, outputs=[mod.InferRequestedOutput(out_name, class_count=3)])
    out = result.as_numpy(out_name)
    rows = out if max_batch > 0 else out.reshape(1, -1)
    assert rows.shape == (len(images) if max_batch > 0 else 1, 3)
    parsed = [[("".join(chr(x) for x in item) if isinstance(item, bytes) else item).split(":") for item in row]
              for row in rows]  # fmt: skip
    assert [p[1:] for p in parsed[0]] == [["0", "red"], ["3", "dark red"], ["1", "green"]]
    if max_batch > 0:
        assert [p[1:] for p in parsed[1]] == [["1", "green"], ["4", "dark green"], ["0", "red"]]
    value = float(parsed[0][0][0])
    assert 0.5 < value < 1.0
    assert len(parsed[0][0][0].split(".")[1]) == 6  # six decimals, as Triton writes floats
    # the configuration reports the labels file and the format
    if protocol == "http":
        assert config["output"][0]["label_filename"] == "labels.txt"
    else:
        assert config.output[0].label_filename == "labels.txt"


def test_grpc_image_client_through_the_generated_stubs(server: Server) -> None:
    stub = grpc_stub(server)
    metadata = stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="image", version=""))
    config = stub.ModelConfig(service_pb2.ModelConfigRequest(name="image", version="")).config
    assert config.input[0].format == mc.ModelInput.FORMAT_NCHW
    assert list(metadata.inputs[0].shape) == [-1, 3, 8, 8]
    image = np.zeros((1, 3, 8, 8), np.float32)
    image[0, 2] = 1.0  # blue
    request = service_pb2.ModelInferRequest(model_name="image", model_version="")
    request.inputs.add(name="data", datatype="FP32", shape=[1, 3, 8, 8])
    output = request.outputs.add(name="probs")
    output.parameters["classification"].int64_param = 2
    request.raw_input_contents.append(image.tobytes())
    response = stub.ModelInfer(request)
    assert (response.outputs[0].datatype, list(response.outputs[0].shape)) == ("BYTES", [1, 2])
    raw = response.raw_output_contents[0]
    first = raw[4 : 4 + int.from_bytes(raw[:4], "little")].decode()
    assert first.split(":")[1:] == ["2", "blue"]


@PROTOCOLS
def test_class_count_on_a_bytes_output_is_a_clear_error(server: Server, protocol: str) -> None:
    mod, client = module(protocol), client_for(server, protocol)
    inputs = [mod.InferInput("INPUT0", [1, 1], "BYTES")]
    inputs[0].set_data_from_numpy(np.array([[b"x"]], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="classification needs a numeric output") as exc:
        client.infer("simple_identity", inputs, outputs=[mod.InferRequestedOutput("OUTPUT0", class_count=2)])
    assert exc.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")


# --- NaN and infinities in JSON outputs ---------------------------------------------------------------------------


def test_nan_and_infinities_round_trip_through_json_outputs(server: Server) -> None:
    client = httpclient.InferenceServerClient(server.http)
    a = np.array([[0.0, 1.0, -1.0, 6.0]], np.float32)
    b = np.array([[0.0, 0.0, 0.0, 3.0]], np.float32)
    inputs = [httpclient.InferInput("A", [1, 4], "FP32"), httpclient.InferInput("B", [1, 4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    json_out = client.infer("div", inputs, outputs=[httpclient.InferRequestedOutput("Y", binary_data=False)])
    binary_out = client.infer("div", inputs, outputs=[httpclient.InferRequestedOutput("Y", binary_data=True)])
    for result in (json_out, binary_out):
        y = result.as_numpy("Y")
        assert np.isnan(y[0, 0])
        assert list(y[0, 1:]) == [np.inf, -np.inf, 2.0]
    # JSON inputs cannot carry them: the error says to send binary data
    inputs[0].set_data_from_numpy(np.array([[np.nan, 1, 1, 1]], np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match="send such a tensor as binary data"):
        client.infer("div", inputs)


# --- simple_{http,grpc}_model_control.py: load/unload only on the admin port ---------------------------------------


@PROTOCOLS
def test_model_control_is_refused_on_inference_ports(server: Server, protocol: str) -> None:
    client = client_for(server, protocol)
    for call in (client.unload_model, client.load_model):
        with pytest.raises(InferenceServerException, match="not served on the inference ports") as exc:
            call("simple")
        assert exc.value.status() in ("403", "StatusCode.PERMISSION_DENIED")
    assert client.is_model_ready("simple")


def test_model_control_on_the_admin_port(server: Server) -> None:
    admin = httpclient.InferenceServerClient(server.admin)
    admin.unload_model("simple_int8")
    assert not httpclient.InferenceServerClient(server.http).is_model_ready("simple_int8")
    admin.load_model("simple_int8")
    assert httpclient.InferenceServerClient(server.http).is_model_ready("simple_int8")
    index = {m["name"]: m["state"] for m in admin.get_model_repository_index()}
    assert index["simple_int8"] == "READY"


# --- unsupported: shared memory, sequences, streaming (simple_*_shm_*, *_sequence_*, *_stream_*) ------------------


@PROTOCOLS
def test_shared_memory_is_refused_with_a_clear_message(server: Server, protocol: str) -> None:
    client = client_for(server, protocol)
    with pytest.raises(InferenceServerException, match="shared-memory tensors are not supported"):
        client.get_system_shared_memory_status()
    with pytest.raises(InferenceServerException, match="shared-memory tensors are not supported"):
        client.register_system_shared_memory("input_data", "/input_simple", 128)
    with pytest.raises(InferenceServerException, match="shared-memory tensors are not supported"):
        client.get_cuda_shared_memory_status()
    mod = module(protocol)
    inputs = simple_inputs(mod)
    inputs[1].set_shared_memory("input_data", 64)
    with pytest.raises(InferenceServerException, match="shared-memory tensors are not supported") as exc:
        client.infer("simple", inputs)
    assert exc.value.status() in ("400", "StatusCode.UNIMPLEMENTED")


@PROTOCOLS
def test_sequence_requests_are_refused_with_a_clear_message(server: Server, protocol: str) -> None:
    client = client_for(server, protocol)
    with pytest.raises(InferenceServerException, match=r"sequence batching .* is not supported") as exc:
        client.infer("simple", simple_inputs(module(protocol)), sequence_id=1000, sequence_start=True)
    assert exc.value.status() in ("400", "StatusCode.UNIMPLEMENTED")


def test_streaming_is_refused_with_a_clear_message(server: Server) -> None:
    client = grpcclient.InferenceServerClient(server.grpc)
    done: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=partial(completion, done))
    try:
        # the server refuses the stream as it opens: the refusal may reach the callback before the request is sent, and
        # tritonclient then refuses to send on the dead stream (saying the callback has the error)
        with contextlib.suppress(InferenceServerException):
            client.async_stream_infer("simple", simple_inputs(grpcclient))
        result, error = done.get(timeout=30)
    finally:
        client.stop_stream()
    assert result is None
    assert "streaming inference is not supported" in str(error)
