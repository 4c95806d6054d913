"""examples/quickstart.yaml holds a real model whose digest is the one its ModelVersion pins."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml

import quickstart

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def docs() -> dict[str, dict]:  # type: ignore[type-arg]
    return {d["kind"]: d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d}


def test_the_pinned_digest_is_the_digest_of_the_shipped_model() -> None:
    by_kind = docs()
    data = base64.b64decode(by_kind["ConfigMap"]["binaryData"]["model.onnx"])
    assert by_kind["ModelVersion"]["spec"]["artifact"]["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert data == quickstart.model_bytes()  # the file is what hack/quickstart.py writes


def test_the_shipped_model_computes_the_documented_score() -> None:
    data = base64.b64decode(docs()["ConfigMap"]["binaryData"]["model.onnx"])
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    features = np.array([[1, 2, 3, 4], [0, 0, 0, 0]], dtype=np.float32)
    (score,) = session.run(["score"], {"features": features})
    expected = 1 / (1 + np.exp(-(features @ np.array(quickstart.WEIGHTS, dtype=np.float32) + quickstart.BIAS)))
    np.testing.assert_allclose(score[:, 0], expected, rtol=1e-6)


def test_the_artifact_uri_names_the_shipped_file_server() -> None:
    by_kind = docs()
    uri = by_kind["ModelVersion"]["spec"]["artifact"]["uri"]
    assert uri == f"http://{by_kind['Service']['metadata']['name']}.default.svc/model.onnx"
    assert by_kind["Deployment"]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == "fraud-models"
