"""The benchmark's ONNX models, generated with the onnx helper API (no downloads).

- ``mlp``: 256-1024-1024-10 FP32 MLP (Gemm+Relu, Gemm+Relu, Gemm), variable batch dimension: throughput/latency.
- ``big``: ~100 MB of MatMul initializers (2048-4096-2048-4096-16), variable batch dimension: time-to-ready.

Weights come from a fixed seed, so every run and every server sees byte-identical files.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT, OUTPUT = "INPUT0", "OUTPUT0"
MLP_LAYERS = (256, 1024, 1024, 10)
BIG_LAYERS = (2048, 4096, 2048, 4096, 16)


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


def _weights(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    # He-style scaling keeps activations finite through the layers
    return (rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(np.sqrt(2.0 / rows))).astype(np.float32)


def mlp(path: Path, layers: tuple[int, ...] = MLP_LAYERS, seed: int = 0) -> Path:
    """Gemm(+Relu) per layer; INPUT0 FP32 [batch, layers[0]] -> OUTPUT0 FP32 [batch, layers[-1]]."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = INPUT
    for i, (rows, cols) in enumerate(itertools.pairwise(layers)):
        last = i == len(layers) - 2
        inits.append(numpy_helper.from_array(_weights(rng, rows, cols), f"W{i}"))
        inits.append(numpy_helper.from_array(np.full(cols, 0.01, dtype=np.float32), f"B{i}"))
        gemm_out = OUTPUT if last else f"G{i}"
        nodes.append(helper.make_node("Gemm", [current, f"W{i}", f"B{i}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [f"R{i}"]))
            current = f"R{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", layers[0]])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", layers[-1]])],
        initializer=inits,
    )
    return _save(graph, path)


def big(path: Path, layers: tuple[int, ...] = BIG_LAYERS, seed: int = 1) -> Path:
    """MatMul chain with large initializers (~100 MB on disk, one file, no external data)."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = INPUT
    for i, (rows, cols) in enumerate(itertools.pairwise(layers)):
        out = OUTPUT if i == len(layers) - 2 else f"M{i}"
        inits.append(numpy_helper.from_array(_weights(rng, rows, cols), f"W{i}"))
        nodes.append(helper.make_node("MatMul", [current, f"W{i}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", layers[0]])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", layers[-1]])],
        initializer=inits,
    )
    return _save(graph, path)
