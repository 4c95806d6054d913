"""The tensorflow engine against TensorFlow itself: SavedModels built here with TensorFlow (a Keras dense model, a
small conv net, a string model with a lookup table), served by a real modelyard-server, called with the real
tritonclient over HTTP and gRPC, and every output compared with what ``loaded.signatures[...]`` returns in this
process: exactly for integers and strings, within 1e-6 for floats. Also: metadata shows the signature's tensors,
a client's bad input is a 4xx, and ``modelyard-loader validate --format savedmodel`` loads the SavedModel once and
reports its tensors (EngineUnavailable on an interpreter without TensorFlow)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from support.httpserver import serve
from support.loader import run_loader, sha256

from ..serving import Server, run_server

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf: Any = importlib.import_module("tensorflow")  # the dev extra installs it (no type stubs: Any)

WORDS = ["apple", "banana", "cherry"]
RNG = np.random.default_rng(7)


def _dense(path: Path) -> None:
    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential(
        [tf.keras.Input((4,), name="x"), tf.keras.layers.Dense(8, activation="relu"), tf.keras.layers.Dense(3)]
    )
    model.export(str(path), verbose=False)


def _conv(path: Path) -> None:
    tf.keras.utils.set_random_seed(2)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1), name="image"),
            tf.keras.layers.Conv2D(4, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(5, activation="softmax"),
        ]
    )
    model.export(str(path), verbose=False)


class _Words(tf.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        keys = tf.constant(WORDS)
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, tf.constant([10, 20, 30], dtype=tf.int64)), default_value=-1
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="word")])
    def lookup(self, word: Any) -> dict[str, Any]:
        ids = self.table.lookup(word)
        return {"id": ids, "score": tf.cast(ids, tf.float32) * 0.25 + tf.cast(tf.strings.length(word), tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="word")])
    def shout(self, word: Any) -> dict[str, Any]:
        return {"upper": tf.strings.upper(word), "length": tf.strings.length(word)}


def _words(path: Path) -> None:
    module = _Words()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.lookup, "shout": module.shout})


class _MatMul(tf.Module):  # type: ignore[misc]
    """Both dimensions unknown: a wrong inner size passes the protocol's checks and TensorFlow refuses it."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def serve(self, x: Any) -> dict[str, Any]:
        return {"y": tf.matmul(x, tf.ones([4, 2]))}


def _matmul(path: Path) -> None:
    module = _MatMul()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SavedModels, in a repository: Triton's ``model.savedmodel/`` folder, and a version folder that is itself
    the SavedModel (words); ``shout`` serves the words model's second signature."""
    repo = tmp_path_factory.mktemp("tf") / "repo"
    _dense(repo / "dense" / "1" / "model.savedmodel")
    (repo / "dense" / "config.yaml").write_text("max_batch_size: 8\ndynamic_batching: {}\n")
    _conv(repo / "conv" / "1" / "model.savedmodel")
    _words(repo / "words" / "1")
    shutil.copytree(repo / "words" / "1", repo / "shout" / "1")
    (repo / "shout" / "config.yaml").write_text("backend: {kind: tensorflow, signature: shout}\n")
    _matmul(repo / "matmul" / "1" / "model.savedmodel")
    return repo


@pytest.fixture(scope="module")
def server(models: Path) -> Iterator[Server]:
    with run_server(models) as s:
        yield s


def reference(folder: Path, signature: str, **inputs: Any) -> dict[str, np.ndarray[Any, Any]]:
    loaded = tf.saved_model.load(str(folder))
    out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def infer_both(server: Server, model: str, name: str, array: np.ndarray[Any, Any], datatype: str) -> list[Any]:
    """The same request over HTTP and gRPC: both results."""
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    results = []
    for client, module in ((http, httpclient), (grpc, grpcclient)):
        inp = module.InferInput(name, list(array.shape), datatype)
        inp.set_data_from_numpy(array)
        results.append(client.infer(model, [inp]))
    return results


def test_dense_and_conv_outputs_equal_tensorflows(models: Path, server: Server) -> None:
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    want = reference(models / "dense" / "1" / "model.savedmodel", "serving_default", x=x)
    for result in infer_both(server, "dense", "x", x, "FP32"):
        got = result.as_numpy("output_0")
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want["output_0"], rtol=0, atol=1e-6)
    image = RNG.standard_normal((3, 8, 8, 1)).astype(np.float32)
    want = reference(models / "conv" / "1" / "model.savedmodel", "serving_default", image=image)
    for result in infer_both(server, "conv", "image", image, "FP32"):
        got = result.as_numpy("output_0")
        assert got.shape == (3, 5)
        np.testing.assert_allclose(got, want["output_0"], rtol=0, atol=1e-6)


def test_string_lookup_ids_are_exact_and_scores_close(models: Path, server: Server) -> None:
    words = np.array([b"banana", b"kiwi", b"apple", b"cherry", "\u00e9t\u00e9".encode()], dtype=np.object_)
    want = reference(models / "words" / "1", "serving_default", word=words)
    assert want["id"].tolist() == [20, -1, 10, 30, -1]
    for result in infer_both(server, "words", "word", words, "BYTES"):
        assert result.as_numpy("id").dtype == np.int64
        np.testing.assert_array_equal(result.as_numpy("id"), want["id"])
        np.testing.assert_allclose(result.as_numpy("score"), want["score"], rtol=0, atol=1e-6)


def test_a_named_signature_is_served_with_bytes_outputs(models: Path, server: Server) -> None:
    words = np.array([b"apple", b"kiwi"], dtype=np.object_)
    want = reference(models / "shout" / "1", "shout", word=words)
    for result in infer_both(server, "shout", "word", words, "BYTES"):
        assert [bytes(b) for b in result.as_numpy("upper")] == [bytes(b) for b in want["upper"]] == [b"APPLE", b"KIWI"]
        np.testing.assert_array_equal(result.as_numpy("length"), want["length"])


def test_metadata_shows_the_signatures_tensors(server: Server) -> None:
    http = httpclient.InferenceServerClient(server.http)
    meta = http.get_model_metadata("dense")
    assert meta["platform"] == "tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "output_0", "datatype": "FP32", "shape": [-1, 3]}]
    grpc = grpcclient.InferenceServerClient(server.grpc)
    words = grpc.get_model_metadata("words", as_json=True)
    assert [(t["name"], t["datatype"], t["shape"]) for t in words["inputs"]] == [("word", "BYTES", ["-1"])]
    assert [(t["name"], t["datatype"]) for t in words["outputs"]] == [("id", "INT64"), ("score", "FP32")]
    shout = http.get_model_metadata("shout")
    assert [(t["name"], t["datatype"]) for t in shout["outputs"]] == [("length", "INT32"), ("upper", "BYTES")]


def test_bad_inputs_are_the_clients_fault(server: Server) -> None:
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    wrong_dtype = httpclient.InferInput("x", [2, 4], "INT32")
    wrong_dtype.set_data_from_numpy(np.ones((2, 4), dtype=np.int32))
    wrong_shape = httpclient.InferInput("x", [2, 5], "FP32")
    wrong_shape.set_data_from_numpy(np.ones((2, 5), dtype=np.float32))
    for bad in (wrong_dtype, wrong_shape):
        with pytest.raises(InferenceServerException) as exc:
            http.infer("dense", [bad])
        assert exc.value.status() == "400"
    # the protocol cannot tell: TensorFlow's own shape check refuses it, and that is a 400 too
    inner = grpcclient.InferInput("x", [2, 5], "FP32")
    inner.set_data_from_numpy(np.ones((2, 5), dtype=np.float32))
    with pytest.raises(InferenceServerException) as exc:
        grpc.infer("matmul", [inner])
    assert exc.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "Matrix size-incompatible" in exc.value.message()
    assert "{{node" not in exc.value.message()
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 5], "data": [1.0] * 10}]})
    assert server.status("/v2/models/matmul/infer", "POST", body.encode()) == 400
    right = grpcclient.InferInput("x", [1, 4], "FP32")
    right.set_data_from_numpy(np.ones((1, 4), dtype=np.float32))
    np.testing.assert_array_equal(grpc.infer("matmul", [right]).as_numpy("y"), [[4.0, 4.0]])


def _tar(folder: Path, prefix: str) -> bytes:
    out = folder.parent / f"{folder.name}.tar.gz"
    with tarfile.open(out, "w:gz") as archive:
        archive.add(folder, arcname=prefix)
    return out.read_bytes()


def test_loader_validates_a_savedmodel_with_tensorflow(models: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    data = _tar(models / "words" / "1", "model.savedmodel")
    (site / "words.tar.gz").write_bytes(data)
    no_tf = tmp_path / "no-tf" / "tensorflow"
    no_tf.mkdir(parents=True)
    (no_tf / "__init__.py").write_text("raise ImportError('No module named tensorflow')\n")
    with serve(site) as srv:
        common = ["--uri", srv.url + "/words.tar.gz", "--digest", sha256(data), "--allow-hosts", "127.0.0.1"]
        log = tmp_path / "log"
        p = run_loader("validate", *common, "--dest", str(tmp_path / "v"), "--format", "savedmodel",
                       "--termination-log", str(log), timeout=120)  # fmt: skip
        assert p.returncode == 0, p.stderr
        r = json.loads(log.read_text())
        assert r["ok"] is True
        assert r["format"] == "savedmodel"
        assert r["model"] == "model.savedmodel/saved_model.pb"
        assert r["inputs"] == [{"name": "word", "datatype": "BYTES", "shape": [-1]}]
        assert r["outputs"] == [{"name": "id", "datatype": "INT64", "shape": [-1]},
                                {"name": "score", "datatype": "FP32", "shape": [-1]}]  # fmt: skip
        path = os.pathsep.join([str(no_tf.parent), os.environ.get("PYTHONPATH", "")])
        p = run_loader("validate", *common, "--dest", str(tmp_path / "w"), "--format", "savedmodel",
                       "--termination-log", str(log), env={"PYTHONPATH": path}, timeout=120)  # fmt: skip
        r = json.loads(log.read_text())
        assert (p.returncode, r["ok"], r["reason"]) == (7, False, "EngineUnavailable")
        assert "tensorflow-cpu" in r["message"]
        p = run_loader("validate", *common, "--dest", str(tmp_path / "x"), "--format", "onnx",
                       "--termination-log", str(log), timeout=120)  # fmt: skip
        assert json.loads(log.read_text())["reason"] == "FormatMismatch"
