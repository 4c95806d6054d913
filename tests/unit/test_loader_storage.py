"""The loader's storage settings (pure enough for unit tests: files and the environment in, values out): the
credentials Secret's host binding, S3 endpoint/region/addressing precedence and URLs, the credential chain's order."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard_runtime.loader import s3, secretdir
from modelyard_runtime.loader.errors import UsageError
from modelyard_runtime.loader.sources import SourceOptions, http_signer
from modelyard_runtime.loader.uri import parse


def secret(tmp_path: Path, **keys: str) -> str:
    d = tmp_path / "secret"
    d.mkdir(parents=True, exist_ok=True)
    for k, v in keys.items():
        (d / k).write_text(v + "\n")
    return str(d)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "MODELYARD_LOADER_S3_ADDRESSING_STYLE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_ROLE_ARN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/modelyard-test")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/modelyard-test")


def test_bound_hosts_and_matching(tmp_path: Path) -> None:
    d = secret(tmp_path, host="Models.Example.com, 127.0.0.1:8443 ,https://auth.example.com")
    hosts = secretdir.bound_hosts(d, "ignored")
    assert hosts == [("models.example.com", None), ("127.0.0.1", 8443), ("auth.example.com", None)]
    assert secretdir.host_allowed("https://models.example.com/a", hosts)
    assert secretdir.host_allowed("http://models.example.com:8080/a", hosts)
    assert secretdir.host_allowed("https://127.0.0.1:8443/x", hosts)
    assert not secretdir.host_allowed("https://127.0.0.1/x", hosts)
    assert not secretdir.host_allowed("https://evil.example.com/models.example.com", hosts)
    assert not secretdir.host_allowed("https://models.example.com.evil.net/", hosts)
    assert secretdir.bound_hosts(None, "h.example") == [("h.example", None)]


def test_http_signer_bearer_basic_and_host_binding(tmp_path: Path) -> None:
    uri = parse("https://models.example.com/m.onnx")
    sign = http_signer(uri, SourceOptions(credentials_dir=secret(tmp_path, token="t0k")))
    assert sign is not None
    assert sign("GET", "https://models.example.com/m.onnx", {})["Authorization"] == "Bearer t0k"
    assert "Authorization" not in sign("GET", "https://cdn.example.net/m.onnx", {})
    basic = http_signer(uri, SourceOptions(credentials_dir=secret(tmp_path / "b", username="u", password="p")))
    assert basic is not None
    assert basic("GET", uri.raw, {})["Authorization"] == "Basic dTpw"
    with pytest.raises(UsageError, match=r"names host other\.example\.com"):
        http_signer(uri, SourceOptions(credentials_dir=secret(tmp_path / "c", token="t", host="other.example.com")))
    with pytest.raises(UsageError, match="both username and password"):
        http_signer(uri, SourceOptions(credentials_dir=secret(tmp_path / "d", username="u")))
    assert http_signer(uri, SourceOptions()) is None


def test_s3_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # AWS defaults: the regional endpoint, virtual-hosted
    got = s3.settings(SourceOptions(), "models")
    assert (got.endpoint, got.region, got.style) == ("https://s3.us-east-1.amazonaws.com", "us-east-1", "virtual")
    assert s3.settings(SourceOptions(), "my.dotted.bucket").style == "path"
    # the chart (environment) < the Secret < the flags (a ModelVersion's spec.artifact.s3)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://chart.example:9000")
    monkeypatch.setenv("AWS_REGION", "chart-1")
    monkeypatch.setenv("MODELYARD_LOADER_S3_ADDRESSING_STYLE", "virtual")
    got = s3.settings(SourceOptions(), "models")
    assert (got.endpoint, got.region, got.style) == ("http://chart.example:9000", "chart-1", "virtual")
    d = secret(tmp_path, endpoint="https://secret.example/", region="secret-1", addressingStyle="path")
    got = s3.settings(SourceOptions(credentials_dir=d), "models")
    assert (got.endpoint, got.region, got.style) == ("https://secret.example", "secret-1", "path")
    flags = SourceOptions(credentials_dir=d, s3_endpoint="http://flag.example:1", s3_region="flag-1",
                          s3_addressing_style="virtual")  # fmt: skip
    got = s3.settings(flags, "models")
    assert (got.endpoint, got.region, got.style) == ("http://flag.example:1", "flag-1", "virtual")
    # an S3-compatible endpoint without a style: path
    monkeypatch.delenv("MODELYARD_LOADER_S3_ADDRESSING_STYLE")
    assert s3.settings(SourceOptions(), "models").style == "path"


def test_s3_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="expected http"):
        s3.settings(SourceOptions(s3_endpoint="minio:9000"), "models")
    with pytest.raises(UsageError, match="expected http"):
        s3.settings(SourceOptions(s3_endpoint="https://minio/prefix"), "models")
    with pytest.raises(UsageError, match="path or virtual"):
        s3.settings(SourceOptions(credentials_dir=secret(tmp_path, addressingStyle="dns")), "models")
    with pytest.raises(UsageError, match="dots"):
        s3.settings(SourceOptions(s3_endpoint="https://s3.example", s3_addressing_style="virtual"), "a.b")


def test_s3_urls_by_style() -> None:
    path = s3.S3Client(SourceOptions(s3_endpoint="http://127.0.0.1:9000", s3_addressing_style="path"), "models")
    assert path.url("models", "a b/c.onnx") == "http://127.0.0.1:9000/models/a%20b/c.onnx"
    assert path.url("models", "", {"list-type": "2", "prefix": "x/"}) == (
        "http://127.0.0.1:9000/models?list-type=2&prefix=x%2F"
    )
    virtual = s3.S3Client(SourceOptions(s3_endpoint="https://s3.example:8443", s3_addressing_style="virtual"), "models")
    assert virtual.url("models", "a/c.onnx") == "https://models.s3.example:8443/a/c.onnx"
    assert virtual.url("models", "", {"prefix": "a/"}) == "https://models.s3.example:8443/?prefix=a%2F"


def test_credential_chain_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert s3.credentials(SourceOptions()) is None  # nothing anywhere: unsigned
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
    found = s3.credentials(SourceOptions())
    assert found is not None
    assert found.get().access_key == "ENVKEY"  # the environment, through botocore's chain
    d = secret(tmp_path, accessKeyId="SECRETKEY", secretAccessKey="s")
    found = s3.credentials(SourceOptions(credentials_dir=d))
    assert found is not None
    assert found.get().access_key == "SECRETKEY"  # the Secret's keys first
    shared = (
        "[default]\naws_access_key_id = DEFAULTKEY\naws_secret_access_key = x\n"
        "[team]\naws_access_key_id = TEAMKEY\naws_secret_access_key = y\n"
    )
    d2 = secret(tmp_path / "2", credentials=shared, profile="team")
    found = s3.credentials(SourceOptions(credentials_dir=d2))
    assert found is not None
    assert found.get().access_key == "TEAMKEY"
    with pytest.raises(UsageError, match="both"):
        s3.credentials(SourceOptions(credentials_dir=secret(tmp_path / "3", accessKeyId="only")))


def test_web_identity_is_part_of_the_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE select botocore's AssumeRoleWithWebIdentity provider,
    whose credentials refresh themselves (STS is not called until credentials are first needed)."""
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.sig")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/modelyard-loader")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    found = s3.credentials(SourceOptions())
    assert isinstance(found, s3._Botocore)
    assert found.found.method == "assume-role-with-web-identity"
