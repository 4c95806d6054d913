"""The real operator with ``--log-format json`` against the real control plane: every line it writes (kopf's too) is
one JSON object, each decision is a line with its model, version and reason, and the model pods it renders get the
same format for their server and loader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import Kubectl, dev_cluster, running_operator, wait_for
from ..support.processes import json_lines
from .test_operator import md, mv


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kubectl, Path]]:
    folder = tmp_path_factory.mktemp("logs")
    log = folder / "operator.log"
    with dev_cluster(folder / "cluster") as cl, running_operator(cl.kubeconfig, log, "--log-format", "json"):
        yield Kubectl(cl.bin / "kubectl", cl.kubeconfig), log


def lines(log: Path) -> list[dict[str, Any]]:
    return json_lines(log.read_text(errors="replace"))


def test_json_lines_decisions_and_the_pods_log_format(operator: tuple[Kubectl, Path]) -> None:
    kubectl, log = operator
    ns = "logs"
    kubectl.run("create", "namespace", ns)
    wait_for(lambda: kubectl.get("serviceaccount", "default", ns), what="default service account")
    kubectl.apply(md(version="3"), ns)  # no such ModelVersion yet: a Degraded decision
    decision = wait_for(
        lambda: next((d for d in lines(log) if d.get("reason") == "ModelVersionNotFound"), None),
        timeout=20,
        what="the decision's log line",
    )
    assert decision["logger"] == "modelyard.operator"
    assert decision["message"].startswith("decision ModelVersionNotFound: ")
    assert (decision["namespace"], decision["modeldeployment"], decision["model"], decision["version"]) == (
        ns, "fraud", "fraud", "3",
    )  # fmt: skip
    assert decision["type"] == "Warning"
    assert decision["level"] == "INFO"

    kubectl.apply(mv("3"), ns)
    deployment = wait_for(lambda: kubectl.get("deployment", "fraud-3", ns), timeout=60, what="Deployment fraud-3")
    pod = deployment["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("MODELYARD_LOG_FORMAT") == "json", container["name"]

    every = lines(log)
    assert all({"time", "level", "logger", "message"} <= d.keys() for d in every)
    assert any(d["logger"].startswith("kopf.") for d in every)  # kopf's own lines, through its JSON formatter
