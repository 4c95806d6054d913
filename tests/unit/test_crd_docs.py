"""Every field of both CRDs has a description, so ``kubectl explain`` documents all of them.

The walk reads the committed ``crds/*.yaml`` (what users install; ``make check-generated`` keeps them equal to
the API models) and follows every property, through array items and map values, from the schema's root (but
``metadata``, which the API server documents itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))


def undocumented(node: dict[str, Any], path: str) -> list[str]:
    """The paths of the properties under ``node`` that carry no description (a property's schema is what
    ``kubectl explain`` prints; array items and map values are walked for their own properties)."""
    missing: list[str] = []
    for name, child in (node.get("properties") or {}).items():
        child_path = f"{path}.{name}" if path else name
        if child_path == "metadata":
            # the API server refuses a description here (only the type may be given); kubectl explain shows
            # ObjectMeta's own documentation
            assert child == {"type": "object"}
            continue
        if not str(child.get("description", "")).strip():
            missing.append(child_path)
        missing.extend(undocumented(child, child_path))
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(node.get(key), dict):
            missing.extend(undocumented(node[key], path + suffix))
    return missing


def test_both_crds_are_walked() -> None:
    assert [p.name for p in CRD_FILES] == ["modeldeployments.modelyard.dev.yaml", "modelversions.modelyard.dev.yaml"]


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name.split(".")[0])
def test_every_field_has_a_description(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert undocumented(schema, "") == [], f"{path.name} {version['name']}: fields without a description"


def test_the_walk_finds_a_field_without_a_description() -> None:
    schema = {
        "properties": {
            "spec": {
                "description": "documented",
                "properties": {
                    "steps": {
                        "description": "documented",
                        "items": {"properties": {"weight": {"type": "integer"}}},
                    },
                    "labels": {"description": "documented", "additionalProperties": {"properties": {"x": {}}}},
                },
            }
        }
    }
    assert undocumented(schema, "") == ["spec.steps[].weight", "spec.labels{}.x"]
