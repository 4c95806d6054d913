"""The demo is the product's front door: it must run end to end and leave nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# A cluster start, helm, four versions and the model pipeline through real pods: above the default per-test timeout.
pytestmark = pytest.mark.timeout(600)


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


def no_node_left() -> bool:
    """No bridge, no pod network namespace, no container and no state folder of the real node remain."""
    bridge = subprocess.run(["ip", "link", "show", "mdy0"], capture_output=True, check=False).returncode != 0
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    shims = subprocess.run(["pgrep", "-f", "containerd-shim"], capture_output=True, text=True, check=False).stdout
    return bridge and "cni-" not in namespaces and not shims and not Path("/var/lib/modelyard-node").exists()


def test_demo_runs_end_to_end_and_stops_everything(tmp_path: Path) -> None:
    proc = demo(tmp_path)
    out, _ = proc.communicate(timeout=580)
    print(out)  # the whole story in the log (pytest shows it with -s or on failure)
    assert proc.returncode == 0, out
    # real inference all along: every user request answered right, by version 1 and then version 2
    m = re.search(r"user requests: (\d+) sent, (\d+) failed \(answered right by v1: (\d+), v2: (\d+)\)", out)
    assert m, out
    sent, failed, v1, v2 = map(int, m.groups())
    assert (failed, v1 + v2) == (0, sent)
    assert v1 > 20, out
    assert v2 > 20, out
    # the failing version 3 was rolled back on its preview traffic; the tampered version 4 was rejected
    assert re.search(r"preview requests to adder-canary: \d+ sent, [1-9]\d* failed on version 3", out), out
    assert "RollBack: CriticalMetricFailed: rolled back 3 to stable 2" in out
    assert "ModelVersion adder-4: DigestMismatch" in out
    # -o wide: NAME MODEL STABLE CANARY(empty) WEIGHT REQUESTED(empty or a number) READY REASON PHASE URL ...
    assert re.search(r"modeldeployment.modelyard.dev/adder +adder +2 +0 +(\d+ +)?(True|False) +\w+ +Degraded", out), out
    assert re.search(r"modelversion.modelyard.dev/adder-4 +adder +4 +onnx +Failed", out), out
    for label in ("control plane + real node + Prometheus up", "images pushed to the dev registry",
                  "helm install (operator Ready)", "v1: kubectl apply -> first correct "
                  "inference", "v2: canary -> analysis -> promoted", "v3: apply -> rolled back automatically",
                  "v4: apply -> rejected by validation", "demo wall time"):  # fmt: skip
        assert label in out
    assert "Stopped 12 cluster processes" in out
    # the model pipeline: PMML and SavedModel answer; an int8 version is derived, shadowed, promoted; no request failed
    assert re.search(r"churn \(PMML RegressionModel [^)]*\), x1=1, x2=2: \{'y': \[-0\.5\]\}", out), out
    assert re.search(r"dense \(SavedModel, engine tensorflow in the runtime-tf image\): \{'\w+': \[\[-?\d", out), out
    assert re.search(
        r"pushed to the artifact store: oci://10\.244\.100\.1:\d+/modelyard/modelyard-demo/cls@sha256:", out
    )
    assert re.search(r"build Job cls-1-int8-build: 1583355 -> \d{6} bytes", out), out  # int8 weights: about 1/4
    tail = out.split("int8: shadowed -> agreement analysis -> promoted")[1]  # the chapter, not the summary
    assert "Steady: Stable: version 1-int8 is stable" in tail, out
    assert re.search(r"shadowed: Advance: AnalysisPassed: analysis passed \(\d+ requests\)", tail), out
    m = re.search(r"classifier requests: (\d+) sent, (\d+) failed \(answered right by ([^;]*);", out)
    assert m, out
    by_version = {v: int(n) for v, n in (part.split(": ") for part in m.group(3).split(", "))}
    assert int(m.group(2)) == 0, out
    assert sum(by_version.values()) == int(m.group(1)), out
    v1 = by_version["1"]
    assert v1 > 20, out
    vip_answer = r"through the Service adder \(10\.96\.[0-9.]+:8080\): A \+ B = \[10\.0, 11\.0, 12\.0, 13\.0\]"
    assert re.search(vip_answer, out), out
    assert not (tmp_path / "state.json").exists()
    assert no_node_left()
    operator_log = (tmp_path / "operator.log").read_text()
    assert "Forbidden" not in operator_log, operator_log[-3000:]


def test_demo_interrupted_stops_everything(tmp_path: Path) -> None:
    proc = demo(tmp_path)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        seen.append(line)
        if "first answer from pod" in line or time.monotonic() > deadline:  # pods and traffic running
            break
    pids = started_pids(tmp_path)
    # control plane, kwok, registry, containerd, kubelet, kube-proxy, CoreDNS, Prometheus and its discovery
    assert len(pids) == 12, "".join(seen)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + out
    assert "nothing is left running" in out
    assert not any(alive(pid) for pid in pids)
    assert no_node_left()
