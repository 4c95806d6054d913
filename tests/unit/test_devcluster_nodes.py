"""The fake nodes the local control plane creates (pure part of hack/devcluster.py)."""

from __future__ import annotations

from devcluster import fake_nodes, versions


def test_node_mix() -> None:
    nodes = {n["metadata"]["name"]: n for n in fake_nodes()}
    cpu = [n for n in nodes if n.startswith("cpu-")]
    gpu = [n for n in nodes if n.startswith("gpu-")]
    assert len(cpu) == 3
    assert len(gpu) == 2
    assert "edge-0" in nodes
    for name in gpu:
        node = nodes[name]
        assert node["status"]["capacity"]["nvidia.com/gpu"] == "8"
        assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    for name in cpu:
        assert "nvidia.com/gpu" not in nodes[name]["status"]["capacity"]
    edge = nodes["edge-0"]
    assert edge["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    assert edge["spec"]["taints"] == [{"key": "modelyard.dev/edge", "value": "true", "effect": "NoSchedule"}]
    cidrs = [n["spec"]["podCIDR"] for n in nodes.values()]
    assert len(set(cidrs)) == len(cidrs)
    for node in nodes.values():
        assert node["metadata"]["labels"]["modelyard.dev/fake-node"] == "true"


def test_versions_are_pinned_in_one_file() -> None:
    pinned = versions()
    assert pinned["KUBERNETES_VERSION"].startswith("v1.35.")
    assert {"ETCD_VERSION", "KWOK_VERSION", "HELM_VERSION"} <= set(pinned)
