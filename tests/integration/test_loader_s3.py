"""``s3://`` against a real S3-compatible server that is not moto: MinIO, built from its Go module
(``hack/build-minio.sh``), through the loader's own SigV4 client. Single objects (ranged, parallel), prefixes
(ListObjectsV2, several pages), archives, tampering, unsafe object names; endpoint, region and path or
virtual-hosted addressing from flags, the credentials Secret's keys or the environment; credentials from a
Secret, the environment, shared credentials files or a web identity token exchanged at MinIO's STS (botocore's
chain); a private CA; a Secret bound to a host.

MinIO checks signatures against its region (``eu-test-1`` here), so a request signed for another region fails:
the region really reaches the signature. Virtual-hosted requests go to ``models.s3.test``, which only the
loader's own mount namespace resolves (an /etc/hosts bind-mounted with ``unshare``), and only that name:
path-style addressing would need ``s3.test`` itself and fails there.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.loader import LOADER, PLAIN_ONNX, file_digest, result, run_loader, sha256, tar_bytes
from support.oidc import Issuer, oidc_issuer
from support.s3server import S3Server, minio_server, openid_role_arn

BIG = os.urandom(20 * 1024 * 1024 + 3)
REGION = "eu-test-1"
DOMAIN = "s3.test"
NO_IMDS = {"AWS_EC2_METADATA_DISABLED": "true"}  # no instance-metadata lookup (and its timeout) on a dev machine


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with minio_server(tmp_path_factory.mktemp("minio"), domain=DOMAIN, region=REGION) as srv:
        srv.create_bucket("models")
        srv.put("models", "fraud/42/model.onnx", PLAIN_ONNX)
        srv.put("models", "big/weights.bin", BIG)
        srv.put("models", "dir/1/a.bin", b"A" * 1000)
        srv.put("models", "dir/1/sub/b.bin", b"B" * 2000)
        srv.put("models", "dir/1/sub/c d+e.txt", b"space and plus")
        srv.put("models", "arch/m.tar.gz", tar_bytes([("model/w.bin", b"w" * 10)]))
        srv.put("models", "evil/a\\b", b"x")  # MinIO refuses '..' in names; a backslash it stores
        for i in range(1005):  # more than one ListObjectsV2 page (1000 keys)
            srv.put("models", f"many/f{i:04d}.bin", str(i).encode())
        yield srv


@pytest.fixture(scope="module")
def s3_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with minio_server(tmp_path_factory.mktemp("minio-tls"), tls=True, region=REGION) as srv:
        srv.create_bucket("models")
        srv.put("models", "fraud/42/model.onnx", PLAIN_ONNX)
        yield srv


def env_for(s3: S3Server, **extra: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key, "AWS_REGION": REGION,
            **NO_IMDS, **extra}  # fmt: skip


def endpoint(s3: S3Server) -> str:
    return f"{s3.endpoint.split('://')[0]}://127.0.0.1:{s3.port}"


def s3_fetch(s3: S3Server, uri: str, dest: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    p = run_loader(
        "fetch", "--uri", uri, "--dest", str(dest), "--s3-endpoint", endpoint(s3), "--allow-hosts", "127.0.0.1",
        *extra, env=env_for(s3) if env is None else env,
    )  # fmt: skip
    return p.returncode, p.stderr if p.returncode else p.stdout


def secret_dir(tmp_path: Path, **keys: str) -> Path:
    d = tmp_path / "secret"
    d.mkdir()
    for k, v in keys.items():
        (d / k).write_text(v + "\n")
    return d


def test_big_object_parallel_ranged(s3: S3Server, tmp_path: Path) -> None:
    code, out = s3_fetch(s3, "s3://models/big/weights.bin", tmp_path / "d", "--digest", sha256(BIG), "--parallel", "4")
    assert code == 0, out
    assert file_digest(tmp_path / "d" / "weights.bin") == sha256(BIG)


def test_tampered_digest_fails_closed(s3: S3Server, tmp_path: Path) -> None:
    code, err = s3_fetch(s3, "s3://models/big/weights.bin", tmp_path / "d", "--digest", sha256(b"x"))
    assert code == 4, err
    assert not (tmp_path / "d").exists()


def test_prefix_as_directory_with_tree_digest(s3: S3Server, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    (ref / "sub").mkdir(parents=True)
    (ref / "a.bin").write_bytes(b"A" * 1000)
    (ref / "sub" / "b.bin").write_bytes(b"B" * 2000)
    (ref / "sub" / "c d+e.txt").write_bytes(b"space and plus")
    digest = run_loader("digest", str(ref)).stdout.strip()
    for i, uri in enumerate(("s3://models/dir/1/", "s3://models/dir/1")):
        dest = tmp_path / f"d{i}"
        code, out = s3_fetch(s3, uri, dest, "--digest", digest)
        assert code == 0, out
        assert (dest / "sub" / "c d+e.txt").read_bytes() == b"space and plus"
        assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["a.bin", "b.bin", "c d+e.txt"]


def test_prefix_listing_spans_pages(s3: S3Server, tmp_path: Path) -> None:
    code, out = s3_fetch(s3, "s3://models/many/", tmp_path / "d")
    assert code == 0, out
    assert len(list((tmp_path / "d").iterdir())) == 1005


def test_archive_object_is_extracted(s3: S3Server, tmp_path: Path) -> None:
    code, out = s3_fetch(s3, "s3://models/arch/m.tar.gz", tmp_path / "d")
    assert code == 0, out
    assert (tmp_path / "d" / "model" / "w.bin").read_bytes() == b"w" * 10


def test_unsafe_object_names_below_a_prefix_refused(s3: S3Server, tmp_path: Path) -> None:
    code, err = s3_fetch(s3, "s3://models/evil/", tmp_path / "d")
    assert code == 6, err
    assert "refused object name" in err
    assert not (tmp_path / "d").exists()


def test_unsigned_requests_are_refused_by_the_store(s3: S3Server, tmp_path: Path) -> None:
    """Without any credentials the loader sends unsigned requests, which MinIO answers 403: signing matters."""
    code, err = s3_fetch(s3, "s3://models/fraud/42/model.onnx", tmp_path / "d", env={"AWS_REGION": REGION, **NO_IMDS})
    assert code == 3, err
    assert "AccessDenied" in err or "HTTP 403" in err or "no object or prefix" in err


def test_wrong_secret_is_refused_and_never_printed(s3: S3Server, tmp_path: Path) -> None:
    env = env_for(s3, AWS_SECRET_ACCESS_KEY="wrong-secret-do-not-print")
    code, err = s3_fetch(s3, "s3://models/fraud/42/model.onnx", tmp_path / "d", env=env)
    assert code == 3, err
    assert "wrong-secret-do-not-print" not in err
    assert s3.access_key not in err


def test_region_reaches_the_signature(s3: S3Server, tmp_path: Path) -> None:
    """MinIO runs in eu-test-1: a request signed for us-east-1 (the default) fails, the flag makes it pass."""
    env = {k: v for k, v in env_for(s3).items() if k != "AWS_REGION"}
    code, err = s3_fetch(s3, "s3://models/fraud/42/model.onnx", tmp_path / "a", env=env)
    assert code == 3, err
    code, out = s3_fetch(s3, "s3://models/fraud/42/model.onnx", tmp_path / "b", "--s3-region", REGION, env=env)
    assert code == 0, out


def test_credentials_from_a_mounted_secret_dir(s3: S3Server, tmp_path: Path) -> None:
    secret = secret_dir(tmp_path, accessKeyId=s3.access_key, secretAccessKey=s3.secret_key)
    env = {"AWS_REGION": REGION, **NO_IMDS}
    code, out = s3_fetch(
        s3, "s3://models/fraud/42/model.onnx", tmp_path / "d", "--credentials-dir", str(secret), env=env
    )
    assert code == 0, out
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["model.onnx"]


def test_endpoint_region_and_style_from_the_secrets_keys(s3: S3Server, tmp_path: Path) -> None:
    secret = secret_dir(
        tmp_path, accessKeyId=s3.access_key, secretAccessKey=s3.secret_key, endpoint=endpoint(s3), region=REGION,
        addressingStyle="path",
    )  # fmt: skip
    p = run_loader(
        "fetch", "--uri", "s3://models/fraud/42/model.onnx", "--dest", str(tmp_path / "d"),
        "--credentials-dir", str(secret), "--allow-hosts", "127.0.0.1", env=NO_IMDS,
    )  # fmt: skip
    assert result(p)["kind"] == "file"


def test_chart_wide_settings_from_the_environment(s3: S3Server, tmp_path: Path) -> None:
    """What the chart's operator.s3 values become in every loader: AWS_ENDPOINT_URL_S3, AWS_REGION and
    MODELYARD_LOADER_S3_ADDRESSING_STYLE."""
    env = env_for(s3, AWS_ENDPOINT_URL_S3=endpoint(s3), MODELYARD_LOADER_S3_ADDRESSING_STYLE="path",
                  MODELYARD_LOADER_ALLOW_HOSTS="127.0.0.1")  # fmt: skip
    p = run_loader("fetch", "--uri", "s3://models/fraud/42/model.onnx", "--dest", str(tmp_path / "d"), env=env)
    assert result(p)["kind"] == "file"


def test_endpoint_on_loopback_needs_the_allowlist(s3: S3Server, tmp_path: Path) -> None:
    p = run_loader(
        "fetch", "--uri", "s3://models/fraud/42/model.onnx", "--dest", str(tmp_path / "d"),
        "--s3-endpoint", endpoint(s3), env=env_for(s3),
    )  # fmt: skip
    assert p.returncode == 6, p.stderr


def test_missing_object_names_the_uri_without_secrets(s3: S3Server, tmp_path: Path) -> None:
    code, err = s3_fetch(s3, "s3://models/nope/model.onnx", tmp_path / "d")
    assert code == 3, err
    assert "s3://models/nope/model.onnx" in err
    assert s3.secret_key not in err


def test_credentials_from_a_shared_credentials_file_profile(s3: S3Server, tmp_path: Path) -> None:
    """botocore's chain: AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE (e.g. a mounted profile file); and the
    same file as the credentials Secret's key 'credentials' with its 'profile' key."""
    creds = tmp_path / "aws-credentials"
    creds.write_text(
        "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing-here\n\n"
        f"[modelyard]\naws_access_key_id = {s3.access_key}\naws_secret_access_key = {s3.secret_key}\n"
    )
    base = {"AWS_REGION": REGION, **NO_IMDS, "AWS_SHARED_CREDENTIALS_FILE": str(creds)}
    code, err = s3_fetch(s3, "s3://models/fraud/42/model.onnx", tmp_path / "a", env=base)
    assert code == 3, err  # the default profile's keys are wrong: the profile really chose the keys
    code, out = s3_fetch(
        s3, "s3://models/fraud/42/model.onnx", tmp_path / "b", env={**base, "AWS_PROFILE": "modelyard"}
    )
    assert code == 0, out
    secret = secret_dir(tmp_path, credentials=creds.read_text(), profile="modelyard")
    env = {"AWS_REGION": REGION, **NO_IMDS}
    code, out = s3_fetch(
        s3, "s3://models/fraud/42/model.onnx", tmp_path / "c", "--credentials-dir", str(secret), env=env
    )
    assert code == 0, out


def test_secret_bound_to_another_host_is_not_used(s3: S3Server, tmp_path: Path) -> None:
    secret = secret_dir(tmp_path, accessKeyId=s3.access_key, secretAccessKey=s3.secret_key, host="s3.example.com")
    code, err = s3_fetch(s3, "s3://models/fraud/42/model.onnx", tmp_path / "d", "--credentials-dir", str(secret))
    assert code == 2, err
    assert "names host s3.example.com" in err
    assert not (tmp_path / "d").exists()


def in_namespace_with_hosts(
    tmp_path: Path, names: str, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The loader in a mount namespace of its own whose /etc/hosts maps ``names`` to 127.0.0.1."""
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text() + f"\n127.0.0.1 {names}\n")
    full = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELYARD_LOADER_"))} | env
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(hosts), LOADER, *args],
        capture_output=True, text=True, timeout=120, env=full, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("style", ["virtual", "path"])
def test_virtual_hosted_addressing(s3: S3Server, tmp_path: Path, style: str) -> None:
    """Only models.s3.test resolves: virtual-hosted requests (BUCKET.HOST) reach MinIO, path-style ones (HOST/BUCKET)
    cannot even resolve their host."""
    p = in_namespace_with_hosts(
        tmp_path, f"models.{DOMAIN}", "fetch", "--uri", "s3://models/fraud/42/model.onnx", "--dest",
        str(tmp_path / "d"), "--s3-endpoint", f"http://{DOMAIN}:{s3.port}", "--s3-addressing-style", style,
        "--allow-hosts", "127.0.0.1", env=env_for(s3),
    )  # fmt: skip
    if style == "virtual":
        assert p.returncode == 0, p.stderr
        assert (tmp_path / "d" / "model.onnx").read_bytes() == PLAIN_ONNX
    else:
        assert p.returncode == 3, p.stderr
        assert f"cannot resolve {DOMAIN}" in p.stderr


def test_private_ca_from_the_secret_or_the_chart(s3_tls: S3Server, tmp_path: Path) -> None:
    """https with a private CA: refused without it, accepted with the Secret's caBundle key or the chart's
    bundle (MODELYARD_LOADER_CA_FILE)."""
    assert s3_tls.ca is not None
    code, err = s3_fetch(s3_tls, "s3://models/fraud/42/model.onnx", tmp_path / "a")
    assert code == 3, err
    assert "CERTIFICATE_VERIFY_FAILED" in err or "certificate verify failed" in err
    secret = secret_dir(
        tmp_path, accessKeyId=s3_tls.access_key, secretAccessKey=s3_tls.secret_key, caBundle=s3_tls.ca.read_text()
    )
    code, out = s3_fetch(s3_tls, "s3://models/fraud/42/model.onnx", tmp_path / "b", "--credentials-dir", str(secret))
    assert code == 0, out
    env = env_for(s3_tls, MODELYARD_LOADER_CA_FILE=str(s3_tls.ca))
    code, out = s3_fetch(s3_tls, "s3://models/fraud/42/model.onnx", tmp_path / "c", env=env)
    assert code == 0, out


AUDIENCE = "sts.amazonaws.com"  # what IRSA's projected token is issued for


@pytest.fixture(scope="module")
def s3_sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, Issuer]]:
    """MinIO trusting a test OpenID issuer for AssumeRoleWithWebIdentity (role policy: readonly)."""
    with oidc_issuer() as issuer:
        openid = {
            "MINIO_IDENTITY_OPENID_CONFIG_URL": f"{issuer.url}/.well-known/openid-configuration",
            "MINIO_IDENTITY_OPENID_CLIENT_ID": AUDIENCE,
            "MINIO_IDENTITY_OPENID_ROLE_POLICY": "readonly",
        }
        with minio_server(tmp_path_factory.mktemp("minio-sts"), region=REGION, extra_env=openid) as srv:
            srv.create_bucket("models")
            srv.put("models", "fraud/42/model.onnx", PLAIN_ONNX)
            yield srv, issuer


def test_credentials_from_a_web_identity_token_file(s3_sts: tuple[S3Server, Issuer], tmp_path: Path) -> None:
    """IRSA's environment (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE): botocore exchanges the token at the STS
    (MinIO's, through AWS_ENDPOINT_URL_STS) for temporary credentials, which sign the loader's requests; a token
    for another audience is refused by the STS, with the reason and without the token."""
    srv, issuer = s3_sts
    token = tmp_path / "token"
    env = {"AWS_REGION": REGION, **NO_IMDS, "AWS_ROLE_ARN": openid_role_arn(AUDIENCE, REGION),
           "AWS_WEB_IDENTITY_TOKEN_FILE": str(token), "AWS_ENDPOINT_URL_STS": endpoint(srv),
           "AWS_ROLE_SESSION_NAME": "modelyard-loader"}  # fmt: skip
    token.write_text(issuer.token(AUDIENCE, "system:serviceaccount:ml:fraud-loader"))
    code, out = s3_fetch(srv, "s3://models/fraud/42/model.onnx", tmp_path / "a", env=env)
    assert code == 0, out
    assert (tmp_path / "a" / "model.onnx").read_bytes() == PLAIN_ONNX
    wrong = issuer.token("another-audience", "system:serviceaccount:ml:fraud-loader")
    token.write_text(wrong)
    code, err = s3_fetch(srv, "s3://models/fraud/42/model.onnx", tmp_path / "b", env=env)
    assert code == 3, err
    assert "assume-role-with-web-identity" in err
    assert wrong not in err
