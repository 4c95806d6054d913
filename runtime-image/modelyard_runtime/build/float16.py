"""Half precision: float32 initializers, constants and intermediate values become float16.

With ``keepIO`` (the default) the model's inputs and outputs stay float32 and Cast nodes convert at the edges, so
clients send and receive what they did. Values beyond float16's range are clipped to its largest finite value. ONNX-ML
operators (trees, linear classifiers) and subgraphs are refused: their float16 forms do not exist or are not handled
here. Pure: model in, model out.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

F32, F16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
FP16_MAX = float(np.finfo(np.float16).max)


class Float16Error(ValueError):
    """The model has something this conversion does not handle; the message names it."""


def _half(tensor: onnx.TensorProto) -> onnx.TensorProto:
    array = numpy_helper.to_array(tensor)
    return numpy_helper.from_array(np.clip(array, -FP16_MAX, FP16_MAX).astype(np.float16), tensor.name)


def _retype(value: onnx.ValueInfoProto) -> None:
    if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type == F32:
        value.type.tensor_type.elem_type = F16


def _check(graph: onnx.GraphProto) -> None:
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise Float16Error(
                f"node {node.name or node.op_type}: operator {node.domain}.{node.op_type} has no float16 form"
            )
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise Float16Error(f"node {node.name or node.op_type}: {node.op_type} has a subgraph (not converted)")


def _attributes(node: onnx.NodeProto) -> None:
    for a in node.attribute:
        if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == F32:
            a.t.CopyFrom(_half(a.t))
        elif node.op_type == "Cast" and a.name == "to" and a.i == F32:
            a.i = F16


def _edges(graph: onnx.GraphProto, values: list[onnx.ValueInfoProto], keep_io: bool,
           outward: bool) -> list[onnx.NodeProto]:  # fmt: skip
    """The graph's float32 inputs (or outputs): retyped, or with ``keep_io`` renamed inside the graph and joined to
    the outside through a Cast, which this returns."""
    casts = []
    for value in values:
        if value.type.tensor_type.elem_type != F32:
            continue
        if not keep_io:
            _retype(value)
            continue
        inner = f"{value.name}__fp16"
        for node in graph.node:
            node.input[:] = [inner if n == value.name else n for n in node.input]
            if outward:
                node.output[:] = [inner if n == value.name else n for n in node.output]
        if outward:
            casts.append(helper.make_node("Cast", [inner], [value.name], name=f"{value.name}__to_fp32", to=F32))
        else:
            casts.append(helper.make_node("Cast", [value.name], [inner], name=f"{value.name}__to_fp16", to=F16))
    return casts


def to_float16(model: onnx.ModelProto, keep_io: bool = True) -> onnx.ModelProto:
    """A float16 copy of ``model``; Float16Error when it holds what the conversion cannot handle."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    _check(graph)
    for i, init in enumerate(graph.initializer):
        if init.data_type == F32:
            graph.initializer[i].CopyFrom(_half(init))
    for node in graph.node:
        _attributes(node)
    for value in graph.value_info:
        _retype(value)
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    edges_in = _edges(graph, inputs, keep_io, outward=False)
    edges_out = _edges(graph, list(graph.output), keep_io, outward=True)
    nodes = [*edges_in, *graph.node, *edges_out]
    del graph.node[:]
    graph.node.extend(nodes)
    return out
