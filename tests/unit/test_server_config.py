from __future__ import annotations

from pathlib import Path

import pytest

from modelyard_runtime.config import parse_bytes, parse_server_args


@pytest.mark.parametrize(
    ("text", "value"), [("1000", 1000), ("8Gi", 8 * 2**30), ("512Mi", 512 * 2**20), ("2G", 2 * 10**9), ("1.5Ki", 1536)]
)
def test_parse_bytes(text: str, value: int) -> None:
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "8GB", "-1", "lots"])
def test_parse_bytes_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid byte size"):
        parse_bytes(text)


def test_flags_beat_environment_which_beats_defaults() -> None:
    env = {"MODELYARD_MODEL_REPOSITORY": "/env", "MODELYARD_HTTP_PORT": "9000", "MODELYARD_MEMORY_BUDGET": "1Gi"}
    config = parse_server_args(["--http-port", "9100"], env)
    assert config.model_repository == Path("/env")
    assert config.http_port == 9100
    assert config.grpc_port == 8081
    assert config.memory_budget == 2**30
    assert config.load_mode == "static"


def test_missing_repository_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse_server_args([], {})
    assert info.value.code == 2
    assert "--model-repository" in capsys.readouterr().err


def test_bad_load_mode_from_environment_is_rejected() -> None:
    with pytest.raises(SystemExit):
        parse_server_args(["--model-repository", "/m"], {"MODELYARD_LOAD_MODE": "lazy"})
