"""Domain errors of the data plane and the one table that maps them to HTTP status and gRPC codes."""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """(HTTP status, gRPC status code name) for each kind of failure."""

    BAD_REQUEST = (400, "INVALID_ARGUMENT")
    NOT_FOUND = (404, "NOT_FOUND")
    TOO_LARGE = (413, "RESOURCE_EXHAUSTED")
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


class UnavailableError(ServingError):
    code = Code.UNAVAILABLE


class InferenceFailedError(ServingError):
    """The model raised while running a valid request (a broken model, not a bad request)."""

    code = Code.INTERNAL
