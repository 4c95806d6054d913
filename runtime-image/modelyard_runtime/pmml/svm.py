"""PMML SupportVectorMachineModel (pure): the kernel against every support vector as one matrix, each machine's
decision value as ``MatMul`` with its coefficients plus ``absoluteValue``.

Kernels: linear ``x·s``, polynomial ``(gamma x·s + coef0)^degree``, radial basis ``exp(-gamma |x - s|²)``, sigmoid
``tanh(gamma x·s + coef0)``. A regression is the single machine's value. Classification follows the reference
evaluator (JPMML-Evaluator): one-against-one, each machine votes for its ``targetCategory`` when its value is below
the threshold (the machine's, else the model's) and for its ``alternateTargetCategory`` otherwise (with the model's
``alternateBinaryTargetCategory``: the value rounded, 1 the target category, 0 the alternate); the most votes win, a
tie going to the category that got its first vote earliest. One-against-all: the smallest value wins, a tie going
to the earlier machine. The result is the label only (no probabilities), and a missing input leaves it missing.
"""

from __future__ import annotations

import math

import numpy as np

from .document import Element
from .graph import Graph

_KERNELS = {"LinearKernelType", "PolynomialKernelType", "RadialBasisKernelType", "SigmoidKernelType"}


def _vector(instance: Element, size: int) -> list[float]:
    array = instance.find("Array")
    if array is not None and array.get("type") in ("real", "int"):
        text = array.text
        values = [float(v) for v in text.split()]
    elif (sparse := instance.find("REAL-SparseArray")) is not None:
        values = [0.0] * int(sparse.number("n", size))
        indices = sparse.require("Indices").text.split()
        entries = sparse.require("REAL-Entries").text.split()
        for i, v in zip(indices, entries, strict=True):
            values[int(i) - 1] = float(v)
    else:
        raise instance.refuse("a VectorInstance without a real Array or REAL-SparseArray")
    if len(values) != size:
        raise instance.refuse(f"{len(values)} values for {size} VectorFields")
    return values


def _kernel(graph: Graph, kernel: Element, x: str, vectors: np.ndarray) -> str:
    """[N, F] inputs, [V, F] vectors -> [N, V] kernel values."""
    if kernel.tag == "RadialBasisKernelType":
        diff = graph.op("Sub", [graph.op("Unsqueeze", [x, graph.const(np.array([1]), "axes")]),
                                graph.const(vectors[np.newaxis], "vectors")])  # fmt: skip
        squares = graph.op("ReduceSum", [graph.mul(diff, diff), graph.const(np.array([2]), "axes")], keepdims=0)
        return str(graph.op("Exp", [graph.mul(squares, graph.scalar(-kernel.number("gamma", 1.0)))]))
    dot = str(graph.op("MatMul", [x, graph.const(vectors.T.copy(), "vectors")]))
    if kernel.tag == "LinearKernelType":
        return dot
    inner = graph.add(
        graph.mul(dot, graph.scalar(kernel.number("gamma", 1.0))), graph.scalar(kernel.number("coef0", 1.0))
    )
    if kernel.tag == "SigmoidKernelType":
        return str(graph.op("Tanh", [inner]))
    return str(graph.op("Pow", [inner, graph.scalar(kernel.number("degree", 1.0))]))


def compile_svm(model: Element, graph: Graph, env: dict[str, str], classes: list[str]) -> tuple[str | None, str | None]:
    """(the decision value, None) for a regression, (None, the winning label) for a classification."""
    for attr, allowed in (("representation", "SupportVectors"), ("maxWins", "false")):
        if model.get(attr, allowed) != allowed:  # the reference evaluator refuses these too
            raise model.refuse(f"{attr}={model.get(attr)}")
    kernels = [c for c in model.children if c.tag in _KERNELS or c.tag.endswith("KernelType")]
    if len(kernels) != 1 or kernels[0].tag not in _KERNELS:
        raise (kernels[0] if kernels else model).refuse("one linear, polynomial, radial basis or sigmoid kernel")
    dictionary = model.require("VectorDictionary")
    names = []
    for f in dictionary.require("VectorFields").children:
        if f.tag != "FieldRef" or (f.get("field") or "") not in env:
            raise f.refuse("a vector field that is not a continuous input")
        names.append(env[f.get("field") or ""])
    ids: dict[str, int] = {}
    rows: list[list[float]] = []
    for instance in dictionary.findall("VectorInstance"):
        ids[instance.get("id") or ""] = len(rows)
        rows.append(_vector(instance, len(names)))
    machines = model.findall("SupportVectorMachine")
    if not machines or not rows:
        raise model.refuse("no SupportVectorMachine or no VectorInstance")
    coefficients = np.zeros((len(rows), len(machines)))
    offsets = np.zeros(len(machines))
    for m, machine in enumerate(machines):
        vectors = machine.require("SupportVectors").findall("SupportVector")
        coefs = machine.require("Coefficients")
        values = coefs.findall("Coefficient")
        if len(vectors) != len(values):
            raise machine.refuse(f"{len(vectors)} SupportVectors and {len(values)} Coefficients")
        for vector, value in zip(vectors, values, strict=True):
            if (vector.get("vectorId") or "") not in ids:
                raise vector.refuse(f"vectorId={vector.get('vectorId')!r} is not in the VectorDictionary")
            coefficients[ids[vector.get("vectorId") or ""], m] += value.number("value", 0.0)
        offsets[m] = coefs.number("absoluteValue", 0.0)
    x = graph.op("Concat", [graph.column(n) for n in names], axis=1)
    kernel = _kernel(graph, kernels[0], x, np.array(rows))
    decisions = graph.add(graph.op("MatMul", [kernel, graph.const(coefficients, "coefficients")]), graph.const(offsets))
    missing = graph.op("ReduceMax", [graph.double(graph.op("IsNaN", [x]))], axes=[1], keepdims=0)
    missing = graph.op("Greater", [missing, graph.scalar(0.0)])
    if not classes:
        if len(machines) != 1:
            raise model.refuse(f"a regression with {len(machines)} machines")
        return str(graph.op("Where", [missing, graph.scalar(math.nan), graph.flat(decisions)])), None
    columns = graph.split_columns(decisions, len(machines))
    method = model.get("classificationMethod") or _method(model, machines)
    if method == "OneAgainstAll":
        order = [m.get("targetCategory") or "" for m in machines]
        if any(m.get("alternateTargetCategory") is not None for m in machines) or len(set(order)) != len(order):
            raise model.refuse("one-against-all machines need one distinct targetCategory each")
        winner = graph.op("ArgMin", [decisions], axis=1, keepdims=0)
        labels = order
    elif method == "OneAgainstOne":
        winner, invalid = _votes(graph, model, machines, columns, classes)
        missing = graph.op("Or", [missing, invalid])
        labels = classes
    else:
        raise model.refuse(f"classificationMethod={method}")
    label = graph.op("Gather", [graph.const(np.array(labels), "classes"), winner])
    return None, str(graph.op("Where", [missing, graph.const(np.array(""), "empty"), label]))


def _method(model: Element, machines: list[Element]) -> str:
    """What the reference infers where classificationMethod is absent."""
    if model.get("alternateBinaryTargetCategory") is not None:
        return "OneAgainstOne"
    return "OneAgainstOne" if machines[0].get("alternateTargetCategory") is not None else "OneAgainstAll"


def _votes(
    graph: Graph, model: Element, machines: list[Element], decisions: list[str], classes: list[str]
) -> tuple[str, str]:
    """The index of the winning category (most votes, then the earliest first vote), and where the reference has
    no result (a binary machine's value that rounds to neither 0 nor 1)."""
    binary = model.get("alternateBinaryTargetCategory")
    count = len(machines)
    votes = graph.const(np.zeros(len(classes)), "votes")
    first = graph.const(np.full(len(classes), float(count)), "first")
    invalid = graph.op("IsNaN", [decisions[0]])
    for m, (machine, d) in enumerate(zip(machines, decisions, strict=True)):
        target = machine.get("targetCategory")
        other = binary if binary is not None else machine.get("alternateTargetCategory")
        if target not in classes or other not in classes:
            raise machine.refuse(f"categories {target!r}/{other!r}, the target's are {classes}")
        if binary is not None:
            if machine.get("alternateTargetCategory") is not None:
                raise machine.refuse("alternateTargetCategory with the model's alternateBinaryTargetCategory")
            rounded = graph.op("Floor", [graph.add(d, graph.scalar(0.5))])
            is_target = graph.op("Equal", [rounded, graph.scalar(1.0)])
            neither = graph.op("Not", [graph.op("Or", [is_target, graph.op("Equal", [rounded, graph.scalar(0.0)])])])
            invalid = graph.op("Or", [invalid, neither])
        else:
            threshold = machine.number("threshold", model.number("threshold", 0.0))
            is_target = graph.op("Less", [d, graph.scalar(threshold)])
        onehot = np.eye(len(classes))
        hit = graph.op("Where", [graph.column(is_target), graph.const(onehot[classes.index(target or "")]),
                                 graph.const(onehot[classes.index(other or "")])])  # fmt: skip
        fresh = graph.op("And", [graph.op("Greater", [hit, graph.scalar(0.0)]),
                                 graph.op("Equal", [votes, graph.scalar(0.0)])])  # fmt: skip
        first = graph.op("Where", [fresh, graph.scalar(float(m)), first])
        votes = graph.add(votes, hit)
    score = graph.op("Sub", [graph.mul(votes, graph.scalar(float(count + 1))), first])
    return str(graph.op("ArgMax", [score], axis=1, keepdims=0)), str(invalid)
