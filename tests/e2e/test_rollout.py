"""Rollouts end to end: the real operator on its own real control plane, a real Prometheus (Debian's
package) scraping real ``modelyard-server`` processes, and load from tritonclient.

The control plane's pods are simulated (kwok), so the model servers run here as processes: one serves
the good versions (1 stable; 2, 4 canaries), one a version whose model fails at run time (3), one a
slow version (6). Prometheus adds ``namespace`` and ``pod`` labels as the chart's scrape config does.
The load generator plays the Service: it splits requests by the weights the operator reports in
``status.weights``, so traffic follows the rollout exactly as it would in a cluster.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devcluster import free_port

from ..conftest import REPO, Kubectl, wait_for
from ..models import binary_op, failing_model, image_classifier, slow_model
from ..support.processes import stop

pytestmark = pytest.mark.timeout(180)

Obj = dict[str, Any]
NS = "rollout-e2e"
DIGEST = "sha256:" + "5f" * 32
INTERVAL_S = 2  # analysis interval of every rollout here
ANALYSIS = {"interval": f"{INTERVAL_S}s", "window": "5s", "scrapeInterval": "1s", "evidence": {"minRequests": 20}}
ERRORS = {"name": "error-rate", "template": "errorRate", "max": 0.05, "critical": True}


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class PrometheusProcess:
    """Debian's prometheus binary on a free loopback port, scraping the model servers every second."""

    def __init__(self, workdir: Path, targets: dict[str, int], operator_port: int) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus not installed: run `make prometheus`"
        self.binary = binary
        self.port = 0  # chosen at the first start, right before binding
        self.dir = workdir
        groups = [{"targets": [f"127.0.0.1:{port}"], "labels": {"__meta_pod": pod, "__meta_namespace": NS}}
                  for pod, port in targets.items()]  # fmt: skip
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "modelyard-models",
                "static_configs": groups,
                # as in the chart's documented config: namespace and pod become labels of every series
                "relabel_configs": [
                    {"source_labels": ["__meta_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_pod"], "target_label": "pod"},
                ],
            }, {
                # the operator, as the chart's PodMonitor names it (the dashboard's rollout panels read it)
                "job_name": "modelyard-operator",
                "static_configs": [{"targets": [f"127.0.0.1:{operator_port}"]}],
            }],
        }  # fmt: skip
        (workdir / "prometheus.yml").write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it; the first start takes a free port (again, should another socket take it meanwhile), a restart
        keeps the port the operator already knows."""
        for _ in range(3):
            first = not self.port
            if first:
                self.port = free_port()
            log = open(self.dir / "prometheus.log", "ab")  # noqa: SIM115  (handed to the process)
            self.proc = proc = subprocess.Popen(
                [self.binary, f"--config.file={self.dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
                 "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            wait_for(lambda p=proc: http_ok(f"{self.url}/-/ready") or p.poll() is not None, timeout=30,
                     what="Prometheus ready")  # fmt: skip
            if proc.poll() is None:
                return
            if not first or "address already in use" not in (self.dir / "prometheus.log").read_text():
                break
            self.port = 0
        pytest.fail(f"Prometheus did not start: {(self.dir / 'prometheus.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, 15)
            self.proc = None


@dataclass
class World:
    kubectl: Kubectl
    prometheus: PrometheusProcess
    servers: dict[str, int]  # version -> HTTP port of the server that serves it
    operator_log: Path
    operator_env: dict[str, str]
    gateway_crds: Path  # the Gateway API CRDs cached with the control plane's binaries
    shadow_port: int = 0  # the server of model cls (shadow traffic), which reads its config from shadow_config
    shadow_config: Path = Path()
    operator: subprocess.Popen[bytes] | None = None

    def start_operator(self) -> None:
        binary = Path(sys.executable).parent / "modelyard-operator"
        with open(self.operator_log, "ab") as out:
            self.operator = subprocess.Popen([str(binary)], env=self.operator_env, stdout=out, stderr=subprocess.STDOUT)

    def kill_operator(self) -> None:
        """SIGKILL: no clean-up handlers run, as when a node dies."""
        if self.operator is not None:
            self.operator.kill()
            self.operator.wait(timeout=10)
            self.operator = None


def shadow_models(repo: Path) -> Path:
    """Model cls: 1 an FP32 image classifier, 2 its int8 form built by modelyard-build, 3 a broken one (its class
    weights negated, so it names another class on most inputs)."""
    import onnx
    from onnx import numpy_helper

    parent = image_classifier(repo / "cls" / "1" / "model.onnx")
    (repo / "cls" / "2").mkdir(parents=True)
    built = subprocess.run([str(Path(sys.executable).parent / "modelyard-build"), "--parent", str(parent), "--out",
                            str(repo / "cls" / "2" / "model.onnx"), "-t", "quantize: {mode: dynamic}",
                            "--latency-runs", "0"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert built.returncode == 0, built.stderr
    broken = onnx.load(parent)
    for i, init in enumerate(broken.graph.initializer):
        if init.name == "W":
            broken.graph.initializer[i].CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), "W"))
    (repo / "cls" / "3").mkdir(parents=True)
    onnx.save(broken, repo / "cls" / "3" / "model.onnx")
    return repo


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from devcluster import DevCluster

    tmp = tmp_path_factory.mktemp("rollout-e2e")
    good, bad, slow = tmp / "repo-good", tmp / "repo-bad", tmp / "repo-slow"
    for version in ("1", "2", "4"):
        binary_op(good / "fraud" / version / "model.onnx")
    failing_model(bad / "fraud" / "3" / "model.onnx")
    slow_model(slow / "fraud" / "6" / "model.onnx")
    shadow_repo = shadow_models(tmp / "repo-shadow")
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    server = Path(sys.executable).parent / "modelyard-server"
    for pod, repo in (("good-0", good), ("bad-0", bad), ("slow-0", slow), ("shadow-0", shadow_repo)):
        ports[pod] = free_port()
        log = open(tmp / f"{pod}.log", "wb")  # noqa: SIM115  (handed to the process)
        config = ["--model-config-dir", str(tmp / "shadow-config")] if pod == "shadow-0" else []
        procs.append(subprocess.Popen(
            [str(server), "--model-repository", str(repo), "--host", "127.0.0.1", "--http-port", str(ports[pod]),
             "--grpc-port", str(free_port()), "--admin-port", "0", *config],  # servers on one host: no admin API
            stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
    cluster = DevCluster(tmp / "cluster")
    operator_port = free_port()
    world: World | None = None
    prom: PrometheusProcess | None = None
    try:
        prom = PrometheusProcess(tmp, ports, operator_port)  # refuses without Debian's prometheus: stop the servers
        for pod, port in ports.items():
            wait_for(lambda p=port: http_ok(f"http://127.0.0.1:{p}/v2/health/ready"), timeout=60, what=f"{pod} ready")
        prom.start()
        cluster.up()
        kubectl = Kubectl(cluster.bin / "kubectl", cluster.kubeconfig)
        kubectl.run("apply", "-f", str(REPO / "crds"))
        kubectl.run("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        kubectl.run("create", "namespace", NS)
        wait_for(lambda: kubectl.get("serviceaccount", "default", NS), what="default service account")
        kubectl.apply([{"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion",
                        "metadata": {"name": f"fraud-{v}"},
                        "spec": {"model": "fraud", "version": v,
                                 "artifact": {"uri": f"https://models.example.com/fraud/{v}/model.onnx",
                                              "digest": DIGEST}}}
                       for v in ("1", "2", "3", "4", "6")], NS)  # fmt: skip
        kubectl.apply([{"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion",
                        "metadata": {"name": f"cls-{v}"}, "spec": {"model": "cls", "version": v,
                                 "artifact": {"uri": f"https://models.example.com/cls/{v}/model.onnx",
                                              "digest": DIGEST}}}
                       for v in ("1", "2", "3")], NS)  # fmt: skip
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "MODELYARD_PROMETHEUS_URL": prom.url,
               "MODELYARD_METRICS_PORT": str(operator_port)}  # fmt: skip
        by_version = {"1": ports["good-0"], "2": ports["good-0"], "4": ports["good-0"], "3": ports["bad-0"],
                      "6": ports["slow-0"]}  # fmt: skip
        world = World(
            kubectl,
            prom,
            by_version,
            tmp / "operator.log",
            env,
            cluster.bin.parent / "gateway-api",
            shadow_port=ports["shadow-0"],
            shadow_config=tmp / "shadow-config",
        )
        world.start_operator()
        yield world
    finally:
        if world is not None and world.operator is not None:
            stop(world.operator, 15)
        if prom is not None:
            prom.stop()
        cluster.down()
        for proc in procs:
            stop(proc, 15)


@dataclass
class Load:
    """Plays the Service: sends inference requests split by the MD's ``status.weights``."""

    world: World
    md: str
    rate: float = 40.0
    preview: float = 0.0  # share of requests sent to the canary whatever its weight (<md>-canary, blue/green)
    weights: dict[str, Any] = field(default_factory=dict)
    results: list[tuple[float, str, bool]] = field(default_factory=list)  # (time, version, ok): user traffic
    preview_results: list[tuple[float, str, bool]] = field(default_factory=list)
    phases: list[tuple[float, str | None, int]] = field(default_factory=list)  # (time, phase, canary weight)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        obj = self.world.kubectl.get("md", self.md, NS) or {}
        return dict(obj.get("status") or {})

    def _watch(self) -> None:
        while not self._stop.is_set():
            st = self.status()
            self.weights = st
            self.phases.append((time.monotonic(), st.get("phase"), (st.get("weights") or {}).get("canary", 0)))
            time.sleep(0.2)

    def _send(self, send_traffic: bool) -> None:
        import tritonclient.http as triton

        clients: dict[int, Any] = {}
        a = np.ones((1, 4), np.float32)
        rng = random.Random(7)  # noqa: S311  (traffic split, not cryptography)
        while not self._stop.is_set():
            st = self.weights
            stable, canary = st.get("stableVersion"), st.get("canaryVersion")
            weight = (st.get("weights") or {}).get("canary", 0) if canary else 0
            previewing = bool(canary) and rng.random() < self.preview
            version = canary if previewing or (canary and rng.random() * 100 < weight) else stable
            if not send_traffic or version is None:
                time.sleep(0.05)
                continue
            port = self.world.servers[version]
            client = clients.setdefault(port, triton.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=10))
            inputs = [triton.InferInput("A", [1, 4], "FP32"), triton.InferInput("B", [1, 4], "FP32")]
            for tensor in inputs:
                tensor.set_data_from_numpy(a)
            try:
                client.infer("fraud", inputs, model_version=version)
                ok = True
            except Exception:
                ok = False
            (self.preview_results if previewing else self.results).append((time.monotonic(), version, ok))
            time.sleep(1.0 / self.rate)

    def start(self, *, traffic: bool = True) -> Load:
        self.weights = self.status()
        self._threads = [threading.Thread(target=self._watch, daemon=True),
                         threading.Thread(target=self._send, args=(traffic,), daemon=True)]  # fmt: skip
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)


def md(
    name: str, version: str, *steps: dict[str, Any], metrics: list[dict[str, Any]], **analysis: Any
) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": "fraud", "version": version, "replicas": 2,
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                     "rollout": {"strategy": "canary", "steps": list(steps),
                                 "analysis": {**ANALYSIS, "metrics": metrics, **analysis}}}}  # fmt: skip


def start_rollout(world: World, name: str, canary: str, *steps: dict[str, Any], **kw: Any) -> dict[str, Any]:
    world.kubectl.apply(md(name, "1", *steps, **kw), NS)
    wait_for(lambda: ((world.kubectl.get("md", name, NS) or {}).get("status") or {}).get("phase") == "Healthy",
             timeout=60, what=f"{name} Healthy on version 1")  # fmt: skip
    body = md(name, canary, *steps, **kw)
    world.kubectl.apply(body, NS)
    return body


def until(load: Load, predicate: Any, *, timeout: float, what: str) -> dict[str, Any]:
    """Wait for the MD's status to satisfy ``predicate``; on timeout show the status it had."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = load.status()
        if predicate(status):
            return status
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; status: {json.dumps(status)[:3000]}")


def operator_metrics(world: World) -> dict[str, float]:
    """The operator's /metrics as {'name{labels}': value}."""
    port = world.operator_env["MODELYARD_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def finish(world: World, load: Load, name: str) -> None:
    load.stop()
    world.kubectl.run("delete", "md", name, "-n", NS, "--wait=false")


def test_bad_canary_is_rolled_back_within_interval_plus_10s(world: World) -> None:
    name = "bad"
    start_rollout(world, name, "3", {"setWeight": 50}, {"analyze": {"minDuration": "60s"}}, metrics=[ERRORS])
    load = Load(world, name).start()
    try:
        status = until(load, lambda s: s.get("phase") == "RolledBack", timeout=90, what="failing canary rolled back")
        seen_back = time.monotonic()
        time.sleep(3)  # traffic keeps flowing: it must all go to the stable version now
    finally:
        finish(world, load, name)
    first_error = min(t for t, v, ok in load.results if not ok)
    rolled_back_at = min((t for t, phase, _ in load.phases if phase == "RolledBack"), default=seen_back)
    elapsed = rolled_back_at - first_error
    print(f"\nbad canary: first failed request -> status RolledBack in {elapsed:.2f}s "
          f"(limit {INTERVAL_S} s x 1 + 10 s)")  # fmt: skip
    (REPO / ".pytest_cache").mkdir(exist_ok=True)
    (REPO / ".pytest_cache" / "rollback-seconds.txt").write_text(f"{elapsed:.2f}\n")
    assert elapsed <= INTERVAL_S * 1 + 10
    assert status["stableVersion"] == "1"
    assert status["rolledBackVersions"] == ["3"]
    assert status["lastDecision"]["reason"] == "CriticalMetricFailed"
    numbers = {m["name"]: m for m in status["lastDecision"]["metrics"]}
    assert numbers["error-rate"]["canary"] > 0.05
    assert cond(status, "Degraded")["status"] == "True"
    after = [ok for t, v, ok in load.results if t > rolled_back_at + 1.0]
    assert after
    assert all(after), "requests failed after the rollback"
    events = world.kubectl.get("events", namespace=NS)["items"]
    assert any(e["reason"] == "RolloutRollBack" and e["involvedObject"]["name"] == name for e in events)
    metrics = operator_metrics(world)
    assert metrics.get('modelyard_rollouts_total{outcome="RolledBack"}', 0) >= 1
    assert metrics.get('modelyard_rollout_decisions_total{decision="RollBack"}', 0) >= 1
    assert metrics.get('modelyard_analysis_verdicts_total{metric="error-rate",verdict="Fail"}', 0) >= 1


def test_good_canary_is_promoted_through_every_step(world: World) -> None:
    name = "good"
    p99 = {"name": "p99", "template": "latencyP99", "compare": {"against": "stable", "maxRatio": 10},
           "failurePolicy": {"consecutive": 3}}  # fmt: skip
    start_rollout(world, name, "2", {"setWeight": 25}, {"analyze": {"minDuration": "4s", "maxDuration": "60s"}},
                  {"setWeight": 75}, {"analyze": {"minDuration": "4s", "maxDuration": "60s"}},
                  metrics=[ERRORS, p99])  # fmt: skip
    load = Load(world, name).start()
    try:
        status = until(load, lambda s: s.get("stableVersion") == "2", timeout=120, what="good canary promoted")
    finally:
        finish(world, load, name)
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [("2", "Promoted")]
    # in effect with 2 replicas: 1 canary pod beside 2 stable ones for 25 %, 2 beside 2 for 75 % (the canary never
    # outgrows the stable version under the replicas router)
    weights_seen = {w for _, _, w in load.phases}
    assert {33, 50} <= weights_seen
    assert all(ok for _, _, ok in load.results)
    assert "canaryVersion" not in status
    assert status["phase"] == "Healthy"


def bad_requests(world: World, version: str, stop: threading.Event, sent: list[int]) -> None:
    """A hostile client: only requests the server must refuse (wrong shape, unknown input, an unknown output), to
    ``version`` of ``fraud``, over both protocols."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(f"127.0.0.1:{world.servers[version]}", network_timeout=10)
    wrong = np.ones((1, 3), np.float32)
    while not stop.is_set():
        inputs = [triton.InferInput("A", [1, 3], "FP32"), triton.InferInput("B", [1, 3], "FP32")]
        for tensor in inputs:
            tensor.set_data_from_numpy(wrong)
        try:
            client.infer("fraud", inputs, model_version=version)
        except InferenceServerException as exc:  # a 400 is what it sends for
            if exc.status() == "400":
                sent.append(1)
        time.sleep(1.0 / 40)


def test_client_errors_cannot_force_a_rollback(world: World) -> None:
    """A client that sends only bad requests (400) to the canary, more of them than the good traffic it gets, does
    not make errorRate fail: the canary is promoted."""
    name = "hostile"
    start_rollout(world, name, "4", {"setWeight": 50}, {"analyze": {"minDuration": "6s", "maxDuration": "60s"}},
                  metrics=[ERRORS])  # fmt: skip
    load = Load(world, name).start()
    stop, sent = threading.Event(), []
    attacker = threading.Thread(target=bad_requests, args=(world, "4", stop, sent), daemon=True)
    attacker.start()
    try:
        status = until(load, lambda s: s.get("stableVersion") == "4" or s.get("phase") == "RolledBack",
                       timeout=90, what="canary promoted despite bad requests")  # fmt: skip
    finally:
        stop.set()
        attacker.join(timeout=15)
        finish(world, load, name)
    canary_ok = sum(1 for _, v, ok in load.results if v == "4" and ok)
    print(f"\nhostile client: {len(sent)} bad requests (400) and {canary_ok} good ones reached the canary")
    assert not status.get("rolledBackVersions")  # what the query that counted every non-2xx code did here
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [("4", "Promoted")]
    assert len(sent) >= 100
    assert len(sent) > canary_ok  # most of the canary's requests were the client's errors


def test_slow_canary_fails_the_latency_comparison(world: World) -> None:
    name = "slow"
    p99 = {"name": "p99", "template": "latencyP99", "compare": {"against": "stable", "maxRatio": 2},
           "failurePolicy": {"consecutive": 2}}  # fmt: skip
    start_rollout(world, name, "6", {"setWeight": 50}, {"analyze": {"minDuration": "60s"}}, metrics=[ERRORS, p99])
    load = Load(world, name).start()
    try:
        status = until(load, lambda s: s.get("phase") == "RolledBack", timeout=90, what="slow canary rolled back")
    finally:
        finish(world, load, name)
    assert status["lastDecision"]["reason"] == "FailurePolicyReached"
    numbers = {m["name"]: m for m in status["lastDecision"]["metrics"]}
    assert numbers["p99"]["verdict"] == "Fail"
    assert numbers["p99"]["canary"] > 2 * numbers["p99"]["stable"]
    assert numbers["error-rate"]["verdict"] == "Pass"


def test_no_traffic_holds_instead_of_deciding(world: World) -> None:
    name = "idle"
    start_rollout(world, name, "4", {"setWeight": 50}, {"analyze": {"minDuration": "3s", "maxDuration": "8s"}},
                  metrics=[ERRORS])  # fmt: skip
    load = Load(world, name).start(traffic=False)
    try:
        status = until(load, lambda s: s.get("phase") == "Paused", timeout=60, what="held past maxDuration")
        time.sleep(2 * INTERVAL_S + 1)
        later = load.status()
    finally:
        finish(world, load, name)
    assert status["lastDecision"]["reason"] == "InconclusivePastMaxDuration"
    healthy = cond(status, "AnalysisHealthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "InconclusivePastMaxDuration")
    for st in (status, later):
        assert st["stableVersion"] == "1"
        assert st["canaryVersion"] == "4"
        assert st["weights"] == {"stable": 50, "canary": 50}
    assert not later.get("rolledBackVersions")


def test_prometheus_down_holds_and_the_rollout_resumes(world: World) -> None:
    name = "blind"
    start_rollout(world, name, "2", {"setWeight": 50}, {"analyze": {"minDuration": "8s", "maxDuration": "120s"}},
                  metrics=[ERRORS])  # fmt: skip
    load = Load(world, name).start()
    try:
        wait_for(lambda: (load.status().get("step") or {}).get("index") == 1, timeout=60, what="analysis step")
        world.prometheus.stop()
        held = wait_for(
            lambda: (s := load.status()) and cond(s, "AnalysisHealthy").get("reason") == "MetricsBackendError" and s,
            timeout=30, what="AnalysisHealthy=False while Prometheus is down",
        )  # fmt: skip
        assert "unreachable" in cond(held, "AnalysisHealthy")["message"]
        time.sleep(10)  # longer than minDuration: without metrics it must neither promote nor roll back
        still = load.status()
        assert still["canaryVersion"] == "2"
        assert still["weights"]["canary"] == 50
        world.prometheus.start()
        status = until(load, lambda s: s.get("stableVersion") == "2", timeout=90, what="promoted after Prometheus")
    finally:
        if world.prometheus.proc is None:
            world.prometheus.start()
        finish(world, load, name)
    assert cond(status, "AnalysisHealthy")["status"] == "True"
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [("2", "Promoted")]


def test_operator_killed_mid_rollout_resumes_to_the_same_end_state(world: World) -> None:
    name = "restart"
    start_rollout(world, name, "2", {"setWeight": 50}, {"analyze": {"minDuration": "4s", "maxDuration": "60s"}},
                  {"pause": {}}, {"setWeight": 100}, metrics=[ERRORS])  # fmt: skip
    load = Load(world, name).start()
    try:
        paused = until(load, lambda s: s.get("phase") == "Paused", timeout=60, what="approval gate")
        world.kill_operator()
        time.sleep(2)
        world.start_operator()
        time.sleep(4)  # the restarted operator resumes from status alone: the gate still holds
        resumed = load.status()
        assert resumed["phase"] == "Paused"
        same = ("index", "startedAt")
        assert {k: resumed["step"][k] for k in same} == {k: paused["step"][k] for k in same}
        assert resumed["weights"] == {"stable": 50, "canary": 50}
        approve = md(name, "2", {"setWeight": 50}, {"analyze": {"minDuration": "4s", "maxDuration": "60s"}},
                     {"pause": {}}, {"setWeight": 100}, metrics=[ERRORS])  # fmt: skip
        approve["spec"]["rollout"]["action"] = {"type": "approve", "nonce": "after-restart"}
        world.kubectl.apply(approve, NS)
        status = until(load, lambda s: s.get("stableVersion") == "2", timeout=60, what="promotion after the restart")
        world.kubectl.apply(approve, NS)  # re-applied by a GitOps tool: no second approval, no new rollout
        time.sleep(3)
        again = load.status()
        selector = f"app.kubernetes.io/instance={name}"
        wait_for(lambda: [d["metadata"]["name"] for d in world.kubectl.get("deployments", namespace=NS,
                                                                            labels=selector)["items"]] == [f"{name}-2"],
                 timeout=30, what="one Deployment left")  # fmt: skip
        services = world.kubectl.get("services", namespace=NS, labels=selector)
        assert sorted(s["metadata"]["name"] for s in services["items"]) == [name, f"{name}-canary", f"{name}-stable"]
    finally:
        finish(world, load, name)
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [("2", "Promoted")]
    assert again["history"] == status["history"]
    assert again["lastHandledAction"]["nonce"] == "after-restart"
    assert all(ok for _, _, ok in load.results)


def served_per_version(port: int) -> dict[str, float]:
    """Successful requests per version from a server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("modelyard_inference_requests_total{") and 'code="200"' in line:
            version = line.split('version="', 1)[1].split('"', 1)[0]
            counts[version] = counts.get(version, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_in_pod_router_weights_split_a_real_servers_requests(world: World, tmp_path: Path) -> None:
    """The operator's ConfigMap, projected as the pods see it, steers a real server's unversioned requests."""
    import tritonclient.http as triton

    repo, config_dir = tmp_path / "repo", tmp_path / "model-config"
    for version in ("1", "2"):
        binary_op(repo / "fraud" / version / "model.onnx")
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "modelyard-server"), "--model-repository", str(repo), "--host", "127.0.0.1",
         "--http-port", str(port), "--grpc-port", str(free_port()), "--model-config-dir", str(config_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    name = "inpod"
    steps = ({"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}})
    body = md(name, "1", *steps, metrics=[])
    body["spec"]["rollout"]["trafficRouter"] = "inPod"
    try:
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/v2/health/ready"), timeout=60, what="server ready")
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        world.kubectl.apply(body, NS)
        load = Load(world, name)
        until(load, lambda s: s.get("phase") == "Healthy", timeout=60, what="inpod on version 1")
        body["spec"]["version"] = "2"
        world.kubectl.apply(body, NS)
        for nonce, weight in ((None, 20), ("n1", 60)):
            if nonce is not None:
                body["spec"]["rollout"]["action"] = {"type": "approve", "nonce": nonce}
                world.kubectl.apply(body, NS)
            until(load, lambda s, w=weight: s.get("phase") == "Paused" and s["weights"]["canary"] == w, timeout=60,
                  what=f"paused at {weight}%")  # fmt: skip
            rendered = world.kubectl.get("configmap", f"{name}-version-weights", NS)["data"]["config.yaml"]
            assert rendered == f'version_weights: {{"1": {100 - weight}, "2": {weight}}}\n'
            # what kubelet does with the ConfigMap volume's items: <dir>/<model>/config.yaml
            (config_dir / "fraud").mkdir(parents=True, exist_ok=True)
            (config_dir / "fraud" / "config.yaml").write_text(rendered)
            time.sleep(1.5)  # the server re-reads config.yaml at most once a second
            before = served_per_version(port)
            inputs = [triton.InferInput("A", [1, 4], "FP32"), triton.InferInput("B", [1, 4], "FP32")]
            for tensor in inputs:
                tensor.set_data_from_numpy(np.ones((1, 4), np.float32))
            for _ in range(100):
                client.infer("fraud", inputs)  # no version: the server splits by the weights
            after = served_per_version(port)
            split = {v: after.get(v, 0) - before.get(v, 0) for v in ("1", "2")}
            assert abs(split["2"] - weight) <= 1, split
            assert abs(split["1"] - (100 - weight)) <= 1, split
    finally:
        stop(server, 15)
        world.kubectl.run("delete", "md", name, "-n", NS, "--wait=false", check=False)


def rollout_md(name: str, version: str, rollout: dict[str, Any]) -> dict[str, Any]:
    """A ModelDeployment with a free-form ``spec.rollout`` (strategy, router and steps given by the test)."""
    body = md(name, version, metrics=[])
    body["spec"]["rollout"] = rollout
    return body


def apply_healthy_then(world: World, name: str, rollout: dict[str, Any], version: str) -> dict[str, Any]:
    """Serve version 1 first (no rollout for the first version), then ask for ``version``."""
    world.kubectl.apply(rollout_md(name, "1", rollout), NS)
    wait_for(lambda: ((world.kubectl.get("md", name, NS) or {}).get("status") or {}).get("phase") == "Healthy",
             timeout=60, what=f"{name} Healthy on version 1")  # fmt: skip
    body = rollout_md(name, version, rollout)
    world.kubectl.apply(body, NS)
    return body


def action_events(world: World, name: str, nonce: str) -> list[dict[str, Any]]:
    events = world.kubectl.get("events", namespace=NS)["items"]
    return [e for e in events if e["reason"] == "RolloutAction" and e["involvedObject"]["name"] == name
            and f"nonce {nonce}," in e["message"]]  # fmt: skip


def test_gateway_api_router_route_weights_at_each_step(world: World) -> None:
    """gatewayAPI: the HTTPRoute's backend weights follow a canary that real analysis drives to promotion."""
    kubectl = world.kubectl
    kubectl.run("apply", "--server-side", "-f", str(world.gateway_crds / "gateway.networking.k8s.io_httproutes.yaml"))
    kubectl.run("wait", "--for=condition=Established", "crd/httproutes.gateway.networking.k8s.io", "--timeout=30s")
    name = "gw"
    analyze = {"analyze": {"minDuration": "4s", "maxDuration": "60s"}}
    rollout = {"strategy": "canary", "trafficRouter": "gatewayAPI",
               "steps": [{"setWeight": 20}, analyze, {"setWeight": 60}, analyze],
               "gatewayAPI": {"parentRefs": [{"name": "edge"}], "mirrorPercent": 10,
                              "canaryHeaders": [{"name": "x-canary", "value": "always"}]},
               "analysis": {**ANALYSIS, "metrics": [ERRORS]}}  # fmt: skip
    apply_healthy_then(world, name, rollout, "2")
    load = Load(world, name).start()
    seen: dict[int, Obj] = {}
    try:
        for weight in (20, 60):
            until(load, lambda s, w=weight: (s.get("weights") or {}).get("canary") == w and s.get("canaryVersion"),
                  timeout=60, what=f"canary at {weight}%")  # fmt: skip
            seen[weight] = kubectl.get("httproute", name, NS)  # applied before the status that reports the weight
        status = until(load, lambda s: s.get("stableVersion") == "2", timeout=60, what="gw canary promoted")
        after = wait_for(lambda: (r := kubectl.get("httproute", name, NS)) and len(r["spec"]["rules"]) == 1 and r,
                         timeout=30, what="the route on one backend again")  # fmt: skip
        stable_selector = kubectl.get("service", f"{name}-stable", NS)["spec"]["selector"]
    finally:
        finish(world, load, name)  # deletes the MD: its Services go with it
    for weight, route in seen.items():
        header, main = route["spec"]["rules"]
        assert [m["headers"] for m in header["matches"]] == [[{"type": "Exact", "name": "x-canary", "value": "always"}]]
        assert [b["name"] for b in header["backendRefs"]] == [f"{name}-canary"]
        assert [(b["name"], b["weight"]) for b in main["backendRefs"]] == [
            (f"{name}-stable", 100 - weight), (f"{name}-canary", weight)]  # fmt: skip
        mirror = main["filters"][0]["requestMirror"]
        assert (mirror["backendRef"]["name"], mirror["percent"]) == (f"{name}-canary", 10)
        assert route["spec"]["parentRefs"][0]["name"] == "edge"
    assert [(b["name"], b["weight"]) for b in after["spec"]["rules"][0]["backendRefs"]] == [(f"{name}-stable", 100)]
    assert stable_selector["modelyard.dev/version"] == "2"
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [("2", "Promoted")]
    assert all(ok for _, _, ok in load.results)


def test_approval_gates_wait_and_each_nonce_applies_once(world: World) -> None:
    """Two approval gates after real analysis: each waits; a re-applied nonce (annotation or spec) passes none."""
    kubectl = world.kubectl
    name = "gate"
    rollout = {"strategy": "canary",
               "steps": [{"setWeight": 25}, {"analyze": {"minDuration": "3s", "maxDuration": "60s"}}, {"pause": {}},
                         {"setWeight": 50}, {"pause": {}}],
               "analysis": {**ANALYSIS, "metrics": [ERRORS]}}  # fmt: skip
    body = apply_healthy_then(world, name, rollout, "2")
    load = Load(world, name).start()

    def paused_at(weight: int) -> Any:
        return lambda s: s.get("phase") == "Paused" and s.get("requestedWeight") == weight

    try:
        first = until(load, paused_at(25), timeout=60, what="first gate after the analysis")
        assert first["step"]["index"] == 2  # the gate comes after an analysis that passed on real numbers
        time.sleep(2 * INTERVAL_S + 1)
        assert paused_at(25)(load.status()), "the gate did not wait"

        kubectl.run("annotate", "md", name, "-n", NS, "modelyard.dev/action=approve:a1")
        second = until(load, paused_at(50), timeout=30, what="second gate")
        # A GitOps tool re-applies what it knows: the same annotation and the manifest.
        kubectl.run("annotate", "md", name, "-n", NS, "--overwrite", "modelyard.dev/action=approve:a1")
        kubectl.apply(body, NS)
        time.sleep(2 * INTERVAL_S + 1)
        held = load.status()
        assert paused_at(50)(held), f"a replayed nonce passed the second gate: {held.get('lastDecision')}"
        assert held["step"]["index"] == second["step"]["index"]

        body["spec"]["rollout"]["action"] = {"type": "approve", "nonce": "s1"}
        kubectl.apply(body, NS)
        status = until(load, lambda s: s.get("stableVersion") == "2", timeout=30, what="promotion")
        kubectl.apply(body, NS)  # replayed: no second approval and no new rollout
        time.sleep(2)
        again = load.status()
    finally:
        finish(world, load, name)
    assert (second["lastHandledAction"]["type"], second["lastHandledAction"]["nonce"]) == ("approve", "a1")
    assert status["lastHandledAction"]["nonce"] == "s1"
    assert again["history"] == status["history"] == [
        {**status["history"][0], "version": "2", "outcome": "Promoted"}]  # fmt: skip
    assert "canaryVersion" not in again
    assert len(action_events(world, name, "a1")) == 1
    assert len(action_events(world, name, "s1")) == 1
    assert all(ok for _, _, ok in load.results)


def test_blue_green_full_copy_analysed_then_switched(world: World) -> None:
    """blueGreen: a full second copy gets only preview traffic; a failing one goes without users seeing it,
    a passing one takes all traffic at once."""
    kubectl = world.kubectl
    name = "bg"
    rollout = {"strategy": "blueGreen", "blueGreen": {"analyze": {"minDuration": "4s", "maxDuration": "60s"}},
               "analysis": {**ANALYSIS, "metrics": [ERRORS]}}  # fmt: skip
    apply_healthy_then(world, name, rollout, "3")
    load = Load(world, name, preview=0.5).start()  # half the requests are smoke tests through <md>-canary
    selector = f"app.kubernetes.io/instance={name}"

    def deployments() -> dict[str, int]:
        items = kubectl.get("deployments", namespace=NS, labels=selector)["items"]
        return {d["metadata"]["name"]: d["spec"]["replicas"] for d in items}

    try:
        # the failing copy: previews fail, analysis rolls it back, user traffic never reached it
        until(load, lambda s: s.get("phase") == "RolledBack", timeout=60, what="failing blue/green copy rolled back")
        assert any(not ok for _, v, ok in load.preview_results if v == "3")
        wait_for(lambda: deployments() == {f"{name}-1": 2}, timeout=30, what="failing copy removed")

        kubectl.apply(rollout_md(name, "2", rollout), NS)
        analysing = until(load, lambda s: s.get("canaryVersion") == "2" and (s.get("step") or {}).get("index") == 1,
                          timeout=60, what="second copy under analysis")  # fmt: skip
        copies = deployments()
        canary_svc = kubectl.get("service", f"{name}-canary", NS)["spec"]["selector"]["modelyard.dev/version"]
        status = until(load, lambda s: s.get("stableVersion") == "2", timeout=60, what="switch to version 2")
        wait_for(lambda: deployments() == {f"{name}-2": 2}, timeout=30, what="old copy removed")
        # the load sees the switch on its next status poll; user traffic must then reach version 2
        wait_for(lambda: any(v == "2" for _, v, _ in load.results), timeout=10, what="user traffic on version 2")
    finally:
        finish(world, load, name)
    assert copies == {f"{name}-1": 2, f"{name}-2": 2}  # a full second copy beside the full stable one
    assert canary_svc == "2"
    assert analysing["weights"] == {"stable": 100, "canary": 0}
    assert {w for _, _, w in load.phases} <= {0, 100}, "blue/green moved traffic in steps"
    assert all(ok for _, _, ok in load.results), "user traffic reached the failing copy"
    assert {v for _, v, _ in load.results} == {"1", "2"}
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [("3", "RolledBack"), ("2", "Promoted")]
    assert status["rolledBackVersions"] == ["3"]


def test_every_dashboard_panel_shows_data_after_a_rollout(world: World) -> None:
    """Each query of the shipped Grafana dashboard, with its variables as Grafana fills them ("All"), returns series
    from the real Prometheus after real traffic and a rollout: no panel of dashboards/modelyard.json stays empty."""
    dashboard = json.loads((REPO / "dashboards" / "modelyard.json").read_text())
    name = "dash"
    start_rollout(world, name, "2", {"setWeight": 50}, {"analyze": {"minDuration": "4s", "maxDuration": "60s"}},
                  metrics=[ERRORS])  # fmt: skip
    load = Load(world, name).start()
    empty: list[str] = []
    try:
        until(load, lambda s: s.get("stableVersion") == "2", timeout=120, what="canary promoted")
        time.sleep(3)  # a few scrapes (1 s) of the last traffic and of the operator
        for panel in (p for p in dashboard["panels"] if p["type"] == "timeseries"):
            for target in panel["targets"]:
                expr = (target["expr"].replace("$namespace", ".*").replace("$model", ".*")
                        .replace("$__rate_interval", "2m"))  # fmt: skip
                query = urllib.parse.urlencode({"query": expr})
                with urllib.request.urlopen(f"{world.prometheus.url}/api/v1/query?{query}", timeout=10) as resp:
                    body = json.loads(resp.read())
                assert body["status"] == "success", (panel["title"], expr, body)
                if not body["data"]["result"]:
                    empty.append(f"{panel['title']} [{target['refId']}]: {expr}")
    finally:
        finish(world, load, name)
    assert empty == [], "panels without data:\n" + "\n".join(empty)


def test_a_shadowing_int8_candidate_is_promoted_and_a_broken_one_rolled_back_unseen(world: World) -> None:
    """inPod shadow step: the pod (a real server, its config synced from the operator's ConfigMap as the kubelet
    would) copies each answered request to the canary; the agreement template passes the int8 version at 0.99 top-1
    agreement and rolls back a broken one, and no client ever gets a candidate's answer."""
    import tritonclient.http as triton

    name, kubectl, folder = "shadow", world.kubectl, world.shadow_config / "cls"
    agreement = {"name": "top1", "template": "agreement", "min": 0.99, "critical": True}
    rollout = {"strategy": "canary", "trafficRouter": "inPod", "shadow": {"percent": 100, "compare": "top1"},
               "steps": [{"analyze": {"minDuration": "6s", "maxDuration": "60s"}}, {"setWeight": 100}],
               "analysis": {**ANALYSIS, "metrics": [agreement]}}  # fmt: skip
    body = rollout_md(name, "1", rollout)
    body["spec"]["model"] = "cls"
    stop_event, answers, configs = threading.Event(), [], set()

    def kubelet() -> None:  # the ConfigMap volume's items, as the pod sees them
        while not stop_event.is_set():
            cm = kubectl.get("configmap", f"{name}-version-weights", NS)
            if cm:
                text = cm["data"]["config.yaml"]
                folder.mkdir(parents=True, exist_ok=True)
                if not (folder / "config.yaml").is_file() or (folder / "config.yaml").read_text() != text:
                    (folder / "config.yaml.new").write_text(text)
                    os.replace(folder / "config.yaml.new", folder / "config.yaml")  # atomic, as the kubelet's swap
                    configs.add(text)
            time.sleep(0.3)

    def users() -> None:  # unversioned requests: the server picks the version by the weights
        client = triton.InferenceServerClient(f"127.0.0.1:{world.shadow_port}", network_timeout=10)
        rng = np.random.default_rng(3)
        while not stop_event.is_set():
            images = rng.random((4, 3, 8, 8), dtype=np.float32) * 0.5  # each image mostly one colour: a clear class
            images[np.arange(4), rng.integers(0, 3, 4)] += 0.5
            x = triton.InferInput("data", [4, 3, 8, 8], "FP32")
            x.set_data_from_numpy(images)
            try:
                answers.append((time.monotonic(), client.infer("cls", [x]).get_response()["model_version"]))
            except Exception as exc:  # recorded: every request must succeed
                answers.append((time.monotonic(), f"error: {exc}"))
            time.sleep(0.05)

    threads = [threading.Thread(target=kubelet, daemon=True), threading.Thread(target=users, daemon=True)]
    load = Load(world, name)
    try:
        kubectl.apply(body, NS)
        until(load, lambda s: s.get("phase") == "Healthy", timeout=60, what="shadow on version 1")
        threads[0].start()  # the pod's config first, as a pod starts with its ConfigMap mounted
        wait_for(lambda: (folder / "config.yaml").is_file(), timeout=30, what="the weights ConfigMap in the pod")
        time.sleep(1.5)  # the server re-reads config.yaml at most once a second
        threads[1].start()
        body["spec"]["version"] = "2"
        kubectl.apply(body, NS)
        promoted = until(load, lambda s: s.get("stableVersion") == "2" and s.get("phase") == "Healthy", timeout=120,
                         what="the int8 version promoted after shadowing")  # fmt: skip
        promoted_at = time.monotonic()
        body["spec"]["version"] = "3"
        kubectl.apply(body, NS)
        rolled = until(
            load, lambda s: s.get("phase") == "RolledBack", timeout=120, what="the broken version rolled back"
        )
        time.sleep(1)
    finally:
        stop_event.set()
        for t in threads:
            if t.is_alive():
                t.join(timeout=15)
        kubectl.run("delete", "md", name, "-n", NS, "--wait=false", check=False)
    assert 'shadow: {version: "2", percent: 100, compare: "top1", max_abs_diff: 0.001}' in "".join(configs)
    assert 'shadow: {version: "3", percent: 100, compare: "top1", max_abs_diff: 0.001}' in "".join(configs)
    assert [(h["version"], h["outcome"]) for h in promoted["history"]][-1] == ("2", "Promoted")
    assert rolled["rolledBackVersions"] == ["3"]
    assert rolled["lastDecision"]["reason"] == "CriticalMetricFailed"
    top1 = {m["name"]: m for m in rolled["lastDecision"]["metrics"]}["top1"]
    assert top1["canary"] < 0.99
    errors = [a for _, a in answers if a.startswith("error")]
    assert not errors, errors[:3]
    before = {v for t, v in answers if t < promoted_at}
    after = {v for t, v in answers if t > promoted_at + 2}
    assert "3" not in {v for _, v in answers}, "a client got the broken candidate's answer"
    assert before <= {"1", "2"}  # 2 only once promoted (setWeight 100), never while it shadowed
    assert after == {"2"}
    compared = served_shadow(world.shadow_port)
    assert compared.get(("2", "agree"), 0) >= ANALYSIS["evidence"]["minRequests"]
    assert compared.get(("3", "disagree"), 0) > 0
    # the kubectl plugin's compare reads the same numbers from Prometheus
    plugin = subprocess.run([str(Path(sys.executable).parent / "kubectl-modelyard"), "compare", "mv", "cls-2", "cls-3",
                             "-n", NS, "--prometheus", world.prometheus.url, "--window", "5m", "-o", "json"],
                            capture_output=True, text=True, timeout=60, env=world.operator_env)  # fmt: skip
    assert plugin.returncode == 0, plugin.stderr
    figures = json.loads(plugin.stdout)
    assert float(figures["shadow agreement"]["cls-2"]) >= 0.99  # values as the table prints them (4 digits)
    assert float(figures["shadow agreement"]["cls-3"]) < 0.99
    assert float(figures["requests/s"]["cls-2"]) > 0


def served_shadow(port: int) -> dict[tuple[str, str], float]:
    """modelyard_shadow_comparisons_total by (candidate version, result) from a server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("modelyard_shadow_comparisons_total{"):
            labels = dict(part.split("=", 1) for part in line.split("{", 1)[1].split("}", 1)[0].split(","))
            key = (labels["version"].strip('"'), labels["result"].strip('"'))
            counts[key] = counts.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts
