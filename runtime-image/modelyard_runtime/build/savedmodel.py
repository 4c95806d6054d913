"""``convert: onnx`` for a TensorFlow SavedModel: tf2onnx makes the ONNX graph, TensorFlow is the gate's reference.

The conversion runs tf2onnx's command line (``python -m tf2onnx.convert``, the runtime-tf image has it) in a child
process: TensorFlow's graph rewriting holds memory that a build never needs again, and the child's time is bounded.
The signature converted is ``serving_default``, the one the ``tensorflow`` engine serves, so the ONNX model's inputs
and outputs keep the signature's names and a client sends the same request to either version.

The gate and the latency measurement compare the converted model with the SavedModel as TensorFlow runs it (the
``tensorflow`` engine's own backend), not with a second conversion: "equal outputs" means equal to TensorFlow's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt
import onnx

from modelyard_runtime.modelfile import SAVED_MODEL_PB, choose_savedmodel
from modelyard_runtime.protocol.datatypes import onnx_type
from modelyard_runtime.samples import Sample

log = logging.getLogger("modelyard.build")

SIGNATURE = "serving_default"
TAG = "serve"
OPSET = 17  # ONNX Runtime 1.18 and TensorRT 10 run it; tf2onnx 1.17 writes up to 18
CONVERT_TIMEOUT_S = 1800.0
# what tf2onnx logs when it gives up: its ERROR lines and the exception that ended the process
_UNSUPPORTED = re.compile(r"Unsupported ops: Counter\(\{(.*)\}\)")
_FAILURE = re.compile(r" - ERROR - (.*)$|^(\w+(?:Error|Exception): .*)$")


class ConvertError(RuntimeError):
    """tf2onnx could not convert the SavedModel; the message says why in tf2onnx's words."""


def savedmodel_folder(path: Path) -> Path:
    """The SavedModel in ``path``: ``path`` itself when it holds ``saved_model.pb``, else the folder of the one the
    loader's rule picks (``model.savedmodel/`` nearest the top, else the only one). ValueError when there is none."""
    if path.name == SAVED_MODEL_PB and path.is_file():
        return path.parent
    if not path.is_dir():
        raise ValueError(f"{path}: a SavedModel is a folder (with saved_model.pb and variables/), not a file")
    if (path / SAVED_MODEL_PB).is_file():
        return path
    files = sorted(str(p.relative_to(path)) for p in path.rglob(SAVED_MODEL_PB) if p.is_file())
    try:
        return (path / choose_savedmodel(files)).parent
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def describe_folder(folder: Path) -> dict[str, Any]:
    """The parent's entry of the report: its size on disk and the digest of its ``saved_model.pb`` (the folder came
    from an archive whose own digest the ModelVersion pins)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    graph = hashlib.sha256((folder / SAVED_MODEL_PB).read_bytes()).hexdigest()
    return {"sizeBytes": sum(p.stat().st_size for p in files), "files": len(files), "graphDigest": "sha256:" + graph}


def convert(folder: Path, *, timeout: float = CONVERT_TIMEOUT_S) -> onnx.ModelProto:
    """The ONNX model of ``folder``'s ``serving_default`` signature; ConvertError with tf2onnx's reason."""
    with tempfile.TemporaryDirectory(prefix="modelyard-tf2onnx-") as scratch:
        out = Path(scratch) / "model.onnx"
        command = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(folder), "--tag", TAG,
                   "--signature_def", SIGNATURE, "--opset", str(OPSET), "--output", str(out)]  # fmt: skip
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        log.info("converting the SavedModel %s (signature %s) with tf2onnx, opset %d", folder, SIGNATURE, OPSET)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise ConvertError(f"tf2onnx did not finish in {timeout:g} s") from None
        if done.returncode != 0 or not out.is_file():
            raise ConvertError(failure_reason(done.stderr, done.returncode))
        unsupported = _UNSUPPORTED.search(done.stderr)
        if unsupported:  # tf2onnx still writes a model, with the TensorFlow ops in it that nothing can run
            ops = ", ".join(f"{name} ({count})" for name, count in re.findall(r"'([^']+)': (\d+)", unsupported[1]))
            raise ConvertError(f"tf2onnx has no ONNX conversion for these TensorFlow ops (times used): {ops}")
        try:
            return onnx.load(str(out))
        except Exception as e:  # protobuf's DecodeError and friends
            raise ConvertError(f"tf2onnx wrote no readable ONNX model ({str(e)[:200]})") from None


def failure_reason(stderr: str, returncode: int) -> str:
    """tf2onnx's own account of a failed conversion: its ERROR lines and final exception, at most 600 characters."""
    if "No module named tf2onnx" in stderr:
        return "tf2onnx is not installed here (the runtime-tf image has it; locally: pip install tf2onnx)"
    found: list[str] = []
    for line in stderr.splitlines():
        match = _FAILURE.search(line.strip())
        text = match and (match[1] or match[2])
        if text and text not in found:
            found.append(text)
    reason = "; ".join(found) or (stderr.strip().splitlines() or [f"exit status {returncode}"])[-1]
    return f"tf2onnx could not convert the SavedModel: {reason}"[:600]


@dataclass(frozen=True)
class _Input:
    """An input as the build's seeded inputs read it (ONNX Runtime's NodeArg: name, type string, shape)."""

    name: str
    type: str
    shape: list[int | None]


class TensorFlowReference:
    """The SavedModel's ``serving_default`` signature run by TensorFlow (the ``tensorflow`` engine's backend), with
    the interface of ``run.Model``: ``inputs`` and ``run(sample)``."""

    def __init__(self, folder: Path, label: str = "the parent (TensorFlow)") -> None:
        from modelyard_runtime.backends.options import BackendOptions
        from modelyard_runtime.backends.tensorflow import TensorFlowBackend

        self.label = label
        try:
            self._backend = TensorFlowBackend(folder, BackendOptions(kind="tensorflow", signature=SIGNATURE))
        except Exception as e:  # TensorFlow's own errors for a folder it cannot load
            raise ValueError(f"{label}: TensorFlow cannot load it: {str(e)[:400]}") from None
        self.inputs = {
            m.name: _Input(m.name, onnx_type(m.datatype), [d if d >= 0 else None for d in m.shape])
            for m in self._backend.inputs
        }
        self._outputs = [m.name for m in self._backend.outputs]

    def named_as_signature(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """``model`` (tf2onnx's conversion) with the signature's input and output names, which the ``tensorflow``
        engine serves: tf2onnx names inputs after the graph's tensors, which TensorFlow lower-cases. An Identity
        node joins each new name to the old one, so no node of the graph changes."""
        graph, front, back = model.graph, [], []  # Identity nodes: before the graph's nodes, and after them
        used = {name for node in graph.node for name in [*node.input, *node.output]}
        tensor_to_key = {v: k for k, v in self._backend.tensor_names.items()}
        for value, is_input in [*((v, True) for v in graph.input), *((v, False) for v in graph.output)]:
            key = tensor_to_key.get(value.name.removesuffix(":0"))
            if key is None or key == value.name:
                continue
            if key in used or key in {v.name for v in [*graph.input, *graph.output]}:
                raise ConvertError(f"the signature's name {key!r} for {value.name!r} is taken in the converted graph")
            old, value.name = value.name, key
            if is_input:
                front.append(onnx.helper.make_node("Identity", [key], [old]))
            else:
                back.append(onnx.helper.make_node("Identity", [old], [key]))
        if front or back:
            nodes = [*front, *graph.node, *back]
            del graph.node[:]
            graph.node.extend(nodes)
            log.info("named %d input(s) and output(s) as the signature does", len(front) + len(back))
        return model

    def run(self, sample: Sample) -> dict[str, npt.NDArray[Any]]:
        try:
            return self._backend.run(dict(sample), self._outputs)
        except Exception as e:  # BadRequestError and TensorFlow's errors: the gate cannot run on these inputs
            raise ValueError(f"{self.label}: inference failed: {str(e)[:400]}") from None
