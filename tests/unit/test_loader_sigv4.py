"""SigV4 signing: AWS's published examples, and agreement with botocore's signer on other requests."""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.auth  # a runtime dependency of the loader (its credential chain)
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from modelyard_runtime.loader.sigv4 import Credentials, sign

CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
WHEN = datetime(2013, 5, 24, tzinfo=UTC)


def signature(headers: dict[str, str]) -> str:
    return headers["Authorization"].rsplit("Signature=", 1)[1]


def test_get_object_example() -> None:
    h = sign("GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"}, CREDS,
             region="us-east-1", now=WHEN)  # fmt: skip
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in h["Authorization"]
    assert signature(h) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_list_objects_example() -> None:
    h = sign("GET", "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J", {}, CREDS,
             region="us-east-1", now=WHEN)  # fmt: skip
    assert signature(h) == "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"


def test_repr_hides_the_secret() -> None:
    assert "wJalr" not in repr(CREDS)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/models/fraud/42/model%20v2.onnx",
        "https://s3.eu-west-1.amazonaws.com/models?list-type=2&prefix=fraud%2F42%2F&continuation-token=a%2Bb%3D",
    ],
)
def test_agrees_with_botocore(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = Credentials("AKIDEXAMPLE", "secret/with+chars", "session-token")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    req = AWSRequest(method="GET", url=url, headers={"Range": "bytes=0-99"})
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    S3SigV4Auth(BotoCredentials("AKIDEXAMPLE", "secret/with+chars", "session-token"), "s3", "eu-west-1").add_auth(req)
    ours = sign("GET", url, {"Range": "bytes=0-99"}, creds, region="eu-west-1", now=now)
    assert ours["Authorization"] == req.headers["Authorization"]
