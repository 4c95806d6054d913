"""The one closed-loop load generator used for every row (tritonclient HTTP/gRPC, or ONNX Runtime in-process).

``groups`` forked processes each run ``threads`` workers; every worker sends one request, waits for the answer,
and sends the next (closed loop, so concurrency = groups x threads). Every worker starts at the same instant,
sends for ``warmup_s`` without recording, then records for ``duration_s``: a request counts when it both started
and finished inside the window; its latency is taken per request with ``time.perf_counter`` (CLOCK_MONOTONIC,
shared by all processes). Each group also reports the CPU time it used inside the window, and the parent samples
the server's process tree from /proc, so the report can say how the two cores were shared.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models import INPUT, OUTPUT

Infer = Callable[[], np.ndarray]


@dataclass(frozen=True)
class Target:
    """Where requests go: ``protocol`` is ``http``, ``grpc`` or ``inprocess`` (then ``url`` is a model file)."""

    protocol: str
    url: str
    model: str = "mlp"


@dataclass
class CellResult:
    concurrency: int
    batch: int
    duration_s: float
    requests: int = 0
    errors: int = 0
    error: str | None = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms)
        ok = self.requests > 0 and self.error is None
        return {
            "concurrency": self.concurrency,
            "batch": self.batch,
            "duration_s": round(self.duration_s, 3),
            "requests": self.requests,
            "errors": self.errors,
            "error": self.error,
            "req_per_s": round(self.requests / self.duration_s, 1) if ok else None,
            "samples_per_s": round(self.requests * self.batch / self.duration_s, 1) if ok else None,
            "p50_ms": round(float(np.percentile(lat, 50)), 4) if ok else None,
            "p90_ms": round(float(np.percentile(lat, 90)), 4) if ok else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 4) if ok else None,
            "client_cpu_cores": round(self.client_cpu_s / self.duration_s, 3),
            "server_cpu_cores": None if self.server_cpu_s is None else round(self.server_cpu_s / self.duration_s, 3),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),  # other work on the machine (this cell counts too)
        }


def make_input(batch: int, width: int = 256) -> np.ndarray:
    """The same input data for every row: seed 0, standard normal, FP32."""
    return np.random.default_rng(0).standard_normal((batch, width), dtype=np.float32)


def make_infer(target: Target, data: np.ndarray, session: Any = None) -> Infer:
    """A zero-argument callable that sends one request and returns OUTPUT0 as numpy (raises on failure)."""
    if target.protocol == "inprocess":
        return lambda: session.run([OUTPUT], {INPUT: data})[0]
    if target.protocol == "http":
        import tritonclient.http as client_http

        http_client = client_http.InferenceServerClient(target.url, connection_timeout=10.0, network_timeout=30.0)
        http_in = client_http.InferInput(INPUT, list(data.shape), "FP32")
        http_in.set_data_from_numpy(data, binary_data=True)
        http_out = [client_http.InferRequestedOutput(OUTPUT, binary_data=True)]

        def infer_http() -> np.ndarray:
            result = http_client.infer(target.model, [http_in], outputs=http_out)
            return np.asarray(result.as_numpy(OUTPUT))

        return infer_http
    if target.protocol == "grpc":
        import tritonclient.grpc as client_grpc

        grpc_client = client_grpc.InferenceServerClient(target.url)
        grpc_in = client_grpc.InferInput(INPUT, list(data.shape), "FP32")
        grpc_in.set_data_from_numpy(data)
        grpc_out = [client_grpc.InferRequestedOutput(OUTPUT)]

        def infer_grpc() -> np.ndarray:
            result = grpc_client.infer(target.model, [grpc_in], outputs=grpc_out, client_timeout=30.0)
            return np.asarray(result.as_numpy(OUTPUT))

        return infer_grpc
    raise ValueError(f"unknown protocol {target.protocol!r}")


def _open_session(path: str) -> Any:
    import onnxruntime as ort

    # the same options as modelyard-server and the peers: defaults, CPU provider
    return ort.InferenceSession(path, sess_options=ort.SessionOptions(), providers=["CPUExecutionProvider"])


def _group(
    target: Target, batch: int, threads: int, start: float, warmup_s: float, duration_s: float, conn: Any
) -> None:
    """One client process: ``threads`` closed-loop workers; sends (latencies, errors, first error, cpu) back."""
    try:
        data = make_input(batch)
        session = _open_session(target.url) if target.protocol == "inprocess" else None
        infers = [make_infer(target, data, session) for _ in range(threads)]
        w_start, w_end = start + warmup_s, start + warmup_s + duration_s
        latencies: list[list[float]] = [[] for _ in range(threads)]
        errors = [0] * threads
        first_error: list[str] = []

        def work(i: int) -> None:
            infer, mine = infers[i], latencies[i]
            clock = time.perf_counter
            while clock() < start:
                time.sleep(0.0005)
            while True:
                t0 = clock()
                if t0 >= w_end:
                    return
                try:
                    infer()
                except Exception as exc:
                    errors[i] += 1
                    if not first_error:
                        first_error.append(f"{type(exc).__name__}: {exc}")
                    time.sleep(0.01)
                    continue
                t1 = clock()
                if t0 >= w_start and t1 <= w_end:
                    mine.append((t1 - t0) * 1000.0)

        workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
        for w in workers:
            w.start()
        # CPU used by this client process inside the measurement window
        _sleep_until(w_start)
        cpu0 = time.process_time()
        _sleep_until(w_end)
        cpu1 = time.process_time()
        for w in workers:
            w.join()
        flat = [x for lst in latencies for x in lst]
        conn.send((flat, sum(errors), first_error[0] if first_error else None, cpu1 - cpu0))
    except Exception:
        conn.send(([], 1, traceback.format_exc(limit=3), 0.0))
    finally:
        conn.close()


def _sleep_until(t: float) -> None:
    while (left := t - time.perf_counter()) > 0:
        time.sleep(min(left, 0.05))


def tree_cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of ``pid`` and all its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += int(stats[p][11]) + int(stats[p][12])  # utime, stime
        todo.extend(children.get(p, []))
    return total / tick


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """user+system CPU seconds per thread (tid) of ``pid`` (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def run_cell(
    target: Target,
    *,
    concurrency: int,
    batch: int,
    warmup_s: float,
    duration_s: float,
    client: str = "processes",
    server_pid: int | None = None,
) -> CellResult:
    """Closed-loop load at ``concurrency`` with ``batch``-row requests; ``client`` = processes | threads.

    ``processes``: one process per worker (no GIL contention inside the client); ``threads``: one process with
    ``concurrency`` threads. In-process targets always use threads over one shared session (as a server does).
    """
    if client == "threads" or target.protocol == "inprocess":
        groups, threads = 1, concurrency
    else:
        groups, threads = concurrency, 1
    ctx = mp.get_context("fork")  # the parent holds no gRPC channel, so forking is safe
    start = time.perf_counter() + 1.0 + 0.15 * groups  # room for every group to fork and connect
    pipes, procs = [], []
    for _ in range(groups):
        parent_end, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_group, args=(target, batch, threads, start, warmup_s, duration_s, child_end))
        proc.start()
        child_end.close()
        pipes.append(parent_end)
        procs.append(proc)
    result = CellResult(concurrency=concurrency, batch=batch, duration_s=duration_s)
    if server_pid is not None:
        _sleep_until(start + warmup_s)
        s0 = tree_cpu_seconds(server_pid)
        _sleep_until(start + warmup_s + duration_s)
        result.server_cpu_s = tree_cpu_seconds(server_pid) - s0
    for pipe, proc in zip(pipes, procs, strict=True):
        try:
            if not pipe.poll(warmup_s + duration_s + 120):
                raise TimeoutError("client process sent no result")
            flat, errors, first_error, cpu = pipe.recv()
        except (EOFError, TimeoutError) as exc:
            flat, errors, first_error, cpu = [], 1, f"client process failed: {exc}", 0.0
        result.latencies_ms.extend(flat)
        result.errors += errors
        result.client_cpu_s += cpu
        if first_error and result.error is None:
            result.error = first_error
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    result.requests = len(result.latencies_ms)
    return result


def check_output(target: Target, batch: int, reference: np.ndarray) -> str | None:
    """One request; None when the answer matches ONNX Runtime's, else why not (run in a child process)."""
    ctx = mp.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)

    def probe(conn: Any) -> None:
        try:
            session = _open_session(target.url) if target.protocol == "inprocess" else None
            got = make_infer(target, make_input(batch), session)()
            if got is None or got.shape != reference.shape:
                shape = None if got is None else got.shape
                conn.send(f"wrong output shape {shape}, expected {reference.shape}")
            elif not np.allclose(got, reference, rtol=1e-4, atol=1e-4):
                conn.send(f"output differs from ONNX Runtime's (max abs diff {np.max(np.abs(got - reference)):.3g})")
            else:
                conn.send(None)
        except Exception as exc:
            conn.send(f"{type(exc).__name__}: {exc}")

    proc = ctx.Process(target=probe, args=(child_end,))
    proc.start()
    child_end.close()
    answer = parent_end.recv() if parent_end.poll(60) else "no answer within 60 s"
    proc.join(timeout=10)
    if proc.is_alive():
        proc.kill()
    return answer
