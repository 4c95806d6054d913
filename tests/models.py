"""Small ONNX models generated with the onnx helper API (no downloads)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

# protocol datatype -> ONNX element type, for the identity model
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL, "UINT8": TensorProto.UINT8, "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32, "UINT64": TensorProto.UINT64, "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16, "INT32": TensorProto.INT32, "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16, "FP32": TensorProto.FLOAT, "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}  # fmt: skip


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def binary_op(path: Path, op: str = "Add") -> Path:
    """OUT0 = A <op> B, OUT1 = A - B; A, B: FP32 [-1, 4]."""
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["batch", 4])
    b = helper.make_tensor_value_info("B", TensorProto.FLOAT, ["batch", 4])
    out0 = helper.make_tensor_value_info("OUT0", TensorProto.FLOAT, ["batch", 4])
    out1 = helper.make_tensor_value_info("OUT1", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node(op, ["A", "B"], ["OUT0"]), helper.make_node("Sub", ["A", "B"], ["OUT1"])]
    return _save(helper.make_graph(nodes, "binary_op", [a, b], [out0, out1]), path)


def identity_all_types(path: Path) -> Path:
    """One Identity per datatype: IN_<T> -> OUT_<T>, shape [-1, -1]."""
    inputs, outputs, nodes = [], [], []
    for name, onnx_type in ONNX_TYPES.items():
        inputs.append(helper.make_tensor_value_info(f"IN_{name}", onnx_type, ["n", "m"]))
        outputs.append(helper.make_tensor_value_info(f"OUT_{name}", onnx_type, ["n", "m"]))
        nodes.append(helper.make_node("Identity", [f"IN_{name}"], [f"OUT_{name}"]))
    return _save(helper.make_graph(nodes, "identity", inputs, outputs), path)
