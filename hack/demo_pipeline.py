"""The demo's model-pipeline chapter (``make demo``, after the four adder versions):

- a PMML document and a TensorFlow SavedModel served next to the ONNX models, each answering a request;
- an int8 version of an image classifier derived by the operator (``spec.derivedFrom``: a build Job quantizes it,
  gates it on the parent's answers and pushes it to the artifact store, an OCI registry), then rolled out with a
  shadow step: the pods copy live requests to it, compare the classes, and the ``agreement`` analysis promotes it.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
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


def classifier(path: Path) -> Path:
    """An image classifier with real weight matrices (1.5 MB): ``data`` [N, 3, 16, 16] -> flatten -> 768x512 (each
    unit the mean of one colour channel, plus seeded noise) -> ReLU -> 512x5 -> softmax ``probs`` [N, 5]. Units of
    channel c vote for class c, so an image with a dominant colour has a clear class."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    pixels, hidden = 3 * SIDE * SIDE, 512
    w1 = rng.normal(0, 0.002, (pixels, hidden)).astype(np.float32)
    w2 = rng.normal(0, 0.01, (hidden, CLASSES)).astype(np.float32)
    for unit in range(hidden):
        channel = unit % 3
        w1[channel * SIDE * SIDE : (channel + 1) * SIDE * SIDE, unit] += 1.0 / (SIDE * SIDE)
        w2[unit, channel] += 0.05
    nodes = [
        helper.make_node("Flatten", ["data"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "classifier",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, SIDE, SIDE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, CLASSES])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def images(rng: np.random.Generator, n: int) -> np.ndarray:
    """Images with a dominant colour each: a clear class (as real photos mostly have)."""
    x = rng.random((n, 3, SIDE, SIDE), dtype=np.float32) * 0.5
    x[np.arange(n), rng.integers(0, 3, n)] += 0.5
    return x


SAVEDMODEL = """
import io, os, sys, tarfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf
folder = sys.argv[1]
tf.keras.utils.set_random_seed(3)
model = tf.keras.Sequential([tf.keras.Input((4,), name="x"), tf.keras.layers.Dense(8, activation="tanh"),
                             tf.keras.layers.Dense(2)])
model.export(os.path.join(folder, "dense", "model.savedmodel"), verbose=False)
with tarfile.open(os.path.join(folder, "dense.tar.gz"), "w:gz") as archive:
    archive.add(os.path.join(folder, "dense", "model.savedmodel"), arcname="model.savedmodel")
"""


def savedmodel_archive(folder: Path) -> Path:
    """A Keras dense model exported as a SavedModel, packed as ``model.savedmodel/`` (Triton's name). TensorFlow runs
    in a process of its own: the demo process stays small and forks nothing with TensorFlow's threads in it."""
    subprocess.run([sys.executable, "-c", SAVEDMODEL, str(folder)], check=True, timeout=300)
    return folder / "dense.tar.gz"


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
    result = client.infer(model, tensors)
    return {o["name"]: result.as_numpy(o["name"]).tolist() for o in result.get_response()["outputs"]}


def classes(model: Path, data: np.ndarray) -> np.ndarray:
    """The parent's classes for ``data``, computed here with ONNX Runtime (what every answer must match)."""
    import onnxruntime as ort

    (probs,) = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"data": data})
    return np.asarray(probs).argmax(axis=1)
