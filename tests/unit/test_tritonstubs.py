"""Triton's gRPC stubs are imported without tritonclient's client, and a client imported later still works."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from modelyard_runtime.server.tritonstubs import load
config, service, grpc_service = load()
before = {m: m in sys.modules for m in ("tritonclient.grpc", "tritonclient.grpc._client", "ml_dtypes", "packaging")}
request = service.ModelInferRequest(model_name="m")
import tritonclient.grpc as client
after = {
    "same_service": client.service_pb2 is service,
    "same_config": client.model_config_pb2 is config,
    "client": client.InferenceServerClient.__name__,
    "servicer": grpc_service.GRPCInferenceServiceServicer.__name__,
    "request": request.model_name,
    "again": load()[1] is service,
}
print(json.dumps({"before": before, "after": after}))
"""


def test_the_stubs_load_without_the_client_and_a_later_client_import_shares_them() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(out.stdout)
    assert seen["before"] == {
        "tritonclient.grpc": False,
        "tritonclient.grpc._client": False,
        "ml_dtypes": False,
        "packaging": False,
    }
    assert seen["after"] == {
        "same_service": True,
        "same_config": True,
        "client": "InferenceServerClient",
        "servicer": "GRPCInferenceServiceServicer",
        "request": "m",
        "again": True,
    }
