"""The generated CRDs are structural, carry the CEL rules, and match the committed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard_operator.api.crd import all_crds, model_deployment_crd, model_version_crd

REPO = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key in ("properties",):
            for name, child in node.get(key, {}).items():
                out.extend(walk(child, f"{path}.{name}"))
        if isinstance(node.get("items"), dict):
            out.extend(walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            out.extend(walk(node["additionalProperties"], f"{path}{{}}"))
    return out


@pytest.mark.parametrize("crd", all_crds(), ids=lambda c: c["metadata"]["name"])
def test_schema_is_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text
    assert "$defs" not in text
    assert "title:" not in text
    for path, node in walk(schema):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            continue
        assert "type" in node, f"{path} has no type"
        assert "anyOf" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node["type"] == "string" and "enum" not in node and path.startswith(".spec"):
            assert "maxLength" in node, f"{path}: CEL cost estimation needs maxLength"


def rules(crd: dict[str, Any]) -> list[str]:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [r["rule"] for _, node in walk(schema) for r in node.get("x-kubernetes-validations", [])]


def test_model_version_crd_names_and_rules() -> None:
    crd = model_version_crd()
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["mv", "mver"]
    assert names["categories"] == ["modelyard"]
    assert "self == oldSelf" in rules(crd)
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns if "priority" not in c] == [
        "Model", "Version", "Format", "Phase", "Digest", "Size", "Validated", "Age",
    ]  # fmt: skip
    assert [c["name"] for c in columns if c.get("priority") == 1] == ["Reason", "Load", "URI"]
    digest = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["artifact"]["properties"][
        "digest"
    ]
    assert digest["pattern"] == "^sha256:[a-f0-9]{64}$"


def test_model_deployment_crd_names_and_rules() -> None:
    crd = model_deployment_crd()
    assert crd["spec"]["names"]["shortNames"] == ["md", "mdeploy"]
    version = crd["spec"]["versions"][0]
    columns = version["additionalPrinterColumns"]
    assert [c["name"] for c in columns if "priority" not in c] == [
        "Model", "Stable", "Canary", "Weight", "Ready", "Reason", "Phase", "URL", "Age",
    ]  # fmt: skip
    assert [c["name"] for c in columns if c.get("priority") == 1] == ["Requested", "Strategy", "Replicas", "gRPC"]
    by_name = {c["name"]: c for c in columns}
    assert by_name["Weight"]["jsonPath"] == ".status.weights.canary"  # the split in effect
    assert by_name["Requested"]["jsonPath"] == ".status.requestedWeight"
    all_rules = " ".join(rules(crd))
    assert "duration(self.maxDuration) >= duration(self.minDuration)" in all_rules
    assert "has(self.setWeight)" in all_rules
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    step = spec["rollout"]["properties"]["steps"]["items"]["properties"]
    assert (step["setWeight"]["minimum"], step["setWeight"]["maximum"]) == (0, 100)
    assert spec["serving"]["default"] == {"httpPort": 8080, "grpcPort": 8081}
    assert spec["rollout"]["properties"]["strategy"]["enum"] == ["canary", "blueGreen", "immediate"]


def test_failure_policy_total_is_documented_as_counting_over_the_whole_rollout() -> None:
    """``kubectl explain`` must say what decide does (and docs/rollouts.md says): failures add up across steps."""
    schema = model_deployment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    policies = [node for path, node in walk(schema) if path.endswith(".failurePolicy")]
    assert policies
    for policy in policies:
        total = policy["properties"]["total"]["description"]
        assert "whole rollout" in total
        assert "in the step" not in total


def test_committed_files_match_the_models() -> None:
    for crd in all_crds():
        committed = yaml.safe_load((REPO / "crds" / f"{crd['metadata']['name']}.yaml").read_text())
        assert committed == crd, "crds/ is stale: run make generate"
