"""The real node's start waits for containerd's CRI service (hack/devcluster.py), tried against a gRPC server on a
unix socket that answers as containerd does while its CRI plugin initializes."""

from __future__ import annotations

import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from devcluster import ClusterError, Component, wait_for_cri


class Cri(grpc.GenericRpcHandler):
    """``runtime.v1.RuntimeService/Version``: UNAVAILABLE for the first ``refusals`` calls, then an answer."""

    def __init__(self, refusals: int) -> None:
        self.refusals, self.calls = refusals, 0

    def service(self, details: Any) -> grpc.RpcMethodHandler | None:
        if details.method != "/runtime.v1.RuntimeService/Version":
            return None

        def version(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.calls += 1
            if self.calls <= self.refusals:
                context.abort(grpc.StatusCode.UNAVAILABLE, "server is not initialized yet")
            return b"\x0a\x030.1"  # VersionResponse{version: "0.1"}

        return grpc.unary_unary_rpc_method_handler(version)


def serve(sock: Path, handler: Cri) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=[handler])
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    return server


def containerd(tmp_path: Path) -> Component:
    log = tmp_path / "containerd.log"
    log.write_text("starting cri plugin\n")
    return Component("containerd", "containerd", [], str(log), "")


def test_waits_until_the_cri_answers(tmp_path: Path) -> None:
    sock, cri = tmp_path / "containerd.sock", Cri(refusals=3)
    server = serve(sock, cri)
    try:
        wait_for_cri(sock, containerd(tmp_path), deadline=time.monotonic() + 20)
    finally:
        server.stop(0)
    assert cri.calls == 4


def test_a_cri_that_never_answers_is_a_clear_error(tmp_path: Path) -> None:
    sock = tmp_path / "containerd.sock"
    server = serve(sock, Cri(refusals=1_000))
    try:
        with pytest.raises(ClusterError, match=r"(?s)CRI never answered.*not initialized yet.*starting cri plugin"):
            wait_for_cri(sock, containerd(tmp_path), deadline=time.monotonic() + 1)
    finally:
        server.stop(0)
