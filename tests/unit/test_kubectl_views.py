"""The plugin's views on plain objects: the status tree, history, versions, compare, GitOps detection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelyard_operator.kubectl import views

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def mv(version: str, phase: str = "Ready", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": f"fraud-{version}", "creationTimestamp": f"2026-12-05T11:5{version}:00Z"},
        "spec": {"model": "fraud", "version": version, "format": "onnx",
                 "artifact": {"uri": "s3://b/m", "digest": DIGEST}},
        "status": {"phase": phase, "artifact": {"digest": DIGEST, "shortDigest": DIGEST[:19], "size": "1.2KiB"},
                   "conditions": [{"type": "Validated", "status": "True"}], **status},
    }  # fmt: skip


def pod(version: str, ready: bool) -> dict[str, Any]:
    return {
        "metadata": {"name": f"p-{version}-{ready}", "labels": {"modelyard.dev/version": version}},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


CANARY_MD: dict[str, Any] = {
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {"model": "fraud", "version": "2"},
    "status": {
        "phase": "Progressing",
        "stableVersion": "1",
        "canaryVersion": "2",
        "weights": {"stable": 75, "canary": 25},
        "step": {"index": 1, "startedAt": "2026-12-05T11:59:30Z", "evidence": 120},
        "lastDecision": {
            "verdict": "Advance", "reason": "AnalysisPassed", "at": "2026-12-05T11:59:50Z",
            "metrics": [{"name": "error-rate", "canary": 0.001, "stable": 0.002, "n": 120, "verdict": "Pass"}],
        },
        "endpoints": {"http": "http://fraud.ml.svc.cluster.local:8080", "grpc": "fraud.ml.svc.cluster.local:8081"},
        "conditions": [{"type": "Ready", "status": "False", "reason": "Rollout"}],
    },
}  # fmt: skip


def test_status_tree_of_a_canary() -> None:
    pods = [pod("1", True), pod("1", True), pod("2", True), pod("2", False), pod("0", True)]
    view = views.status_view(CANARY_MD, [mv("1"), mv("2")], pods)
    text = views.render_status(view, views.Style(), NOW)
    lines = text.splitlines()
    assert lines[0] == "ModelDeployment ml/fraud   model fraud   phase Progressing   ready False (Rollout)"
    assert lines[1].startswith("├─ stable   1          weight 75%   pods 2/2 Ready   ModelVersion fraud-1 Ready")
    assert lines[2].startswith("├─ canary   2          weight 25%   pods 1/2 Ready")
    assert lines[3].startswith("├─ draining 0")  # pods of a version the status no longer names
    assert lines[4] == "├─ step 1   started 30s ago   evidence 120 requests"
    assert lines[5] == "├─ last decision Advance: AnalysisPassed   10s ago"
    assert lines[6] == "│  └─ error-rate: canary 0.001, stable 0.002, n=120 -> Pass"
    assert lines[7].startswith("└─ endpoints http http://fraud.ml.svc.cluster.local:8080")
    data = view.as_data()
    assert [v["role"] for v in data["versions"]] == ["stable", "canary", "draining"]
    assert data["versions"][1]["pods"] == {"ready": 1, "total": 2}


def test_colour_only_when_asked_and_tables_align_without_it() -> None:
    view = views.status_view(CANARY_MD, [mv("1")], [])
    coloured = views.render_status(view, views.Style(colour=True), NOW)
    assert views.YELLOW + "Progressing" + views.RESET in coloured
    assert views.strip_colour(coloured) == views.render_status(view, views.Style(), NOW)
    table = views.table([[views.Style(colour=True).phase("Failed"), "x"], ["Ready", "y"]], ["phase", "v"])
    assert [views.strip_colour(line) for line in table.splitlines()] == ["PHASE    V", "Failed   x", "Ready    y"]


def test_history_newest_first_and_versions_with_where_they_serve() -> None:
    md = {"status": {"history": [
        {"version": "1", "outcome": "Promoted", "at": "2026-12-05T10:00:00Z"},
        {"version": "2", "outcome": "RolledBack", "at": "2026-12-05T11:00:00Z"},
    ]}}  # fmt: skip
    assert [r[:3] for r in views.history_rows(md, NOW)] == [["2", "RolledBack", "1h"], ["1", "Promoted", "2h"]]
    rows = views.versions_rows([mv("1"), mv("2", phase="Failed")], [CANARY_MD], NOW)
    assert rows[0][:3] == ["fraud-2", "2", "Failed"]  # newest first
    assert {r[1]: r[5] for r in rows} == {"1": "fraud(stable)", "2": "fraud(canary)"}
    assert rows[1][3:5] == [DIGEST[:19], "1.2KiB"]


def test_compare_marks_differences_and_adds_live_figures() -> None:
    a, b = mv("1", loadSeconds=0.5), mv("2", loadSeconds=0.5)
    b["spec"]["artifact"]["signature"] = {"uri": "s3://b/sig"}
    rows = {r[0]: r[1:] for r in views.compare_rows(a, b, {"error rate": (0.0, 0.25)})}
    assert rows["version"] == ["1", "2", "differs"]
    assert rows["load seconds"] == ["0.5", "0.5", ""]
    assert rows["signed"] == ["no", "yes", "differs"]
    assert rows["error rate"] == ["0", "0.25", ""]


def test_gitops_managers_are_recognised() -> None:
    assert views.gitops_manager({"metadata": {}}) is None
    argo = {"metadata": {"annotations": {"argocd.argoproj.io/tracking-id": "app:modelyard.dev/ModelDeployment:ml/x"}}}
    assert views.gitops_manager(argo) == "Argo CD"
    flux = {"metadata": {"managedFields": [{"manager": "kustomize-controller"}]}}
    assert views.gitops_manager(flux) == "Flux"
    assert views.gitops_manager({"metadata": {"labels": {"helm.toolkit.fluxcd.io/name": "x"}}}) == "Flux"
    assert views.gitops_change(CANARY_MD, "1").endswith('spec:\n  version: "1"')


def test_age_like_kubectl() -> None:
    assert [views.age(t, NOW) for t in ("2026-12-05T11:59:15Z", "2026-12-05T11:00:00Z", "2026-12-01T12:00:00Z")] == [
        "45s", "1h", "4d",
    ]  # fmt: skip
    assert views.age(None, NOW) == views.age("garbage", NOW) == "-"
