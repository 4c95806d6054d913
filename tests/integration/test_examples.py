"""Every manifest under examples/ is accepted by the real API server with the CRDs installed (a server-side dry
run: schema, CEL rules and built-in admission, nothing created). New files are picked up by the glob."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import REPO, Kubectl

EXAMPLES = REPO / "examples"
MANIFESTS = sorted(p for p in EXAMPLES.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


@pytest.fixture(scope="module")
def other_namespaces(kubectl: Kubectl) -> Iterator[set[str]]:
    """Namespaces that examples name themselves (argocd-cm lives in argocd), created on first use."""
    created: set[str] = set()
    yield created
    for name in created:
        kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def dry_run(kubectl: Kubectl, doc: dict[str, Any], namespace: str) -> Any:
    return kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(doc), check=False)


def test_examples_exist() -> None:
    assert len(MANIFESTS) >= 10
    assert {p.suffix for p in EXAMPLES.rglob("*") if p.is_file()} <= {".yaml", ".yml", ".json", ".lua"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_passes_a_server_side_dry_run(
    kubectl: Kubectl, namespace: str, other_namespaces: set[str], path: Path
) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs, f"{path} holds no object"
    for doc in docs:
        target = (doc.get("metadata") or {}).get("namespace") or namespace
        if target != namespace and target not in other_namespaces:
            kubectl.run("create", "namespace", target, check=False)
            other_namespaces.add(target)
        proc = dry_run(kubectl, doc, target)
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        assert proc.returncode == 0, f"{path.relative_to(REPO)} {name}: {proc.stderr}"
        assert "(server dry run)" in proc.stdout
    assert kubectl.get("modeldeployments,modelversions", namespace=namespace)["items"] == []  # nothing was created


def test_the_dry_run_refuses_what_the_schema_refuses(kubectl: Kubectl, namespace: str) -> None:
    docs = list(yaml.safe_load_all((EXAMPLES / "rollouts" / "canary-prometheus.yaml").read_text()))
    md = next(d for d in docs if d and d["kind"] == "ModelDeployment")
    md["spec"]["rollout"]["steps"][0] = {"setWeight": 150}
    proc = dry_run(kubectl, md, namespace)
    assert proc.returncode != 0
    assert "setWeight" in proc.stderr
