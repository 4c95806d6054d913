"""Real S3-compatible servers. For loader tests: MinIO, built from its Go module by ``hack/build-minio.sh`` (cached
by the version pinned in ``hack/versions.env``), started as a process on 127.0.0.1 with a data folder of its own.

Objects are uploaded with botocore's own S3 client (an independent implementation of SigV4 and the S3 API, not
the loader's). ``tls=True`` serves https with a test CA's certificate (``ca``: the CA's PEM); ``domain`` turns on
virtual-hosted addressing for ``BUCKET.<domain>``; ``region`` is the region MinIO checks signatures against.
The loader benchmark (benchmarks/loader) measures against the same MinIO.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import botocore.session
from botocore.config import Config

from devcluster import free_port

from .processes import stop, wait_port

REPO = Path(__file__).resolve().parents[2]
ROOT_USER = "modelyard-test-root"
ROOT_PASSWORD = "modelyard-test-root-secret"


def minio_binary() -> str:
    """The cached MinIO binary (built on first use: several minutes cold, instant warm)."""
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "build-minio.sh")], capture_output=True, text=True, check=False, timeout=3600
    )
    if out.returncode != 0:
        raise RuntimeError(f"hack/build-minio.sh failed: {out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def make_tls(d: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1/localhost, as MinIO's certs folder wants them; returns the
    CA's PEM."""
    d.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            "ca.key", "-out", "ca.pem", "-subj", "/CN=modelyard test S3 CA", "-days", "2")  # fmt: skip
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            "private.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "public.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return d / "ca.pem"


class S3Server:
    def __init__(self, port: int, *, scheme: str, host: str, region: str, ca: Path | None) -> None:
        self.port = port
        self.host = host
        self.endpoint = f"{scheme}://{host}:{port}"
        self.region = region
        self.ca = ca
        self.access_key = ROOT_USER
        self.secret_key = ROOT_PASSWORD
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            session = botocore.session.get_session()
            self._client = session.create_client(
                "s3",
                region_name=self.region,
                endpoint_url=f"{self.endpoint.split('://')[0]}://127.0.0.1:{self.port}",
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                verify=str(self.ca) if self.ca else None,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            )
        return self._client

    def create_bucket(self, bucket: str) -> None:
        args: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client().create_bucket(**args)

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@contextmanager
def minio_server(
    workdir: Path,
    *,
    tls: bool = False,
    domain: str | None = None,
    region: str = "us-east-1",
    extra_env: dict[str, str] | None = None,
) -> Iterator[S3Server]:
    port, console = free_port(), free_port()
    data = workdir / "data"
    data.mkdir(parents=True)
    certs = workdir / "certs"
    ca = make_tls(certs) if tls else None
    if not tls:
        certs.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "MINIO_ROOT_USER": ROOT_USER,
        "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
        "MINIO_REGION": region,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "MINIO_CI_CD": "1",
    }
    if domain:
        env["MINIO_DOMAIN"] = domain
    env.update(extra_env or {})
    log = workdir / "minio.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [minio_binary(), "server", str(data), "--address", f"127.0.0.1:{port}",
             "--console-address", f"127.0.0.1:{console}", "--certs-dir", str(certs), "--quiet"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        wait_port(proc, port, lambda: log.read_text(errors="replace")[-2000:], timeout=60)
        srv = S3Server(port, scheme="https" if tls else "http", host=domain or "127.0.0.1", region=region, ca=ca)
        _wait_ready(srv)
        yield srv
    finally:
        stop(proc, 10)


def openid_role_arn(client_id: str, region: str) -> str:
    """The role ARN MinIO gives an OpenID provider configured with a role policy: the base64url SHA-1 of its client
    ID, in the server's region (MinIO's internal/config/identity/openid)."""
    resource = base64.urlsafe_b64encode(hashlib.sha1(client_id.encode()).digest()).rstrip(b"=").decode()  # noqa: S324
    return f"arn:minio:iam:{region}::role/{resource}"


def _wait_ready(srv: S3Server) -> None:
    """MinIO accepts connections a moment before it answers S3 requests."""
    import time

    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + 30
    while True:
        try:
            srv.client().list_buckets()
            return
        except (BotoCoreError, ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
