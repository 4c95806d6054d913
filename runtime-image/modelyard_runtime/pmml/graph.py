"""A small ONNX graph builder for the PMML compiler (pure: builds protobuf messages, runs nothing)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
ML_OPSET = 3


class Graph:
    """Nodes and constants under unique names; :meth:`model` wraps them with inputs and outputs."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str = "c") -> str:
        name = self.name(hint)
        array = np.asarray(value)
        if array.dtype.kind in "US":
            tensor = helper.make_tensor(name, TensorProto.STRING, array.shape, [v.encode() for v in array.ravel()])
        else:
            tensor = numpy_helper.from_array(array, name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, inputs: list[str], *, outputs: int = 1, domain: str = "", **attrs: Any) -> Any:
        """Add one node; returns its output name, or the list of them when ``outputs`` > 1."""
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, domain=domain or None, **attrs))
        return names[0] if outputs == 1 else names

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, dtype=np.float64), "k")

    def add(self, a: str, b: str) -> str:
        return str(self.op("Add", [a, b]))

    def mul(self, a: str, b: str) -> str:
        return str(self.op("Mul", [a, b]))

    def column(self, vector: str) -> str:
        """[N] -> [N, 1]"""
        return str(self.op("Unsqueeze", [vector, self.const(np.array([1], dtype=np.int64), "axes")]))

    def flat(self, matrix: str) -> str:
        """[N, 1] -> [N]"""
        return str(self.op("Squeeze", [matrix, self.const(np.array([1], dtype=np.int64), "axes")]))

    def double(self, tensor: str) -> str:
        return str(self.op("Cast", [tensor], to=TensorProto.DOUBLE))

    def split_columns(self, matrix: str, count: int) -> list[str]:
        """[N, C] -> C tensors of shape [N]."""
        parts = self.op("Split", [matrix], outputs=count, axis=1) if count > 1 else [matrix]
        return [self.flat(p) for p in parts]

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[tuple[str, str, int]]) -> onnx.ModelProto:
        """``outputs``: (graph value, output name, element type); each gets an Identity under its public name."""
        for value, public, _ in outputs:
            self.nodes.append(helper.make_node("Identity", [value], [public]))
        read = {name for node in self.nodes for name in node.input}
        graph = helper.make_graph(
            self.nodes,
            "pmml",
            inputs,
            [helper.make_tensor_value_info(public, dtype, ["N"]) for _, public, dtype in outputs],
            # constants a branch made but no node reads (ONNX Runtime warns about each at every load)
            initializer=[t for t in self.initializers if t.name in read],
        )
        opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="modelyard-pmml")
        model.ir_version = 8
        return model
