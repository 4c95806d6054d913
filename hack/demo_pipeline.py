"""The demo's model-pipeline chapter (``make demo``, after the four adder versions):

- a PMML document and a TensorFlow SavedModel served next to the ONNX models, each answering a request;
- an int8 version of an image classifier derived by the operator (``spec.derivedFrom``: a build Job quantizes it,
  gates it on the parent's answers and pushes it to the artifact store, an OCI registry), then rolled out with a
  shadow step: the pods copy live requests to it, compare the classes, and the ``agreement`` analysis promotes it.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import os
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as triton

from devcluster import ClusterError, dev_analysis, free_port
from realnode import GATEWAY, PLACEMENT

CLASSES = 5
SIDE = 16
AGREEMENT = dev_analysis([{"name": "top1", "template": "agreement", "min": 0.99, "critical": True}], min_requests=30)
SHADOW = {"strategy": "canary", "trafficRouter": "inPod", "shadow": {"percent": 100, "compare": "top1"},
          "steps": [{"analyze": {"minDuration": "10s", "maxDuration": "2m"}}, {"setWeight": 100}],
          "analysis": AGREEMENT}  # fmt: skip


@contextmanager
def artifact_store(folder: Path) -> Iterator[str]:
    """Debian's docker-registry on the node's bridge address (pods reach it there): ``host:port``."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yml").write_text(
        f"version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}\n"
        f"http: {{addr: '{GATEWAY}:{port}'}}\n"
    )
    with open(folder / "registry.log", "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(folder / "config.yml")], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection((GATEWAY, port), timeout=0.5):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        why = (folder / "registry.log").read_text()
                        raise ClusterError(f"the artifact store did not start: {why}") from None
                    time.sleep(0.1)
            yield f"{GATEWAY}:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def images(rng: np.random.Generator, n: int) -> np.ndarray:
    """Images with a dominant colour each: a clear class (as real photos mostly have)."""
    x = rng.random((n, 3, SIDE, SIDE), dtype=np.float32) * 0.5
    x[np.arange(n), rng.integers(0, 3, n)] += 0.5
    return x


def savedmodel_archive(folder: Path) -> Path:
    """A Keras dense model exported as a SavedModel, packed as ``model.savedmodel/`` (Triton's name)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf: Any = importlib.import_module("tensorflow")
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [tf.keras.Input((4,), name="x"), tf.keras.layers.Dense(8, activation="tanh"), tf.keras.layers.Dense(2)]
    )
    saved = folder / "dense" / "model.savedmodel"
    model.export(str(saved), verbose=False)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(saved, arcname="model.savedmodel")
    path = folder / "dense.tar.gz"
    path.write_bytes(buffer.getvalue())
    return path


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def version(model: str, number: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion",
            "metadata": {"name": f"{model}-{number}"}, "spec": {"model": model, "version": number, **spec}}  # fmt: skip


def deployment(model: str, number: str, rollout: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": model, "version": number, "replicas": 1, "placement": PLACEMENT,
                            "resources": {"requests": {"cpu": "100m"}}}  # fmt: skip
    if rollout:
        spec["rollout"] = rollout
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": model},
            "spec": spec}  # fmt: skip


def one_answer(pod_ip: str, model: str, inputs: dict[str, np.ndarray], datatype: str) -> dict[str, Any]:
    client = triton.InferenceServerClient(f"{pod_ip}:8080", connection_timeout=5, network_timeout=10)
    tensors = []
    for name, value in inputs.items():
        tensor = triton.InferInput(name, list(value.shape), datatype)
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    answer = client.infer(model, tensors).get_response()
    return {o["name"]: o["data"] for o in answer["outputs"]}


def classes(model: Path, data: np.ndarray) -> np.ndarray:
    """The parent's classes for ``data``, computed here with ONNX Runtime (what every answer must match)."""
    import onnxruntime as ort

    (probs,) = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"data": data})
    return np.asarray(probs).argmax(axis=1)
