"""PMML NeuralNetwork as dense ONNX layers (pure).

Each NeuralLayer becomes ``MatMul`` + ``Add`` over double weights (one block per earlier layer its connections come
from: a ``Con`` may reference any input or earlier neuron), then its activation and normalization. NeuralInputs are
``FieldRef`` or ``NormContinuous`` (piecewise linear, the three outlier treatments, ``mapMissingTo``) of an input;
NeuralOutputs map neurons to the target: ``NormDiscrete`` per category (classification), ``FieldRef`` or
``NormContinuous`` (inverted) for a regression. As in the reference evaluator, a missing input makes the whole
result missing.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .document import Element, PMMLError
from .graph import Graph

_UNARY = {"logistic": "Sigmoid", "tanh": "Tanh", "exponential": "Exp", "reciprocal": "Reciprocal", "sine": "Sin",
          "cosine": "Cos", "rectifier": "Relu"}  # fmt: skip


def norm_continuous(graph: Graph, x: str, elem: Element, *, invert: bool = False) -> str:
    """``NormContinuous`` of ``x``: linear between the ``LinearNorm`` points; ``invert`` maps norm back to orig."""
    points = [(p.number("orig"), p.number("norm")) for p in elem.findall("LinearNorm")]
    if invert:
        points = sorted((n, o) for o, n in points)
    if len(points) < 2 or any(b[0] <= a[0] for a, b in itertools.pairwise(points)):
        raise elem.refuse("LinearNorm points must be at least two, in increasing order")
    # the reference evaluator does not extrapolate an inverted norm: a value outside its range has no result
    outliers = "asMissingValues" if invert else elem.get("outliers", "asIs")
    if outliers not in ("asIs", "asMissingValues", "asExtremeValues"):
        raise elem.refuse(f"outliers={outliers}")
    # y = n0 + sum_i slope_i * clamp(x - a_i, 0, a_{i+1} - a_i); asIs extends the first and last segments
    y = graph.scalar(points[0][1])
    last = len(points) - 2
    for i, ((a0, n0), (a1, n1)) in enumerate(itertools.pairwise(points)):
        d = graph.op("Sub", [x, graph.scalar(a0)])
        if not (i == 0 and outliers == "asIs"):
            d = graph.op("Max", [d, graph.scalar(0.0)])
        if not (i == last and outliers == "asIs"):
            d = graph.op("Min", [d, graph.scalar(a1 - a0)])
        y = graph.add(y, graph.mul(d, graph.scalar((n1 - n0) / (a1 - a0))))
    if outliers == "asMissingValues":
        outside = graph.op("Or", [graph.op("Less", [x, graph.scalar(points[0][0])]),
                                  graph.op("Greater", [x, graph.scalar(points[-1][0])])])  # fmt: skip
        y = graph.op("Where", [outside, graph.scalar(math.nan), y])
    missing = graph.scalar(elem.number("mapMissingTo") if elem.get("mapMissingTo") is not None else math.nan)
    return str(graph.op("Where", [graph.op("IsNaN", [x]), missing, y]))


def _input(graph: Graph, env: dict[str, str], elem: Element) -> str:
    derived = elem.require("DerivedField")
    exprs = [c for c in derived.children if c.tag != "Extension"]
    if len(exprs) != 1 or exprs[0].tag not in ("FieldRef", "NormContinuous"):
        raise (exprs[0] if exprs else derived).refuse("a NeuralInput other than FieldRef or NormContinuous")
    expr = exprs[0]
    name = expr.get("field") or ""
    if name not in env:
        raise expr.refuse(f"{name!r} is not an input")
    return env[name] if expr.tag == "FieldRef" else norm_continuous(graph, env[name], expr)


def _activate(graph: Graph, z: str, layer: Element, network: Element) -> str:
    function = layer.get("activationFunction") or network.get("activationFunction") or ""
    if function == "identity":
        return z
    if function == "rectifier" and float(layer.get("leakage") or network.get("leakage") or 0.0) != 0.0:
        raise layer.refuse("a leaky rectifier")
    if function in _UNARY:
        return str(graph.op(_UNARY[function], [z]))
    if function == "square":
        return graph.mul(z, z)
    if function == "Gauss":
        return str(graph.op("Exp", [graph.op("Neg", [graph.mul(z, z)])]))
    if function == "Elliott":
        return str(graph.op("Div", [z, graph.add(graph.scalar(1.0), graph.op("Abs", [z]))]))
    if function == "arctan":  # ONNX Runtime has Atan for float only: one Newton step in double refines it
        y = graph.double(graph.op("Atan", [graph.op("Cast", [z], to=1)]))
        cos = graph.op("Cos", [y])
        step = graph.mul(cos, graph.op("Sub", [graph.op("Sin", [y]), graph.mul(z, cos)]))
        return graph.mul(graph.op("Sub", [y, step]), graph.scalar(2.0 / math.pi))
    if function == "threshold":
        limit = float(layer.get("threshold") or network.get("threshold") or 0.0)
        return graph.double(graph.op("Greater", [z, graph.scalar(limit)]))
    raise layer.refuse(f"activationFunction={function}")


def _normalize(graph: Graph, y: str, layer: Element, network: Element) -> str:
    method = layer.get("normalizationMethod") or network.get("normalizationMethod") or "none"
    if method == "none":
        return y
    if method == "softmax":
        return str(graph.op("Softmax", [y], axis=1))
    if method == "simplemax":
        return str(graph.op("Div", [y, graph.op("ReduceSum", [y, graph.const(np.array([1]), "axes")], keepdims=1)]))
    raise layer.refuse(f"normalizationMethod={method}")


def compile_neural(
    model: Element, graph: Graph, env: dict[str, str], classes: list[str], target: str | None
) -> tuple[str | None, list[str]]:
    """(the predicted value, []) for a regression, (None, a probability per class) for a classification."""
    inputs = model.require("NeuralInputs").findall("NeuralInput")
    if not inputs:
        raise model.refuse("no NeuralInput")
    values = [_input(graph, env, i) for i in inputs]
    where: dict[str, tuple[int, int]] = {}  # neuron id -> (block, column)
    blocks = [graph.op("Concat", [graph.column(v) for v in values], axis=1)]
    sizes = [len(values)]
    for column, elem in enumerate(inputs):
        where[elem.get("id") or ""] = (0, column)
    for layer in model.findall("NeuralLayer"):
        neurons = layer.findall("Neuron")
        if not neurons:
            raise layer.refuse("a layer without neurons")
        weights: dict[int, np.ndarray] = {}
        for k, neuron in enumerate(neurons):
            for con in neuron.findall("Con"):
                source = con.get("from") or ""
                if source not in where:
                    raise con.refuse(f"from={source!r}, which is not an input or an earlier neuron")
                block, row = where[source]
                matrix = weights.setdefault(block, np.zeros((sizes[block], len(neurons))))
                matrix[row, k] += con.number("weight")
        z = graph.const(np.array([n.number("bias", 0.0) for n in neurons]), "bias")
        for block, matrix in sorted(weights.items()):
            z = graph.add(z, graph.op("MatMul", [blocks[block], graph.const(matrix, "weights")]))
        y = _normalize(graph, _activate(graph, z, layer, model), layer, model)
        for k, neuron in enumerate(neurons):
            where[neuron.get("id") or ""] = (len(blocks), k)
        blocks.append(y)
        sizes.append(len(neurons))
    missing = graph.op("IsNaN", [values[0]])
    for v in values[1:]:
        missing = graph.op("Or", [missing, graph.op("IsNaN", [v])])
    value: str | None = None
    probs: dict[str, str] = {}
    for out in model.require("NeuralOutputs").findall("NeuralOutput"):
        neuron_id = out.get("outputNeuron") or ""
        if neuron_id not in where:
            raise out.refuse(f"outputNeuron={neuron_id!r} is not a neuron")
        block, column = where[neuron_id]
        y = graph.op("Gather", [blocks[block], graph.const(np.array(column, dtype=np.int64), "index")], axis=1)
        y = str(graph.op("Where", [missing, graph.scalar(math.nan), y]))
        expr = next((c for c in out.require("DerivedField").children if c.tag != "Extension"), None)
        if expr is None or expr.get("field") != target:
            raise out.refuse("a NeuralOutput that is not an expression of the target")
        if classes and expr.tag == "NormDiscrete" and expr.get("value") in classes:
            probs[expr.get("value") or ""] = y
        elif not classes and expr.tag == "FieldRef":
            value = y
        elif not classes and expr.tag == "NormContinuous":
            value = norm_continuous(graph, y, expr, invert=True)
        else:
            raise expr.refuse(f"{expr.tag} as a NeuralOutput of a {'classification' if classes else 'regression'}")
    if classes and set(probs) != set(classes):
        raise model.refuse(f"NeuralOutputs for {sorted(probs)}, categories {classes}")
    if not classes and value is None:
        raise model.refuse("no NeuralOutput for the target")
    if classes:
        return None, [probs[c] for c in classes]
    if value is None:
        raise PMMLError("unreachable")
    return value, []
