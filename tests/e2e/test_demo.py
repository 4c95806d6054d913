"""The demo is the product's front door: it must run end to end and leave nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A cold cluster start plus helm and two rollouts: above the suite's default per-test timeout.
pytestmark = pytest.mark.timeout(300)


def demo(state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "hack" / "demo.py"), "--dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def started_pids(state: Path) -> list[int]:
    raw = json.loads((state / "state.json").read_text()) if (state / "state.json").exists() else {"components": []}
    return [c["pid"] for c in raw["components"]]


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_demo_runs_end_to_end_and_stops_everything(tmp_path: Path) -> None:
    proc = demo(tmp_path)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "modeldeployment.modelyard.dev/fraud   fraud   1" in out
    assert "modeldeployment.modelyard.dev/fraud   fraud   2" in out
    assert "deployment.apps/fraud-2   2/2" in out
    assert "Healthy" in out
    for label in ("control plane up", "helm install", "apply -> ModelDeployment Ready", "version switch 1 -> 2"):
        assert label in out
    assert "Stopped the operator and 5 control-plane processes" in out
    assert not (tmp_path / "state.json").exists()
    operator_log = (tmp_path / "operator.log").read_text()
    assert "Forbidden" not in operator_log, operator_log[-3000:]


def test_demo_interrupted_stops_everything(tmp_path: Path) -> None:
    proc = demo(tmp_path)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        seen.append(line)
        if "Applying examples/quickstart.yaml" in line or time.monotonic() > deadline:
            break
    pids = started_pids(tmp_path)
    assert len(pids) == 5, "".join(seen)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + out
    assert "nothing is left running" in out
    assert not any(alive(pid) for pid in pids)
