"""Small ONNX models generated with the onnx helper API (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def matmul_chain(path: Path, width: int = 256, depth: int = 8, seed: int = 0) -> Path:
    """Y = X·W1·W2·…·Wdepth with X: FP32 [-1, width]. Its run time grows with the rows sent (a slow model on
    demand) and its file size with width² × depth (a big model on demand)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(width)
    weights = [
        helper.make_tensor(f"W{i}", TensorProto.FLOAT, [width, width],
                           (rng.standard_normal((width, width)) * scale).astype(np.float32).tobytes(), raw=True)
        for i in range(depth)
    ]  # fmt: skip
    nodes = [helper.make_node("MatMul", ["X" if i == 0 else f"H{i}", f"W{i}"], [f"H{i + 1}"]) for i in range(depth)]
    nodes[-1].output[0] = "Y"
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", width])
    return _save(helper.make_graph(nodes, "matmul_chain", [x], [y], initializer=weights), path)


def repeated_matmul(path: Path, width: int = 512, depth: int = 150, copies: int = 256) -> Path:
    """Y = X·W·W·…·W (``depth`` times one orthogonal [width x width] W, so values keep their size), X: FP32
    [-1, width], computed on ``copies`` copies of each row and averaged back: a model that is slow per request
    (tenths of a second) but small on disk (one W) and quick to load (few nodes)."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((width, width)))
    inits = [
        helper.make_tensor("W", TensorProto.FLOAT, [width, width], q.astype(np.float32).tobytes(), raw=True),
        helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("copies", TensorProto.INT64, [3], [1, copies, 1]),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["X", "axis1"], ["X1"]),
        helper.make_node("Expand", ["X1", "copies"], ["H0"]),
    ]
    nodes += [helper.make_node("MatMul", [f"H{i}", "W"], [f"H{i + 1}"]) for i in range(depth)]
    nodes.append(helper.make_node("ReduceMean", [f"H{depth}"], ["Y"], axes=[1], keepdims=0))
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", width])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", width])
    return _save(helper.make_graph(nodes, "repeated_matmul", [x], [y], initializer=inits), path)


def power_chain(path: Path, depth: int = 16, n: int | None = None) -> Path:
    """Y = X·X·…·X (depth + 1 factors), X: FP32 [n, n]. No weights: a tiny file whose run time grows with n³
    (an n of 1024 keeps a request in flight for a noticeable while). A given ``n`` fixes the shape."""
    dims: list[str | int] = [n, n] if n else ["n", "n"]
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, dims)
    nodes = [helper.make_node("MatMul", ["X" if i == 0 else f"H{i}", "X"], [f"H{i + 1}"]) for i in range(depth)]
    nodes[-1].output[0] = "Y"
    return _save(helper.make_graph(nodes, "power_chain", [x], [y]), path)


def failing_model(path: Path) -> Path:
    """Valid ONNX that fails at run time: OUT0 reshapes the [batch, 4] sum to [3]; OUT1 = A - B."""
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["batch", 4])
    b = helper.make_tensor_value_info("B", TensorProto.FLOAT, ["batch", 4])
    out0 = helper.make_tensor_value_info("OUT0", TensorProto.FLOAT, ["n"])
    out1 = helper.make_tensor_value_info("OUT1", TensorProto.FLOAT, ["batch", 4])
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [3])
    nodes = [helper.make_node("Add", ["A", "B"], ["S"]), helper.make_node("Reshape", ["S", "shape"], ["OUT0"]),
             helper.make_node("Sub", ["A", "B"], ["OUT1"])]  # fmt: skip
    return _save(helper.make_graph(nodes, "failing", [a, b], [out0, out1], initializer=[shape]), path)


def slow_model(path: Path, layers: int = 24, width: int = 768) -> Path:
    """Correct but slow: OUT0 is A pushed through ``layers`` dense [width x width] MatMuls; OUT1 = A - B."""
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["batch", 4])
    b = helper.make_tensor_value_info("B", TensorProto.FLOAT, ["batch", 4])
    out0 = helper.make_tensor_value_info("OUT0", TensorProto.FLOAT, ["batch", width])
    out1 = helper.make_tensor_value_info("OUT1", TensorProto.FLOAT, ["batch", 4])
    rng = np.random.default_rng(0)
    inits = [helper.make_tensor("W0", TensorProto.FLOAT, [4, width], rng.random((4, width), np.float32).ravel())]
    nodes = [helper.make_node("MatMul", ["A", "W0"], ["H0"])]
    for i in range(1, layers + 1):
        w = rng.random((width, width), np.float32).ravel() / width
        inits.append(helper.make_tensor(f"W{i}", TensorProto.FLOAT, [width, width], w))
        nodes.append(helper.make_node("MatMul", [f"H{i - 1}", f"W{i}"], [f"H{i}"]))
    nodes += [helper.make_node("Identity", [f"H{layers}"], ["OUT0"]), helper.make_node("Sub", ["A", "B"], ["OUT1"])]
    return _save(helper.make_graph(nodes, "slow", [a, b], [out0, out1], initializer=inits), path)


def identity(path: Path, datatype: str) -> Path:
    """Y = IN_<datatype>, shape [-1, -1]: one input of one datatype (for checking what its JSON data may hold)."""
    x = helper.make_tensor_value_info(f"IN_{datatype}", ONNX_TYPES[datatype], ["n", "m"])
    y = helper.make_tensor_value_info("Y", ONNX_TYPES[datatype], ["n", "m"])
    return _save(helper.make_graph([helper.make_node("Identity", [x.name], ["Y"])], "identity", [x], [y]), path)


def triton_simple(path: Path, datatype: str = "INT32") -> Path:
    """Triton's example model ``simple``: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1, [-1, 16]."""
    t = ONNX_TYPES[datatype]
    ins = [helper.make_tensor_value_info(f"INPUT{i}", t, ["batch", 16]) for i in (0, 1)]
    outs = [helper.make_tensor_value_info(f"OUTPUT{i}", t, ["batch", 16]) for i in (0, 1)]
    nodes = [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
             helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])]  # fmt: skip
    return _save(helper.make_graph(nodes, "simple", ins, outs), path)


def triton_simple_string(path: Path) -> Path:
    """Triton's example ``simple_string``: BYTES [-1, 16] holding decimal integers; OUTPUT0/1 the sum/difference as
    decimal strings (ONNX Cast between strings and INT32)."""
    ins = [helper.make_tensor_value_info(f"INPUT{i}", TensorProto.STRING, ["batch", 16]) for i in (0, 1)]
    outs = [helper.make_tensor_value_info(f"OUTPUT{i}", TensorProto.STRING, ["batch", 16]) for i in (0, 1)]
    nodes = [helper.make_node("Cast", [f"INPUT{i}"], [f"N{i}"], to=TensorProto.INT32) for i in (0, 1)]
    nodes += [helper.make_node("Add", ["N0", "N1"], ["S"]), helper.make_node("Sub", ["N0", "N1"], ["D"]),
              helper.make_node("Cast", ["S"], ["OUTPUT0"], to=TensorProto.STRING),
              helper.make_node("Cast", ["D"], ["OUTPUT1"], to=TensorProto.STRING)]  # fmt: skip
    return _save(helper.make_graph(nodes, "simple_string", ins, outs), path)


def triton_identity(path: Path, datatype: str = "BYTES") -> Path:
    """Triton's example ``simple_identity``: OUTPUT0 = INPUT0, [-1, -1]."""
    x = helper.make_tensor_value_info("INPUT0", ONNX_TYPES[datatype], ["batch", "n"])
    y = helper.make_tensor_value_info("OUTPUT0", ONNX_TYPES[datatype], ["batch", "n"])
    return _save(helper.make_graph([helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])], "identity", [x], [y]), path)


def image_classifier(path: Path, *, nhwc: bool = False, batch: bool = True, classes: int = 5, side: int = 8) -> Path:
    """A tiny image classifier: the mean of each channel times a fixed [3, classes] matrix, softmaxed. Input
    ``data`` FP32 [N, 3, side, side] (NCHW) or [N, side, side, 3] (NHWC), without N when ``batch`` is false;
    output ``probs`` FP32 [N, classes]. Class k scores channel k % 3 highest, so a red image is class 0 and 3."""
    dims: list[str | int] = [side, side, 3] if nhwc else [3, side, side]
    if batch:
        dims = ["batch", *dims]
    spatial = [0, 1] if nhwc else [1, 2]  # H and W, before the batch dimension is counted
    axes = [a + 1 for a in spatial] if batch else spatial
    weights = np.zeros((3, classes), np.float32)
    for k in range(classes):
        weights[k % 3, k] = 4.0 - k / classes
    x = helper.make_tensor_value_info("data", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", classes] if batch else [classes])
    init = [helper.make_tensor("W", TensorProto.FLOAT, [3, classes], weights.ravel()),
            helper.make_tensor("axes", TensorProto.INT64, [2], axes)]  # fmt: skip
    nodes = [helper.make_node("ReduceMean", ["data", "axes"], ["M"], keepdims=0),
             helper.make_node("MatMul", ["M", "W"], ["L"]),
             helper.make_node("Softmax", ["L"], ["probs"], axis=-1)]  # fmt: skip
    return _save_opset18(helper.make_graph(nodes, "image_classifier", [x], [y], initializer=init), path)


def _save_opset18(graph: onnx.GraphProto, path: Path) -> Path:
    """ReduceMean takes its axes as an input from opset 18."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def non_finite(path: Path) -> Path:
    """Y = A / B, FP32 [-1, -1]: 0/0 is NaN, 1/0 is Infinity, -1/0 -Infinity."""
    a = helper.make_tensor_value_info("A", TensorProto.FLOAT, ["n", "m"])
    b = helper.make_tensor_value_info("B", TensorProto.FLOAT, ["n", "m"])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["n", "m"])
    return _save(helper.make_graph([helper.make_node("Div", ["A", "B"], ["Y"])], "div", [a, b], [y]), path)


def pmml_linear(path: Path, coefficients: dict[str, float] | None = None, intercept: float = 0.5,
                model: str = "RegressionModel") -> Path:  # fmt: skip
    """A PMML 4.4 linear regression ``y = intercept + sum(c * x)`` over continuous double fields (written by hand,
    so tests that only need some valid PMML need no Java); ``model="ClusteringModel"``: one the compiler refuses."""
    coefficients = coefficients or {"x1": 2.0, "x2": -1.5}
    fields = "".join(f'<DataField name="{n}" optype="continuous" dataType="double"/>' for n in coefficients)
    mining = "".join(f'<MiningField name="{n}"/>' for n in coefficients)
    predictors = "".join(f'<NumericPredictor name="{n}" coefficient="{c!r}"/>' for n, c in coefficients.items())
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">\n<Header/>\n'
        f'<DataDictionary>{fields}<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>\n'
        f'<{model} functionName="regression">\n'
        f'<MiningSchema>{mining}<MiningField name="y" usageType="target"/></MiningSchema>\n'
        f'<RegressionTable intercept="{intercept!r}">{predictors}</RegressionTable>\n'
        f"</{model}>\n</PMML>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
