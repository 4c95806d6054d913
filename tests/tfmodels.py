"""ONNX equivalents of the models TensorFlow Serving's REST API documentation and tests use (no downloads)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from .models import _save

Dims = Sequence[int | str | None]


def half_plus(path: Path, add: float, dims: Dims = (None,)) -> Path:
    """TF Serving's ``half_plus_two`` / ``half_plus_three``: y = 0.5 * x + ``add``, FP32, input ``x`` and output
    ``y`` of shape ``dims`` (``None``: a dimension of any size, unnamed as in the SavedModel)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))
    inits = [numpy_helper.from_array(np.float32(0.5), "a"), numpy_helper.from_array(np.float32(add), "b")]
    nodes = [helper.make_node("Mul", ["x", "a"], ["ax"]), helper.make_node("Add", ["ax", "b"], ["y"])]
    return _save(helper.make_graph(nodes, "half_plus", [x], [y], initializer=inits), path)


def identities(path: Path, tensors: dict[str, tuple[int, Dims]], suffix: str = "_out") -> Path:
    """One Identity per input: ``<name>`` → ``<name><suffix>``, each of its ONNX type and shape."""
    ins = [helper.make_tensor_value_info(n, t, list(d)) for n, (t, d) in tensors.items()]
    outs = [helper.make_tensor_value_info(n + suffix, t, list(d)) for n, (t, d) in tensors.items()]
    nodes = [helper.make_node("Identity", [n], [n + suffix]) for n in tensors]
    return _save(helper.make_graph(nodes, "identities", ins, outs), path)


def tag_signal_sensor(path: Path) -> Path:
    """The named inputs of TF Serving's row/columnar example: ``tag`` (a string per instance), ``signal`` (5
    integers), ``sensor`` (2x2 integers); outputs ``tag_bytes`` (the tag, written as base64 by the ``_bytes`` rule),
    ``signal_twice`` (2 * signal) and ``sensor_out`` (the sensor). The first dimension is named ``batch`` in each,
    so inputs whose batch sizes differ are refused."""
    ins = [
        helper.make_tensor_value_info("tag", TensorProto.STRING, ["batch"]),
        helper.make_tensor_value_info("signal", TensorProto.INT32, ["batch", 5]),
        helper.make_tensor_value_info("sensor", TensorProto.INT32, ["batch", 2, 2]),
    ]
    outs = [
        helper.make_tensor_value_info("tag_bytes", TensorProto.STRING, ["batch"]),
        helper.make_tensor_value_info("signal_twice", TensorProto.INT32, ["batch", 5]),
        helper.make_tensor_value_info("sensor_out", TensorProto.INT32, ["batch", 2, 2]),
    ]
    nodes = [
        helper.make_node("Identity", ["tag"], ["tag_bytes"]),
        helper.make_node("Add", ["signal", "signal"], ["signal_twice"]),
        helper.make_node("Identity", ["sensor"], ["sensor_out"]),
    ]
    return _save(helper.make_graph(nodes, "tag_signal_sensor", ins, outs), path)


def constant_outputs(path: Path) -> Path:
    """The tensors of TF Serving's ``FromJsonMultipleNamedTensors`` test (json_tensor_test.cc) as constant outputs
    of a model whose input ``x`` (FP32 [-1]) is ignored: so its documented row and columnar JSON is this model's
    answer to any request."""
    tensors = {
        "int_tensor": np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2], dtype=np.int32).reshape(2, 3, 2),
        "str_tensor": np.array([b"foo", b"bar", b"baz", b"bat"], dtype=np.object_).reshape(2, 2),
        "float_tensor": np.array([[1.0], [2.0]], dtype=np.float32),
        "double_scalar_tensor": np.array([8.0, 9.0], dtype=np.float64),
        "str_tensor_bytes": np.array([b"hello", b"world", b"tf", b"serving"], dtype=np.object_).reshape(2, 2),
    }
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])
    inits, nodes, outs = [], [], []
    for name, value in tensors.items():
        inits.append(numpy_helper.from_array(value, f"{name}_value"))
        nodes.append(helper.make_node("Identity", [f"{name}_value"], [name]))
        elem = helper.np_dtype_to_tensor_dtype(value.dtype) if value.dtype != np.object_ else TensorProto.STRING
        outs.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    return _save(helper.make_graph(nodes, "constants", [x], outs, initializer=inits), path)
