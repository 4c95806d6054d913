"""Soak (security-checklist item 24): 300 ModelDeployments churned for 10 minutes against the real control plane
(pods simulated by kwok: 300 model servers do not fit this machine), with the operator's resident memory and its
event-loop lag (``modelyard_operator_event_loop_lag_seconds``) sampled throughout.

Churn, about 5 changes a second spread over all objects: replica changes, version switches (new Deployment, old one
deleted), annotation edits and deletions with recreation. Afterwards every ModelDeployment must converge to its
last spec (no update lost). Bounds: resident memory grows by less than ``RSS_GROWTH_BOUND_MIB`` from the end of
the first minute to the end; the event loop's 99th-percentile lag stays under ``LAG_P99_BOUND_S``.

``MODELYARD_SOAK_SECONDS`` shortens or lengthens the churn (600 by default, as CI runs it).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devcluster import DevCluster
from kubeapi import ApiError, Kube

from ..conftest import dev_cluster, wait_for
from .support import KillableOperator, report

COUNT = 300
SOAK_SECONDS = float(os.environ.get("MODELYARD_SOAK_SECONDS", "600"))
RATE = 5.0  # changes per second
RSS_GROWTH_BOUND_MIB = 48.0  # measured: +0 MiB over a 10-minute churn (docs/operator.md)
# measured: p99 <= 25 ms on a quiet 2-core machine at first; on 2026-12-07 the machine was slower and the same
# operator (42f4aa3, which had passed this bound in CI) reached p99 <= 0.5 s in a quiet 150 s soak, and this tier
# beside the others p99 <= 0.5 s: the bound is the histogram bucket above that, not below it. A loop blocked by the
# operator's own work (a hot loop, a synchronous stall per event) shows seconds.
LAG_P99_BOUND_S = 0.5
NS = "soak"
DIGEST = "sha256:" + "5f" * 32
GROUP = "/apis/modelyard.dev/v1alpha1"

pytestmark = pytest.mark.timeout(SOAK_SECONDS + 600)


@pytest.fixture(scope="module")
def soak_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    with dev_cluster(tmp_path_factory.mktemp("soak-cluster")) as cl:
        yield cl


def version(i: int, v: str) -> dict[str, Any]:
    artifact = {"uri": f"https://models.example.com/m{i}/{v}/model.onnx", "digest": DIGEST}
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": f"m{i}-{v}", "namespace": NS},
            "spec": {"model": f"m{i}", "version": v, "artifact": artifact}}  # fmt: skip


def deployment(i: int, v: str = "1", replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"d{i}", "namespace": NS},
            "spec": {"model": f"m{i}", "version": v, "replicas": replicas,
                     "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}}}}  # fmt: skip


def create(kube: Kube, path: str, obj: dict[str, Any]) -> None:
    try:
        kube.request("POST", path, obj)
    except ApiError as exc:
        if exc.status != 409:
            raise


class Churn:
    """Changes picked at random at ``RATE`` a second; ``want`` is each ModelDeployment's last spec (None: deleted)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.want: dict[int, tuple[str, int] | None] = dict.fromkeys(range(COUNT), ("1", 1))
        self.done: dict[str, int] = {}
        self.rng = random.Random(24)  # noqa: S311 (not cryptography: a reproducible churn)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def _change(self) -> None:
        i = self.rng.randrange(COUNT)
        path = f"{GROUP}/namespaces/{NS}/modeldeployments"
        current = self.want[i]
        if current is None:
            create(self.kube, path, deployment(i))
            self.want[i], what = ("1", 1), "recreate"
        else:
            v, replicas = current
            what = self.rng.choice(("replicas", "version", "annotate", "delete"))
            if what == "replicas":
                replicas = 3 - replicas
                self.kube.merge_patch(f"{path}/d{i}", {"spec": {"replicas": replicas}})
            elif what == "version":
                v = "2" if v == "1" else "1"
                self.kube.merge_patch(f"{path}/d{i}", {"spec": {"version": v}})
            elif what == "annotate":
                self.kube.merge_patch(f"{path}/d{i}", {"metadata": {"annotations": {"soak": str(time.time())}}})
            else:
                self.kube.request("DELETE", f"{path}/d{i}")
            self.want[i] = None if what == "delete" else (v, replicas)
        self.done[what] = self.done.get(what, 0) + 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._change()
            self._stop.wait(1 / RATE)

    def start(self) -> Churn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def lag_buckets(text: str) -> dict[float, float]:
    """The event-loop lag histogram's cumulative bucket counts, by upper bound."""
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("modelyard_operator_event_loop_lag_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The bucket bound under which ``q`` of the observations between two scrapes fell."""
    delta = {b: after[b] - before.get(b, 0.0) for b in sorted(after)}
    total = delta[float("inf")]
    return next(b for b, n in delta.items() if n >= q * total)


def converged(kube: Kube, want: dict[int, tuple[str, int] | None]) -> list[str]:
    """What differs between each ModelDeployment's last spec and the Deployments the operator keeps for it."""
    deps = kube.get(f"/apis/apps/v1/namespaces/{NS}/deployments")["items"]
    have: dict[str, list[tuple[str, int]]] = {}
    for d in deps:
        if d["metadata"].get("deletionTimestamp"):
            continue
        owner = d["metadata"]["labels"].get("app.kubernetes.io/instance", "")
        have.setdefault(owner, []).append(
            (d["metadata"]["labels"].get("modelyard.dev/version", ""), d["spec"]["replicas"])
        )
    wrong = []
    for i, spec in want.items():
        got = have.get(f"d{i}", [])
        if (spec is None and got) or (spec is not None and got != [spec]):
            wrong.append(f"d{i}: want {spec}, have {got}")
    return wrong


def test_soak_300_model_deployments_churned_memory_and_lag_bounded(soak_cluster: DevCluster, tmp_path: Path) -> None:
    kube = Kube(soak_cluster.kubeconfig)
    kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    operator = KillableOperator(soak_cluster.dir / "operator.kubeconfig", tmp_path / "operator.log",
                                f"--namespace={NS}", "--model-validation=off")  # fmt: skip
    for i in range(COUNT):
        create(kube, f"{GROUP}/namespaces/{NS}/modelversions", version(i, "1"))
        create(kube, f"{GROUP}/namespaces/{NS}/modelversions", version(i, "2"))
        create(kube, f"{GROUP}/namespaces/{NS}/modeldeployments", deployment(i))
    operator.start(timeout=120)
    try:
        started = time.monotonic()
        wait_for(lambda: not converged(kube, dict.fromkeys(range(COUNT), ("1", 1))), timeout=300, interval=2,
                 what="300 ModelDeployments converged")  # fmt: skip
        initial = time.monotonic() - started
        rss: list[tuple[float, float]] = [(0.0, operator.rss_mib())]
        lag_start = lag_buckets(operator.metrics())
        churn = Churn(kube).start()
        began = time.monotonic()
        warm_rss = None
        lag_warm = lag_start
        while (elapsed := time.monotonic() - began) < SOAK_SECONDS:
            time.sleep(10)
            assert operator.alive(), operator.tail()
            rss.append((elapsed, operator.rss_mib()))
            if warm_rss is None and elapsed >= min(60.0, SOAK_SECONDS / 4):
                warm_rss, lag_warm = rss[-1][1], lag_buckets(operator.metrics())
        churn.stop()
        stopped = time.monotonic()
        wait_for(lambda: not converged(kube, churn.want), timeout=300, interval=2, what="every last spec applied")
        settle = time.monotonic() - stopped
        lag_end = lag_buckets(operator.metrics())
        end_rss = operator.rss_mib()
    finally:
        operator.stop()
    assert warm_rss is not None
    p99, p50 = quantile(lag_warm, lag_end, 0.99), quantile(lag_warm, lag_end, 0.5)
    worst = quantile(lag_start, lag_end, 1.0)  # the smallest bucket holding every observation of the soak
    changes = sum(churn.done.values())
    report(f"soak: {COUNT} ModelDeployments converged in {initial:.0f}s; churned {SOAK_SECONDS:.0f}s with {changes} "
          f"changes {churn.done}; every last spec applied {settle:.1f}s after the churn stopped. Operator RSS "
          f"{rss[0][1]:.0f} MiB at the start, {warm_rss:.0f} MiB after the first minute, {end_rss:.0f} MiB at the end "
          f"(growth {end_rss - warm_rss:+.0f} MiB, bound {RSS_GROWTH_BOUND_MIB:.0f}); samples "
          f"{[round(m) for _, m in rss]}; event-loop lag p50 <= {p50}s, p99 <= {p99}s (bound {LAG_P99_BOUND_S}s), "
          f"largest bucket reached {worst}s")  # fmt: skip
    assert changes >= RATE * SOAK_SECONDS * 0.5
    assert end_rss - warm_rss < RSS_GROWTH_BOUND_MIB
    assert p99 <= LAG_P99_BOUND_S
    assert settle < 120
