"""PMML 4.x to ONNX (pure): ``compile_pmml(bytes) -> onnx.ModelProto``.

Compiled today: RegressionModel (regression; classification with softmax, or logit/none for two categories;
NumericPredictor and CategoricalPredictor), TreeModel (regression and classification, the four missing-value
strategies, both no-true-child strategies, simple, set and compound predicates), MiningModel segmentation (sum,
average, weightedAverage, majorityVote, weightedMajorityVote, modelChain: random forests and gradient boosting as
sklearn2pmml exports them), NeuralNetwork (neural.py), SupportVectorMachineModel (svm.py), NaiveBayesModel (bayes.py),
GeneralRegressionModel (general.py), Targets rescaling, numeric and string inputs with the MiningField's
missing-value, invalid-value and outlier treatments (:mod:`.inputs`), and the TransformationDictionary's and
LocalTransformations' DerivedFields (:mod:`.transforms`). Every other element is refused with its name and line
(docs/formats.md).

The ONNX model has one input per active field (``[N]`` double, NaN for a missing value; ``[N]`` string for a string
field, the empty string for a missing value) and one output per result: the target (the predicted value, or the
predicted category as a string) and each ``probability`` OutputField; all are missing where the row is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto

from .bayes import compile_bayes
from .document import Element, PMMLError, parse
from .general import compile_general
from .graph import Graph
from .inputs import Context, invalidate, prepare
from .neural import compile_neural
from .svm import compile_svm
from .transforms import Transformer
from .trees import TreeCompiler

MODELS = {"RegressionModel", "TreeModel", "MiningModel", "NeuralNetwork", "SupportVectorMachineModel",
          "NaiveBayesModel", "GeneralRegressionModel"}  # fmt: skip
KNOWN_LATER = {"ClusteringModel",
               "RuleSetModel", "Scorecard", "NearestNeighborModel", "TextModel", "TimeSeriesModel",
               "BaselineModel", "AssociationModel", "SequenceModel", "BayesianNetworkModel", "GaussianProcessModel",
               "AnomalyDetectionModel"}  # fmt: skip


@dataclass
class Prediction:
    """A (sub)model's result as graph values: a number, or class probabilities in the target's category order, or
    (a classifier without probabilities) only the label."""

    value: str | None = None
    label: str | None = None
    probs: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def compile_pmml(data: bytes) -> onnx.ModelProto:
    root = parse(data)
    fields = Context({f.get("name") or "": f for f in root.require("DataDictionary").findall("DataField")})
    models = [c for c in root.children if c.tag in MODELS or c.tag in KNOWN_LATER]
    if not models:
        raise PMMLError("the document has no model element")
    model = models[0]
    if model.tag not in MODELS:
        raise model.refuse("this model type is not compiled yet")
    if model.get("isScorable", "true") == "false":
        raise model.refuse("isScorable=false")
    graph = Graph()
    env: dict[str, str] = {}
    schema = model.require("MiningSchema")
    inputs = prepare(schema, graph, env, fields)
    target = next((mf.get("name") for mf in schema.findall("MiningField")
                   if mf.get("usageType") in ("target", "predicted")), None)  # fmt: skip
    transforms = root.find("TransformationDictionary")
    if transforms is not None:
        Transformer(graph, env, fields).derive(transforms)
    prediction = _model(model, graph, env, fields, target)
    outputs: list[tuple[str, str, int]] = []
    if prediction.value is not None:
        outputs.append((prediction.value, target or "predicted", TensorProto.DOUBLE))
    else:
        outputs.append((prediction.label or _label(graph, prediction), target or "predicted", TensorProto.STRING))
    for of in _final_outputs(model):
        feature = of.get("feature", "predictedValue")
        name = of.get("name") or ""
        if feature == "probability":
            category = of.get("value")
            if category not in prediction.classes:
                raise of.refuse(f"probability of {category!r}, which is not a category of the target")
            outputs.append((prediction.probs[prediction.classes.index(category)], name, TensorProto.DOUBLE))
        elif feature == "predictedValue" and prediction.value is not None:
            outputs.append((prediction.value, name, TensorProto.DOUBLE))
        else:
            raise of.refuse(f"OutputField feature={feature}")
    return graph.model(inputs, [(invalidate(graph, fields, v, t), name, t) for v, name, t in outputs])


def _final_outputs(model: Element) -> list[Element]:
    """The model's final OutputFields; a model chain without its own gives its last segment's (sklearn2pmml's
    gradient boosting puts the probabilities there)."""
    out = model.find("Output")
    segmentation = model.find("Segmentation")
    if out is None and segmentation is not None and segmentation.get("multipleModelMethod") == "modelChain":
        last = segmentation.findall("Segment")[-1]
        inner = next((c for c in last.children if c.tag in MODELS), None)
        return _final_outputs(inner) if inner is not None else []
    return [] if out is None else [o for o in out.findall("OutputField") if o.get("isFinalResult", "true") != "false"]


def _label(graph: Graph, prediction: Prediction) -> str:
    """The most probable category, as a string; the empty string where the probabilities are missing."""
    stacked = graph.op("Concat", [graph.column(p) for p in prediction.probs], axis=1)
    index = graph.op("ArgMax", [stacked], axis=1, keepdims=0)
    label = graph.op("Gather", [graph.const(np.array(prediction.classes), "classes"), index])
    missing = graph.op("IsNaN", [prediction.probs[0]])
    return str(graph.op("Where", [missing, graph.const(np.array(""), "empty"), label]))


def _model(model: Element, graph: Graph, env: dict[str, str], fields: Context, target: str | None) -> Prediction:
    local = model.find("LocalTransformations")
    if local is not None:
        env = dict(env)
        Transformer(graph, env, fields).derive(local)
    function = model.get("functionName")
    if function not in ("regression", "classification"):
        raise model.refuse(f"functionName={function}")
    schema = model.find("MiningSchema")
    for mf in schema.findall("MiningField") if schema is not None else []:
        if mf.get("usageType") in ("target", "predicted") and target is None:
            target = mf.get("name")
    classes = fields.categories(target or "") if function == "classification" else []
    if model.tag == "RegressionModel":
        prediction = _regression(model, graph, env, fields, classes)
    elif model.tag == "TreeModel":
        trees = TreeCompiler(classes or None, fields)
        trees.add(model, 1.0)
        prediction = _from_trees(trees, graph, env, classes)
    elif model.tag == "MiningModel":
        prediction = _mining(model, graph, env, fields, target, classes)
    elif model.tag in READ_EVERY_ROW:
        prediction = _dense(model, graph, env, fields, target, classes)
    else:
        raise model.refuse("this model type is not compiled yet")
    return _rescaled(model, graph, prediction)


READ_EVERY_ROW = {"NeuralNetwork", "SupportVectorMachineModel", "GeneralRegressionModel", "NaiveBayesModel"}


def _dense(model: Element, graph: Graph, env: dict[str, str], fields: Context, target: str | None,
           classes: list[str]) -> Prediction:  # fmt: skip
    """The models that read each of their fields on every row: numeric fields only (a string field's category codes
    are not numbers these models may compute with: reading one is refused as not an input), and a row where one of
    their fields is invalid is invalid."""
    env = {name: value for name, value in env.items() if name not in fields.codes}
    schema = model.find("MiningSchema")
    for mf in schema.findall("MiningField") if schema is not None else []:
        if mf.get("usageType", "active") == "active" and (mf.get("name") or "") in env:
            fields.use(mf.get("name") or "")
    if model.tag == "NeuralNetwork":
        value, probs = compile_neural(model, graph, env, classes, target)
        prediction = Prediction(value=value, probs=probs, classes=classes if probs else [])
    elif model.tag == "SupportVectorMachineModel":
        value, label = compile_svm(model, graph, env, classes)
        prediction = Prediction(value=value, label=label)
    elif model.tag == "GeneralRegressionModel":
        value, probs = compile_general(model, graph, env, classes)
        prediction = Prediction(value=value, probs=probs, classes=classes if probs else [])
    else:  # NaiveBayesModel
        prediction = Prediction(probs=compile_bayes(model, graph, env, classes, target), classes=classes)
    return prediction


def _from_trees(trees: TreeCompiler, graph: Graph, env: dict[str, str], classes: list[str]) -> Prediction:
    values = trees.emit(graph, env)
    return Prediction(probs=values, classes=classes) if classes else Prediction(value=values[0])


def _rescaled(model: Element, graph: Graph, prediction: Prediction) -> Prediction:
    targets = model.find("Targets")
    if targets is None:
        return prediction
    for t in targets.findall("Target"):
        if t.children or t.get("castInteger") or t.get("min") or t.get("max"):
            raise t.refuse("only rescaleFactor and rescaleConstant are compiled")
        if prediction.value is None:
            raise t.refuse("rescaling a classification")
        value = prediction.value
        if t.number("rescaleFactor", 1.0) != 1.0:
            value = graph.mul(value, graph.scalar(t.number("rescaleFactor")))
        if t.number("rescaleConstant", 0.0) != 0.0:
            value = graph.add(value, graph.scalar(t.number("rescaleConstant")))
        prediction = Prediction(value=value)
    return prediction


def _linear(table: Element, graph: Graph, env: dict[str, str], fields: Context) -> str:
    value = graph.op("Mul", [next(iter(env.values())), graph.scalar(0.0)])  # a zero of the batch's shape
    value = graph.op("Where", [graph.op("IsNaN", [value]), graph.scalar(0.0), value])  # even where it is NaN
    value = graph.add(value, graph.scalar(table.number("intercept", 0.0)))
    for child in table.children:
        if child.tag not in ("NumericPredictor", "CategoricalPredictor"):
            raise child.refuse()
        name = child.get("name") or ""
        if name not in env:
            raise child.refuse(f"{name!r} is not an input or an earlier result")
        x = env[name]
        fields.use(name)
        if child.tag == "CategoricalPredictor":  # 1 where the field has the value, 0 otherwise (missing too)
            hit = graph.double(graph.op("Equal", [x, graph.scalar(fields.code(name, child.get("value"), child))]))
            value = graph.add(value, graph.mul(hit, graph.scalar(child.number("coefficient"))))
            continue
        exponent = child.number("exponent", 1.0)
        if exponent != 1.0:
            x = graph.op("Pow", [x, graph.scalar(exponent)])
        value = graph.add(value, graph.mul(x, graph.scalar(child.number("coefficient"))))
    return str(value)


def _regression(model: Element, graph: Graph, env: dict[str, str], fields: Context,
                classes: list[str]) -> Prediction:  # fmt: skip
    tables = model.findall("RegressionTable")
    method = model.get("normalizationMethod", "none")
    if not classes:
        if len(tables) != 1 or method != "none":
            raise model.refuse(f"a regression with {len(tables)} tables and normalizationMethod={method}")
        return Prediction(value=_linear(tables[0], graph, env, fields))
    by_class = {t.get("targetCategory"): t for t in tables}
    if set(by_class) != set(classes):
        raise model.refuse(f"RegressionTables for {sorted(map(str, by_class))}, categories {classes}")
    ys = [_linear(by_class[c], graph, env, fields) for c in classes]
    if method == "softmax":
        stacked = graph.op("Concat", [graph.column(y) for y in ys], axis=1)
        return Prediction(
            probs=graph.split_columns(graph.op("Softmax", [stacked], axis=1), len(classes)), classes=classes
        )
    if len(classes) == 2 and method in ("logit", "none"):
        # PMML: for two categories the first is normalised and the second gets the rest
        first = tables[0].get("targetCategory")
        y = ys[classes.index(first or "")]
        p = graph.op("Sigmoid", [y]) if method == "logit" else y
        rest = graph.op("Sub", [graph.scalar(1.0), p])
        probs = [p, rest] if classes[0] == first else [rest, p]
        return Prediction(probs=probs, classes=classes)
    raise model.refuse(f"normalizationMethod={method} for {len(classes)} categories")


def _mining(model: Element, graph: Graph, env: dict[str, str], fields: Context, target: str | None,
            classes: list[str]) -> Prediction:  # fmt: skip
    seg = model.require("Segmentation")
    method = seg.get("multipleModelMethod")
    segments = seg.findall("Segment")
    if not segments:
        raise seg.refuse("no segments")
    for s in segments:
        if s.find("True") is None:
            raise s.refuse("only segments with a <True/> predicate are compiled")
    inner = [next((c for c in s.children if c.tag in MODELS or c.tag in KNOWN_LATER), None) for s in segments]
    if any(m is None for m in inner):
        raise seg.refuse("a segment without a model")
    models = [m for m in inner if m is not None]
    if method == "modelChain":
        local = dict(env)
        result = Prediction()
        for m in models:
            result = _model(m, graph, local, fields, None)
            out = m.find("Output")
            for of in out.findall("OutputField") if out is not None else []:
                feature = of.get("feature", "predictedValue")
                if feature == "predictedValue" and result.value is not None:
                    local[of.get("name") or ""] = result.value
                elif feature == "probability" and of.get("value") in result.classes:
                    local[of.get("name") or ""] = result.probs[result.classes.index(of.get("value") or "")]
                else:
                    raise of.refuse(f"OutputField feature={feature} in a model chain")
        return result
    weights = [s.number("weight", 1.0) for s in segments]
    if method in ("sum", "average", "weightedAverage", "majorityVote", "weightedMajorityVote"):
        vote = method in ("majorityVote", "weightedMajorityVote")
        if method == "sum":
            scale = [1.0] * len(models)
        elif method in ("average", "majorityVote"):
            scale = [1.0 / len(models)] * len(models)
        else:
            scale = [w / sum(weights) for w in weights]
        if vote and not classes:
            raise seg.refuse(f"{method} for a regression")
        if method == "sum" and classes:
            raise seg.refuse("sum for a classification")
        if all(m.tag == "TreeModel" for m in models):
            trees = TreeCompiler(classes or None, fields)
            for m, w in zip(models, scale, strict=True):
                trees.add(m, w, vote=vote)
            return _from_trees(trees, graph, env, classes)
        if vote:
            raise seg.refuse(f"{method} over segments that are not TreeModels")
        parts = [_model(m, graph, env, fields, target) for m in models]
        return _combine(graph, parts, scale, classes)
    raise seg.refuse(f"multipleModelMethod={method}")


def _combine(graph: Graph, parts: list[Prediction], scale: list[float], classes: list[str]) -> Prediction:
    def total(values: list[str]) -> str:
        acc = graph.mul(values[0], graph.scalar(scale[0]))
        for v, w in zip(values[1:], scale[1:], strict=True):
            acc = graph.add(acc, graph.mul(v, graph.scalar(w)))
        return acc

    if any(p.label is not None for p in parts):
        raise PMMLError("combining segments that give a label without probabilities")
    if classes:
        return Prediction(probs=[total([p.probs[k] for p in parts]) for k in range(len(classes))], classes=classes)
    return Prediction(value=total([p.value or "" for p in parts]))
