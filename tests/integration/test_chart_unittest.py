"""The chart's helm-unittest suites (charts/modelyard/tests), run with helm-unittest built from its Go module
(hack/build-charttools.sh); tests/unit/test_chart_suites.py checks that they set every value."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from ..conftest import REPO


def test_chart_unit_suites_pass() -> None:
    tools = subprocess.run(
        ["bash", str(REPO / "hack" / "build-charttools.sh")], capture_output=True, text=True, check=True
    ).stdout.split()
    proc = subprocess.run(
        [tools[1], "--color=false", str(REPO / "charts" / "modelyard")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    tests = re.search(r"Tests:\s+(\d+) passed, (\d+) total", proc.stdout)
    assert tests, proc.stdout[-2000:]
    assert tests.group(1) == tests.group(2)
    assert int(tests.group(2)) >= 20


def test_chart_works_as_a_subchart_with_global_values(tmp_path: Path) -> None:
    """A parent chart that depends on ours (file:// repository, as an umbrella chart would) renders with Helm's
    ``global`` values and passes its own values down."""
    helm = Path(
        subprocess.run(["bash", str(REPO / "hack" / "build-controlplane.sh")], capture_output=True, text=True,
                       check=True).stdout.split()[-1]
    ) / "helm"  # fmt: skip
    parent = tmp_path / "platform"
    (parent / "templates").mkdir(parents=True)
    dependency = {"name": "modelyard", "version": "*", "repository": f"file://{REPO / 'charts' / 'modelyard'}"}
    (parent / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "platform", "version": "1.0.0", "dependencies": [dependency]})
    )
    (parent / "values.yaml").write_text(yaml.safe_dump({
        "global": {"imageRegistry": "registry.example.com", "storageClass": "fast"},
        "modelyard": {"operator": {"logLevel": "DEBUG"}},
    }))  # fmt: skip
    subprocess.run([str(helm), "dependency", "build", str(parent)], capture_output=True, text=True, check=True)
    proc = subprocess.run([str(helm), "template", "p", str(parent), "-n", "platform"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    operator = next(d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELYARD_LOG_LEVEL"] == "DEBUG"
