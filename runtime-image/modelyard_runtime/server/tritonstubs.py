"""Triton's generated gRPC stubs from tritonclient, without tritonclient's client.

``from tritonclient.grpc import service_pb2`` first runs ``tritonclient/grpc/__init__.py``, which imports the whole
client: its channel and request classes, ``tritonclient.utils`` with ml_dtypes, and ``packaging`` for a version
check. The server needs only the three generated modules, and that import sits on the path to readiness (the
main thread imports the web stack while the model versions open). :func:`load` imports the three modules under
their usual names with a placeholder package in place of ``tritonclient.grpc`` for the moment it takes, then
removes the placeholder: a later ``import tritonclient.grpc`` (a client in the same process, as in tests) runs the
real package, which finds the three modules already imported and uses them as they are.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

PACKAGE = "tritonclient.grpc"
MODULES = ("model_config_pb2", "service_pb2", "service_pb2_grpc")


def load() -> tuple[Any, Any, Any]:
    """``(model_config_pb2, service_pb2, service_pb2_grpc)`` of tritonclient's ``grpc`` folder."""
    names = [f"{PACKAGE}.{m}" for m in MODULES]
    if PACKAGE not in sys.modules:
        spec = importlib.util.find_spec("tritonclient")  # the top package: a few lines, no imports of its own
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("tritonclient is not installed (its [grpc] extra provides Triton's gRPC stubs)")
        placeholder = types.ModuleType(PACKAGE)
        placeholder.__path__ = [str(Path(next(iter(spec.submodule_search_locations))) / "grpc")]
        sys.modules[PACKAGE] = placeholder
        try:
            for name in names:
                importlib.import_module(name)
        finally:
            if sys.modules.get(PACKAGE) is placeholder:
                del sys.modules[PACKAGE]
            parent = sys.modules.get("tritonclient")
            if parent is not None and getattr(parent, "grpc", None) is placeholder:
                delattr(parent, "grpc")
    config, service, grpc_service = (sys.modules[name] for name in names)
    return config, service, grpc_service
