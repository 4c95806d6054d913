"""``convert: onnx`` of TensorFlow SavedModels (``modelyard-build``, the installed console script, as a process):
SavedModels built here with TensorFlow (a Keras dense model, a conv net, a string lookup table) are converted with
tf2onnx, gated against TensorFlow's own outputs, and the written ONNX model is checked again here, independently of
the tool's gate, on fresh inputs with ONNX Runtime against TensorFlow. A conversion tf2onnx cannot do, a gate that
cannot hold and a folder without a SavedModel fail with the reason and write nothing."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.timeout(600)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf: Any = importlib.import_module("tensorflow")  # the dev extra installs it (no type stubs: Any)

TOOL = Path(sys.executable).parent / "modelyard-build"


def build(*args: str | Path) -> tuple[int, dict[str, Any] | None, str]:
    done = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=400)
    report = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, report, done.stderr


def tensorflow(folder: Path, **inputs: Any) -> dict[str, np.ndarray]:
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def onnx_runtime(path: Path, **inputs: Any) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs), strict=True))


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tf.keras.utils.set_random_seed(3)
    model = tf.keras.Sequential(
        [tf.keras.Input((4,), name="x"), tf.keras.layers.Dense(8, activation="tanh"), tf.keras.layers.Dense(3)]
    )
    folder = tmp_path_factory.mktemp("dense") / "model.savedmodel"
    model.export(str(folder), verbose=False)
    return folder


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tf.keras.utils.set_random_seed(4)
    model = tf.keras.Sequential([
        tf.keras.Input((16, 16, 3), name="Image"),  # TensorFlow names the tensor "image": the key must win
        tf.keras.layers.Conv2D(8, 3, activation="relu"),
        tf.keras.layers.MaxPooling2D(),
        tf.keras.layers.Conv2D(8, 3, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(5, activation="softmax"),
    ])  # fmt: skip
    folder = tmp_path_factory.mktemp("conv") / "export"
    model.export(str(folder), verbose=False)
    return folder


class Lookup(tf.Module):  # type: ignore[misc]
    """A string input looked up in a table: known words to their ids, others to -1."""

    def __init__(self) -> None:
        super().__init__()
        keys, ids = tf.constant(["cat", "dog", "emu"]), tf.constant([7, 8, 9], tf.int64)
        self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, ids), -1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="word")])
    def __call__(self, word: Any) -> dict[str, Any]:
        return {"id": self.table.lookup(word)}


def test_keras_models_convert_to_onnx_that_computes_what_tensorflow_computes(
    dense: Path, conv: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(8)
    for folder, name, shape in ((dense, "x", (9, 4)), (conv, "Image", (5, 16, 16, 3))):
        out = tmp_path / f"{folder.parent.name}.onnx"
        code, report, stderr = build("--parent", folder.parent, "--out", out, "-t", "convert: onnx",
                                     "--gate", "{maxAbsDiff: 1e-5, generated: 40}", "--latency-runs", "5")  # fmt: skip
        assert code == 0, stderr
        assert report is not None
        # the gate compared with TensorFlow, on the rows it says
        assert report["gate"]["passed"] is True
        assert report["gate"]["rows"] == 40
        assert report["gate"]["maxAbsDiff"] <= 1e-5
        assert report["transforms"][0]["convert"] == "onnx"
        assert report["transforms"][0]["seconds"] > 0.5  # the conversion's time is the step's
        files = [p for p in folder.rglob("*") if p.is_file()]
        assert report["parent"]["sizeBytes"] == sum(p.stat().st_size for p in files)
        assert report["derived"]["sizeBytes"] == out.stat().st_size
        assert report["latency"]["parentMs"] > 0
        # the ONNX model keeps the signature's names: a client sends the same request to either version
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
        assert [i.name for i in session.get_inputs()] == [name]
        assert sorted(o.name for o in session.get_outputs()) == sorted(signature.structured_outputs)
        # checked here on inputs the gate never saw
        x = rng.normal(size=shape).astype(np.float32)
        want, got = tensorflow(folder, **{name: x}), onnx_runtime(out, **{name: x})
        assert set(want) == set(got)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-5)


def test_a_string_lookup_table_converts_and_unseen_words_keep_the_default(tmp_path: Path) -> None:
    folder = tmp_path / "lookup"
    module = Lookup()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.__call__})
    words = ["dog", "cat", "yak", "emu", ""]
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps({"inputs": [{"name": "word", "datatype": "BYTES", "shape": [5], "data": words}]}))
    out = tmp_path / "lookup.onnx"
    code, report, stderr = build("--parent", folder, "--out", out, "-t", "convert: onnx",
                                 "--gate", json.dumps({"samples": {"uri": str(samples)}, "top1Agreement": 1.0}),
                                 "--latency-runs", "0")  # fmt: skip
    assert code == 0, stderr
    assert report is not None
    assert (report["gate"]["inputs"], report["gate"]["rows"], report["gate"]["top1Agreement"]) == ("samples", 5, 1.0)
    got = onnx_runtime(out, word=np.array(["emu", "owl", "cat"], dtype=object))
    assert got["id"].tolist() == [9, -1, 7]
    assert tensorflow(folder, word=np.array([b"emu", b"owl", b"cat"]))["id"].tolist() == [9, -1, 7]
    # a string input cannot be generated: without samples the gate says what to give
    code, _, stderr = build("--parent", folder, "--out", tmp_path / "nope.onnx", "-t", "convert: onnx")
    assert code == 3
    assert "input 'word' is tensor(string): generated inputs cannot stand for it; give samples" in stderr


def test_a_gate_on_tensorflows_outputs_fails_closed_and_writes_nothing(conv: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    code, report, stderr = build("--parent", conv.parent, "--out", out, "-t", "convert: onnx",
                                 "-t", "quantize: {mode: dynamic}", "--gate", "maxAbsDiff: 1e-9",
                                 "--latency-runs", "0")  # fmt: skip
    assert code == 1, stderr
    assert report is not None
    assert report["gate"]["passed"] is False
    assert report["gate"]["maxAbsDiff"] > 1e-9
    assert [next(iter(t)) for t in report["transforms"]] == ["convert", "quantize"]
    assert "gate failed: maxAbsDiff" in stderr
    assert not out.exists()


def test_what_tf2onnx_cannot_convert_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    class Regex(tf.Module):  # type: ignore[misc]
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def __call__(self, text: Any) -> dict[str, Any]:
            return {"match": tf.strings.regex_full_match(text, "a.*")}

    folder, module = tmp_path / "regex", Regex()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.__call__})
    out = tmp_path / "regex.onnx"
    code, report, stderr = build("--parent", folder, "--out", out, "-t", "convert: onnx")
    assert code == 3
    assert report is None
    assert (
        "convert: tf2onnx has no ONNX conversion for these TensorFlow ops (times used): StaticRegexFullMatch (1)"
        in (stderr)
    )
    assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = build("--parent", empty, "--format", "savedmodel", "--out", out, "-t", "convert: onnx")
    assert code == 2
    assert "holds no SavedModel" in stderr
    # a SavedModel without convert: the transforms work on ONNX
    code, _, stderr = build("--parent", folder, "--out", out, "-t", "quantize: {}")
    assert code == 3
    assert "the parent is savedmodel: start the transforms with convert: onnx" in stderr
