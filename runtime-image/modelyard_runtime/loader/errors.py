"""Loader errors, one class per exit code (documented in docs/loader.md).

Every message names the artifact by its *redacted* URI (see ``uri.redact``): no credentials ever reach a
log line, a termination message or a status field through these errors.
"""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_FETCH = 3
EXIT_INTEGRITY = 4
EXIT_SIGNATURE = 5
EXIT_UNSAFE = 6
EXIT_VALIDATE = 7


class LoaderError(Exception):
    """Base class; ``exit_code`` is what ``modelyard-loader`` exits with, ``reason`` a CamelCase word."""

    exit_code = 1
    reason = "Error"
    artifact: dict[str, object] | None = None  # the verified artifact's digest and size, when it got that far


class UsageError(LoaderError):
    exit_code = EXIT_USAGE
    reason = "InvalidArguments"


class FetchError(LoaderError):
    exit_code = EXIT_FETCH
    reason = "FetchFailed"


class IntegrityError(LoaderError):
    exit_code = EXIT_INTEGRITY
    reason = "DigestMismatch"


class SignatureError(LoaderError):
    exit_code = EXIT_SIGNATURE
    reason = "SignatureInvalid"


class UnsafeContentError(LoaderError):
    exit_code = EXIT_UNSAFE
    reason = "UnsafeContent"


class BlockedAddressError(UnsafeContentError):
    """The SSRF guard refused a host or one of its addresses (same exit code as other refusals)."""

    reason = "AddressBlocked"


class ValidationError(LoaderError):
    exit_code = EXIT_VALIDATE
    reason = "ModelLoadFailed"


class FormatMismatchError(ValidationError):
    """The artifact holds no model of the ModelVersion's format."""

    reason = "FormatMismatch"


class EngineUnavailableError(ValidationError):
    """This image cannot load the format (no TensorRT runtime or no GPU): say so rather than "does not load"."""

    reason = "EngineUnavailable"


class CompileError(ValidationError):
    """A verified PMML document the compiler refuses (an element it does not compile, named with its line)."""

    reason = "CompileFailed"


class CompiledDigestError(IntegrityError):
    """This loader compiled a different model than the validation recorded (another compiler, another image)."""
