"""Memory and time bounds of a real modelyard-server (issue 12, deliverable 3).

A body that trickles gets 408 after ``--body-timeout-seconds``; a connection that never completes its headers is
closed after ``--idle-timeout-seconds``; beyond ``--max-inflight-requests`` requests in flight, or
``--max-buffered-bytes`` of bodies held, HTTP answers 429 and gRPC RESOURCE_EXHAUSTED, over one count shared by
both protocols, and every slot comes back when its client goes away. Slow clients are raw sockets here: a real
client library would not misbehave on purpose.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from ..models import binary_op, identity, identity_all_types
from ..serving import Server, run_server
from ..support.processes import memory_mib

GOOD = {"inputs": [{"name": n, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]} for n in "AB"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("limits")
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    args = ["--body-timeout-seconds", "1", "--idle-timeout-seconds", "1", "--max-inflight-requests", "4",
            "--max-buffered-bytes", "1Mi", "--max-body-bytes", "1Mi"]  # fmt: skip
    with run_server(repo, *args) as s:
        yield s
        log = s.output()
        assert "Traceback" not in log, log[-3000:]
        assert " ERROR " not in log, log[-3000:]


def open_body(server: Server, length: int | None, sent: bytes = b"") -> socket.socket:
    """A request to calc's infer whose headers are complete and whose body is not (``sent`` of ``length``
    bytes; chunked when ``length`` is None)."""
    sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    head = f"POST /v2/models/calc/infer HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode()
    if length is None and sent:
        sent = f"{len(sent):x}\r\n".encode() + sent + b"\r\n"
    sock.sendall(head + sent)
    return sock


def response_of(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of the one response on ``sock``, read until it closes or the
    body (by Content-Length) is complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def closed_within(sock: socket.socket, seconds: float) -> float:
    """How long until the server closes ``sock`` (its reads return nothing); AssertionError after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        raise AssertionError(f"still open after {seconds}s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def post(server: Server, body: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return response_of(sock)


def grpc_infer(server: Server, raw: bytes = b"\0" * 16) -> tuple[grpc.StatusCode, str]:
    request = service_pb2.ModelInferRequest(model_name="calc")
    for name in "AB":
        request.inputs.add(name=name, datatype="FP32", shape=[len(raw) // 16, 4])
        request.raw_input_contents.append(raw)
    with grpc.insecure_channel(server.grpc) as channel:
        try:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def wait_until_served(server: Server) -> None:
    """Slots and bytes are given back when the clients that held them go away (asynchronously: poll)."""
    deadline = time.monotonic() + 5
    while post(server, json.dumps(GOOD).encode())[0] != 200:
        assert time.monotonic() < deadline, "the server never gave the slots back"
        time.sleep(0.05)


# --- time ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1000, None], ids=["content-length", "chunked"])
def test_a_trickled_body_gets_408_after_the_deadline_and_the_connection_closes(
    server: Server, length: int | None
) -> None:
    started = time.monotonic()
    sock = open_body(server, length, b'{"inputs": [')
    with sock:
        for _ in range(4):  # a byte every 0.2 s: the connection is never idle, the body never complete
            time.sleep(0.2)
            with contextlib.suppress(OSError):
                sock.sendall(b" " if length is not None else b"1\r\n \r\n")
        status, _, body = response_of(sock)
        elapsed = time.monotonic() - started
        assert status == 408
        assert "request body not received within 1s" in json.loads(body)["error"]
        assert 0.9 < elapsed < 3, elapsed
        closed_within(sock, 2)


def test_a_connection_that_never_completes_its_headers_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/calc/infer HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            time.sleep(0.2)
            sock.sendall(b"X-Slow: 1\r\n")  # one header line at a time, never the blank line
        assert closed_within(sock, 5) < 3


def test_an_idle_connection_that_sends_nothing_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        assert closed_within(sock, 5) < 3


# --- requests in flight ----------------------------------------------------------------------------------------------


def test_beyond_the_in_flight_cap_http_gets_429_and_grpc_resource_exhausted(server: Server) -> None:
    held = [open_body(server, 100, b"{") for _ in range(4)]  # four requests in flight, bodies incomplete
    try:
        time.sleep(0.2)
        status, headers, body = post(server, json.dumps(GOOD).encode())
        assert status == 429
        assert headers.get("retry-after") == "1"
        assert "4 requests in flight, the limit is 4" in json.loads(body)["error"]
        code, message = grpc_infer(server)  # one count for both protocols
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "the limit is 4" in message
        assert server.status("/v2/health/ready") == 200  # probes are never refused: a busy pod stays in endpoints
        assert server.status("/metrics") == 200
    finally:
        for sock in held:
            sock.close()
    wait_until_served(server)  # the clients went away mid-body: their slots came back
    assert grpc_infer(server)[0] == grpc.StatusCode.OK


def test_slots_come_back_after_408s(server: Server) -> None:
    held = [open_body(server, 100, b"{") for _ in range(4)]
    try:
        for sock in held:
            assert response_of(sock)[0] == 408
    finally:
        for sock in held:
            sock.close()
    wait_until_served(server)


# --- bytes buffered --------------------------------------------------------------------------------------------------


def test_beyond_the_buffered_bytes_cap_http_gets_429_and_grpc_resource_exhausted(server: Server) -> None:
    # 700 KiB declared and reserved before a byte of it arrived; the cap is 1 MiB for the whole server
    with open_body(server, 700 * 1024, b"{"):
        time.sleep(0.2)
        status, _, body = post(server, b" " * (400 * 1024))
        assert status == 429
        assert "bytes of requests buffered" in json.loads(body)["error"]
        code, message = grpc_infer(server, b"\0" * (400 * 1024))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "bytes of requests buffered" in message
        assert post(server, json.dumps(GOOD).encode())[0] == 200  # small requests still fit
    wait_until_served(server)
    assert post(server, json.dumps(GOOD).encode() + b" " * (400 * 1024))[0] == 200


def test_a_chunked_body_counts_as_it_arrives(server: Server) -> None:
    with open_body(server, None, b" " * (700 * 1024)) as sock:
        time.sleep(0.3)  # the server has read the 700 KiB and holds them
        assert post(server, b" " * (400 * 1024))[0] == 429
        sock.sendall(b"0\r\n\r\n")  # the end of an all-blank body: not JSON
        assert response_of(sock)[0] == 400
    wait_until_served(server)


def test_a_body_above_the_limit_is_413_before_it_is_read(server: Server) -> None:
    with open_body(server, 2 * 2**20) as sock:
        status, _, body = response_of(sock)
    assert status == 413
    assert "2097152 bytes declared, the limit is 1048576" in json.loads(body)["error"]


def test_a_buffered_bytes_cap_below_the_body_limit_is_refused_at_start(tmp_path: Path) -> None:
    """A cap below one allowed body could never serve such a body: the server refuses to start."""
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    with (
        pytest.raises(RuntimeError, match="below --max-body-bytes"),
        run_server(repo, "--max-buffered-bytes", "1Mi", "--max-body-bytes", "2Mi", ready=False),
    ):
        pass


def test_a_grpc_connection_that_never_completes_its_handshake_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=10) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n")  # the start of the HTTP/2 preface, never the rest
        assert closed_within(sock, 10) < 5


# --- memory after many bad requests ----------------------------------------------------------------------------------


def bad_http_requests() -> list[tuple[str, bytes, dict[str, str]]]:
    """(path, body, headers) of each kind of bad input of issue 12's deliverable 2, over HTTP."""

    def binary(
        model: str, inputs: list[tuple[str, str, list[int], bytes]], **headers: str
    ) -> tuple[str, bytes, dict[str, str]]:
        doc = {"inputs": [{"name": n, "datatype": d, "shape": s, "parameters": {"binary_data_size": len(r)}}
                          for n, d, s, r in inputs]}  # fmt: skip
        head = json.dumps(doc).encode()
        tail = b"".join(r for *_, r in inputs)
        return f"/v2/models/{model}/infer", head + tail, {"Inference-Header-Content-Length": str(len(head)), **headers}

    def as_json(model: str, doc: object, **headers: str) -> tuple[str, bytes, dict[str, str]]:
        return f"/v2/models/{model}/infer", json.dumps(doc).encode(), headers

    four = b"\0" * 16
    return [
        binary("types", [("IN_FP32", "FP32", [2**40, 2**40], b"\0" * 4)]),
        binary("types", [("IN_BYTES", "BYTES", [10**8], b"\0" * 4)]),
        binary("types", [("IN_FP32", "FP32", [1] * 65, b"\0" * 4)]),
        binary("types", [("IN_FP32", "FP32", [0, 2**62], b"")]),
        binary("calc", [("A", "FP32", [2, 4], four * 2), ("B", "FP32", [3, 4], four * 3)]),
        binary("calc", [("A", "FP32", [1, 4], four), ("A", "FP32", [1, 4], four), ("B", "FP32", [1, 4], four)]),
        (
            "/v2/models/calc/infer",
            json.dumps(GOOD).encode() + four * 2,
            {"Inference-Header-Content-Length": "١٢".encode().decode("latin-1")},
        ),
        ("/v2/models/calc/infer", b"[" * 20_000 + b"]" * 20_000, {}),
        ("/v2/models/calc/infer", b"not gzip at all", {"Content-Encoding": "gzip"}),
        ("/v2/models/calc/infer", gzip.compress(b" " * (2 * 2**20)), {"Content-Encoding": "gzip"}),
        ("/v2/models/calc/infer", json.dumps(GOOD).encode(), {"Content-Encoding": "zstd"}),
        as_json("id-int32", {"inputs": [{"name": "IN_INT32", "datatype": "INT32", "shape": [1, 1], "data": [1.5]}]}),
        as_json("id-fp32", {"inputs": [{"name": "IN_FP32", "datatype": "FP32", "shape": [1, 1], "data": ["1"]}]}),
        as_json("ghost", GOOD),
        ("/v2/repository/models/calc/unload", b"", {}),
    ]


def bad_grpc_requests() -> list[tuple[str, object]]:
    def infer(model: str, inputs: list[tuple[str, str, list[int], bytes]]) -> tuple[str, object]:
        request = service_pb2.ModelInferRequest(model_name=model)
        for name, datatype, shape, raw in inputs:
            request.inputs.add(name=name, datatype=datatype, shape=shape)
            request.raw_input_contents.append(raw)
        return "ModelInfer", request

    four = b"\0" * 16
    typed = service_pb2.ModelInferRequest(model_name="id-fp32")
    typed.inputs.add(name="IN_FP32", datatype="FP32", shape=[1, 1]).contents.fp32_contents.extend([1.0, 2.0])
    return [
        infer("types", [("IN_FP32", "FP32", [2**40, 2**40], b"\0" * 4)]),
        infer("types", [("IN_BYTES", "BYTES", [10**8], b"\0" * 4)]),
        infer("types", [("IN_FP32", "FP32", [1] * 65, b"\0" * 4)]),
        infer("calc", [("A", "FP32", [2, 4], four * 2), ("B", "FP32", [3, 4], four * 3)]),
        infer("calc", [("A", "FP32", [1, 4], four), ("A", "FP32", [1, 4], four), ("B", "FP32", [1, 4], four)]),
        infer("ghost", [("A", "FP32", [1, 4], four)]),
        ("ModelInfer", typed),
        ("RepositoryModelUnload", service_pb2.RepositoryModelUnloadRequest(model_name="calc")),
        ("SystemSharedMemoryStatus", service_pb2.SystemSharedMemoryStatusRequest()),
    ]


def test_a_grpc_message_that_trickles_in_is_cut_at_the_connection_age_and_its_slot_comes_back(tmp_path: Path) -> None:
    """gRPC has no deadline for a message that trickles in: the connection gets GOAWAY at
    ``--grpc-max-connection-age-seconds`` and is closed ``--body-timeout-seconds`` later, unfinished call and all."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    age, grace = 2, 1
    args = ["--grpc-max-connection-age-seconds", str(age), "--body-timeout-seconds", str(grace),
            "--max-inflight-requests", "1"]  # fmt: skip
    with run_server(repo, *args) as srv, socket.create_connection(("127.0.0.1", srv.grpc_port), timeout=10) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                              (":path", "/inference.GRPCInferenceService/ModelInfer"),
                              ("content-type", "application/grpc"), ("te", "trailers")])  # fmt: skip
        conn.send_data(1, b"\x00" + (1000).to_bytes(4, "big"))  # a 1000-byte message, none of it sent yet
        sock.sendall(conn.data_to_send())
        opened, goaway, closed = time.monotonic(), None, None
        sock.settimeout(0.25)
        while closed is None and time.monotonic() - opened < 20:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = None
            if data == b"":
                closed = time.monotonic() - opened
                break
            if goaway is not None:  # after GOAWAY the client's HTTP/2 state is closed: only wait for the close
                continue
            try:
                events = conn.receive_data(data) if data else []
            except h2.exceptions.ProtocolError:  # a frame after the GOAWAY in the same read (h2 is closed by then)
                assert conn.state_machine.state == h2.connection.ConnectionState.CLOSED
                events = [h2.events.ConnectionTerminated()]
            if any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                goaway = time.monotonic() - opened
            if goaway is None:  # one byte of the message every quarter second, never all of it
                conn.send_data(1, b"\x0a")
                with contextlib.suppress(OSError):
                    sock.sendall(conn.data_to_send())
        assert goaway is not None, "no GOAWAY"
        assert closed is not None, "the connection stayed open"
        assert age - 0.5 <= goaway <= age + 2, goaway
        assert closed <= age + grace + 3, closed
        # the call's slot came back: with --max-inflight-requests 1, a new call is served
        with grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ModelReady(service_pb2.ModelReadyRequest(name="calc"), timeout=10).ready
            assert stub.ModelMetadata(service_pb2.ModelMetadataRequest(name="calc"), timeout=10).name == "calc"
        print(f"trickled gRPC message: GOAWAY after {goaway:.1f}s, connection closed after {closed:.1f}s")


def test_rss_after_10000_bad_requests_stays_within_10_percent(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    identity_all_types(repo / "types" / "1" / "model.onnx")
    for datatype in ("INT32", "FP32"):
        identity(repo / f"id-{datatype.lower()}" / "1" / "model.onnx", datatype)
    http_kinds, grpc_kinds = bad_http_requests(), bad_grpc_requests()
    with run_server(repo, "--max-body-bytes", "1Mi") as s, grpc.insecure_channel(s.grpc) as channel:
        conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=30)
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        statuses: collections.Counter[object] = collections.Counter()

        def send(i: int) -> None:
            if i % 2 == 0:
                path, body, headers = http_kinds[(i // 2) % len(http_kinds)]
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                statuses[response.status] += 1
            else:
                method, request = grpc_kinds[(i // 2) % len(grpc_kinds)]
                try:
                    getattr(stub, method)(request, timeout=30)
                    statuses["OK"] += 1
                except grpc.RpcError as exc:
                    statuses[exc.code().name] += 1

        for i in range(1000):  # what the first requests of each kind cost (allocator arenas, caches) is paid here
            send(i)
        before = memory_mib(s.proc.pid)
        statuses.clear()
        started = time.monotonic()
        for i in range(10_000):
            send(i)
        seconds = time.monotonic() - started
        conn.close()
        after = memory_mib(s.proc.pid)
        print(
            f"\nRSS of modelyard-server: {before['VmRSS']:.1f} MiB before, {after['VmRSS']:.1f} MiB after 10,000 bad "
            f"requests ({after['VmRSS'] / before['VmRSS'] - 1:+.1%}); peak {before['VmHWM']:.1f} -> "
            f"{after['VmHWM']:.1f} MiB; {seconds:.1f}s; answers {dict(statuses)}"
        )
    assert sum(statuses.values()) == 10_000
    assert not [k for k in statuses if isinstance(k, int) and not 400 <= k < 500], statuses  # never a 5xx
    assert not {"INTERNAL", "UNKNOWN", "UNAVAILABLE", "OK"} & set(statuses), statuses
    assert after["VmRSS"] <= before["VmRSS"] * 1.10, (before, after)
