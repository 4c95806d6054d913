"""The fuzz tier: schemathesis against the served OpenAPI document, hypothesis against gRPC ModelInfer; one
``modelyard-server`` process for both, whose RSS is compared before and after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..models import binary_op, identity_all_types, image_classifier
from ..serving import Server, run_server


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.fixture(scope="package")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("fuzz-repo")
    binary_op(repo / "calc" / "1" / "model.onnx")
    (repo / "calc" / "config.yaml").write_text("max_batch_size: 8\n")
    identity_all_types(repo / "types" / "1" / "model.onnx")
    image_classifier(repo / "image" / "1" / "model.onnx")
    (repo / "image" / "1" / "labels.txt").write_text("a\nb\nc\nd\ne\n")
    (repo / "image" / "config.yaml").write_text(
        "max_batch_size: 4\ninputs:\n  data: {format: FORMAT_NCHW}\noutputs:\n  probs: {label_filename: labels.txt}\n"
    )
    with run_server(repo, env={"MODELYARD_MAX_BODY_BYTES": "1Mi"}) as server:
        yield server
