"""What the chaos tier's modules share: an operator process that can be SIGKILLed and started again at will, and a
thread that follows a ModelDeployment's status so a test can check what happened between two of its looks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster import free_port
from kubeapi import ApiError, Kube

from ..conftest import REPO, wait_for
from ..support.processes import probe, stop

REPORT = REPO / ".pytest_cache" / "chaos-report.txt"


def report(line: str) -> None:
    """Print a test's figures and keep them in .pytest_cache/chaos-report.txt (CI runs without -s)."""
    print(line)
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")


class KillableOperator:
    """``modelyard-operator`` as a subprocess of the test: :meth:`kill` SIGKILLs it (no shutdown handlers, no
    flushing of anything), :meth:`start` starts a new one with the same flags and returns once ``/readyz`` says its
    initial lists are done. Each start appends to the same log."""

    def __init__(self, kubeconfig: Path, log: Path, *flags: str) -> None:
        self.kubeconfig, self.log, self.flags = kubeconfig, log, list(flags)
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.starts = 0

    def start(self, *, timeout: float = 60.0) -> float:
        """Start it; the seconds until it was ready."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "MODELYARD_LOG_LEVEL": "INFO"}
        script = Path(sys.executable).parent / "modelyard-operator"
        args = [*self.flags, f"--health-port={self.health_port}", f"--metrics-port={self.metrics_port}"]
        began = time.monotonic()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(script), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        wait_for(lambda: (self.alive() and probe(self.health_port, "/readyz") == 200) or self._died(),
                 timeout=timeout, interval=0.1, what="the operator ready")  # fmt: skip
        return time.monotonic() - began

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the operator exited ({self.proc.returncode}):\n{self.tail()}")
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None, "the operator never started"
        assert self.proc.poll() is None, "the operator is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            stop(self.proc, 15)

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())


@dataclass
class Sample:
    at: float
    status: dict[str, Any]
    deployments: list[str]


@dataclass
class StatusWatch:
    """Follows one ModelDeployment's status and its Deployments' names through two API watches (no cache in
    between), so every status the operator writes is seen, however briefly it held: a sample is taken at each event
    of either, with the other's latest state. It tolerates an API server that is away (it watches again from where
    it was, or lists again after 410 Gone)."""

    kube: Kube
    namespace: str
    name: str
    interval: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _cursor: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _status: dict[str, Any] = field(default_factory=dict)
    _deployments: dict[str, bool] = field(default_factory=dict)  # name -> being deleted

    def start(self) -> StatusWatch:
        mds = f"/apis/modelyard.dev/v1alpha1/namespaces/{self.namespace}/modeldeployments"
        deps = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        for what, path, query in (
            ("status", mds, {"fieldSelector": f"metadata.name={self.name}"}),
            ("deployments", deps, {"labelSelector": f"app.kubernetes.io/instance={self.name}"}),
        ):
            thread = threading.Thread(target=self._follow, args=(what, path, query), name=f"watch-{self.name}-{what}",
                                      daemon=True)  # fmt: skip
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=20)

    def _follow(self, what: str, path: str, query: dict[str, str]) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self.kube.get(path, **query)
                    version = listed["metadata"]["resourceVersion"]
                    self._take(what, None, listed["items"])
                for event in self.kube.watch(path, version, **query):
                    if event["type"] == "ERROR":  # 410 Gone or another end: list again
                        version = None
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self._take(what, event["type"], [event["object"]])
                    if self._stop.is_set():
                        return
            except ApiError as exc:
                version = None if exc.status == 410 else version
                self._stop.wait(self.interval)
            except OSError:  # the API server is away: watch again from where it was
                self._stop.wait(self.interval)

    def _take(self, what: str, event: str | None, objects: list[dict[str, Any]]) -> None:
        """Apply a listing (``event`` None) or one event to the state, and sample it."""
        with self._lock:
            if what == "status":
                for obj in objects:
                    if event != "DELETED":
                        self._status = dict(obj.get("status") or {})
            else:
                if event is None:
                    self._deployments.clear()
                for obj in objects:
                    name = obj["metadata"]["name"]
                    if event == "DELETED":
                        self._deployments.pop(name, None)
                    else:
                        self._deployments[name] = bool(obj["metadata"].get("deletionTimestamp"))
            names = sorted(name for name, leaving in self._deployments.items() if not leaving)
            self.samples.append(Sample(time.monotonic(), self._status, names))

    def latest(self) -> dict[str, Any]:
        return self.samples[-1].status if self.samples else {}

    def until(self, predicate: Any, *, timeout: float, what: str) -> dict[str, Any]:
        """The first status from the current one on, after the one the previous call returned, for which
        ``predicate`` holds (calls follow the rollout forward: a state that came and went between two calls is still
        found). A sample is taken only when something changes, so the latest one is the current state and counts
        again, as a poll would take it again (the state a killed operator left may hold after its restart)."""
        if self.samples:
            self._cursor = min(self._cursor, len(self.samples) - 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self._cursor < len(self.samples):
                sample = self.samples[self._cursor]
                self._cursor += 1
                if predicate(sample.status):
                    return sample.status
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; status: {self.latest()}")

    def skip_to_now(self) -> None:
        """The next :meth:`until` starts from the current state (the latest sample), not from an earlier one."""
        self._cursor = len(self.samples)
