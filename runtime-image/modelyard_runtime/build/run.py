"""Running a model in the build: ONNX Runtime on the CPU, seeded inputs for models without samples, latency."""

from __future__ import annotations

import statistics
import time
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modelyard_runtime.backends.onnx import from_ort_strings, to_ort_strings
from modelyard_runtime.samples import Sample

DTYPES = {
    "tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
    "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
    "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
}  # fmt: skip


class Runner(Protocol):
    """What the gate and the latency measurement run: :class:`Model`, or TensorFlow's run of a SavedModel parent."""

    label: str

    @property
    def inputs(self) -> dict[str, Any]: ...  # name -> an object with ``type`` (ONNX Runtime's string) and ``shape``

    def run(self, sample: Sample) -> dict[str, npt.NDArray[Any]]: ...


class Model:
    """One model on ONNX Runtime's CPU provider (one thread per core, the server's default)."""

    def __init__(self, data: bytes, label: str) -> None:
        self.label = label
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime raises its own classes for an invalid or unsupported model
            raise ValueError(f"{label}: ONNX Runtime cannot load it: {str(e)[:400]}") from None
        self.inputs = {i.name: i for i in self.session.get_inputs()}

    def run(self, sample: Sample) -> dict[str, npt.NDArray[Any]]:
        feed = {name: value for name, value in sample.items()}
        try:
            for name, meta in self.inputs.items():  # samples come as the server decodes them: match the model's type
                if name not in feed:
                    continue
                wanted = DTYPES.get(meta.type)
                if meta.type == "tensor(string)":  # bytes, as the server hands them to the ONNX backend
                    feed[name] = to_ort_strings(name, feed[name])
                elif wanted is not None and feed[name].dtype != wanted:
                    feed[name] = feed[name].astype(wanted)
            values = self.session.run(None, feed)
        except Exception as e:
            raise ValueError(f"{self.label}: inference failed: {str(e)[:400]}") from None
        return {
            o.name: from_ort_strings(np.asarray(v)) if o.type == "tensor(string)" else np.asarray(v)
            for o, v in zip(self.session.get_outputs(), values, strict=True)
        }


def generated(model: Runner, rows: int, seed: int) -> Sample:
    """Seeded inputs for ``model``: ``rows`` on a variable first dimension, 1 on other variable ones; floats from a
    standard normal distribution, integers from 0 to 9, booleans at random. ValueError for string inputs."""
    rng = np.random.default_rng(seed)
    sample: Sample = {}
    for name, meta in model.inputs.items():
        dtype = DTYPES.get(meta.type)
        if dtype is None:
            raise ValueError(f"input {name!r} is {meta.type}: generated inputs cannot stand for it; give samples")
        shape = [d if isinstance(d, int) and d > 0 else (rows if i == 0 else 1) for i, d in enumerate(meta.shape)]
        if np.issubdtype(dtype, np.floating):
            sample[name] = rng.standard_normal(shape).astype(dtype)
        elif dtype is np.bool_:
            sample[name] = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            sample[name] = rng.integers(0, 10, shape).astype(dtype)
    return sample


def latency_ms(parent: Runner, derived: Runner, sample: Sample, runs: int) -> tuple[float, float]:
    """Median milliseconds per inference of ``sample`` on each model, runs interleaved so both see the same machine."""
    for _ in range(3):
        parent.run(sample)
        derived.run(sample)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for model, into in ((parent, times[0]), (derived, times[1])):
            start = time.perf_counter()
            model.run(sample)
            into.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])
