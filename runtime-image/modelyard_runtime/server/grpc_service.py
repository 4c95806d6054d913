"""The gRPC binding of the Open Inference Protocol: Triton's ``inference.GRPCInferenceService``.

The messages and the servicer base come from the stubs that tritonclient ships (generated from Triton's
``grpc_service.proto``; KServe's copy numbers some fields differently). Outputs always travel in
``raw_output_contents``: tritonclient's ``as_numpy`` reads nothing else. Error codes come from the one
table in :mod:`modelyard_runtime.errors`.
"""

# ruff: noqa: N802  (method names are the service's RPC names)
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy.typing as npt

from modelyard_runtime import version as modelyard_version
from modelyard_runtime.errors import (
    BadRequestError,
    Code,
    NotFoundError,
    ServingError,
    TooManyRequestsError,
    public_message,
)
from modelyard_runtime.protocol.checks import check_supported
from modelyard_runtime.protocol.classification import class_count
from modelyard_runtime.protocol.datatypes import (
    DatatypeError,
    array_from_values,
    decode_tensor,
    encode_tensor,
    protocol_datatype,
)
from modelyard_runtime.server.core import EXTENSIONS, DataPlane, LoadedModel
from modelyard_runtime.server.http import ADMIN_ONLY
from modelyard_runtime.server.limits import Admission, Ticket
from modelyard_runtime.server.tritonstubs import load as load_stubs

model_config_pb2, service_pb2, service_pb2_grpc = load_stubs()  # Triton's stubs, without tritonclient's client

T = TypeVar("T")
log = logging.getLogger("modelyard.server")
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"  # the RPC an access-log line names
INTERNAL_MESSAGE = "internal error (the server log has the details)"
# why each RPC of Triton's service that is not served here is not; each answers UNIMPLEMENTED, logged once
_UNSERVED = {
    "SystemSharedMemory": "shared-memory tensors are not supported; send tensors in the request",
    "CudaSharedMemory": "CUDA shared-memory tensors are not supported; send tensors in the request",
    "TraceSetting": "trace settings are not supported",
    "LogSettings": "log settings are not supported over gRPC",
}

# typed ``InferTensorContents`` fields, for clients that do not send raw_input_contents
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip


def decode_inputs(request: Any) -> tuple[dict[str, npt.NDArray[Any]], dict[str, str]]:
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequestError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs: dict[str, npt.NDArray[Any]] = {}
    datatypes: dict[str, str] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name in inputs:
            raise BadRequestError(f"input {tensor.name!r} given twice")
        shape = list(tensor.shape)
        try:
            if raw:
                array = decode_tensor(raw[i], tensor.datatype, shape)
            else:
                field = _CONTENTS.get(tensor.datatype)
                if field is None:
                    raise BadRequestError(f"input {tensor.name!r}: {tensor.datatype} needs raw_input_contents")
                array = array_from_values(list(getattr(tensor.contents, field)), tensor.datatype, shape)
        except DatatypeError as exc:
            raise BadRequestError(f"input {tensor.name!r}: {exc}") from None
        inputs[tensor.name] = array
        datatypes[tensor.name] = tensor.datatype
    return inputs, datatypes


def parameter_value(param: Any) -> object:
    kind = param.WhichOneof("parameter_choice")
    return getattr(param, kind) if kind else None


def requested_classes(request: Any) -> dict[str, int]:
    """The classification extension's class count of each requested output (``parameters["classification"]``)."""
    classes: dict[str, int] = {}
    for output in request.outputs:
        if "classification" in output.parameters:
            classes[output.name] = class_count(parameter_value(output.parameters["classification"]), output.name)
    return classes


_Servicer: Any = service_pb2_grpc.GRPCInferenceServiceServicer


class InferenceService(_Servicer):
    def __init__(self, plane: DataPlane, admission: Admission) -> None:
        self.plane = plane
        self.admission = admission
        self._told: set[str] = set()  # unimplemented RPCs already logged

    def _admit(self, request: Any) -> Ticket:
        """A ticket holding the request's bytes (server.limits, shared with HTTP); TooManyRequestsError beyond."""
        try:
            ticket = self.admission.enter()
        except TooManyRequestsError as exc:
            self.plane.count_rejected("grpc", exc.reason)
            raise
        try:
            ticket.reserve(request.ByteSize())
        except TooManyRequestsError as exc:
            self.plane.count_rejected("grpc", exc.reason)
            ticket.close()
            raise
        return ticket

    async def _call(
        self, context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]], request: Any = None
    ) -> T:
        """``work()``, with its errors answered through the code table; nothing internal reaches the client.
        With ``request``, the call holds a ticket of the server's limits while it runs."""
        try:
            if request is None:
                return await work()
            with self._admit(request):
                return await work()
        except ServingError as exc:
            await context.abort(grpc.StatusCode[exc.code.grpc], public_message(exc.message))
        except Exception:
            log.exception("unexpected error serving gRPC %s", type(self).__name__)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        raise AssertionError("unreachable: abort raises")

    async def unimplemented(self, method: str, context: grpc.aio.ServicerContext) -> Any:
        reason = next((why for prefix, why in _UNSERVED.items() if method.startswith(prefix)), "not supported")
        if method not in self._told:
            self._told.add(method)
            log.info("gRPC %s answered UNIMPLEMENTED: %s (logged once)", method, reason)
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method}: {reason}")

    async def ServerLive(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerReadyResponse(ready=self.plane.reports_ready)

    async def ModelReady(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def work() -> Any:
            try:  # an unknown model or version is not ready, as Triton answers (no NOT_FOUND)
                known = self.plane.is_ready(request.name, request.version or None)
            except NotFoundError:
                known = False
            return service_pb2.ModelReadyResponse(ready=self.plane.reports_ready and known)

        return await self._call(context, work, request)

    async def ServerMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return service_pb2.ServerMetadataResponse(name="modelyard", version=modelyard_version(), extensions=EXTENSIONS)

    async def ModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def work() -> Any:
            model = await self.plane.describe(request.name, request.version or None)
            meta = model.metadata()
            return service_pb2.ModelMetadataResponse(
                name=meta["name"],
                versions=meta["versions"],
                platform=meta["platform"],
                inputs=[service_pb2.ModelMetadataResponse.TensorMetadata(**t) for t in meta["inputs"]],
                outputs=[service_pb2.ModelMetadataResponse.TensorMetadata(**t) for t in meta["outputs"]],
            )

        return await self._call(context, work, request)

    async def ModelConfig(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def work() -> Any:
            from google.protobuf import json_format  # here: ~10 ms of imports kept off the path to readiness

            model = await self.plane.describe(request.name, request.version or None)
            config = json_format.ParseDict(model.model_config(), model_config_pb2.ModelConfig())
            return service_pb2.ModelConfigResponse(config=config)

        return await self._call(context, work, request)

    async def ModelStatistics(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def work() -> Any:
            from google.protobuf import json_format

            stats = self.plane.statistics(request.name or None, request.version or None)
            return json_format.ParseDict(
                {"model_stats": stats}, service_pb2.ModelStatisticsResponse(), ignore_unknown_fields=True
            )

        return await self._call(context, work, request)

    async def RepositoryIndex(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async def work() -> Any:
            rows = self.plane.index(ready_only=request.ready)
            return service_pb2.RepositoryIndexResponse(
                models=[service_pb2.RepositoryIndexResponse.ModelIndex(**row) for row in rows]
            )

        return await self._call(context, work, request)

    async def RepositoryModelLoad(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, ADMIN_ONLY)

    async def RepositoryModelUnload(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, ADMIN_ONLY)

    async def ModelInfer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        plane = self.plane
        started = time.perf_counter()
        model: LoadedModel | None = None
        counted = False

        def count(code: int) -> None:
            nonlocal counted
            counted = True
            version = model.version if model is not None else request.model_version or ""
            plane.count_request(
                request.model_name, version, model, "grpc", code, time.perf_counter() - started,
                method=MODEL_INFER, request_bytes=request.ByteSize(), peer=context.peer() or "",
            )  # fmt: skip

        try:
            ticket = self._admit(request)
        except TooManyRequestsError as exc:  # refused before any work, like HTTP's 429
            count(exc.code.http)
            await context.abort(grpc.StatusCode[exc.code.grpc], exc.message)
            raise
        try:
            async with plane.use(request.model_name, request.model_version or None) as model:
                check_supported(
                    {key: parameter_value(value) for key, value in request.parameters.items()},
                    [t.parameters for t in [*request.inputs, *request.outputs]],
                )
                inputs, datatypes = decode_inputs(request)
                names = [o.name for o in request.outputs] or None
                classes = requested_classes(request)
                outputs = await plane.infer(model, inputs, datatypes, names, classes)
            response = service_pb2.ModelInferResponse(model_name=model.name, model_version=model.version, id=request.id)
            for name, array in outputs.items():
                response.outputs.add(name=name, datatype=protocol_datatype(array.dtype), shape=list(array.shape))
                response.raw_output_contents.append(encode_tensor(array))
            count(200)
            return response
        except ServingError as exc:
            count(exc.code.http)  # before abort: it sends the status at once, and the client may read /metrics next
            await context.abort(grpc.StatusCode[exc.code.grpc], public_message(exc.message))
            raise
        except asyncio.CancelledError:  # the client's deadline passed or it cancelled: not a server error
            count(Code.CANCELLED.http)
            raise
        except Exception:
            log.exception("unexpected error serving gRPC ModelInfer for %s", request.model_name[:200])
            count(Code.INTERNAL.http)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
            raise
        finally:
            ticket.close()
            if not counted:
                count(Code.INTERNAL.http)

    async def ModelStreamInfer(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming inference is not supported; use ModelInfer")
        yield  # pragma: no cover  (makes this an async generator, as the streaming method must be)


def _unimplemented(method: str) -> Callable[[InferenceService, Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def handler(self: InferenceService, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self.unimplemented(method, context)

    handler.__name__ = method
    return handler


# Every other RPC of the service: the generated base would raise NotImplementedError, which the library logs as an
# ERROR with a traceback on every call.
for _method in dir(service_pb2_grpc.GRPCInferenceServiceServicer):
    if _method[:1].isupper() and _method not in vars(InferenceService):
        setattr(InferenceService, _method, _unimplemented(_method))


def build_server(
    plane: DataPlane,
    admission: Admission,
    *,
    max_receive_bytes: int,
    handshake_seconds: float = 30.0,
    max_age_seconds: float = 300.0,
    age_grace_seconds: float = 60.0,
) -> grpc.aio.Server:
    """A gRPC server with raised message limits (the library's default receive limit is 4 MiB).

    The library itself refuses calls beyond ``admission.max_requests`` (RESOURCE_EXHAUSTED) and closes connections
    that do not finish their handshake within ``handshake_seconds``; the cap shared with HTTP and the buffered bytes
    are :class:`Admission`'s, applied once a message has arrived. gRPC has no deadline for a message that trickles
    in, so a connection gets GOAWAY ``max_age_seconds`` after it opened (a client opens a new one for its next
    calls, which also spreads clients over a Service's pods as they scale) and is closed ``age_grace_seconds`` after
    that with whatever is still unfinished on it."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_receive_bytes),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.server_handshake_timeout_ms", int(handshake_seconds * 1000)),
            ("grpc.max_connection_age_ms", int(max_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(age_grace_seconds * 1000)),
        ],
        maximum_concurrent_rpcs=admission.max_requests,
    )
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(plane, admission), server)
    return server
