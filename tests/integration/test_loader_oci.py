"""``oci://`` against a real registry (Debian's docker-registry) with artifacts pushed by the ORAS CLI:
ORAS files and directories, image-style tar layers, digests checked for the manifest and every blob,
escaping layers refused, anonymous, basic and bearer-token auth."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fileserver import serving
from support.httpserver import serve
from support.loader import PLAIN_ONNX, file_digest, result, run_loader, sha256, tar_bytes
from support.registry import Registry, registry
from support.tokenserver import TokenServer, token_server

NET = ("--allow-hosts", "127.0.0.1", "--oci-plain-http")


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry(tmp_path_factory.mktemp("registry")) as r:
        yield r


@pytest.fixture(scope="module")
def pushed(reg: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("push")
    (work / "model.onnx").write_bytes(PLAIN_ONNX)
    (work / "config.yaml").write_text("batching: {maxBatchSize: 4}\n")
    (work / "saved").mkdir()
    (work / "saved" / "saved_model.pb").write_bytes(b"pb")
    (work / "saved" / "variables").mkdir()
    (work / "saved" / "variables" / "variables.index").write_bytes(b"ix")
    return {
        "files": reg.push_files("models/fraud:42", ["model.onnx:application/vnd.onnx", "config.yaml"], cwd=work),
        "dir": reg.push_files("models/saved:1", ["saved"], cwd=work),
        "image": reg.push_image(
            "models/image",
            [tar_bytes([("models/m/1/model.onnx", PLAIN_ONNX)]), tar_bytes([("models/m/config.yaml", b"a: 1")])],
        ),
        "escape": reg.push_image("models/evil", [tar_bytes([("../../escaped", b"x")])]),
        "title": reg.push_image("models/title", [b"x"], media="application/octet-stream", titles=["../evil"]),
    }


def oci_fetch(reg: Registry, repo: str, digest: str, dest: Path, *extra: str) -> tuple[int, str]:
    p = run_loader("fetch", "--uri", f"oci://{reg.host}/{repo}@{digest}", "--dest", str(dest), *NET, *extra)
    return p.returncode, p.stderr if p.returncode else p.stdout


def test_oras_files(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    code, out = oci_fetch(reg, "models/fraud", pushed["files"], tmp_path / "d")
    assert code == 0, out
    assert json.loads(out)["digest"] == pushed["files"]
    assert (tmp_path / "d" / "model.onnx").read_bytes() == PLAIN_ONNX
    assert (tmp_path / "d" / "config.yaml").read_text().startswith("batching")


def test_oras_directory_is_unpacked(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    code, out = oci_fetch(reg, "models/saved", pushed["dir"], tmp_path / "d")
    assert code == 0, out
    assert (tmp_path / "d" / "saved" / "variables" / "variables.index").read_bytes() == b"ix"


def test_image_layers_are_extracted_in_order(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    code, out = oci_fetch(reg, "models/image", pushed["image"], tmp_path / "d")
    assert code == 0, out
    assert (tmp_path / "d" / "models" / "m" / "1" / "model.onnx").read_bytes() == PLAIN_ONNX
    assert (tmp_path / "d" / "models" / "m" / "config.yaml").read_bytes() == b"a: 1"


def test_escaping_image_layer_refused(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    code, err = oci_fetch(reg, "models/evil", pushed["escape"], tmp_path / "deep" / "d")
    assert code == 6, err
    assert not (tmp_path / "deep" / "d").exists()
    assert not (tmp_path / "escaped").exists()


def test_escaping_layer_title_refused(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    code, err = oci_fetch(reg, "models/title", pushed["title"], tmp_path / "d")
    assert code == 6, err
    assert "title" in err


def test_unknown_digest(reg: Registry, tmp_path: Path) -> None:
    code, err = oci_fetch(reg, "models/fraud", sha256(b"nothing"), tmp_path / "d")
    assert code == 3, err
    assert not (tmp_path / "d").exists()


def test_corrupted_blob_in_the_registry_fails_closed(tmp_path: Path) -> None:
    with registry(tmp_path / "reg") as r:
        (tmp_path / "w").mkdir()
        (tmp_path / "w" / "model.onnx").write_bytes(PLAIN_ONNX)
        digest = r.push_files("models/x:1", ["model.onnx"], cwd=tmp_path / "w")
        blob_hex = sha256(PLAIN_ONNX).split(":")[1]
        data = (
            tmp_path
            / "reg"
            / "data"
            / "docker"
            / "registry"
            / "v2"
            / "blobs"
            / "sha256"
            / blob_hex[:2]
            / blob_hex
            / "data"
        )
        raw = bytearray(data.read_bytes())
        raw[5] ^= 0x01
        data.write_bytes(bytes(raw))
        code, err = oci_fetch(r, "models/x", digest, tmp_path / "d")
    assert code == 4, err
    assert "layer digest mismatch" in err
    assert not (tmp_path / "d").exists()


def test_digest_flag_must_match_the_reference(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    code, _ = oci_fetch(reg, "models/fraud", pushed["files"], tmp_path / "d", "--digest", sha256(b"other"))
    assert code == 2


def test_cache_hit_by_manifest_digest(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    args = ("--cache", str(tmp_path / "cache"))
    assert oci_fetch(reg, "models/fraud", pushed["files"], tmp_path / "d1", *args)[0] == 0
    code, out = oci_fetch(reg, "models/fraud", pushed["files"], tmp_path / "d2", *args)
    assert code == 0, out
    assert json.loads(out)["cacheHit"] is True
    assert file_digest(tmp_path / "d2" / "model.onnx") == sha256(PLAIN_ONNX)


def _push_one(r: Registry, work: Path) -> str:
    work.mkdir(exist_ok=True)
    (work / "model.onnx").write_bytes(PLAIN_ONNX)
    return r.push_files("models/private:1", ["model.onnx"], cwd=work)


def test_basic_auth(tmp_path: Path) -> None:
    with registry(tmp_path / "reg", auth=("alice", "s3cret-pw")) as r:
        digest = _push_one(r, tmp_path / "w")
        code, err = oci_fetch(r, "models/private", digest, tmp_path / "anon")
        assert code == 3, err
        assert "credentials" in err
        (tmp_path / "pw").write_text("s3cret-pw\n")
        code, out = oci_fetch(r, "models/private", digest, tmp_path / "d1",
                              "--oci-username", "alice", "--oci-password-file", str(tmp_path / "pw"))  # fmt: skip
        assert code == 0, out
        secret = tmp_path / "secret"
        secret.mkdir()
        auth = __import__("base64").b64encode(b"alice:s3cret-pw").decode()
        (secret / ".dockerconfigjson").write_text(json.dumps({"auths": {r.host: {"auth": auth}}}))
        code, out = oci_fetch(r, "models/private", digest, tmp_path / "d2", "--credentials-dir", str(secret))
        assert code == 0, out
        (tmp_path / "bad").write_text("wrong")
        code, err = oci_fetch(r, "models/private", digest, tmp_path / "d3",
                              "--oci-username", "alice", "--oci-password-file", str(tmp_path / "bad"))  # fmt: skip
        assert code == 3, err
        assert "wrong" not in err
        assert "s3cret-pw" not in err


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenServer]]:
    with (
        token_server(tmp_path, "bob", "tok-pw") as ts,
        registry(tmp_path / "reg", auth=("bob", "tok-pw"), auth_yaml=ts.registry_auth_yaml()) as r,
    ):
        yield r, ts


def test_bearer_token_auth(token_registry: tuple[Registry, TokenServer], tmp_path: Path) -> None:
    r, ts = token_registry
    digest = _push_one(r, tmp_path / "w")
    issued = ts.issued
    (tmp_path / "pw").write_text("tok-pw")
    p = run_loader("fetch", "--uri", f"oci://{r.host}/models/private@{digest}", "--dest", str(tmp_path / "d"), *NET,
                   env={"DOCKER_CONFIG": str(tmp_path / "docker")} | {"PATH": os.environ["PATH"]}, )  # fmt: skip
    assert p.returncode == 3, p.stderr
    code, out = oci_fetch(r, "models/private", digest, tmp_path / "d",
                          "--oci-username", "bob", "--oci-password-file", str(tmp_path / "pw"))  # fmt: skip
    assert code == 0, out
    assert result_files(tmp_path / "d") == ["model.onnx"]
    assert ts.issued > issued


def result_files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_result_shape(reg: Registry, pushed: dict[str, str], tmp_path: Path) -> None:
    p = run_loader("fetch", "--uri", f"oci://{reg.host}/models/fraud:42@{pushed['files']}", "--dest",
                   str(tmp_path / "d"), *NET)  # fmt: skip
    r = result(p)
    assert r["kind"] == "oci"
    assert sorted(r["files"]) == ["config.yaml", "model.onnx"]


class _Front(ThreadingHTTPServer):
    """A minimal registry for the credential tests: it challenges (``challenge``), serves one manifest, and
    answers blob requests with a redirect to ``blob_base`` (as registries backed by object storage do)."""

    daemon_threads = True

    def __init__(self, challenge: str, manifest: bytes, blob_base: str) -> None:
        super().__init__(("127.0.0.1", 0), _FrontHandler)
        self.challenge = challenge
        self.manifest = manifest
        self.blob_base = blob_base
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _FrontHandler(BaseHTTPRequestHandler):
    server: _Front

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, *, head: bool) -> None:
        srv = self.server
        srv.requests.append((self.command, self.path, dict(self.headers.items())))
        body = b""
        if not self.headers.get("Authorization"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", srv.challenge)
        elif "/manifests/" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            body = srv.manifest
        elif "/blobs/" in self.path:
            self.send_response(307)
            self.send_header("Location", f"{srv.blob_base}/{self.path.rsplit(':', 1)[1]}")
        else:
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _front(challenge: str, manifest: bytes, blob_base: str) -> contextlib.AbstractContextManager[_Front]:
    return serving(_Front(challenge, manifest, blob_base))


def _one_layer_manifest(blob: bytes) -> bytes:
    layer = {"mediaType": "application/vnd.onnx", "digest": sha256(blob), "size": len(blob),
             "annotations": {"org.opencontainers.image.title": "model.onnx"}}  # fmt: skip
    config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(b"{}"), "size": 2}
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": config, "layers": [layer]}).encode()  # fmt: skip


def _authorized(requests: list[tuple[str, str, dict[str, str]]]) -> list[str]:
    return [path for _, path, headers in requests if any(k.lower() == "authorization" for k in headers)]


def test_credentials_stay_with_the_registry_when_a_blob_redirects(tmp_path: Path) -> None:
    """The registry redirects the layer to storage on another host:port: the probe and the ranged part
    requests that follow the redirect carry no Authorization header (the registry's credentials are not
    the storage's, and pre-signed storage refuses a second auth)."""
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / sha256(PLAIN_ONNX).split(":")[1]).write_bytes(PLAIN_ONNX)
    manifest = _one_layer_manifest(PLAIN_ONNX)
    (tmp_path / "pw").write_text("front-pw")
    with serve(tmp_path / "blobs") as storage, _front('Basic realm="front"', manifest, storage.url) as front:
        p = run_loader("fetch", "--uri", f"oci://{front.host}/models/m@{sha256(manifest)}",
                       "--dest", str(tmp_path / "d"), *NET, "--oci-username", "carol",
                       "--oci-password-file", str(tmp_path / "pw"))  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert any("/blobs/" in path for path in _authorized(front.requests))  # the registry got the credentials
        assert any(headers.get("Range", "").startswith("bytes=") for _, _, headers in storage.requests)
        assert _authorized(storage.requests) == []
    assert (tmp_path / "d" / "model.onnx").read_bytes() == PLAIN_ONNX


def test_basic_credentials_do_not_follow_a_token_realm_redirect(tmp_path: Path) -> None:
    """The token realm redirects to another host:port: the basic credentials stay with the realm's origin."""
    (tmp_path / "root").mkdir()
    (tmp_path / "pw").write_text("realm-pw")
    with serve(tmp_path / "root") as elsewhere, serve(tmp_path / "root") as realm:
        realm.redirects["/token"] = f"{elsewhere.url}/token"
        challenge = f'Bearer realm="{realm.url}/token",service="svc"'
        with _front(challenge, _one_layer_manifest(PLAIN_ONNX), elsewhere.url) as front:
            p = run_loader("fetch", "--uri", f"oci://{front.host}/models/m@{sha256(b'm')}",
                           "--dest", str(tmp_path / "d"), *NET, "--oci-username", "dave",
                           "--oci-password-file", str(tmp_path / "pw"))  # fmt: skip
    assert p.returncode == 3, p.stderr
    assert "token service answered HTTP 404" in p.stderr
    assert _authorized(realm.requests) == ["/token?service=svc&scope=repository%3Amodels%2Fm%3Apull"]
    assert [path for _, path, _ in elsewhere.requests] == ["/token"]
    assert _authorized(elsewhere.requests) == []


def _secret(tmp_path: Path, **keys: str) -> Path:
    d = tmp_path / "secret"
    d.mkdir(parents=True)
    for k, v in keys.items():
        (d / k).write_text(v)
    return d


def test_credentials_secret_for_another_host_is_refused_before_any_request(tmp_path: Path) -> None:
    """A Secret whose 'host' key names another registry: nothing is sent, the reason says why (exit 2)."""
    secret = _secret(tmp_path, username="erin", password="erin-pw-never-sent", host="registry.example.com")
    with _front('Basic realm="front"', _one_layer_manifest(PLAIN_ONNX), "http://127.0.0.1:9") as front:
        p = run_loader("fetch", "--uri", f"oci://{front.host}/models/m@{sha256(b'm')}",
                       "--dest", str(tmp_path / "d"), *NET, "--credentials-dir", str(secret))  # fmt: skip
        assert p.returncode == 2, p.stderr
        assert "names host registry.example.com" in p.stderr
        assert front.requests == []
    assert "erin-pw-never-sent" not in p.stderr + p.stdout


def test_basic_credentials_go_to_a_token_realm_only_when_the_secret_names_it(tmp_path: Path) -> None:
    """The registry's token realm is another host:port: with a Secret bound to the registry's host:port, the realm
    gets no credentials; naming the realm too in 'host' lets them through."""
    (tmp_path / "root").mkdir()
    for bound_to_realm in (False, True):
        with serve(tmp_path / "root") as realm:
            challenge = f'Bearer realm="{realm.url}/token",service="svc"'
            with _front(challenge, _one_layer_manifest(PLAIN_ONNX), realm.url) as front:
                hosts = front.host + (f",{realm.url.split('://')[1]}" if bound_to_realm else "")
                secret = _secret(tmp_path / str(bound_to_realm), username="fay", password="fay-pw", host=hosts)
                p = run_loader("fetch", "--uri", f"oci://{front.host}/models/m@{sha256(b'm')}",
                               "--dest", str(tmp_path / "d"), *NET, "--credentials-dir", str(secret))  # fmt: skip
            assert p.returncode == 3, p.stderr  # the realm is a plain file server: no token either way
            token_requests = [path for _, path, _ in realm.requests if path.startswith("/token")]
            assert len(token_requests) == 1
            assert bool(_authorized(realm.requests)) is bound_to_realm
