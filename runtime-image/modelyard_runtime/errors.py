"""Domain errors of the data plane and the one table that maps them to HTTP status and gRPC codes."""

from __future__ import annotations

import enum
import re


class Code(enum.Enum):
    """(HTTP status, gRPC status code name) for each kind of failure."""

    BAD_REQUEST = (400, "INVALID_ARGUMENT")
    UNAUTHENTICATED = (401, "UNAUTHENTICATED")  # the admin API without its bearer token
    FORBIDDEN = (403, "PERMISSION_DENIED")  # the repository API's load/unload on an inference port
    NOT_FOUND = (404, "NOT_FOUND")
    REQUEST_TIMEOUT = (408, "DEADLINE_EXCEEDED")  # the body did not arrive within the deadline (HTTP only)
    TOO_LARGE = (413, "RESOURCE_EXHAUSTED")
    UNSUPPORTED_ENCODING = (415, "UNIMPLEMENTED")  # a Content-Encoding the server does not decode (HTTP only)
    UNSUPPORTED_FEATURE = (400, "UNIMPLEMENTED")  # a request for a feature not served (sequences, shared memory)
    TOO_MANY_REQUESTS = (429, "RESOURCE_EXHAUSTED")  # beyond the in-flight or buffered-bytes cap: retry later
    CANCELLED = (499, "CANCELLED")  # the client gave up (deadline, disconnect): counted, never answered
    UNAVAILABLE = (503, "UNAVAILABLE")
    INTERNAL = (500, "INTERNAL")

    @property
    def http(self) -> int:
        return self.value[0]

    @property
    def grpc(self) -> str:
        return self.value[1]


class ServingError(Exception):
    code = Code.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(ServingError):
    code = Code.BAD_REQUEST


class NotFoundError(ServingError):
    code = Code.NOT_FOUND


class TooLargeError(ServingError):
    code = Code.TOO_LARGE


class UnauthenticatedError(ServingError):
    code = Code.UNAUTHENTICATED


class ForbiddenError(ServingError):
    code = Code.FORBIDDEN


class RequestTimeoutError(ServingError):
    code = Code.REQUEST_TIMEOUT


class TooManyRequestsError(ServingError):
    code = Code.TOO_MANY_REQUESTS

    def __init__(self, message: str, reason: str = "inflight") -> None:
        super().__init__(message)
        self.reason = reason  # which limit: inflight | buffered_bytes (the metric's label)


class ClientGoneError(ServingError):
    """The client closed its connection before its request was read: counted as 499, answered to nobody."""

    code = Code.CANCELLED


class UnsupportedEncodingError(ServingError):
    code = Code.UNSUPPORTED_ENCODING


class UnsupportedFeatureError(ServingError):
    """The request needs a protocol feature this server does not implement (docs/server.md lists them)."""

    code = Code.UNSUPPORTED_FEATURE


class UnavailableError(ServingError):
    code = Code.UNAVAILABLE


class InferenceFailedError(ServingError):
    """The model raised while running a valid request (a broken model, not a bad request)."""

    code = Code.INTERNAL


# Internal names that third-party messages (ONNX Runtime's above all) carry and clients must not see: source paths
# with line numbers, C++ signatures and qualified names, Python exception class names.
_SCRUB = [
    re.compile(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*"),
    re.compile(r"<class '[\w.]+'>:?\s*"),
    re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.+@~-]+){2,}(?::\d+)*\s*"),  # /src/core/x.h:91, C:\src\x.cc
    re.compile(r"(?:\b(?:void|bool|int|size_t|auto|Status)\s+)?(?:\w+::)+~?\w+\([^()]*\)(?:\s*const)?\s*"),
    re.compile(r"\b[\w.]*\w(?:Error|Exception|Exit|Interrupt)\b:?\s*"),  # ValueError:, onnxruntime.Fail
    re.compile(r"(?:\w+::)+"),  # what is left of qualified names: onnxruntime::TensorShape -> TensorShape
]


def public_message(message: str) -> str:
    """``message`` without internal names (file paths, C++ and Python class names), for a client to read; the log
    keeps the original. Messages the server composes itself pass unchanged."""
    for pattern in _SCRUB:
        message = pattern.sub("", message)
    return message.strip() or "internal error (the server log has the details)"
