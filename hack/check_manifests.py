#!/usr/bin/env python3
"""``make check-manifests``: what the chart renders, checked before anything is installed.

1. ``helm template`` of ``charts/modelyard`` with several value sets (:data:`VALUE_SETS`);
2. kubeconform in strict mode (unknown fields and duplicate keys are errors) on every rendered object, the CRDs in
   ``crds/`` and the manifests in ``examples/``, against JSON schemas made from the dev cluster API server's own
   OpenAPI v3 document with our CRDs, the Gateway API's and the Prometheus Operator's installed: the usual schema
   download is unreachable here, and this way the schemas are exactly those of the Kubernetes version the project
   pins. They are cached under ``~/.cache/modelyard/schemas/<Kubernetes version>-<hash of the CRDs and of this
   generator>``; a cold run starts a control plane (no nodes) for a few seconds to make them. A canary document that
   strict validation must refuse proves the schemas really constrain;
3. checkov's ``kubernetes`` framework on the rendered value sets and its ``helm`` framework on the chart, with the
   settings and the justified exceptions of ``hack/checkov.yaml``: any other finding fails.

kubeconform and checkov come from ``hack/build-checktools.sh`` (versions in ``hack/versions.env``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHART = REPO / "charts" / "modelyard"
CHECKOV_CONFIG = HERE / "checkov.yaml"
NAMESPACE = "modelyard-system"
SCHEMA_LOCATION = "{{ .ResourceKind }}{{ .KindSuffix }}.json"  # kubernetes-json-schema's own file names
GENERATOR_VERSION = "2"  # bump when the schema conversion below changes: it is part of the cache key

# name -> Helm values: defaults, each mode of the RBAC, each switch, and a production-like combination
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "watch-namespaces": {"operator": {"watchNamespaces": ["team-a", "team-b"]}},
    "admission-policy-off": {"admissionPolicy": {"enabled": False}},
    "network-policy-off": {"operator": {"networkPolicy": {"enabled": False}}},
    "crds-separate": {"crds": {"enabled": False}},
    "monitoring": {
        "monitoring": {
            "labels": {"release": "kube-prometheus-stack"},
            "podMonitors": {"enabled": True},
            "prometheusRule": {"enabled": True},
            "dashboard": {"enabled": True, "namespace": "monitoring"},
        }
    },
    "production": {
        "imageRegistry": "registry.example.com/modelyard",
        "operator": {
            "replicas": 2,
            "watchNamespaces": ["models"],
            "prometheusURL": "http://prometheus-server.monitoring:9090",
            "loaderAllowHosts": ["minio.storage.svc"],
            "artifactCache": {"hostPath": "/var/cache/modelyard/artifacts"},
            "validation": {
                "nodeSelector": {"modelyard.dev/storage": "true"},
                "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
    },
}

# A document strict validation must refuse (an unknown field in a ModelVersion's spec), and the kubeconform error
# that says so: proves the CRD schemas are used and additional properties are rejected.
CANARY = {
    "apiVersion": "modelyard.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"name": "canary", "namespace": "default"},
    "spec": {"model": "m", "version": "1", "artifact": {"uri": "https://example.com/m.onnx"}, "artefact": {}},
}


def log(msg: str) -> None:
    print(f"[check-manifests] {msg}", flush=True)


def run(args: list[str], *, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, env=env)
    if check and proc.returncode != 0:
        sys.exit(
            f"[check-manifests] error: {' '.join(args[:3])} ... failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    return proc


def tools() -> tuple[Path, Path, Path]:
    """helm (with the control plane), kubeconform and checkov, built or installed into the caches (the scripts'
    progress goes to stderr, shown; their stdout names the tools)."""
    out = []
    for script in ("build-controlplane.sh", "build-checktools.sh"):
        proc = subprocess.run(["bash", str(HERE / script)], stdout=subprocess.PIPE, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"[check-manifests] error: hack/{script} failed")
        out.append(proc.stdout.split())
    return Path(out[0][-1]), Path(out[1][0]), Path(out[1][1])


def versions() -> dict[str, str]:
    out = {}
    for line in (HERE / "versions.env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


# --- JSON schemas from the API server's OpenAPI v3 -------------------------------------------------------------

_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("items", "additionalProperties", "not")
_REF_PREFIX = "#/components/schemas/"


def convert(node: Any, refs: set[str]) -> Any:
    """One OpenAPI v3 schema as a strict JSON schema: objects with properties reject unknown ones (unless Kubernetes
    preserves unknown fields there), ``nullable`` allows null, references point into the file's ``definitions``
    (their names are collected into ``refs``)."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: convert(sub, refs) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [convert(sub, refs) for sub in value]
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            out[key] = convert(value, refs)
        elif key == "$ref" and isinstance(value, str) and value.startswith(_REF_PREFIX):
            name = value[len(_REF_PREFIX) :]
            refs.add(name)
            out[key] = f"#/definitions/{name}"
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def standalone(name: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """The schema of ``name`` with every definition it reaches (recursive ones included) in one file."""
    refs: set[str] = set()
    root = convert(schemas[name], refs)
    definitions: dict[str, Any] = {}
    todo = sorted(refs)
    while todo:
        ref = todo.pop()
        if ref in definitions:
            continue
        found: set[str] = set()
        definitions[ref] = convert(schemas[ref], found)
        todo.extend(sorted(found - definitions.keys()))
    # draft-04: OpenAPI 3.0's exclusiveMinimum/exclusiveMaximum are booleans, as in draft-04 (not in draft-06 on)
    return {"$schema": "http://json-schema.org/draft-04/schema#", **root, "definitions": definitions}


def file_name(group: str, version: str, kind: str) -> str:
    """kubeconform's ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` for a group/version/kind."""
    suffix = f"-{group.split('.')[0].lower()}-{version.lower()}" if group else f"-{version.lower()}"
    return f"{kind.lower()}{suffix}.json"


def write_schemas(get_raw: Any, out: Path) -> int:
    """Every kind the API server serves, one strict standalone schema file each; returns how many."""
    index = json.loads(get_raw("/openapi/v3"))
    written: dict[str, str] = {}
    for path, entry in sorted(index["paths"].items()):
        parts = path.split("/")
        if not (parts[:2] == ["api", "v1"] and len(parts) == 2) and not (parts[0] == "apis" and len(parts) == 3):
            continue
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        schemas = json.loads(get_raw(entry["serverRelativeURL"]))["components"]["schemas"]
        for name, schema in schemas.items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                if (gvk.get("group", ""), gvk["version"]) != (group, version):
                    continue
                target = file_name(group, version, gvk["kind"])
                ident = f"{group}/{version}/{gvk['kind']}"
                if written.get(target, ident) != ident:
                    sys.exit(f"[check-manifests] error: {written[target]} and {ident} would share the schema {target}")
                written[target] = ident
                (out / target).write_text(json.dumps(standalone(name, schemas), sort_keys=True))
    return len(written)


def monitoring_crds() -> Path:
    """The Prometheus Operator's PodMonitor, PrometheusRule and ServiceMonitor CRDs (hack/fetch-monitoring-crds.sh)."""
    proc = subprocess.run(
        ["bash", str(HERE / "fetch-monitoring-crds.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit("[check-manifests] error: hack/fetch-monitoring-crds.sh failed")
    return Path(proc.stdout.split()[-1])


def crd_files(bin_dir: Path) -> list[Path]:
    return (
        sorted((REPO / "crds").glob("*.yaml"))
        + sorted((bin_dir.parent / "gateway-api").glob("*.yaml"))
        + sorted(monitoring_crds().glob("*.yaml"))
    )


def schemas(bin_dir: Path) -> Path:
    """The cached schema folder, made from a short-lived control plane when missing."""
    digest = hashlib.sha256(GENERATOR_VERSION.encode())
    for path in crd_files(bin_dir):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    key = f"{versions()['KUBERNETES_VERSION']}-{digest.hexdigest()[:16]}"
    cache = Path(os.environ.get("MODELYARD_CACHE", Path.home() / ".cache" / "modelyard")) / "schemas" / key
    if (cache / ".complete").exists():
        return cache
    log(f"making JSON schemas from the API server's OpenAPI v3 (cache {cache})")
    sys.path.insert(0, str(HERE))
    from devcluster import DevCluster

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="schemas-cluster-") as tmp:
        cluster = DevCluster(Path(tmp))
        cluster.up(nodes=False)
        try:
            for path in crd_files(bin_dir):
                cluster.kubectl("apply", "--server-side", "-f", str(path), capture=True)
            cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s", capture=True)
            partial = cache.with_name(cache.name + ".partial")
            subprocess.run(["rm", "-rf", str(partial)], check=True)
            partial.mkdir(parents=True)
            count = write_schemas(lambda url: cluster.kubectl("get", "--raw", url, capture=True), partial)
        finally:
            cluster.down()
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    partial.rename(cache)
    (cache / ".complete").touch()
    log(f"{count} schemas in {time.monotonic() - began:.1f}s")
    return cache


# --- the checks ------------------------------------------------------------------------------------------------


def render(helm: Path, work: Path) -> list[Path]:
    rendered = []
    for name, values in VALUE_SETS.items():
        values_file = work / f"values-{name}.json"
        values_file.write_text(json.dumps(values))
        proc = run([str(helm), "template", "modelyard", str(CHART), "--namespace", NAMESPACE, "-f", str(values_file)])
        out = work / "rendered" / f"{name}.yaml"
        out.parent.mkdir(exist_ok=True)
        out.write_text(proc.stdout)
        rendered.append(out)
    return rendered


def kubeconform(binary: Path, schema_dir: Path, files: list[Path], work: Path) -> int:
    """Strict validation of ``files``; returns the number of failures (printed)."""
    args = [str(binary), "-strict", "-summary", "-schema-location", str(schema_dir / SCHEMA_LOCATION)]
    canary = work / "canary.json"
    canary.write_text(json.dumps(CANARY))
    proc = run([*args, str(canary)], check=False)
    if proc.returncode == 0 or "artefact" not in proc.stdout:
        log(f"FAIL: strict validation accepted an unknown field (the schemas do not constrain):\n{proc.stdout}")
        return 1
    proc = run([*args, "-output", "json", *map(str, files)], check=False)
    report = json.loads(proc.stdout)
    bad = [r for r in report["resources"] if r["status"] not in ("statusValid", "statusSkipped")]
    for r in bad:
        log(f"FAIL {Path(r['filename']).name}: {r['kind']} {r['name']}: {r['status']}: {r.get('msg', '')}")
    summary = report["summary"]
    log(
        f"kubeconform -strict: {summary['valid']} valid, {summary['invalid']} invalid, {summary['errors']} errors, "
        f"{summary['skipped']} skipped in {len(files)} files"
    )
    return len(bad) + (proc.returncode != 0 and not bad)


# checkov's helm framework renders the chart into the namespace "default", where the chart is never installed
# ("default namespace should not be used"); the kubernetes framework checks the sets rendered into modelyard-system,
# where the same check applies and passes.
HELM_ONLY_SKIPS = ("CKV_K8S_21",)


def config_skips() -> list[str]:
    """The ``skip-check`` list of hack/checkov.yaml (a command-line --skip-check would replace it, not add to it)."""
    import yaml

    return list(yaml.safe_load(CHECKOV_CONFIG.read_text()).get("skip-check") or [])


def checkov(binary: Path, helm_bin: Path, rendered_dir: Path) -> tuple[int, int, int]:
    """checkov's kubernetes framework on the rendered sets and its helm framework on the chart: (failed, passed,
    skipped); each failure is printed."""
    env = {**os.environ, "PATH": f"{helm_bin}:{os.environ['PATH']}"}
    failed = passed = skipped = 0
    runs = [
        ("kubernetes", rendered_dir, []),
        ("helm", CHART, ["--skip-check", ",".join([*config_skips(), *HELM_ONLY_SKIPS])]),
    ]
    for framework, target, extra in runs:
        args = [str(binary), "--config-file", str(CHECKOV_CONFIG), "--framework", framework, "-d", str(target)]
        proc = run([*args, *extra, "-o", "json"], env=env, check=False)
        try:
            reports = json.loads(proc.stdout)
        except ValueError:
            output = proc.stdout[-2000:] + proc.stderr[-2000:]
            log(f"FAIL: checkov --framework {framework} gave no JSON report:\n{output}")
            return 1, passed, skipped
        for report in reports if isinstance(reports, list) else [reports]:
            results = report.get("results")
            if not results:
                log(f"FAIL: checkov --framework {framework} scanned nothing in {target}")
                failed += 1
                continue
            passed += len(results.get("passed_checks", []))
            skipped += len(results.get("skipped_checks", []))
            for check in results.get("failed_checks", []):
                failed += 1
                what = f"{check['check_id']} ({check['check_name']})"
                log(f"FAIL checkov {what}: {check['resource']} in {check['file_path']}")
    skips = len(config_skips()) + len(HELM_ONLY_SKIPS)
    log(f"checkov (kubernetes + helm): {failed} findings, {passed} checks passed; {skips} checks skipped, each "
        f"justified in {CHECKOV_CONFIG.relative_to(REPO)} or HELM_ONLY_SKIPS")  # fmt: skip
    return failed, passed, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.parse_args(argv)
    began = time.monotonic()
    bin_dir, kubeconform_bin, checkov_bin = tools()
    schema_dir = schemas(bin_dir)
    with tempfile.TemporaryDirectory(prefix="check-manifests-") as tmp:
        work = Path(tmp)
        rendered = render(bin_dir / "helm", work)
        log(f"helm template: {len(rendered)} value sets ({', '.join(VALUE_SETS)})")
        extra = sorted((REPO / "crds").glob("*.yaml")) + sorted((REPO / "examples").glob("*.yaml"))
        invalid = kubeconform(kubeconform_bin, schema_dir, rendered + extra, work)
        findings, _, _ = checkov(checkov_bin, bin_dir, work / "rendered")
    took = time.monotonic() - began
    if invalid or findings:
        log(f"FAILED in {took:.1f}s: {invalid} invalid objects, {findings} checkov findings")
        return 1
    log(f"passed in {took:.1f}s: every object valid, 0 checkov findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
