"""``credentialsSecret`` on ``http(s)://`` artifacts, against a real HTTP server started by the test: a bearer
token or basic credentials from the Secret reach the artifact's host as an ``Authorization`` header, never a
redirect's other host, never a host the Secret does not name, and never the loader's output or termination
message."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.httpserver import FileServer, serve
from support.loader import PLAIN_ONNX, run_loader, sha256

TOKEN = "tok-3f9a-never-print-me"
PASSWORD = "pw-71c2-never-print-me"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "site"
    root.mkdir()
    (root / "model.onnx").write_bytes(PLAIN_ONNX)
    with serve(root) as srv:
        yield srv


def secret(tmp_path: Path, **keys: str) -> Path:
    d = tmp_path / "secret"
    d.mkdir()
    for k, v in keys.items():
        (d / k).write_text(v + "\n")
    return d


def fetch(url: str, dest: Path, creds: Path, *extra: str, sub: str = "fetch") -> tuple[int, str]:
    p = run_loader(sub, "--uri", url, "--dest", str(dest), "--allow-hosts", "127.0.0.1,127.0.0.2",
                   "--credentials-dir", str(creds), *extra)  # fmt: skip
    return p.returncode, p.stdout + p.stderr


def auth_headers(srv: FileServer) -> list[str]:
    return [h.get("Authorization", "") for _, _, h in srv.requests]


def test_bearer_token_reaches_the_host(site: FileServer, tmp_path: Path) -> None:
    code, out = fetch(f"{site.url}/model.onnx", tmp_path / "d", secret(tmp_path, token=TOKEN),
                      "--digest", sha256(PLAIN_ONNX))  # fmt: skip
    assert code == 0, out
    assert auth_headers(site)
    assert set(auth_headers(site)) == {f"Bearer {TOKEN}"}
    assert TOKEN not in out


def test_basic_credentials_reach_the_host(site: FileServer, tmp_path: Path) -> None:
    code, out = fetch(f"{site.url}/model.onnx", tmp_path / "d", secret(tmp_path, username="ann", password=PASSWORD))
    assert code == 0, out
    basic = "Basic " + base64.b64encode(f"ann:{PASSWORD}".encode()).decode()
    assert set(auth_headers(site)) == {basic}


def test_a_redirect_to_another_host_carries_no_credentials(site: FileServer, tmp_path: Path) -> None:
    other_root = tmp_path / "other"
    other_root.mkdir()
    (other_root / "model.onnx").write_bytes(PLAIN_ONNX)
    with serve(other_root, host="127.0.0.2") as other:
        site.redirects["/moved.onnx"] = f"{other.url}/model.onnx"
        code, out = fetch(f"{site.url}/moved.onnx", tmp_path / "d", secret(tmp_path, token=TOKEN))
        assert code == 0, out
        assert other.requests, "the redirect was not followed"
        assert auth_headers(other) == [""] * len(other.requests)
    assert f"Bearer {TOKEN}" in auth_headers(site)
    assert (tmp_path / "d" / "moved.onnx").read_bytes() == PLAIN_ONNX


def test_a_secret_naming_another_host_is_refused_before_any_request(site: FileServer, tmp_path: Path) -> None:
    creds = secret(tmp_path, token=TOKEN, host="models.example.com")
    code, out = fetch(f"{site.url}/model.onnx", tmp_path / "d", creds)
    assert code == 2, out
    assert "names host models.example.com" in out
    assert site.requests == []
    assert TOKEN not in out


def test_a_secret_naming_the_host_and_port(site: FileServer, tmp_path: Path) -> None:
    port = site.server_address[1]
    code, out = fetch(f"{site.url}/model.onnx", tmp_path / "a", secret(tmp_path, token=TOKEN, host=f"127.0.0.1:{port}"))
    assert code == 0, out
    (tmp_path / "secret").rename(tmp_path / "used")
    code, out = fetch(f"{site.url}/model.onnx", tmp_path / "b", secret(tmp_path, token=TOKEN, host="127.0.0.1:1"))
    assert code == 2, out


def test_secrets_never_in_logs_or_termination_messages(site: FileServer, tmp_path: Path) -> None:
    """A failing validation (404) and a passing one: the token and password appear in no output, no termination
    message, although the server got them."""
    for name, keys in (("bearer", {"token": TOKEN}), ("basic", {"username": "bo", "password": PASSWORD})):
        work = tmp_path / name
        work.mkdir()
        creds = secret(work, **keys)
        for path in ("/missing.onnx", "/model.onnx"):
            log = work / f"termination{path.replace('/', '-')}"
            code, out = fetch(f"{site.url}{path}", work / f"d{path}", creds, "--termination-log", str(log),
                              sub="validate")  # fmt: skip
            assert code == (3 if path == "/missing.onnx" else 0), out
            message = log.read_text()
            assert message, "no termination message written"
            for value in (TOKEN, PASSWORD, base64.b64encode(f"bo:{PASSWORD}".encode()).decode()):
                assert value not in out
                assert value not in message
    assert any(h.startswith("Bearer ") for h in auth_headers(site))
    assert any(h.startswith("Basic ") for h in auth_headers(site))
