"""``kubectl modelyard`` found by the real kubectl on PATH, against the real API server and the real operator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import Kubectl, wait_for
from .test_operator import md, mv

pytestmark = pytest.mark.usefixtures("operator_process")


def plugin(kubectl: Kubectl, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kubectl modelyard ARGS``: kubectl finds ``kubectl-modelyard`` (the venv's console script) on PATH."""
    path = f"{Path(sys.executable).parent}:{kubectl.binary.parent}:{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "KUBECONFIG": str(kubectl.kubeconfig)}
    proc = subprocess.run(
        [str(kubectl.binary), "modelyard", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl modelyard {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def stable(kubectl: Kubectl, namespace: str, version: str) -> None:
    def ready() -> bool:
        obj = kubectl.get("md", "fraud", namespace) or {}
        st = obj.get("status") or {}
        conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
        return st.get("stableVersion") == version and conds.get("Ready") == "True"

    wait_for(ready, timeout=90, what=f"version {version} stable and Ready")


def test_status_versions_history_and_compare(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv("1"), mv("2")], namespace)
    kubectl.apply(md(version="1"), namespace)
    stable(kubectl, namespace, "1")

    text = plugin(kubectl, "status", "fraud", "-n", namespace).stdout
    assert f"ModelDeployment {namespace}/fraud" in text
    assert "phase Healthy" in text
    assert "ready True (Available)" in text
    stable_line = next(line for line in text.splitlines() if "stable" in line)
    assert "pods 2/2 Ready" in stable_line
    assert "weight 100%" in stable_line
    assert "ModelVersion fraud-1 Ready" in stable_line
    assert f"http://fraud.{namespace}.svc.cluster.local:8080" in text
    assert "\x1b[" not in text  # no colour into a pipe
    data = json.loads(plugin(kubectl, "status", "fraud", "-n", namespace, "-o", "json").stdout)
    assert data["versions"][0] | {"modelVersion": "fraud-1"} == data["versions"][0]
    assert data["versions"][0]["pods"] == {"ready": 2, "total": 2}
    assert data["ready"]["status"] == "True"

    versions = yaml.safe_load(plugin(kubectl, "versions", "fraud", "-n", namespace, "-o", "yaml").stdout)
    assert {v["version"]: v["serving"] for v in versions} == {"1": "fraud(stable)", "2": "-"}

    cmp = plugin(kubectl, "compare", "mv", "fraud-1", "fraud-2", "-n", namespace).stdout
    version_row = next(line.split() for line in cmp.splitlines() if line.startswith("version"))
    assert version_row == ["version", "1", "2", "differs"]
    digest_row = next(line.split() for line in cmp.splitlines() if line.startswith("digest"))
    assert digest_row[1] == digest_row[2]  # both fixtures carry the same digest
    assert len(digest_row) == 3  # ... so nothing "differs"

    # rollback to version 2 (forward here: any validated version) and wait for it to serve
    out = plugin(kubectl, "rollback", "fraud", "--to", "2", "--wait", "-n", namespace)
    assert "spec.version 1 -> 2" in out.stdout
    assert "version 2 serves" in out.stdout
    # an immediate replacement is not a rollout: no history (unit tests cover the table of a real one)
    assert json.loads(plugin(kubectl, "history", "fraud", "-n", namespace, "-o", "json").stdout) == []
    assert plugin(kubectl, "history", "fraud", "-n", namespace).stdout.strip() == "no rollout history yet"


def test_actions_wait_for_the_operators_decision(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv("1")], namespace)
    kubectl.apply(md(version="1", replicas=1), namespace)
    stable(kubectl, namespace, "1")
    refused = plugin(kubectl, "approve", "fraud", "-n", namespace, check=False)
    assert refused.returncode == 1
    assert "strategy immediate: actions apply to canary and blueGreen only" in refused.stderr
    canary = {"strategy": "canary", "steps": [{"setWeight": 50}, {"pause": {}}]}
    kubectl.apply(md(version="1", replicas=1, rollout=canary), namespace)
    out = plugin(kubectl, "approve", "fraud", "--wait", "--timeout", "60", "-n", namespace)
    assert "approve requested (nonce " in out.stdout
    assert "approve: NothingToApprove" in out.stdout  # nothing waits for approval: the operator said so
    handled: dict[str, Any] = kubectl.get("md", "fraud", namespace)["status"]["lastHandledAction"]
    annotation = kubectl.get("md", "fraud", namespace)["metadata"]["annotations"]["modelyard.dev/action"]
    assert annotation == f"approve:{handled['nonce']}"


def test_bad_input_and_gitops_managed_objects(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply([mv("1")], namespace)
    kubectl.apply(md(version="1", replicas=1), namespace)
    missing = plugin(kubectl, "status", "nope", "-n", namespace, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: ModelDeployment nope not found in namespace {namespace}"
    unknown = plugin(kubectl, "rollback", "fraud", "--to", "9", "-n", namespace, check=False)
    assert unknown.returncode == 1
    assert "model fraud has no ModelVersion with version '9'" in unknown.stderr

    kubectl.run("label", "md", "fraud", "-n", namespace, "kustomize.toolkit.fluxcd.io/name=apps")
    refused = plugin(kubectl, "rollback", "fraud", "--to", "1", "-n", namespace, check=False)
    assert refused.returncode == 1
    assert "warning: Flux manages modeldeployment/fraud" in refused.stdout
    assert kubectl.get("md", "fraud", namespace)["spec"]["version"] == "1"
    change = plugin(kubectl, "rollback", "fraud", "--to", "1", "--gitops", "-n", namespace).stdout
    assert yaml.safe_load(change) == {"spec": {"version": "1"}}


def test_completion_scripts_are_valid_shell() -> None:
    script = subprocess.run(
        [str(Path(sys.executable).parent / "modelyard"), "completion", "bash"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    check = subprocess.run(
        ["bash", "-c", f'{script}\nCOMP_WORDS=(modelyard st); COMP_CWORD=1; _modelyard; echo "${{COMPREPLY[@]}}"'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert check.stdout.split() == ["status"]
