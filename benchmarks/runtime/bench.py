"""``make bench-runtime``: modelyard-server side by side with ONNX Runtime in-process, KServe and MLServer.

One run, one machine, the same ONNX files and the same load generator (``loadgen.py``) for every row:

- throughput/latency: the MLP 256-1024-1024-10 (FP32, variable batch): batch-1 requests at concurrency 1 and 8
  (req/s, p50, p99) and batch-32 requests at concurrency 8 (samples/s);
- time-to-ready: a ~100 MB MatMul model, spawn -> first 200 on ``/v2/health/ready`` -> first successful
  inference, against a fresh process that imports onnxruntime, creates the InferenceSession and runs one warmup
  inference (median of ``--reps``).

Peers run in their own virtual environments under ``~/.cache/modelyard/bench/<peer>-<version>/`` (created on
first use, reused after). Writes its section of ``RESULTS.md`` and all raw numbers to ``runtime/RESULTS.json``
(default: under ``benchmarks/``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(HERE.parent), str(ROOT / "hack")]

import loadgen  # noqa: E402
import report  # noqa: E402
from venvs import PY_SPY_VERSION, ensure_venv  # noqa: E402

import models  # noqa: E402
from devcluster import free_port  # noqa: E402

CACHE = Path(os.environ.get("MODELYARD_BENCH_CACHE", Path.home() / ".cache" / "modelyard" / "bench"))
VENV_PY = Path(sys.executable)


@dataclass(frozen=True)
class Peer:
    name: str
    version: str
    packages: tuple[str, ...]

    @property
    def venv(self) -> Path:
        return CACHE / f"{self.name}-{self.version}"

    def requirements(self) -> list[str]:
        # the same ONNX Runtime as the project's venv, so only the serving layer differs
        return [f"{self.name}=={self.version}", f"onnxruntime=={ort_version()}", *self.packages]


PEERS = {
    "kserve": Peer("kserve", "0.21.0", ()),
    # uvloop 0.22 made asyncio.get_event_loop() raise where MLServer 1.7's inference workers still call it
    "mlserver": Peer("mlserver", "1.7.1", ("uvloop==0.21.0",)),
    # NVIDIA's Triton: the tritonserver binary PyTriton's wheel ships (Python backend: peers/triton_python_model.py)
    "triton": Peer("nvidia-pytriton", "0.7.0", ()),
}

# rows of the table: (label, server, protocol); "batching" is modelyard-server with dynamic batching on
ROWS = [
    ("ORT in-process", "inprocess", "inprocess"),
    ("modelyard HTTP", "modelyard", "http"),
    ("modelyard gRPC", "modelyard", "grpc"),
    ("modelyard HTTP, batching", "batching", "http"),
    ("modelyard gRPC, batching", "batching", "grpc"),
    ("KServe HTTP", "kserve", "http"),
    ("KServe gRPC", "kserve", "grpc"),
    ("MLServer gRPC", "mlserver", "grpc"),
    ("Triton HTTP (Python backend + ORT)", "triton", "http"),
    ("Triton gRPC (Python backend + ORT)", "triton", "grpc"),
]
# cells: (key, concurrency, batch)
CELLS = [("c1_b1", 1, 1), ("c8_b1", 8, 1), ("c8_b32", 8, 32)]


def ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- environments -------------------------------------------------------------------------------------------------


def package_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'missing'\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


# --- servers ------------------------------------------------------------------------------------------------------


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    http_port: int
    grpc_port: int


MODELYARD_EXTRA: list[str] = []  # --modelyard-args: extra flags for every modelyard-server row
BATCHING_DELAY_MS = 1.0
BATCHING = ["--max-batch-size", "32", "--max-queue-delay-ms", f"{BATCHING_DELAY_MS:g}"]  # the "batching" rows
SERVERS = ("inprocess", "modelyard", "batching", "kserve", "mlserver", "triton")


def as_installed(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a modelyard process that loads its own modules from bytecode, as the image does (pip compiles them
    there). The venv's install is editable (the source tree), and a machine may set PYTHONDONTWRITEBYTECODE (the
    benchmark machine does): every start would compile them from source again, ~0.05 s that no user's pod pays."""
    return {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_runtime(*trees: Path) -> None:
    """Bytecode for ``modelyard_runtime`` in each tree (``__pycache__``, ignored by git), before any timed start."""
    trees = trees or (ROOT / "runtime-image" / "modelyard_runtime",)
    subprocess.run([str(VENV_PY), "-m", "compileall", "-q", *map(str, trees)], check=True, env=as_installed(os.environ))


def launch_spec(server: str, repo: Path, model: str, workdir: Path) -> Launch:
    """How to start ``server`` serving ``repo/<model>/1/model.onnx`` on fresh local ports."""
    http_port, grpc_port = free_port(), free_port()
    env = dict(os.environ)
    model_file = repo / model / "1" / "model.onnx"
    if server in ("modelyard", "batching"):
        env = as_installed(env)
        argv = [str(VENV_PY.parent / "modelyard-server"), "--model-repository", str(repo), "--host", "127.0.0.1"]
        argv += ["--http-port", str(http_port), "--grpc-port", str(grpc_port), *MODELYARD_EXTRA]
        argv += BATCHING if server == "batching" else []
    elif server == "kserve":
        py = PEERS["kserve"].venv / "bin" / "python"
        argv = [str(py), str(HERE / "peers" / "kserve_server.py"), "--model_name", model]
        argv += ["--model_path", str(model_file), "--http_port", str(http_port), "--grpc_port", str(grpc_port)]
        argv += ["--enable_latency_logging", "false"]  # a per-request log line is a debugging aid, not serving
    elif server == "mlserver":
        settings = workdir / f"mlserver-{model}"
        (settings / model).mkdir(parents=True, exist_ok=True)
        metrics_port = free_port()
        # debug off: no access-log line per request (the same as KServe's quieted loggers)
        server_settings = {"host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "debug": False}
        server_settings["metrics_port"] = metrics_port
        (settings / "settings.json").write_text(json.dumps(server_settings))
        model_settings = {
            "name": model,
            "implementation": "mlserver_runtime.OnnxRuntimeModel",
            "parameters": {"uri": str(model_file)},
        }
        (settings / model / "model-settings.json").write_text(json.dumps(model_settings))
        argv = [str(PEERS["mlserver"].venv / "bin" / "mlserver"), "start", str(settings)]
        env["PYTHONPATH"] = str(HERE / "peers")
    elif server == "triton":
        argv, env = triton_launch(repo, model, workdir, http_port, grpc_port)
    else:
        raise ValueError(f"unknown server {server!r}")
    return Launch(argv, env, http_port, grpc_port)


def install_file(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` through a temporary name and a rename: a ``dest`` that a process still runs (the
    previous Triton's backend stub while it exits: "Text file busy") is replaced, not written over."""
    part = dest.with_name(dest.name + ".part")
    shutil.copy2(src, part)
    os.replace(part, dest)


def triton_launch(
    repo: Path, model: str, workdir: Path, http_port: int, grpc_port: int
) -> tuple[list[str], dict[str, str]]:
    """Triton's own model repository for ``model`` (config.pbtxt from the ONNX file, the Python-backend model that runs
    it with ONNX Runtime) and a backend folder with the Python backend and the stub for the peer's Python."""
    import onnx

    venv = PEERS["triton"].venv
    site = next((venv / "lib").glob("python3.*/site-packages"))
    shipped = site / "pytriton" / "tritonserver"
    backends = workdir / "triton-backends"
    python_backend = backends / "python"
    python_backend.mkdir(parents=True, exist_ok=True)
    py_version = site.parent.name.removeprefix("python")
    for src in (shipped / "backends" / "python").iterdir():
        if src.is_file():
            install_file(src, python_backend / src.name)
    stub = "triton_python_backend_stub"
    install_file(shipped / "python_backend_stubs" / py_version / stub, python_backend / stub)

    onnx_file = repo / model / "1" / "model.onnx"
    graph = onnx.load(str(onnx_file), load_external_data=False).graph

    def tensors(values: Any) -> str:
        out = []
        for v in values:
            dims = [d.dim_value or -1 for d in v.type.tensor_type.shape.dim][1:]  # the batch dimension is Triton's
            out.append(f'{{ name: "{v.name}", data_type: TYPE_FP32, dims: [ {", ".join(map(str, dims))} ] }}')
        return ", ".join(out)

    triton_repo = workdir / f"triton-{model}"
    version_dir = triton_repo / model / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    install_file(onnx_file, version_dir / "model.onnx")
    install_file(HERE / "peers" / "triton_python_model.py", version_dir / "model.py")
    (triton_repo / model / "config.pbtxt").write_text(
        f'name: "{model}"\nbackend: "python"\nmax_batch_size: 32\n'
        f"input [ {tensors(graph.input)} ]\noutput [ {tensors(graph.output)} ]\n"
        "instance_group [ { kind: KIND_CPU, count: 1 } ]\n"
        "dynamic_batching { }\n"  # Triton's batcher with no delay: it merges what is queued when the model frees
    )
    env = dict(os.environ)
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"  # the stub's python: the peer venv (ONNX Runtime, numpy)
    env["LD_LIBRARY_PATH"] = str(site / "nvidia_pytriton.libs")  # the libraries the wheel vendors
    argv = [str(shipped / "bin" / "tritonserver"), f"--model-repository={triton_repo}",
            f"--backend-directory={backends}", f"--http-port={http_port}", f"--grpc-port={grpc_port}",
            f"--metrics-port={free_port()}", "--log-verbose=0", "--log-info=false"]  # fmt: skip
    return argv, env


class Running:
    def __init__(self, spec: Launch, logfile: Path) -> None:
        self.spec = spec
        self.logfile = logfile
        self._log = logfile.open("ab")
        self.spawned = time.perf_counter()
        self.proc = subprocess.Popen(
            spec.argv, env=spec.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def url(self, protocol: str) -> str:
        return f"127.0.0.1:{self.spec.http_port if protocol == 'http' else self.spec.grpc_port}"

    def wait_ready(self, timeout: float = 120.0, poll: float = 0.01) -> float:
        """Seconds from spawn to the first 200 on /v2/health/ready; RuntimeError with the log tail otherwise."""
        url = f"http://127.0.0.1:{self.spec.http_port}/v2/health/ready"
        deadline = self.spawned + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - self.spawned
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(poll)
        raise RuntimeError(f"not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.logfile.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self._log.close()


@contextlib.contextmanager
def running(server: str, repo: Path, model: str, workdir: Path) -> Iterator[Running]:
    spec = launch_spec(server, repo, model, workdir)
    proc = Running(spec, workdir / f"{server}-{model}.log")
    try:
        yield proc
    finally:
        proc.stop()


# --- measurements -------------------------------------------------------------------------------------------------


def reference_output(model_file: Path, batch: int) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(model_file), sess_options=ort.SessionOptions(), providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run([models.OUTPUT], {models.INPUT: loadgen.make_input(batch)})[0])


def executions(stats_url: str) -> dict[int, tuple[int, int]]:
    """{rows per execution: (executions, compute ns)} from modelyard-server's statistics extension, and under key
    -1 (requests, ns spent in the batch queue)."""
    with urllib.request.urlopen(stats_url, timeout=10) as resp:  # noqa: S310 (a local http:// URL we built)
        stats = json.loads(resp.read())["model_stats"][0]
    out = {
        int(b["batch_size"]): (int(b["compute_infer"]["count"]), int(b["compute_infer"]["ns"]))
        for b in stats["batch_stats"]
    }
    queue = stats["inference_stats"]["queue"]
    out[-1] = (int(queue["count"]), int(queue["ns"]))
    return out


def queue_buckets(metrics_url: str) -> dict[float, float]:
    """Cumulative counts of modelyard_inference_queue_duration_seconds per upper bound (seconds), model mlp."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:  # noqa: S310 (a local http:// URL we built)
        text = resp.read().decode()
    out: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("modelyard_inference_queue_duration_seconds_bucket{") and 'model="mlp"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = float(line.rsplit(" ", 1)[1])
    return out


def queue_p99_bound(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The smallest histogram bound that at least 99% of the cell's queue waits stayed under (ms), or None."""
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for le in sorted(after):
        if after[le] - before.get(le, 0.0) >= 0.99 * total:
            return le * 1000
    return None


def batches_between(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> dict[str, Any]:
    """What the server executed during a cell: executions, mean rows per execution, mean compute per execution,
    mean time a request waited in the batch queue."""
    count = rows = ns = 0
    largest = 0
    for size, (n, t) in after.items():
        n0, t0 = before.get(size, (0, 0))
        if size > 0 and n > n0:
            count, rows, ns, largest = count + n - n0, rows + size * (n - n0), ns + t - t0, max(largest, size)
    if not count:
        return {"executions": 0}
    (q1, qns1), (q0, qns0) = after.get(-1, (0, 0)), before.get(-1, (0, 0))
    return {
        "executions": count,
        "mean_batch": round(rows / count, 2),
        "largest_batch": largest,
        "compute_ms_per_execution": round(ns / count / 1e6, 4),
        "queue_ms_per_request": round((qns1 - qns0) / max(q1 - q0, 1) / 1e6, 4),
    }


def measure_row(
    target: loadgen.Target,
    args: argparse.Namespace,
    refs: dict[int, np.ndarray],
    server_pid: int | None,
    stats_url: str | None = None,
) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    for key, concurrency, batch in CELLS:
        problem = loadgen.check_output(target, batch, refs[batch])
        if problem:
            log(f"  {key}: FAILED check: {problem}")
            cells[key] = {"concurrency": concurrency, "batch": batch, "error": problem}
            if "Connect" in problem or "UNAVAILABLE" in problem or "no answer" in problem:
                for rest_key, rest_c, rest_b in CELLS[CELLS.index((key, concurrency, batch)) + 1 :]:
                    cells[rest_key] = {"concurrency": rest_c, "batch": rest_b, "error": problem}
                break
            continue
        before = executions(stats_url) if stats_url else None
        metrics_url = stats_url.split("/v2/", 1)[0] + "/metrics" if stats_url else None
        queue_before = queue_buckets(metrics_url) if metrics_url else None
        result = loadgen.run_cell(
            target,
            concurrency=concurrency,
            batch=batch,
            warmup_s=args.warmup,
            duration_s=args.duration,
            client=args.client,
            server_pid=server_pid,
        )
        cells[key] = result.summary()
        s = cells[key]
        if stats_url and before is not None:  # the whole cell, warmup included: how the load was batched
            s["server_batches"] = batches_between(before, executions(stats_url))
            if metrics_url and queue_before is not None:
                s["server_batches"]["queue_p99_ms_at_most"] = queue_p99_bound(queue_before, queue_buckets(metrics_url))
        log(
            f"  {key}: {s['req_per_s']} req/s, {s['samples_per_s']} samples/s, p50 {s['p50_ms']} ms, "
            f"p99 {s['p99_ms']} ms, client {s['client_cpu_cores']} cores, server {s['server_cpu_cores']} cores"
            + (f", {s['errors']} errors ({s['error']})" if s["errors"] else "")
            + (f", mean batch {s['server_batches'].get('mean_batch')}" if "server_batches" in s else "")
        )
    return cells


def measure_server(
    label: str,
    server: str,
    protocol: str,
    mlp_file: Path,
    repo: Path,
    workdir: Path,
    args: argparse.Namespace,
    refs: dict[int, np.ndarray],
    results: dict[str, Any],
    profile: bool,
) -> dict[str, Any]:
    """One round of one row: start the server (fresh each round), check it, run every cell, stop it."""
    if server == "inprocess":
        return measure_row(loadgen.Target("inprocess", str(mlp_file)), args, refs, None)
    try:
        with running(server, repo, "mlp", workdir) as run:
            run.wait_ready()
            target = loadgen.Target(protocol, run.url(protocol), "mlp")
            stats = f"http://{run.url('http')}/v2/models/mlp/stats" if server in ("modelyard", "batching") else None
            cells = measure_row(target, args, refs, run.pid, stats)
            if profile:
                log(f"  profiling {label} at concurrency 8 with py-spy")
                results["profile"][label] = run_profile(run, target, args, workdir, server)
            return cells
    except RuntimeError as exc:
        log(f"  server failed: {exc}")
        return {key: {"concurrency": c, "batch": b, "error": str(exc)} for key, c, b in CELLS}


def median_round(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median req/s (its own p50/p99 with it), plus every round's req/s; failures if none ran."""
    ok = sorted((c for c in cells if c.get("req_per_s") is not None), key=lambda c: c["req_per_s"])
    if not ok:
        return cells[-1]
    chosen = dict(ok[(len(ok) - 1) // 2])  # lower median for an even count: the conservative pick
    chosen["rounds_req_per_s"] = [c.get("req_per_s") for c in cells]
    failed = [c["error"] for c in cells if c.get("req_per_s") is None and c.get("error")]
    if failed:
        chosen["failed_rounds"] = failed
    return chosen


def run_profile(
    run: Running, target: loadgen.Target, args: argparse.Namespace, out_dir: Path, server: str = "modelyard"
) -> dict[str, Any]:
    """py-spy (from the harness's own tools venv) on the server during a concurrency-8 batch-1 cell."""
    tools = ensure_venv(CACHE / f"tools-py-spy-{PY_SPY_VERSION}", [f"py-spy=={PY_SPY_VERSION}"])
    name = f"profile-{target.protocol}.txt" if server == "modelyard" else f"profile-{server}-{target.protocol}.txt"
    raw = out_dir / name
    seconds = int(args.warmup + args.duration)
    spy = subprocess.Popen(
        [
            *(str(tools / "bin" / "py-spy"), "record", "--pid", str(run.pid), "--duration", str(seconds)),
            *("--format", "raw", "--rate", "200", "--threads", "--gil", "--nonblocking", "--output", str(raw)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    before, t0 = loadgen.thread_cpu_seconds(run.pid), time.perf_counter()
    result = loadgen.run_cell(
        target, concurrency=8, batch=1, warmup_s=0.5, duration_s=args.warmup + args.duration, client=args.client
    )
    after, wall = loadgen.thread_cpu_seconds(run.pid), time.perf_counter() - t0
    _, err = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0 or not raw.is_file():
        return {"error": f"py-spy failed ({spy.returncode}): {err.strip()[-500:]}"}
    text = raw.read_text()
    cpu = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    return {
        "file": raw.name,
        "cell": result.summary(),
        "thread_cpu_cores": report.thread_cpu(cpu, wall, text),
        **report.summarize_profile(text),
    }


BARE_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import onnxruntime as ort
t1 = time.perf_counter()
session = ort.InferenceSession(sys.argv[1], sess_options=ort.SessionOptions(), providers=["CPUExecutionProvider"])
t2 = time.perf_counter()
x = np.random.default_rng(0).standard_normal((1, int(sys.argv[2])), dtype=np.float32)
session.run(["OUTPUT0"], {"INPUT0": x})
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "session_s": t2 - t1, "warmup_s": t3 - t2}), flush=True)
"""


def time_bare(model_file: Path, width: int) -> dict[str, float]:
    spawned = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE_SCRIPT, str(model_file), str(width)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    done = time.perf_counter() - spawned
    proc.wait(timeout=60)
    inner = json.loads(line)
    return {"spawn_to_done_s": done, **inner, "session_plus_warmup_s": inner["session_s"] + inner["warmup_s"]}


# what modelyard-server imports before it can serve (cli defers the web stack to server.app, imported while the
# model versions open); only the modules that exist in this checkout are imported
MODELYARD_STACK = [
    m
    for m in ("modelyard_runtime.server.cli", "modelyard_runtime.server.app")
    if (ROOT / "runtime-image" / (m.replace(".", "/") + ".py")).is_file()
]


def time_import(modules: str) -> dict[str, float]:
    """spawn -> exit of a fresh ``python -c 'import MODULES'``: the interpreter plus the imports (from bytecode)."""
    spawned = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {modules}"], check=True, env=as_installed(os.environ))
    return {"spawn_to_exit_s": time.perf_counter() - spawned}


def time_server(server: str, protocol: str, repo: Path, workdir: Path, width: int) -> dict[str, float]:
    """spawn -> ready (first 200) -> first successful inference over ``protocol``, one fresh process."""
    data = loadgen.make_input(1, width)
    with running(server, repo, "big", workdir) as run:
        ready = run.wait_ready()
        infer = loadgen.make_infer(loadgen.Target(protocol, run.url(protocol), "big"), data)
        deadline = time.perf_counter() + 60
        while True:
            try:
                infer()
                break
            except Exception:
                if time.perf_counter() > deadline:
                    raise
                time.sleep(0.01)
        first = time.perf_counter() - run.spawned
    return {"spawn_to_ready_s": ready, "spawn_to_first_inference_s": first}


def median_of(samples: list[dict[str, float]]) -> dict[str, Any]:
    keys = samples[0].keys()
    return {k: round(statistics.median(s[k] for s in samples), 4) for k in keys} | {
        "samples": [{k: round(v, 4) for k, v in s.items()} for s in samples]
    }


def measure_ready(
    args: argparse.Namespace, big_file: Path, big_repo: Path, workdir: Path, results: dict[str, Any]
) -> None:
    """Time-to-ready, ``--reps`` rounds over every contender in turn (so a burst of other work hits one round of
    each, not all of one); the median of each contender is reported."""
    width = models.BIG_LAYERS[0]
    compile_runtime()
    contenders: list[tuple[str, Any]] = []
    if "inprocess" in args.only:
        contenders.append(("bare", lambda: time_bare(big_file, width)))
    if "modelyard" in args.only:
        # where a server's extra start-up time goes: the interpreter and its imports, before any model work
        contenders.append(("bare imports", lambda: time_import("numpy, onnxruntime")))
        contenders.append(("modelyard imports", lambda: time_import(", ".join(MODELYARD_STACK))))
    for label, server, protocol in ROWS:
        if server in args.only and server not in ("inprocess", "batching"):  # batching: the same start-up
            contenders.append((label, lambda s=server, p=protocol: time_server(s, p, big_repo, workdir, width)))
    samples: dict[str, list[dict[str, float]]] = {name: [] for name, _ in contenders}
    errors: dict[str, str] = {}
    for number in range(1, args.reps + 1):
        log(f"time-to-ready round {number}/{args.reps}: {', '.join(name for name, _ in contenders)}")
        for name, measure in contenders:
            if name in errors:
                continue
            try:
                samples[name].append(measure())
            except Exception as exc:
                log(f"  {name} failed: {exc}")
                errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
    ttr = results["time_to_ready"]
    for name, _ in contenders:
        ttr[name] = {"error": errors[name]} if name in errors else median_of(samples[name])
    if "modelyard imports" in ttr:
        ttr["modelyard imports"]["modules"] = ", ".join(MODELYARD_STACK)


# --- main ---------------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def source_state() -> dict[str, Any]:
    """Which modelyard code ran: the commit and any uncommitted changes under runtime-image/ (others edit live)."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    porcelain = git("status", "--porcelain", "--", "runtime-image").splitlines()
    dirty = [line.split(maxsplit=1)[1] for line in porcelain if line.strip()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "uncommitted_runtime_files": dirty}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench-runtime", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell and round (default 5)")
    p.add_argument(
        "--rounds", type=int, default=3, help="rounds over all rows; each cell reports its median round (default 3)"
    )
    p.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds before each cell (default 2)")
    p.add_argument("--reps", type=int, default=3, help="time-to-ready repetitions, median reported (default 3)")
    p.add_argument(
        "--client",
        choices=["threads", "processes"],
        default="threads",
        help="load generator workers: threads in one process (default) or one process per worker",
    )
    p.add_argument(
        "--only",
        default=",".join(SERVERS),
        help="comma-separated servers to run (inprocess, modelyard, batching = modelyard with dynamic batching, "
        "kserve, mlserver, triton); 'modelyard,batching' is the batching comparison, which writes only its own section",
    )
    p.add_argument(
        "--modelyard-args",
        default="",
        help="extra modelyard-server flags, e.g. '--max-batch-size 64 --max-queue-delay-ms 1' (default: none)",
    )
    p.add_argument("--skip-ready", action="store_true", help="skip the time-to-ready measurements")
    p.add_argument("--profile", action="store_true", help="also py-spy the modelyard server at concurrency 8")
    p.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks", help="where RESULTS.md/.json go")
    p.add_argument("--workdir", type=Path, default=CACHE / "work", help="models, peer settings and server logs")
    args = p.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.only) - set(SERVERS)
    if unknown:
        p.error(f"--only: unknown server(s) {', '.join(sorted(unknown))}")
    if args.duration <= 0 or args.warmup < 0 or args.reps < 1 or args.rounds < 1:
        p.error("--duration must be > 0, --warmup >= 0, --reps >= 1, --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    command = "make bench-runtime" + (
        f" BENCH_ARGS='{' '.join(argv or sys.argv[1:])}'" if (argv or sys.argv[1:]) else ""
    )
    load = os.getloadavg()[0]
    if load >= 1.0:
        log(f"warning: load average {load:.2f} >= 1: other work shares the 2 cores; numbers will be noisy")

    MODELYARD_EXTRA[:] = shlex.split(args.modelyard_args)
    meta = machine()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    for old_log in workdir.glob("*.log"):
        old_log.unlink()
    repo, big_repo = workdir / "repo", workdir / "repo-big"
    mlp_file = models.mlp(repo / "mlp" / "1" / "model.onnx")
    big_file = models.big(big_repo / "big" / "1" / "model.onnx")
    for f in (mlp_file, big_file):
        log(f"model: {f} ({f.stat().st_size / 1e6:.1f} MB)")

    versions: dict[str, dict[str, str]] = {
        "project venv": package_versions(VENV_PY, ["modelyard", "onnxruntime", "tritonclient", "grpcio", "numpy"])
    }
    for name in ("kserve", "mlserver", "triton"):
        if name in args.only:
            peer = PEERS[name]
            venv = ensure_venv(peer.venv, peer.requirements())
            versions[name] = package_versions(venv / "bin" / "python", [peer.name, "onnxruntime", "numpy"])

    refs = {batch: reference_output(mlp_file, batch) for batch in {b for _, _, b in CELLS}}
    results: dict[str, Any] = {"rows": {}, "time_to_ready": {}, "profile": {}}
    # rounds go over every row in turn, so a burst of other work on the machine hits one round of every row
    # rather than all of one row; each cell then reports its median round
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for number in range(1, args.rounds + 1):
        for label, server, protocol in ROWS:
            if server not in args.only:
                continue
            log(f"{label} (round {number}/{args.rounds})")
            profile = args.profile and server in ("modelyard", "batching") and number == args.rounds
            cells = measure_server(label, server, protocol, mlp_file, repo, workdir, args, refs, results, profile)
            for key, cell in cells.items():
                rounds.setdefault(label, {}).setdefault(key, []).append(cell)
    results["rows"] = {label: {key: median_round(c) for key, c in cells.items()} for label, cells in rounds.items()}

    if not args.skip_ready:
        measure_ready(args, big_file, big_repo, workdir, results)

    meta["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    results["meta"] = {
        "command": command,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": meta,
        "versions": versions,
        "source": source_state(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "reps": args.reps,
            "rounds": args.rounds,
            "client": args.client,
            "modelyard_args": MODELYARD_EXTRA,
            "batching_args": BATCHING,
            "batching_delay_ms": BATCHING_DELAY_MS,
            "cells": [{"key": k, "concurrency": c, "batch": b} for k, c, b in CELLS],
            "mlp": list(models.MLP_LAYERS),
            "big": list(models.BIG_LAYERS),
            "mlp_bytes": mlp_file.stat().st_size,
            "big_bytes": big_file.stat().st_size,
        },
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "runtime").mkdir(exist_ok=True)
    # the batching comparison alone keeps the full table (and its raw numbers) as they are
    comparison_only = "batching" in args.only and set(args.only) <= {"modelyard", "batching"}
    raw = args.out_dir / "runtime" / ("RESULTS-batching.json" if comparison_only else "RESULTS.json")
    raw.write_text(json.dumps(results, indent=2) + "\n")
    md = args.out_dir / "RESULTS.md"
    existing = md.read_text() if md.is_file() else None
    labels = [label for label, _, _ in ROWS]
    text = existing if comparison_only and existing else report.render(results, labels, existing)
    md.write_text(report.render_batching(results, text))
    log(f"wrote {md} and {raw} in {results['meta']['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
