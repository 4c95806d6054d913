"""NVIDIA's perf_analyzer (the C++ client) drives modelyard-server over HTTP and gRPC, batched and not."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..models import binary_op, triton_simple_string
from ..serving import Server, run_server

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def perf_analyzer() -> str:
    out = subprocess.run(["bash", str(ROOT / "hack/install-perf-analyzer.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("pa-repo")
    binary_op(repo / "plain" / "1" / "model.onnx", "Add")
    binary_op(repo / "batched" / "1" / "model.onnx", "Add")
    (repo / "batched" / "config.yaml").write_text("max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_ms: 1\n")
    triton_simple_string(repo / "strings" / "1" / "model.onnx")  # BYTES in and out: TYPE_STRING in the config
    (repo / "strings" / "config.yaml").write_text("max_batch_size: 8\nwarmup: false\n")
    with run_server(repo) as s:
        yield s


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize(
    ("model", "extra"),
    [("plain", ["--shape", "A:1,4", "--shape", "B:1,4"]), ("batched", ["-b", "4"]),
     ("strings", ["-b", "2", "--string-data", "7"])],
)  # fmt: skip
def test_perf_analyzer_measures_without_errors(
    perf_analyzer: str, server: Server, protocol: str, model: str, extra: list[str]
) -> None:
    url = server.http if protocol == "http" else server.grpc
    # this is a compatibility check, not a benchmark: a busy CI machine must not fail it on stability
    out = subprocess.run(
        [perf_analyzer, "-m", model, "-i", protocol, "-u", url, "--concurrency-range", "2",
         "--measurement-interval", "1000", "--stability-percentage", "1000", "--max-trials", "6", *extra],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    throughput = re.search(r"Concurrency: 2, throughput: ([0-9.]+) infer/sec", out.stdout)
    assert throughput is not None, out.stdout
    assert float(throughput.group(1)) > 0
    # perf_analyzer reads the statistics extension and reports the server side too
    executions = re.search(r"Execution count: (\d+)", out.stdout)
    inferences = re.search(r"Inference count: (\d+)", out.stdout)
    assert executions is not None, out.stdout
    assert inferences is not None, out.stdout
    if model == "batched":
        assert int(inferences.group(1)) >= 4 * int(executions.group(1)) > 0  # rows are counted; executions <= requests
