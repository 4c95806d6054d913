"""Pure parts of the server's bounds and admin API: admission tickets, readiness of required versions, the bearer
token check, the new flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard_runtime.config import parse_server_args
from modelyard_runtime.errors import BadRequestError, Code, TooManyRequestsError
from modelyard_runtime.protocol.rest import json_object
from modelyard_runtime.server.admin import authorized, read_token
from modelyard_runtime.server.limits import Admission
from modelyard_runtime.server.readiness import parse_serve, unserved

# --- admission -------------------------------------------------------------------------------------------------------


def test_requests_beyond_the_cap_are_refused_and_slots_come_back() -> None:
    admission = Admission(max_requests=2, max_bytes=100)
    first, second = admission.enter(), admission.enter()
    with pytest.raises(TooManyRequestsError, match="2 requests in flight, the limit is 2") as info:
        admission.enter()
    assert info.value.code is Code.TOO_MANY_REQUESTS
    assert (Code.TOO_MANY_REQUESTS.http, Code.TOO_MANY_REQUESTS.grpc) == (429, "RESOURCE_EXHAUSTED")
    first.close()
    first.close()  # idempotent: a slot is given back once
    assert admission.requests == 1
    admission.enter().close()
    second.close()
    assert (admission.requests, admission.bytes, admission.refused) == (0, 0, 1)


def test_bytes_are_shared_between_tickets_and_given_back_on_close() -> None:
    admission = Admission(max_requests=10, max_bytes=100)
    with admission.enter() as a, admission.enter() as b:
        a.reserve(60)
        b.reserve(40)  # exactly the cap
        with pytest.raises(TooManyRequestsError, match="100 bytes of requests buffered, 1 more"):
            b.reserve(1)
        assert (a.bytes, b.bytes, admission.bytes) == (60, 40, 100)  # a refused reservation holds nothing
    assert (admission.requests, admission.bytes) == (0, 0)
    with admission.enter() as c:
        c.reserve(100)


def test_a_ticket_closes_when_its_request_fails() -> None:
    admission = Admission(max_requests=1, max_bytes=10)

    def handler() -> None:
        with admission.enter() as ticket:
            ticket.reserve(5)
            raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError, match="the handler failed"):
        handler()
    assert (admission.requests, admission.bytes) == (0, 0)


# --- readiness -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"), [("fraud:42", ("fraud", "42")), ("fraud", ("fraud", None)), (" m:v1.2 ", ("m", "v1.2"))]
)
def test_parse_serve(text: str, parsed: tuple[str, str | None]) -> None:
    assert parse_serve(text) == parsed


@pytest.mark.parametrize("text", ["", ":1", "fraud:"])
def test_parse_serve_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="MODEL:VERSION"):
        parse_serve(text)


@pytest.mark.parametrize(
    ("required", "loaded", "on_demand", "missing"),
    [
        ([("m", "1")], {"m": ["1"]}, {}, []),
        ([("m", "1")], {"m": ["2"]}, {}, ["m:1"]),  # another version loaded does not serve this one
        ([("m", "1")], {}, {"m": ["1"]}, []),  # dynamic: loads on the first request
        ([("m", "1")], {}, {}, ["m:1"]),  # unloaded (or not published yet)
        ([("m", None)], {"m": ["7"]}, {}, []),
        ([("m", None)], {}, {}, ["m"]),
        ([("m", "1"), ("n", "2")], {"m": ["1"]}, {}, ["n:2"]),
        ([], {}, {}, []),
    ],
)
def test_unserved(
    required: list[tuple[str, str | None]],
    loaded: dict[str, list[str]],
    on_demand: dict[str, list[str]],
    missing: list[str],
) -> None:
    assert unserved(required, loaded, on_demand) == missing


# --- admin token -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer  s3cret ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cret2", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("", False),
        (None, False),
    ],
)
def test_authorized(header: str | None, ok: bool) -> None:
    assert authorized(header, "s3cret") is ok


def test_read_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("  abc\n")
    assert read_token(tmp_path / "token") == "abc"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        read_token(tmp_path / "empty")
    with pytest.raises(ValueError, match="cannot read the admin token file"):
        read_token(tmp_path / "absent")


# --- JSON bodies and flags -------------------------------------------------------------------------------------------


def test_json_object() -> None:
    assert json_object(b"  ") == {}
    assert json_object(b'{"ready": true}') == {"ready": True}
    with pytest.raises(BadRequestError, match="must be a JSON object"):
        json_object(b"[1]")
    with pytest.raises(BadRequestError, match="depth limit exceeded"):
        json_object(b"[" * 2000 + b"]" * 2000)


def test_limit_flags_have_defaults_and_environment_variables() -> None:
    config = parse_server_args(["--model-repository", "/m"], {})
    assert (config.admin_host, config.admin_port, config.admin_token_file) == ("127.0.0.1", 8082, None)
    assert (config.max_inflight_requests, config.max_buffered_bytes) == (256, 256 * 2**20)
    assert (config.body_timeout_seconds, config.idle_timeout_seconds, config.serve) == (60.0, 30.0, ())
    env = {"MODELYARD_MAX_BUFFERED_BYTES": "1Gi", "MODELYARD_SERVE": "a:1,b", "MODELYARD_ADMIN_TOKEN_FILE": "/t"}
    config = parse_server_args(["--model-repository", "/m"], env)
    assert (config.max_buffered_bytes, config.serve) == (2**30, (("a", "1"), ("b", None)))
    assert config.admin_token_file == Path("/t")
    assert parse_server_args(["--model-repository", "/m", "--serve", "c:3"], env).serve == (("c", "3"),)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-buffered-bytes", "1Mi", "--max-body-bytes", "2Mi"], "below --max-body-bytes"),
        (["--max-inflight-requests", "0"], "must be at least 1"),
        (["--body-timeout-seconds", "0"], "must be above 0"),
        (["--idle-timeout-seconds", "7200"], "at most 3600"),
        (["--admin-port", "70000"], "is not a port number"),
        (["--serve", "m:"], "MODEL:VERSION"),
    ],
)
def test_limit_flags_are_validated(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_server_args(["--model-repository", "/m", *args], {})
    assert message in capsys.readouterr().err
