"""Shadow traffic on a real modelyard-server: with ``shadow`` in a model's config.yaml, requests the serving
version answers are copied to the candidate version and compared; clients only ever get the serving version's
answer; the comparisons are counted on /metrics (agree, disagree, error, skipped), with the difference histogram
and top-1 rows; the copy share follows ``percent``; config edits take effect without a restart."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

from ..conftest import wait_for
from ..models import binary_op, failing_model, image_classifier
from ..serving import run_server
from .test_server_http import calc_inputs as http_calc_inputs
from .test_server_loading import A, B, calc_inputs, metric

COMPARED = "modelyard_shadow_comparisons_total"


def shadow_to_version(config: Path, shadow: str) -> None:
    """Version 1 serves, ``shadow`` (a flow mapping) says which version shadows it; the server re-reads config.yaml
    at most once a second."""
    config.write_text(f'version_weights: {{"1": 100}}\nshadow: {shadow}\n')
    time.sleep(1.5)


def shadow_copies(s: Any, grpc: Any, config: Path, shadow: str, requests: int, result: str, expected: int) -> None:
    """Shadow with ``shadow``, send ``requests`` (each answered by version 1), and wait until ``expected`` copies
    are counted with ``result`` for the shadowing version."""
    shadow_to_version(config, shadow)
    for _ in range(requests):
        np.testing.assert_array_equal(grpc.infer("calc", calc_inputs(A, B)).as_numpy("OUT0"), A + B)
    version = shadow.split('"')[1]
    wait_for(lambda: metric(s, COMPARED, model="calc", version=version, result=result) == expected, timeout=10,
             what=f"{expected} of {requests} shadow copies counted {result} for version {version}")  # fmt: skip


def test_a_shadow_version_is_compared_and_never_answers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "calc" / "1" / "model.onnx", "Add")
    binary_op(repo / "calc" / "2" / "model.onnx", "Add")  # the same model: every copy agrees
    binary_op(repo / "calc" / "3" / "model.onnx", "Mul")  # another model: every copy disagrees
    failing_model(repo / "calc" / "4" / "model.onnx")  # fails on every input
    config = repo / "calc" / "config.yaml"
    config.write_text('version_weights: {"1": 100}\nshadow: {version: "2"}\n')
    with run_server(repo) as s:
        grpc = grpcclient.InferenceServerClient(s.grpc)
        http = httpclient.InferenceServerClient(s.http)
        for _ in range(5):
            answer = grpc.infer("calc", calc_inputs(A, B))
            assert answer.get_response().model_version == "1"
            np.testing.assert_array_equal(answer.as_numpy("OUT0"), A + B)
            answer = http.infer("calc", http_calc_inputs(A, B))
            assert answer.get_response()["model_version"] == "1"
        wait_for(lambda: metric(s, COMPARED, model="calc", version="2", result="agree") == 10, timeout=10,
                 what="10 agreeing comparisons")  # fmt: skip
        assert metric(s, "modelyard_shadow_abs_diff_count", model="calc", version="2") == 10
        assert metric(s, "modelyard_shadow_abs_diff_bucket", model="calc", version="2", le="0.0") == 10
        # users' request counts are the serving version's only: the copies are not client requests
        assert metric(s, "modelyard_inference_requests_total", model="calc", version="2", protocol="grpc",
                      code="OK") == 0  # fmt: skip

        shadow_copies(s, grpc, config, '{version: "3", percent: 50}', 10, "disagree", 5)
        assert metric(s, COMPARED, model="calc", version="3", result="agree") == 0
        assert metric(s, "modelyard_shadow_abs_diff_bucket", model="calc", version="3", le="10.0") == 0  # |A+B-AB|

        shadow_copies(s, grpc, config, '{version: "4"}', 3, "error", 3)
        assert "shadow version 4 of calc failed on a copied request" in s.output()

        # a candidate this pod does not hold (an inPod rollout did not roll it yet): skipped, not the candidate's
        shadow_copies(s, grpc, config, '{version: "9"}', 4, "skipped", 4)
        assert metric(s, COMPARED, model="calc", version="9", result="error") == 0

        config.write_text('shadow: {version: "4"}\n')  # no weights: the highest version but the shadow serves
        time.sleep(1.5)
        assert grpc.infer("calc", calc_inputs(A, B)).get_response().model_version == "3"

        config.write_text('version_weights: {"1": 50, "2": 50}\nshadow: {version: "2"}\n')  # refused: kept as was
        time.sleep(1.5)
        assert grpc.infer("calc", calc_inputs(A, B)).get_response().model_version == "3"


def test_an_int8_candidate_agrees_on_top1_and_classification_requests_are_skipped(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    parent = image_classifier(repo / "cls" / "1" / "model.onnx")
    (repo / "cls" / "2").mkdir()
    tool = Path(sys.executable).parent / "modelyard-build"
    built = subprocess.run([tool, "--parent", parent, "--out", repo / "cls" / "2" / "model.onnx",
                            "-t", "quantize: {mode: dynamic}", "--latency-runs", "0"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (repo / "cls" / "config.yaml").write_text(
        'version_weights: {"1": 100, "2": 0}\nshadow: {version: "2", compare: top1}\n'
    )
    images = np.random.default_rng(0).random((16, 3, 8, 8), dtype=np.float32)
    with run_server(repo) as s:
        client = grpcclient.InferenceServerClient(s.grpc)
        x = grpcclient.InferInput("data", list(images.shape), "FP32")
        x.set_data_from_numpy(images)
        for _ in range(4):
            assert client.infer("cls", [x]).get_response().model_version == "1"
        wait_for(lambda: metric(s, "modelyard_shadow_top1_rows_total", model="cls", version="2", result="agree") == 64,
                 timeout=10, what="64 agreeing rows")  # fmt: skip
        assert metric(s, COMPARED, model="cls", version="2", result="agree") == 4
        top = client.infer("cls", [x], outputs=[grpcclient.InferRequestedOutput("probs", class_count=1)])
        assert top.get_response().model_version == "1"
        wait_for(lambda: metric(s, COMPARED, model="cls", version="2", result="skipped") == 1, timeout=10,
                 what="the classification request counted as skipped")  # fmt: skip
    shutil.rmtree(repo)
