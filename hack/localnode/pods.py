"""One thread per pod: namespaces, volumes, containers as process groups, probes, restarts, status, deletion."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localnode import net
from localnode.kube import ApiError
from localnode.spec import (
    ENVIRONMENT,
    PodError,
    container_env,
    expand,
    image_entrypoint,
    resolve_executable,
    volume_files,
)

if TYPE_CHECKING:
    from localnode.agent import Agent

TICK = 0.25
BACKOFF_START, BACKOFF_MAX = 1.0, 30.0  # restart back-off (the kubelet's is 10 s to 5 min: too slow for tests)
MESSAGE_LIMIT = 4096
VOLUME_REFRESH = 5.0  # seconds between rewrites of configMap / secret / downwardAPI volumes
STAGE = "/run/modelyard-localnode"  # made by the agent, removed by cleanup


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Probe:
    spec: dict[str, Any]
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0

    def due(self, t: float) -> bool:
        return t >= self.next_at

    def record(self, ok: bool, t: float) -> None:
        self.next_at = t + self.spec.get("periodSeconds", 10)
        self.successes, self.failures = (self.successes + 1, 0) if ok else (0, self.failures + 1)


@dataclass
class Container:
    spec: dict[str, Any]
    kind: str  # init | sidecar | main
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "PodInitializing"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    started: bool = False
    ready: bool = False
    ever_ran: bool = False
    next_start: float = 0.0
    backoff: float = BACKOFF_START
    started_mono: float = 0.0
    kill_at: float | None = None
    exec_env: dict[str, str] = field(default_factory=dict)
    probes: dict[str, Probe] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


class PodRunner(threading.Thread):
    def __init__(self, agent: Agent, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent, self.pod, self.uid = agent, pod, meta["uid"]
        self.path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        self.dir = agent.state_dir / "pods" / self.uid
        self.ip = ""
        self.ns = ""
        self.stop_grace: float | None = None  # set when the pod is deleted (or the agent stops)
        self.delete_object = False
        self.phase = "Pending"
        self.reason = self.message = ""
        self.start_time = now()
        self.conditions: dict[str, tuple[str, str]] = {}
        self.published: Any = None
        self.done = threading.Event()
        spec = pod["spec"]
        self.policy = spec.get("restartPolicy", "Always")
        self.containers = [
            Container(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers", [])
        ] + [Container(c, "main") for c in spec.get("containers", [])]
        self.lock = threading.Lock()

    # -- called by the agent's loop --

    def update(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.pod = pod
            if pod["metadata"].get("deletionTimestamp") and self.stop_grace is None:
                grace = pod["metadata"].get("deletionGracePeriodSeconds")
                if grace is None:
                    grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
                self.stop_grace, self.delete_object = float(grace), True

    def stop(self, grace: float, delete_object: bool = False) -> None:
        with self.lock:
            if self.stop_grace is None or grace < self.stop_grace:
                self.stop_grace = grace
            self.delete_object = self.delete_object or delete_object

    # -- the thread --

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # the pod fails; the agent keeps going
            self.agent.log(f"{self.name}: {exc!r}")
            for c in self.containers:
                c.signal(signal.SIGKILL)
            self.fail("LocalNodeError", str(exc))
        finally:
            self.cleanup()
            self.done.set()

    def _run(self) -> None:
        spec = self.pod["spec"]
        if spec.get("hostNetwork"):
            return self.fail("HostNetworkNotSupported", "the local node runs pods in their own network namespace only")
        for c in self.containers:
            if image_entrypoint(c.spec.get("image", "")) is None:
                return self.fail(
                    "ImageNotRunnable",
                    f"container {c.name}: image {c.spec.get('image')!r} cannot run on the local node "
                    "(no image pulls: only modelyard/runtime and modelyard/operator images run, as local processes)",
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("volumes", "logs", "termination"):
            (self.dir / sub).mkdir(exist_ok=True)
        self.ip = self.agent.allocate_ip(self.uid)
        self.ns = net.setup_pod(self.uid, self.ip, self.agent.cidr)
        self.set_condition("PodReadyToStartContainers", "True")
        self.publish()
        last_refresh = 0.0
        while not self.wait_volumes():
            if self.stop_grace is not None:
                return self.terminate()
            time.sleep(1)
        while True:
            t = time.monotonic()
            if self.stop_grace is not None:
                return self.terminate()
            if t - last_refresh > VOLUME_REFRESH:
                self.refresh_volumes()
                last_refresh = t
            if self.step(t):
                self.publish()
                return self.terminate(final=True)
            self.publish()
            time.sleep(TICK)

    def fail(self, reason: str, message: str) -> None:
        self.phase, self.reason, self.message = "Failed", reason, message
        for c in self.containers:
            if not c.ever_ran:
                c.state = {"terminated": {"exitCode": 128, "reason": reason, "message": message[:MESSAGE_LIMIT]}}
        self.agent.log(f"{self.name}: {reason}: {message}")
        self.publish()

    # -- volumes --

    def wait_volumes(self) -> bool:
        try:
            self.refresh_volumes()
        except PodError as exc:
            if exc.reason != "ContainerCreating":
                raise
            for c in self.containers:
                c.state = {"waiting": {"reason": "ContainerCreating", "message": str(exc)}}
            self.publish()
            return False
        return True

    def refresh_volumes(self) -> None:
        for vol in self.pod["spec"].get("volumes", []):
            target = self.dir / "volumes" / vol["name"]
            if "hostPath" in vol:
                if vol["hostPath"].get("type") == "DirectoryOrCreate":
                    Path(vol["hostPath"]["path"]).mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            files = volume_files(self.agent.kube, self.pod, vol, self.ip)
            target.mkdir(exist_ok=True)
            if files is None:
                continue
            for rel, data in files.items():  # temp + rename: readers never see half a file
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.exists() and dest.read_bytes() == data:
                    continue
                tmp = dest.with_name(f".{dest.name}.tmp")
                tmp.write_bytes(data)
                tmp.replace(dest)
            for old in target.rglob("*"):
                if old.is_file() and str(old.relative_to(target)) not in files:
                    old.unlink()

    def volume_source(self, name: str) -> Path:
        for vol in self.pod["spec"].get("volumes", []):
            if vol["name"] == name:
                return Path(vol["hostPath"]["path"]) if "hostPath" in vol else self.dir / "volumes" / name
        raise PodError("CreateContainerConfigError", f"volumeMount refers to an unknown volume {name!r}")

    # -- containers --

    def step(self, t: float) -> bool:
        """Advance init → sidecars → main containers, restarts and probes; True once the pod is finished."""
        for c in self.containers:
            self.reap(c, t)
        for c in self.containers:
            if c.kind == "main":
                break
            if c.kind == "sidecar":
                if not c.running:
                    self.maybe_start(c, t)
                self.probe(c, t)
                if not c.started:
                    return False
            else:
                code = c.state.get("terminated", {}).get("exitCode")
                if code == 0:
                    continue
                if code is not None and self.policy == "Never":
                    self.phase, self.reason = "Failed", "InitContainerFailed"
                    return True
                if not c.running:
                    self.maybe_start(c, t)
                return False
        self.set_condition("Initialized", "True")
        mains = [c for c in self.containers if c.kind == "main"]
        for c in mains:
            if not c.running and self.should_restart(c):
                self.maybe_start(c, t)
            self.probe(c, t)
        if any(c.ever_ran for c in mains) and self.phase == "Pending":
            self.phase = "Running"
        finished = all(not c.running and not self.should_restart(c) and c.ever_ran for c in mains)
        if finished:
            codes = [c.state.get("terminated", {}).get("exitCode", 1) for c in mains]
            self.phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
        return finished

    def should_restart(self, c: Container) -> bool:
        if not c.ever_ran:
            return True
        if c.kind == "sidecar" or self.policy == "Always":
            return True
        return bool(self.policy == "OnFailure" and c.state.get("terminated", {}).get("exitCode") != 0)

    def maybe_start(self, c: Container, t: float) -> None:
        if t < c.next_start or c.running:
            return
        if c.ever_ran:
            c.restarts += 1
            c.last_state = c.state
        try:
            self.launch(c)
        except PodError as exc:
            c.ever_ran = True
            c.state = {"terminated": {"exitCode": 128, "reason": exc.reason, "message": str(exc), "finishedAt": now()}}
            c.next_start = t + c.backoff
            c.backoff = min(c.backoff * 2, BACKOFF_MAX)

    def launch(self, c: Container) -> None:
        spec = c.spec
        allocatable = self.agent.allocatable
        env = container_env(self.agent.kube, self.pod, spec, self.ip, self.agent.host_ip, allocatable)
        command = [expand(a, env) for a in (spec.get("command") or image_entrypoint(spec["image"]) or [])]
        args = [expand(a, env) for a in spec.get("args", [])]
        exe = resolve_executable(command[0]) if command else None
        if exe is None:
            raise PodError("StartError", f"executable {command[:1]} not found in the local environment")
        term = self.dir / "termination" / c.name
        term.write_bytes(b"")
        mounts = [
            (self.volume_source(m["name"]) / m.get("subPath", ""), m["mountPath"], bool(m.get("readOnly", False)))
            for m in spec.get("volumeMounts", [])
        ]
        mounts.append((term, spec.get("terminationMessagePath", "/dev/termination-log"), False))
        # The pod's folder may itself lie under a mountPath (a state dir in /tmp, an emptyDir at /tmp): bind it
        # to a fixed staging point first, and take every source from there.
        lines = [f"mount --bind {shlex.quote(str(self.dir))} {STAGE}"]
        # The environment the commands come from (this checkout with its .venv, the base Python) must stay
        # visible when a volume is mounted over one of its parents (the validation Job's emptyDir at /work):
        # keep a handle on it in the staging point and bind it back inside the volume afterwards.
        hidden = [p for p in ENVIRONMENT if any(p != Path(m) and p.is_relative_to(m) for _, m, _ in mounts)]
        for i, path in enumerate(hidden):
            (self.dir / "env" / str(i)).mkdir(parents=True, exist_ok=True)
            lines.append(f"mount --bind {shlex.quote(str(path))} {STAGE}/env/{i}")
        # hostPath sources too: one may lie under another volume's mountPath (a cache in /tmp, an emptyDir at /tmp)
        staged_host: dict[Path, str] = {}
        for src, _, _ in mounts:
            if not src.is_relative_to(self.dir) and src not in staged_host:
                point = self.dir / "host" / str(len(staged_host))
                point.parent.mkdir(exist_ok=True)
                point.mkdir() if src.is_dir() else point.touch()
                staged_host[src] = f"{STAGE}/host/{len(staged_host)}"
                lines.append(f"mount --bind {shlex.quote(str(src))} {staged_host[src]}")
        for src, dst, ro in sorted(mounts, key=lambda m: m[1].count("/")):
            self.agent.ensure_mountpoint(Path(dst), is_dir=src.is_dir(), covered=mounts)
            staged = f"{STAGE}/{src.relative_to(self.dir)}" if src.is_relative_to(self.dir) else staged_host[src]
            lines.append(f"mount --bind {shlex.quote(staged)} {shlex.quote(dst)}")
            if ro:
                lines.append(f"mount -o remount,bind,ro {shlex.quote(dst)}")
        for i, path in enumerate(hidden):
            self.agent.ensure_mountpoint(path, is_dir=True, covered=mounts)
            lines.append(f"mount --bind {STAGE}/env/{i} {shlex.quote(str(path))}")
        if (spec.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            lines.append("mount -o remount,bind,ro /")  # last: bind mounts taken from / would inherit ro
        script = " && ".join([*lines, 'exec "$@"'])
        argv = ["nsenter", f"--net=/run/netns/{self.ns}", "unshare", "--mount", "--propagation", "private", "--"]
        argv += ["sh", "-c", script, "sh", exe, *command[1:], *args]
        with open(self.dir / "logs" / f"{c.name}.log", "ab") as log:
            c.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=spec.get("workingDir") or "/",
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # one process group per container: signals reach all of it
            )
        c.exec_env = env
        c.started_mono = time.monotonic()
        c.ever_ran = True
        c.started = c.ready = False
        c.kill_at = None
        c.probes = {k: Probe(spec[k]) for k in ("startupProbe", "livenessProbe", "readinessProbe") if k in spec}
        for p in c.probes.values():
            p.next_at = time.monotonic() + p.spec.get("initialDelaySeconds", 0)
        if "startupProbe" not in c.probes:
            c.started = True
        if "readinessProbe" not in c.probes:
            c.ready = c.started
        c.state = {"running": {"startedAt": now()}}

    def reap(self, c: Container, t: float) -> None:
        if c.proc is None:
            return
        if c.proc.poll() is None:
            if c.kill_at is not None and t >= c.kill_at:
                c.signal(signal.SIGKILL)
            return
        code = c.proc.returncode
        code = 128 - code if code < 0 else code  # killed by a signal: 128 + signal number, as runtimes report
        message = (self.dir / "termination" / c.name).read_bytes()[:MESSAGE_LIMIT].decode(errors="replace")
        if not message and code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            log = (self.dir / "logs" / f"{c.name}.log").read_bytes()
            message = b"\n".join(log.splitlines()[-80:])[-2048:].decode(errors="replace")
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": c.state.get("running", {}).get("startedAt", now()),
            "finishedAt": now(),
            "containerID": f"localnode://{c.proc.pid}",
        }
        if message:
            terminated["message"] = message
        c.state = {"terminated": terminated}
        c.proc = None
        c.started = c.ready = False
        if t - c.started_mono > 60:  # a container that ran a while starts over with a short back-off
            c.backoff = BACKOFF_START
        c.next_start = t + c.backoff
        c.backoff = min(c.backoff * 2, BACKOFF_MAX)

    # -- probes --

    def probe(self, c: Container, t: float) -> None:
        if not c.running or c.kill_at is not None:
            return
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            p = c.probes.get(kind)
            if p is None or not p.due(t) or (kind != "startupProbe" and not c.started):
                continue
            if kind == "startupProbe" and c.started:
                continue
            p.record(self.run_probe(c, p.spec), t)
            threshold_fail = p.failures >= p.spec.get("failureThreshold", 3)
            threshold_ok = p.successes >= p.spec.get("successThreshold", 1)
            if kind == "startupProbe" and threshold_ok:
                c.started = True
                c.ready = "readinessProbe" not in c.probes
            elif kind in ("startupProbe", "livenessProbe") and threshold_fail:
                self.agent.log(f"{self.name}/{c.name}: {kind} failed {p.failures} times: restarting")
                self.kill(c, c.spec.get("terminationGracePeriodSeconds", self.grace_default()))
            elif kind == "readinessProbe":
                c.ready = threshold_ok or (c.ready and not threshold_fail)

    def grace_default(self) -> float:
        return float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))

    def run_probe(self, c: Container, spec: dict[str, Any]) -> bool:
        timeout = float(spec.get("timeoutSeconds", 1))
        try:
            if "httpGet" in spec:
                h = spec["httpGet"]
                scheme = h.get("scheme", "HTTP").lower()
                url = f"{scheme}://{h.get('host') or self.ip}:{self.port(c, h['port'])}{h.get('path', '/')}"
                req = urllib.request.Request(url, headers={x["name"]: x["value"] for x in h.get("httpHeaders", [])})
                ctx = ssl._create_unverified_context() if scheme == "https" else None  # noqa: S323  (as the kubelet)
                with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                    return bool(200 <= resp.status < 400)
            if "tcpSocket" in spec:
                s = spec["tcpSocket"]
                with socket.create_connection((s.get("host") or self.ip, self.port(c, s["port"])), timeout=timeout):
                    return True
            if "exec" in spec and c.proc is not None:
                cmd = ["nsenter", f"--target={c.proc.pid}", "--net", "--mount", "--", *spec["exec"]["command"]]
                return (
                    subprocess.run(cmd, env=c.exec_env, capture_output=True, timeout=timeout, check=False).returncode
                    == 0
                )
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired, ValueError):
            return False
        return False  # grpc probes are not supported: they never pass

    @staticmethod
    def port(c: Container, port: int | str) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for p in c.spec.get("ports", []):
            if p.get("name") == port:
                return int(p["containerPort"])
        raise ValueError(f"no port named {port!r}")

    # -- termination --

    def kill(self, c: Container, grace: float) -> None:
        c.signal(signal.SIGTERM)
        c.kill_at = time.monotonic() + grace

    def terminate(self, final: bool = False) -> None:
        """SIGTERM main containers, then sidecars in reverse order; SIGKILL what outlives the grace period."""
        grace = 0.0 if final else float(self.stop_grace or 0)
        deadline = time.monotonic() + grace
        mains = [c for c in self.containers if c.kind == "main"]
        others = [c for c in reversed(self.containers) if c.kind != "main"]
        for group in (mains, others):
            for c in group:
                c.signal(signal.SIGTERM)
            while any(c.running for c in group) and time.monotonic() < deadline:
                time.sleep(0.05)
            for c in group:
                c.signal(signal.SIGKILL)
                if c.proc is not None:
                    c.proc.wait(timeout=10)
                    self.reap(c, time.monotonic())
        if not final and self.phase not in ("Succeeded", "Failed"):
            self.phase = "Failed" if any(c.state.get("terminated", {}).get("exitCode") for c in mains) else "Succeeded"
        if self.ns:
            net.teardown_pod(self.ns)
            self.ns = ""
        if not self.delete_object:
            self.publish()

    def cleanup(self) -> None:
        for c in self.containers:
            c.signal(signal.SIGKILL)
        if self.ns:
            net.teardown_pod(self.ns)
        self.agent.release_ip(self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.delete_object:
            self.agent.delete_pod(self.pod)

    # -- status --

    def set_condition(self, kind: str, status: str) -> None:
        if self.conditions.get(kind, ("", ""))[0] != status:
            self.conditions[kind] = (status, now())

    def container_status(self, c: Container) -> dict[str, Any]:
        out = {
            "name": c.name,
            "image": c.spec.get("image", ""),
            "imageID": "",
            "ready": c.ready and c.running,
            "started": c.started and c.running,
            "restartCount": c.restarts,
            "state": c.state,
            "lastState": c.last_state,
        }
        if c.proc is not None:
            out["containerID"] = f"localnode://{c.proc.pid}"
        return out

    def publish(self) -> None:
        mains = [c for c in self.containers if c.kind == "main"]
        ready = bool(mains) and all(c.ready and c.running for c in mains) and self.phase == "Running"
        self.set_condition("PodScheduled", "True")
        self.set_condition("Initialized", self.conditions.get("Initialized", ("False", ""))[0])
        self.set_condition("ContainersReady", "True" if ready else "False")
        self.set_condition("Ready", "True" if ready else "False")
        status: dict[str, Any] = {
            "phase": self.phase,
            "hostIP": self.agent.host_ip,
            "hostIPs": [{"ip": self.agent.host_ip}],
            "startTime": self.start_time,
            "conditions": [
                {"type": k, "status": s, "lastTransitionTime": at} for k, (s, at) in sorted(self.conditions.items())
            ],
            "initContainerStatuses": [self.container_status(c) for c in self.containers if c.kind != "main"],
            "containerStatuses": [self.container_status(c) for c in mains],
            "reason": self.reason or None,
            "message": self.message or None,
        }
        if self.ip:
            status |= {"podIP": self.ip, "podIPs": [{"ip": self.ip}]}
        if status == self.published:
            return
        try:
            self.agent.kube.merge_patch(self.path + "/status", {"status": status})
            self.published = json.loads(json.dumps(status))
        except ApiError as exc:
            if exc.status != 404:
                self.agent.log(f"{self.name}: status patch failed: {exc}")
