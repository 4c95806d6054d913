"""Adaptive dynamic batching in a real modelyard-server, observed through tritonclient, the statistics extension and
/metrics: a request on an idle model runs at once whatever the queue delay; requests that arrive while a batch
executes are merged into the next one and split back exactly; preferred batch sizes shape the batches.

The model is slow per request (~0.25 s a row here, ``repeated_matmul``), so "arrives while a batch executes" is
arranged by sending the others a moment after the first, not by racing timers. Assertions are on the server's
own batch counts, not on timings.
"""

from __future__ import annotations

import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from ..models import binary_op, repeated_matmul
from ..serving import Server, run_server

WIDTH = 512
NO_WAIT = 20.0  # the client gives up after this; every delay configured below is far longer


def slow_repo(tmp_path: Path, config: str) -> Path:
    repo = tmp_path / "repo"
    repeated_matmul(repo / "slow" / "1" / "model.onnx", width=WIDTH)
    (repo / "slow" / "config.yaml").write_text(config)
    return repo


def rows(i: int, count: int = 1) -> np.ndarray:
    return np.random.default_rng(i).standard_normal((count, WIDTH), dtype=np.float32)


def client(server: Server) -> grpcclient.InferenceServerClient:
    """One gRPC client, connected before the timing-relevant sends (thread-safe: shared by the senders)."""
    c = grpcclient.InferenceServerClient(server.grpc)
    assert c.is_server_ready()
    return c


def infer(c: grpcclient.InferenceServerClient, x: np.ndarray) -> np.ndarray:
    inp = grpcclient.InferInput("X", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    out = c.infer("slow", [inp], client_timeout=NO_WAIT).as_numpy("Y")
    assert out is not None
    return out


def batch_sizes(server: Server) -> dict[int, int]:
    """{rows per execution: how many executions} from the statistics extension."""
    client = httpclient.InferenceServerClient(server.http)
    stats = client.get_inference_statistics("slow")["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["batch_stats"]}


def histogram(server: Server) -> tuple[float, float]:
    """(executions, rows) from the modelyard_inference_batch_size histogram on /metrics."""
    with urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        for part in ("count", "sum"):
            if line.startswith(f"modelyard_inference_batch_size_{part}{{") and 'model="slow"' in line:
                values[part] = float(line.rsplit(" ", 1)[1])
    return values.get("count", 0.0), values.get("sum", 0.0)


def wait_in_flight(server: Server, timeout: float = 10.0) -> None:
    """Until the server counts a request of ``slow`` in flight (the first one found the model idle and runs, ~0.25 s
    a row): a fixed sleep would race a first request that is slow to arrive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{server.http}/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                gauge = line.startswith("modelyard_inference_inflight_requests{") and 'model="slow"' in line
                if gauge and float(line.rsplit(" ", 1)[1]) >= 1:
                    time.sleep(0.05)
                    return
        time.sleep(0.01)
    raise AssertionError("the first request never showed as in flight")


def first_then_others(
    server: Server, c: grpcclient.InferenceServerClient, first: np.ndarray, others: list[np.ndarray]
) -> list[Any]:
    """Send ``first``; once it is executing, send ``others`` at the same time; every answer in order."""
    with ThreadPoolExecutor(1 + len(others)) as pool:
        head = pool.submit(infer, c, first)
        wait_in_flight(server)  # the others arrive while it executes
        rest = [pool.submit(infer, c, x) for x in others]
        return [head.result(), *(f.result() for f in rest)]


def reference(repo: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(repo / "slow" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["Y"], {"X": x})[0])


def test_a_request_on_an_idle_model_runs_at_once_whatever_the_delay(tmp_path: Path) -> None:
    # a minute's delay and a preferred size a lone request cannot form: only "never wait when idle" answers it
    repo = slow_repo(tmp_path, "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_ms: 60000\n"
                               "  preferred_batch_size: [8]\n")  # fmt: skip
    with run_server(repo) as s:
        config = httpclient.InferenceServerClient(s.http).get_model_config("slow")
        assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 60000000, "preferred_batch_size": [8]}
        c = client(s)
        batching = c.get_model_config("slow", as_json=True)["config"]["dynamic_batching"]
        assert batching == {"max_queue_delay_microseconds": "60000000", "preferred_batch_size": [8]}  # gRPC too
        for i in range(3):  # one after the other: each finds the model idle
            out = infer(c, rows(i))
            np.testing.assert_allclose(out, reference(repo, rows(i)), rtol=1e-4, atol=1e-5)
        assert batch_sizes(s) == {1: 3}
        assert histogram(s) == (3, 3)


def test_requests_arriving_while_a_batch_executes_are_merged_and_split_exactly(tmp_path: Path) -> None:
    repo = slow_repo(tmp_path, "max_batch_size: 8\n")  # no queue delay at all: merging comes from the load
    first = rows(0, count=4)  # ~1 s of compute
    others = [rows(10 + i, count=1 + i % 3 // 2) for i in range(6)]  # 1, 1, 2, 1, 1, 2 rows: 8, one full batch
    with run_server(repo) as s:
        c = client(s)
        results = first_then_others(s, c, first, others)
        for x, out in zip([first, *others], results, strict=True):
            assert out.shape == x.shape  # each caller gets exactly its own rows back ...
            np.testing.assert_allclose(out, reference(repo, x), rtol=1e-4, atol=1e-5)  # ... and their answers
        assert batch_sizes(s) == {4: 1, 8: 1}  # the first at once, alone; the 6 that came meanwhile together
        assert histogram(s) == (2, 12)
        stats = httpclient.InferenceServerClient(s.http).get_inference_statistics("slow")["model_stats"][0]
        assert (stats["inference_count"], stats["execution_count"]) == (12, 2)  # rows, executions
        with pytest.raises(InferenceServerException, match="above the model's max_batch_size 8"):
            infer(c, rows(99, count=9))


def test_preferred_batch_sizes_run_at_once_and_the_rest_waits_for_company(tmp_path: Path) -> None:
    repo = slow_repo(tmp_path, "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_ms: 60000\n"
                               "  preferred_batch_size: [4]\n")  # fmt: skip
    with run_server(repo) as s:
        c = client(s)
        with ThreadPoolExecutor(9) as pool:
            first = pool.submit(infer, c, rows(0, count=4))  # ~1 s
            wait_in_flight(s)
            six = [pool.submit(infer, c, rows(i)) for i in range(1, 7)]  # queue behind it: 4 run, 2 wait for company
            first.result()
            time.sleep(0.3)  # the batch of 4 runs (~1 s)
            two = [pool.submit(infer, c, rows(i)) for i in range(7, 9)]  # two more make a preferred batch again
            answers = [f.result() for f in [*six, *two]]
        assert [a.shape for a in answers] == [(1, WIDTH)] * 8
        # without preferred sizes the six would have run as one batch of 6 and the two as one of 2
        assert batch_sizes(s) == {4: 3}


def test_preferred_sizes_above_the_servers_max_batch_size_stop_the_load_with_the_reason(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx")
    (repo / "calc" / "config.yaml").write_text("dynamic_batching:\n  preferred_batch_size: [4, 16]\n")
    # the model's file sets no max_batch_size, so the server flag's 8 applies, and 16 can never form
    with (
        pytest.raises(
            AssertionError, match=r"calc: dynamic_batching.preferred_batch_size \[4, 16\] exceeds max_batch_size 8"
        ),
        run_server(repo, "--max-batch-size", "8"),
    ):
        pass
