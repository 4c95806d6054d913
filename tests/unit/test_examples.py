"""examples/ shows every field of both CRDs: each spec field is set by at least one manifest there (the server-side
dry run of every file is tests/integration/test_examples.py). A new field needs an example to pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
KINDS = {"ModelVersion": "modelversions", "ModelDeployment": "modeldeployments"}


def example_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return objects


def schema_paths(node: dict[str, Any], path: str) -> set[str]:
    """Every property path under ``node``; free-form objects and map values are not walked into."""
    out: set[str] = set()
    for name, child in (node.get("properties") or {}).items():
        child_path = f"{path}.{name}"
        out.add(child_path)
        out |= schema_paths(child, child_path)
    if isinstance(node.get("items"), dict):
        out |= schema_paths(node["items"], path + "[]")
    return out


def used_paths(value: Any, path: str) -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for key, child in value.items():
            out.add(f"{path}.{key}")
            out |= used_paths(child, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            out |= used_paths(item, path + "[]")
    return out


def test_every_spec_field_is_shown_by_an_example() -> None:
    objects = example_objects()
    for kind, plural in KINDS.items():
        crd = yaml.safe_load((REPO / "crds" / f"{plural}.modelyard.dev.yaml").read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        used: set[str] = set()
        for obj in objects:
            if obj.get("kind") == kind:
                used |= used_paths(obj.get("spec") or {}, "spec")
        missing = sorted(schema_paths(schema, "spec") - used)
        assert missing == [], f"{kind} fields no manifest under examples/ sets: {missing}"


def test_the_walk_sees_list_items_and_stops_at_free_form_objects() -> None:
    schema = {"properties": {"steps": {"items": {"properties": {"setWeight": {}}}},
                             "affinity": {"x-kubernetes-preserve-unknown-fields": True}}}  # fmt: skip
    assert schema_paths(schema, "spec") == {"spec.steps", "spec.steps[].setWeight", "spec.affinity"}
    assert used_paths({"steps": [{"pause": {}}]}, "spec") == {"spec.steps", "spec.steps[].pause"}
