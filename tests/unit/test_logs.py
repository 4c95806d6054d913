"""Log formats (issue 15 item 1): the operator's JSON lines through kopf's formatter, one line per decision with its
fields, the log format reaching every container of a model pod; the runtime's JSON formatter, the loader's lines and
the server's access-log line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from modelyard_operator import logs as operator_logs
from modelyard_operator.api import ModelDeployment, ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.events import decision_fields
from modelyard_operator.inpod import render_in_pod_deployment
from modelyard_operator.render import render_children
from modelyard_operator.validation import render_validation_job
from modelyard_runtime import logs as runtime_logs
from modelyard_runtime.config import parse_server_args
from modelyard_runtime.server.access import AccessLog
from modelyard_runtime.server.opening import resident_bytes
from modelyard_runtime.server.versions import reported_memory

from .samples import model_deployment, model_version

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level restored afterwards (configure replaces them)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_state = asyncio_logger.handlers[:], asyncio_logger.propagate
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    asyncio_logger.handlers[:], asyncio_logger.propagate = asyncio_state


def lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_operator_json_lines_come_from_kopfs_formatter_with_the_common_fields(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    operator_logs.configure("json", "INFO")
    formatters = {type(h.formatter).__module__ for h in root_logger.handlers if h.formatter is not None}
    assert any(m.startswith("kopf.") for m in formatters), formatters
    md = model_deployment(version="43")
    event = ("Normal", "CanaryStarted", "canary 43 at 10%")
    logging.getLogger("modelyard.operator").info(
        "decision %s: %s", event[1], event[2], extra=decision_fields(md, event)
    )
    logging.getLogger("kopf.objects").warning("a kopf line")
    logging.getLogger("modelyard.operator").debug("below the level")
    decision, kopf_line = lines(capsys.readouterr().err)
    assert RFC3339.match(decision["time"]), decision["time"]
    assert datetime.fromisoformat(decision["time"]).tzinfo is not None
    assert decision["level"] == "INFO"
    assert decision["logger"] == "modelyard.operator"
    assert decision["message"] == "decision CanaryStarted: canary 43 at 10%"
    assert {k: decision[k] for k in ("namespace", "modeldeployment", "model", "version", "reason", "type")} == {
        "namespace": "ml", "modeldeployment": "fraud", "model": "fraud", "version": "43",
        "reason": "CanaryStarted", "type": "Normal",
    }  # fmt: skip
    assert kopf_line["level"] == "WARNING"
    assert kopf_line["logger"] == "kopf.objects"
    assert kopf_line["severity"] == "warn"  # kopf's own field stays


def test_operator_text_lines_by_default(root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    operator_logs.configure("text", "INFO")
    logging.getLogger("modelyard.operator").info("hello")
    assert re.search(r" INFO modelyard\.operator: hello$", capsys.readouterr().err.strip())


def test_each_decision_event_is_logged_once_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    from modelyard_operator import handlers

    class Kube:
        def __init__(self) -> None:
            self.created: list[dict[str, Any]] = []

        async def create_event(self, event: dict[str, Any]) -> None:
            self.created.append(event)

    md = model_deployment(version="43")
    events = [("Normal", "CanaryStarted", "canary 43 at 10%"), ("Warning", "RolledBack", "error rate 9%")]
    kube = Kube()
    with caplog.at_level(logging.INFO, logger="modelyard.operator"):
        asyncio.run(handlers._emit(kube, md, events))  # type: ignore[arg-type]
    decisions = [r for r in caplog.records if r.getMessage().startswith("decision ")]
    assert [(r.reason, r.type, r.version, r.model) for r in decisions] == [  # type: ignore[attr-defined]
        ("CanaryStarted", "Normal", "43", "fraud"),
        ("RolledBack", "Warning", "43", "fraud"),
    ]
    assert len(kube.created) == 2


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_model_pods_get_the_operators_log_format(mode: str) -> None:
    md = ModelDeployment.model_validate(model_deployment(loading={"mode": mode}))
    mv = ModelVersion.model_validate(
        model_version(warmup={"samples": {"uri": "s3://m/s", "digest": "sha256:" + "a" * 64}})
    )
    json_config = OperatorConfig(log_format="json")
    pods = [render_children(md, mv, json_config)[0]["spec"]["template"]["spec"]]
    pods.append(render_in_pod_deployment(md, mv, mv, json_config, replicas=1)["spec"]["template"]["spec"])
    pods.append(render_validation_job(mv, json_config)["spec"]["template"]["spec"])
    for pod in pods:
        containers = [*pod.get("initContainers", []), *pod["containers"]]
        assert len(containers) >= 1
        for container in containers:
            assert env_of(container).get("MODELYARD_LOG_FORMAT") == "json", container["name"]
    text = render_children(md, mv, OperatorConfig())[0]["spec"]["template"]["spec"]
    for container in [*text["initContainers"], *text["containers"]]:  # the default adds nothing to the pod
        assert "MODELYARD_LOG_FORMAT" not in env_of(container)


def test_runtime_json_formatter_has_the_common_fields_and_extras() -> None:
    record = logging.LogRecord("modelyard.server", logging.WARNING, __file__, 1, "loaded %s", ("m",), None)
    record.model = "m"
    record.version = "1"
    doc = json.loads(runtime_logs.JsonFormatter().format(record))
    assert RFC3339.match(doc["time"])
    assert doc["time"].endswith("Z")
    assert (doc["level"], doc["logger"], doc["message"], doc["model"], doc["version"]) == (
        "WARNING", "modelyard.server", "loaded m", "m", "1",
    )  # fmt: skip
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(runtime_logs.JsonFormatter().format(failed))["exception"]


def test_loader_lines_are_text_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.delenv(runtime_logs.ENV, raising=False)
    runtime_logs.line("modelyard-loader", "fetched x", stream=out, bytes=3)
    monkeypatch.setenv(runtime_logs.ENV, "json")
    runtime_logs.line("modelyard-loader", "fetched y", stream=out, level="ERROR", bytes=4)
    first, second = out.getvalue().splitlines()
    assert first == "modelyard-loader: fetched x"
    doc = json.loads(second)
    assert (doc["level"], doc["logger"], doc["message"], doc["bytes"]) == ("ERROR", "modelyard-loader", "fetched y", 4)


def test_server_flags_and_environment(tmp_path: Path) -> None:
    repo = ["--model-repository", str(tmp_path)]
    assert parse_server_args(repo, {}).log_format == "text"
    assert parse_server_args(repo, {}).access_log is False
    config = parse_server_args(repo, {"MODELYARD_LOG_FORMAT": "json", "MODELYARD_ACCESS_LOG": "true"})
    assert (config.log_format, config.access_log) == ("json", True)
    assert parse_server_args([*repo, "--no-access-log"], {"MODELYARD_ACCESS_LOG": "1"}).access_log is False
    with pytest.raises(SystemExit):
        parse_server_args(repo, {"MODELYARD_LOG_FORMAT": "yaml"})
    with pytest.raises(SystemExit):
        parse_server_args(repo, {"MODELYARD_ACCESS_LOG": "maybe"})


def test_access_log_line_has_its_fields_and_only_printable_names(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="modelyard.access"):
        AccessLog(enabled=False).request(
            protocol="http", method="POST /", model="m", version="1", status=200, seconds=0.1, request_bytes=1, peer=""
        )
        AccessLog(enabled=True).request(
            protocol="http", method="POST /v2/models/m%0A/infer", model="m\nforged line", version="",
            status=499, seconds=0.0123, request_bytes=42, peer="127.0.0.1",
        )  # fmt: skip
    (record,) = caplog.records
    assert "\n" not in record.getMessage()
    assert record.model == "m?forged line"  # type: ignore[attr-defined]
    assert (record.status, record.duration_ms, record.request_bytes) == (499, 12.3, 42)  # type: ignore[attr-defined]


def test_the_memory_reported_per_version() -> None:
    assert reported_memory("onnxruntime_onnx", 30 * 2**20, 170) == 30 * 2**20  # as measured, not the file's size
    assert reported_memory("onnxruntime_onnx", 0, 170) == 0
    assert reported_memory("onnxruntime_onnx", None, 170) == 170  # no /proc: the backend's own figure
    assert reported_memory("tensorrt_plan", 2**20, 5 * 2**30) == 5 * 2**30  # on the GPU: the engine's figure


def test_resident_bytes_reads_this_process() -> None:
    rss = resident_bytes()
    assert rss is not None
    assert rss > 10 * 2**20
    grown = b"\x01" * (64 * 2**20)  # written, so resident
    after = resident_bytes()
    assert after is not None
    assert after - rss > 32 * 2**20
    del grown
