"""The local control plane: real versions, components, nodes, clean start and stop."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devcluster import ClusterError, DevCluster, versions

REPO = Path(__file__).resolve().parents[2]


def test_version_is_the_pinned_kubernetes(kubectl: Any) -> None:
    version = json.loads(kubectl.run("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == versions()["KUBERNETES_VERSION"]
    assert version["major"] == "1"


def test_every_component_is_healthy(cluster: DevCluster) -> None:
    rows = cluster.status()
    assert [name for name, _, _ in rows] == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    ]
    assert all(health == "healthy" for _, _, health in rows), rows


def test_fake_nodes_are_ready_with_their_capacity(kubectl: Any) -> None:
    nodes = {n["metadata"]["name"]: n for n in kubectl.get("nodes")["items"]}
    assert sorted(nodes) == ["cpu-0", "cpu-1", "cpu-2", "edge-0", "gpu-0", "gpu-1"]
    for node in nodes.values():
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
    assert nodes["gpu-0"]["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert nodes["edge-0"]["spec"]["taints"][0]["effect"] == "NoSchedule"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "hack" / "devcluster"), *args], capture_output=True, text=True, check=False)


def test_cli_up_env_status_down_stops_exactly_its_processes(tmp_path: Path, cluster: DevCluster) -> None:
    up = run_cli("up", "--dir", str(tmp_path), "--no-nodes")
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip().splitlines()[-1] == f"export KUBECONFIG={tmp_path / 'kubeconfig'}"
    second = DevCluster(tmp_path)
    state = second.state()
    assert state is not None
    pids = [c.pid for c in state.components]
    assert all(Path(f"/proc/{pid}").exists() for pid in pids)

    env = run_cli("env", "--dir", str(tmp_path)).stdout.splitlines()
    assert env[0] == f"export KUBECONFIG={tmp_path / 'kubeconfig'}"
    assert env[1].startswith(f"export PATH={cluster.bin}:")
    status = run_cli("status", "--dir", str(tmp_path))
    assert status.returncode == 0
    assert status.stdout.count("healthy") == 5

    down = run_cli("down", "--dir", str(tmp_path))
    assert down.returncode == 0
    assert not any(c.alive() for c in state.components)
    # The session's cluster, started the same way, is untouched.
    assert all(health == "healthy" for _, _, health in cluster.status())
    assert run_cli("status", "--dir", str(tmp_path)).returncode == 1


def test_failing_component_prints_its_log_and_leaves_nothing_running(tmp_path: Path, cluster: DevCluster) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in os.listdir(cluster.bin):
        (bin_dir / tool).symlink_to(cluster.bin / tool)
    (bin_dir / "kube-scheduler").unlink()
    (bin_dir / "kube-scheduler").write_text(
        "#!/bin/sh\necho 'scheduler: cannot start, flux capacitor missing' >&2\nexit 3\n"
    )
    (bin_dir / "kube-scheduler").chmod(0o755)
    (tmp_path / "kwok-stages").symlink_to(cluster.bin.parent / "kwok-stages")
    broken = DevCluster(tmp_path / "state", bin_dir=bin_dir)
    with pytest.raises(ClusterError) as info:
        broken.up(nodes=False)
    message = str(info.value)
    assert "kube-scheduler exited with code 3" in message
    assert "flux capacitor missing" in message
    state = broken.state()
    assert state is not None
    started = [c for c in state.components if c.name in ("etcd", "kube-apiserver", "kube-controller-manager")]
    assert len(started) == 3
    assert not any(c.alive() for c in state.components)
