"""Pruning and the float16 conversion as graph rewrites (pure: model in, model out). What ONNX Runtime makes of
the results is tested in tests/integration/test_build_cli.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelyard_runtime.build.float16 import Float16Error, to_float16
from modelyard_runtime.build.prune import prune


def _dense(weights: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weights.shape[1]])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _init(model: onnx.ModelProto, name: str) -> np.ndarray:
    return next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == name)


def test_prune_zeroes_the_smallest_weights_and_leaves_biases() -> None:
    weights = np.arange(1, 13, dtype=np.float32).reshape(3, 4) * np.array([1, -1, 1, -1], np.float32)
    model = _dense(weights, np.full(4, 0.001, np.float32))
    result = prune(model, 0.5)
    pruned = _init(result.model, "W")
    assert (result.tensors, result.weights, result.zeros) == (1, 12, 6)
    assert result.sparsity == 0.5
    assert np.array_equal(pruned != 0, np.abs(weights) > 6)  # the six of magnitude 1..6 went
    assert np.array_equal(pruned[pruned != 0], weights[np.abs(weights) > 6])
    assert np.array_equal(_init(result.model, "b"), np.full(4, 0.001, np.float32))
    assert np.array_equal(_init(model, "W"), weights)  # the parent is not touched


def test_prune_needs_weights() -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])  # fmt: skip
    with pytest.raises(ValueError, match="no weight tensor to prune"):
        prune(helper.make_model(graph), 0.5)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        prune(_dense(np.ones((2, 2), np.float32), np.ones(2, np.float32)), 1.0)


def test_float16_keeps_float32_io_behind_casts() -> None:
    model = _dense(np.full((2, 3), 1e6, np.float32), np.ones(3, np.float32))
    half = to_float16(model)
    onnx.checker.check_model(half, full_check=True)
    assert [v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)] == [TensorProto.FLOAT] * 2
    assert {i.data_type for i in half.graph.initializer} == {TensorProto.FLOAT16}
    assert _init(half, "W").max() == np.finfo(np.float16).max  # 1e6 clipped to float16's largest finite value
    ops = [(n.op_type, list(n.input), list(n.output)) for n in half.graph.node]
    assert ops[0] == ("Cast", ["x"], ["x__fp16"])
    assert ops[-1] == ("Cast", ["y__fp16"], ["y"])
    assert ops[1] == ("MatMul", ["x__fp16", "W"], ["h"])


def test_float16_without_keep_io_changes_the_signature() -> None:
    half = to_float16(_dense(np.ones((2, 3), np.float32), np.ones(3, np.float32)), keep_io=False)
    assert [v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)] == [TensorProto.FLOAT16] * 2
    assert [n.op_type for n in half.graph.node] == ["MatMul", "Add"]


def test_float16_refuses_ml_operators() -> None:
    graph = helper.make_graph(
        [helper.make_node("LinearRegressor", ["x"], ["y"], domain="ai.onnx.ml", coefficients=[1.0, 2.0])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )  # fmt: skip
    with pytest.raises(Float16Error, match=r"operator ai.onnx.ml.LinearRegressor has no float16 form"):
        to_float16(helper.make_model(graph))
