"""Shared fixtures. Tiers come from folders: tests/unit, tests/integration, tests/e2e, tests/fuzz, tests/chaos.

The integration fixtures start the real local control plane with the same code as ``hack/devcluster``
(one cluster per test session) and the real operator as a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fileserver import serve_directory

from .support.processes import stop

REPO = Path(__file__).resolve().parent.parent
TIERS = ("unit", "integration", "e2e", "fuzz", "chaos")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Kubectl:
    """The real kubectl against the test cluster."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def apply(self, obj: dict[str, Any] | list[dict[str, Any]], namespace: str | None = None) -> None:
        items = obj if isinstance(obj, list) else [obj]
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.run(*args, stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def get(self, kind: str, name: str | None = None, namespace: str | None = None, **selectors: str) -> Any:
        args = ["get", kind] + ([name] if name else []) + ["-o", "json"]
        if namespace:
            args += ["-n", namespace]
        if selectors.get("labels"):
            args += ["-l", selectors["labels"]]
        proc = self.run(*args, check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        return json.loads(proc.stdout)


@contextlib.contextmanager
def dev_cluster(folder: Path, *, crds: bool = True, **up: Any) -> Iterator[Any]:
    """A local control plane (``hack/devcluster``'s DevCluster) for a test scope, always stopped afterwards."""
    from devcluster import DevCluster

    cl = DevCluster(folder)
    cl.up(**up)
    try:
        if crds:
            cl.kubectl("apply", "-f", str(REPO / "crds"))
            cl.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        yield cl
    finally:
        cl.down()


@contextlib.contextmanager
def temp_namespace(kubectl: Kubectl, prefix: str) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    wait_for(lambda: kubectl.get("serviceaccount", "default", name), what=f"default service account in {name}")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@contextlib.contextmanager
def running_operator(kubeconfig: Path, log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``modelyard-operator`` as a subprocess; its log is printed when it ended badly or on request."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "MODELYARD_LOG_LEVEL": "INFO"}
    script = Path(sys.executable).parent / "modelyard-operator"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(script), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(1.0)
    if proc.poll() is not None:
        pytest.fail(f"operator exited at start:\n{log.read_text()[-3000:]}")
    try:
        yield proc
    finally:
        stop(proc, 15)
        if proc.returncode not in (0, -15) or os.environ.get("MODELYARD_SHOW_OPERATOR_LOG"):
            print(log.read_text()[-20000:])


def real_node_fixtures(folder: str, *, images: list[str] | None = None, ns: str | None = None,
                       name: str = "cluster", crds: bool = False, **up: Any) -> tuple[Any, ...]:  # fmt: skip
    """Module-scoped fixtures for a module whose pods run on the real node: ``<name>`` (a control plane with the
    real node and no simulated ones, ``images`` pushed to its registry, all when None; ``crds`` False where the
    chart installs them), ``kube`` and, with ``ns`` (a prefix), a namespace ``ns``. Assign the tuple at module level:
    ``cluster, kube, ns = real_node_fixtures("capacity-cluster", ns="capacity")``."""

    @pytest.fixture(scope="module", name=name)
    def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
        with dev_cluster(tmp_path_factory.mktemp(folder), crds=crds, nodes=False, real_node=True, **up) as cl:
            cl.push_images(images)
            yield cl

    @pytest.fixture(scope="module", name="kube")
    def kube(request: pytest.FixtureRequest) -> Kubectl:
        cl = request.getfixturevalue(name)
        return Kubectl(cl.bin / "kubectl", cl.kubeconfig)

    if ns is None:
        return cluster, kube

    @pytest.fixture(scope="module", name="ns")
    def namespace(kube: Kubectl) -> Iterator[str]:
        with temp_namespace(kube, ns) as created:
            yield created

    return cluster, kube, namespace


@contextlib.contextmanager
def model_over_http(root: Path) -> Iterator[str]:
    """An Add model served over HTTP from this host: yields its URL as the real node's pods reach it."""
    from realnode import GATEWAY

    from .models import binary_op

    binary_op(root / "model.onnx")
    with serve_directory(root) as port:
        yield f"http://{GATEWAY}:{port}/model.onnx"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with dev_cluster(tmp_path_factory.mktemp("devcluster")) as cl:
        yield cl


@pytest.fixture(scope="session")
def kubectl(cluster: Any) -> Kubectl:
    return Kubectl(cluster.bin / "kubectl", cluster.kubeconfig)


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    with temp_namespace(kubectl, "t") as name:
        yield name


@pytest.fixture(scope="session")
def operator_process(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """The real operator (``modelyard-operator``) as a subprocess against the test cluster."""
    with running_operator(cluster.kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log") as proc:
        yield proc
