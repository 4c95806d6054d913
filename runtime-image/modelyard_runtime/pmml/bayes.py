"""PMML NaiveBayesModel over continuous inputs (pure): GaussianDistribution per input and category, as the reference
evaluator computes it (JPMML-Evaluator): in log space, ln(count) for the prior plus, per input that is not
missing (a missing input is ignored), ln(max(density, threshold)); then softmax over the categories.

Refused: PairCounts (categorical inputs), PoissonDistribution and other distributions, BayesInput DerivedFields.
"""

from __future__ import annotations

import math

import numpy as np

from .document import Element
from .graph import Graph


def compile_bayes(
    model: Element, graph: Graph, env: dict[str, str], classes: list[str], target: str | None
) -> list[str]:
    """A probability per category, in ``classes`` order."""
    if not classes:
        raise model.refuse("a NaiveBayesModel is a classification")
    output = model.require("BayesOutput")
    if output.get("fieldName", output.get("field")) != target:
        raise output.refuse(f"BayesOutput for {output.get('fieldName')!r}, the target is {target!r}")
    counts = {
        c.get("value") or "": c.number("count") for c in output.require("TargetValueCounts").findall("TargetValueCount")
    }
    if set(counts) != set(classes):
        raise output.refuse(f"counts for {sorted(counts)}, categories {classes}")
    threshold = model.number("threshold")
    inputs = model.require("BayesInputs").findall("BayesInput")
    if not inputs:
        raise model.refuse("no BayesInput")
    means = np.zeros((len(inputs), len(classes)))
    deviations = np.ones((len(inputs), len(classes)))
    names = []
    for i, bayes in enumerate(inputs):
        name = bayes.get("fieldName", bayes.get("field")) or ""
        if name not in env:
            raise bayes.refuse(f"{name!r} is not a continuous input")
        stats = bayes.find("TargetValueStats")
        if stats is None or len([c for c in bayes.children if c.tag != "Extension"]) != 1:
            raise bayes.refuse("only a continuous input with TargetValueStats is compiled (PairCounts: not yet)")
        seen = set()
        for stat in stats.findall("TargetValueStat"):
            category = stat.get("value") or ""
            gauss = stat.find("GaussianDistribution")
            if category not in classes or gauss is None:
                raise stat.refuse(f"value={category!r}: only GaussianDistribution for a category of the target")
            variance = gauss.number("variance")
            if not variance > 0:
                raise gauss.refuse(f"variance={variance}")
            means[i, classes.index(category)] = gauss.number("mean")
            deviations[i, classes.index(category)] = math.sqrt(variance)
            seen.add(category)
        if seen != set(classes):
            raise stats.refuse(f"stats for {sorted(seen)}, categories {classes}")
        names.append(env[name])
    x = graph.op("Concat", [graph.column(n) for n in names], axis=1)  # [N, F]
    x3 = graph.op("Unsqueeze", [x, graph.const(np.array([2]), "axes")])  # [N, F, 1]
    z = graph.op("Div", [graph.op("Sub", [x3, graph.const(means, "means")]), graph.const(deviations, "sd")])
    density = graph.op("Div", [graph.op("Exp", [graph.mul(graph.mul(z, z), graph.scalar(-0.5))]),
                               graph.const(deviations * math.sqrt(2 * math.pi), "norm")])  # fmt: skip
    log = graph.op("Log", [graph.op("Max", [density, graph.scalar(threshold)])])
    log = graph.op("Where", [graph.op("IsNaN", [x3]), graph.scalar(0.0), log])
    total = graph.add(graph.op("ReduceSum", [log, graph.const(np.array([1]), "axes")], keepdims=0),
                      graph.const(np.log(np.array([counts[c] for c in classes])), "prior"))  # fmt: skip
    return graph.split_columns(graph.op("Softmax", [total], axis=1), len(classes))
