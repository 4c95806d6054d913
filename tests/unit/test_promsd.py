"""hack/promsd.py's pod -> target-group translation: the labels Kubernetes SD (role pod) would give."""

from __future__ import annotations

from typing import Any

from promsd import sanitize, target_groups


def pod(name: str, ip: str = "10.244.100.7", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns1",
            "uid": "u-1",
            "labels": {"app.kubernetes.io/name": "modelyard-server"},
        },
        "spec": {"nodeName": "node-0", **spec},
        "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_one_target_per_declared_port_with_kubernetes_sd_labels() -> None:
    ports = [{"name": "http", "containerPort": 8080}, {"name": "grpc", "containerPort": 8081}]
    groups = target_groups([pod("m", containers=[{"name": "server", "ports": ports}, {"name": "side"}])])
    assert [g["targets"] for g in groups] == [["10.244.100.7:8080"], ["10.244.100.7:8081"]]
    labels = groups[0]["labels"]
    assert labels["__meta_kubernetes_namespace"] == "ns1"
    assert labels["__meta_kubernetes_pod_name"] == "m"
    assert labels["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "modelyard-server"
    assert labels["__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name"] == "true"
    assert labels["__meta_kubernetes_pod_container_name"] == "server"
    assert labels["__meta_kubernetes_pod_container_port_name"] == "http"
    assert labels["__meta_kubernetes_pod_container_port_number"] == "8080"
    assert labels["__meta_kubernetes_pod_container_port_protocol"] == "TCP"
    assert labels["__meta_kubernetes_pod_ready"] == "true"
    assert labels["__meta_kubernetes_pod_container_init"] == "false"
    assert groups[1]["labels"]["__meta_kubernetes_pod_container_port_name"] == "grpc"


def test_pods_without_an_ip_or_ports_have_no_targets() -> None:
    http = [{"name": "server", "ports": [{"name": "http", "containerPort": 8080}]}]
    assert target_groups([pod("pending", ip="", containers=http), pod("noports", containers=[{"name": "c"}])]) == []


def test_label_names_are_sanitized_like_prometheus() -> None:
    assert sanitize("app.kubernetes.io/name") == "app_kubernetes_io_name"
    assert sanitize("a-b_c9") == "a_b_c9"
