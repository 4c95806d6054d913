"""What the chaos tier's modules share: an operator process that can be SIGKILLed and started again at will, and a
thread that samples a ModelDeployment's status so a test can check what happened between two of its looks."""

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
    """Samples one ModelDeployment's status and its Deployments' names every ``interval`` seconds (through the API,
    straight: no cache in between), tolerating an API server that is away."""

    kube: Kube
    namespace: str
    name: str
    interval: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _cursor: int = 0

    def start(self) -> StatusWatch:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        md = f"/apis/modelyard.dev/v1alpha1/namespaces/{self.namespace}/modeldeployments/{self.name}"
        deps = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        while not self._stop.is_set():
            try:
                obj = self.kube.get(md)
                listed = self.kube.get(deps, labelSelector=f"app.kubernetes.io/instance={self.name}")
            except (ApiError, OSError):
                self._stop.wait(self.interval)
                continue
            names = sorted(d["metadata"]["name"] for d in listed["items"] if not d["metadata"].get("deletionTimestamp"))
            self.samples.append(Sample(time.monotonic(), dict(obj.get("status") or {}), names))
            self._stop.wait(self.interval)

    def latest(self) -> dict[str, Any]:
        return self.samples[-1].status if self.samples else {}

    def until(self, predicate: Any, *, timeout: float, what: str) -> dict[str, Any]:
        """The first sampled status after the one the previous call returned for which ``predicate`` holds (calls
        follow the rollout forward: a state that came and went between two calls is still found)."""
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
        self._cursor = len(self.samples)
