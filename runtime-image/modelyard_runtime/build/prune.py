"""Magnitude pruning: in each weight tensor, the smallest weights by absolute value become zero.

Weights are the float initializers of rank 2 or more that a MatMul, Gemm or Conv reads (biases and norms stay). The
model keeps its dense layout: ONNX Runtime's dense kernels multiply the zeros like any other number, so a pruned
model is no faster and no smaller on disk; it compresses better (the report gives both sizes) and is the first step
of a sparse or distilled model. Pure: model in, model out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

WEIGHT_OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose"}
FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


@dataclass(frozen=True)
class PruneResult:
    model: onnx.ModelProto
    tensors: int  # weight tensors pruned
    weights: int  # their elements
    zeros: int  # zero elements after pruning

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0


def weight_names(graph: onnx.GraphProto) -> set[str]:
    """Initializers read as weights (any input but the first) by a MatMul, Gemm or Conv."""
    names: set[str] = set()
    for node in graph.node:
        if node.op_type in WEIGHT_OPS and node.domain in ("", "ai.onnx"):
            names.update(node.input[1:])
    return names


def prune(model: onnx.ModelProto, sparsity: float) -> PruneResult:
    """A copy of ``model`` with the ``sparsity`` fraction of each weight tensor's smallest weights set to zero."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    wanted = weight_names(out.graph)
    tensors = weights = zeros = 0
    for i, init in enumerate(out.graph.initializer):
        if init.name not in wanted or init.data_type not in FLOATS or len(init.dims) < 2:
            continue
        array = numpy_helper.to_array(init).copy()
        cut = int(np.floor(sparsity * array.size))
        if cut:
            flat = np.abs(array).reshape(-1)
            order = np.argpartition(flat, cut - 1)[:cut]  # the indices of the cut smallest magnitudes
            array.reshape(-1)[order] = 0
        out.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, init.name))
        tensors += 1
        weights += array.size
        zeros += int(np.count_nonzero(array == 0))
    if not tensors:
        raise ValueError("the model has no weight tensor to prune (float initializers of MatMul, Gemm or Conv)")
    return PruneResult(out, tensors, weights, zeros)
