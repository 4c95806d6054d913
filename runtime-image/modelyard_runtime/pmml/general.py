"""PMML GeneralRegressionModel over covariates (pure), computed as the reference evaluator (JPMML-Evaluator) does.

The linear predictor of a ParamMatrix is the sum, in PCell order, of each ``beta`` times its parameter's PPMatrix
row: the product of its covariates, each raised to the PPCell's ``value`` (a parameter without a row is an intercept).
A missing covariate makes the result missing.

- ``regression``, ``generalLinear``: the predictor; ``generalizedLinear``: the inverse ``linkFunction`` of the
  predictor plus ``offsetValue``, times ``trialsValue``.
- ``multinomialLogistic``: ``exp`` of each category's predictor, the reference category (``targetReferenceCategory``,
  else the one without PCells) 1, divided by their sum; ``generalizedLinear`` classification: the link value per
  category, the reference category one minus the category before it.
- ``ordinalMultinomial``: cumulative ``cumulativeLink`` of each category's intercept plus the shared
  predictor (and ``offsetValue``), the differences of consecutive cumulative values, the last category the rest.

Refused: factors (categorical predictors), contrast matrices, ``CoxRegression``, offset and trials variables.
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper

from .document import Element
from .graph import Graph

_LINKS = {"identity", "log", "logit", "cloglog", "loglog", "logc", "probit", "negbin", "oddspower", "power"}
_ERF_TERMS = 130
Cells = list[tuple[str, float]]
Rows = dict[str, list[tuple[str, float]]]


def _zero(graph: Graph, env: dict[str, str]) -> str:
    shape = graph.op("Shape", [next(iter(env.values()))])
    return str(graph.op("ConstantOfShape", [shape], value=helper.make_tensor("zero", TensorProto.DOUBLE, [1], [0.0])))


def _predictor(graph: Graph, env: dict[str, str], cells: Cells, rows: Rows) -> str:
    total = _zero(graph, env)
    for parameter, beta in cells:
        term = graph.scalar(beta)
        for name, exponent in rows.get(parameter, []):
            x = env[name] if exponent == 1.0 else graph.op("Pow", [env[name], graph.scalar(exponent)])
            if exponent == 0.0:  # a missing value stays missing (NaN to the power 0 is 1)
                x = graph.op("Where", [graph.op("IsNaN", [env[name]]), env[name], x])
            term = graph.mul(term, x)
        total = graph.add(total, term)
    return total


def _inverse_link(graph: Graph, eta: str, link: str, model: Element) -> str:
    """The mean from the linear predictor (the PMML spec's inverse link functions)."""

    def k(v: float) -> str:
        return graph.scalar(v)

    def exp(v: str) -> str:
        return str(graph.op("Exp", [v]))

    def neg(v: str) -> str:
        return str(graph.op("Neg", [v]))

    def sub(a: str, b: str) -> str:
        return str(graph.op("Sub", [a, b]))

    if link == "identity":
        return eta
    if link == "log":
        return exp(eta)
    if link == "logit":
        return str(graph.op("Sigmoid", [eta]))
    if link == "cloglog":
        return sub(k(1.0), exp(neg(exp(eta))))
    if link == "loglog":
        return exp(neg(exp(neg(eta))))
    if link == "logc":
        return sub(k(1.0), exp(eta))
    if link == "probit":
        return graph.mul(graph.add(_erf(graph, graph.mul(eta, k(1 / math.sqrt(2)))), k(1.0)), k(0.5))
    if link == "cauchit":
        return graph.add(graph.mul(_atan(graph, eta), k(1 / math.pi)), k(0.5))
    if link == "negbin":
        c = model.number("distParameter")
        return str(graph.op("Reciprocal", [graph.mul(sub(exp(neg(eta)), k(1.0)), k(c))]))
    d = model.number("linkParameter")
    if link == "power":
        return exp(eta) if d == 0 else str(graph.op("Pow", [eta, k(1 / d)]))
    if link == "oddspower":
        if d == 0:
            return str(graph.op("Sigmoid", [eta]))
        odds = graph.op("Pow", [graph.add(k(1.0), graph.mul(eta, k(d))), k(-1 / d)])
        return str(graph.op("Reciprocal", [graph.add(k(1.0), odds)]))
    raise model.refuse(f"link function {link}")


def _erf(graph: Graph, x: str) -> str:
    """erf in double (ONNX Runtime's Erf is float only): 2/sqrt(pi) exp(-x²) sum_n x (2x²)^n / (2n+1)!!, a series of
    positive terms, 130 of them (within 5e-16 for |x| <= 6; beyond, erf is ±1 in double)."""
    terms = np.arange(_ERF_TERMS, dtype=np.float64)
    inverse = 1.0 / np.array([math.prod(range(1, 2 * n + 2, 2)) for n in range(_ERF_TERMS)], dtype=np.float64)
    clamped = graph.op("Min", [graph.op("Max", [x, graph.scalar(-6.0)]), graph.scalar(6.0)])
    column = graph.column(clamped)
    powers = graph.op("Pow", [graph.mul(graph.mul(column, column), graph.scalar(2.0)), graph.const(terms, "n")])
    series = graph.op("ReduceSum", [graph.mul(powers, graph.const(inverse, "df")), graph.const(np.array([1]), "axes")],
                      keepdims=0)  # fmt: skip
    gauss = graph.op("Exp", [graph.op("Neg", [graph.mul(clamped, clamped)])])
    erf = graph.mul(graph.mul(graph.mul(series, clamped), gauss), graph.scalar(2 / math.sqrt(math.pi)))
    return str(graph.op("Where", [graph.op("IsNaN", [x]), x, erf]))


def _atan(graph: Graph, z: str) -> str:
    """atan in double: ONNX Runtime's float Atan refined by one Newton step."""
    y = graph.double(graph.op("Atan", [graph.op("Cast", [z], to=1)]))
    cos = graph.op("Cos", [y])
    return str(graph.op("Sub", [y, graph.mul(cos, graph.op("Sub", [graph.op("Sin", [y]), graph.mul(z, cos)]))]))


def _parse(model: Element, env: dict[str, str]) -> tuple[dict[str | None, Rows], dict[str | None, Cells]]:
    factors = model.find("FactorList")
    if factors is not None and factors.findall("Predictor"):
        raise factors.refuse("factors (categorical predictors)")
    covariates = model.find("CovariateList")
    names = {p.get("name") for p in covariates.findall("Predictor")} if covariates is not None else set()
    for p in covariates.findall("Predictor") if covariates is not None else []:
        if p.get("name") not in env:
            raise p.refuse(f"covariate {p.get('name')!r} is not a continuous input")
        if p.children:
            raise p.children[0].refuse()
    parameters = {p.get("name") for p in model.require("ParameterList").findall("Parameter")}
    rows: dict[str | None, Rows] = {}
    for cell in model.require("PPMatrix").findall("PPCell"):
        field, parameter = cell.get("predictorName") or "", cell.get("parameterName") or ""
        if field not in names or parameter not in parameters:
            raise cell.refuse(f"predictorName={field!r} is not a covariate or parameterName={parameter!r} unknown")
        rows.setdefault(cell.get("targetCategory"), {}).setdefault(parameter, []).append((field, cell.number("value")))
    cells: dict[str | None, Cells] = {}
    for cell in model.require("ParamMatrix").findall("PCell"):
        if cell.get("parameterName") not in parameters:
            raise cell.refuse(f"parameterName={cell.get('parameterName')!r} is not in the ParameterList")
        cells.setdefault(cell.get("targetCategory"), []).append((cell.get("parameterName") or "", cell.number("beta")))
    return rows, cells


def compile_general(
    model: Element, graph: Graph, env: dict[str, str], classes: list[str]
) -> tuple[str | None, list[str]]:
    """(the predicted value, []) for a regression, (None, a probability per class) for a classification."""
    kind = model.get("modelType") or ""
    for attr in ("offsetVariable", "trialsVariable"):
        if model.get(attr) is not None:
            raise model.refuse(f"{attr}")
    rows, cells = _parse(model, env)
    offset = model.number("offsetValue", 0.0)
    link = model.get("linkFunction") or ""
    if kind == "generalizedLinear" and link not in _LINKS:
        raise model.refuse(f"linkFunction={link}")

    def linked(eta: str) -> str:
        value = _inverse_link(graph, graph.add(eta, graph.scalar(offset)), link, model)
        trials = model.number("trialsValue", 1.0)
        return value if trials == 1.0 else graph.mul(value, graph.scalar(trials))

    if not classes:
        if kind not in ("regression", "generalLinear", "generalizedLinear") or set(cells) != {None}:
            raise model.refuse(f"modelType={kind} for a regression, with one ParamMatrix")
        eta = _predictor(graph, env, cells[None], rows.get(None, {}))
        return (linked(eta) if kind == "generalizedLinear" else eta), []
    order = list(classes)
    reference = model.get("targetReferenceCategory")
    if kind in ("multinomialLogistic", "generalizedLinear") and reference is None:
        absent = [c for c in classes if c not in cells]
        if len(absent) != 1:
            raise model.refuse(f"the reference category: categories without PCells {absent}")
        reference = absent[0]
    if reference is not None and reference in order:
        order.remove(reference)
        order.append(reference)
    values: list[str] = []
    previous = None
    for i, category in enumerate(order[:-1]):
        category_rows = rows.get(category, rows.get(None, {})) if rows else {}
        if kind in ("multinomialLogistic", "generalizedLinear"):
            mine = cells.get(category, cells.get(None) if len(classes) == 2 else None)
        elif kind == "ordinalMultinomial":
            intercept = cells.get(category, [])
            if len(intercept) != 1 or None not in cells:
                raise model.refuse(f"category {category!r}: one intercept PCell and shared PCells")
            mine = intercept + cells[None]
        else:
            raise model.refuse(f"modelType={kind} for a classification")
        if mine is None:
            raise model.refuse(f"no PCells for category {category!r}")
        eta = _predictor(graph, env, mine, category_rows)
        if kind == "multinomialLogistic":
            values.append(str(graph.op("Exp", [eta])))
        elif kind == "generalizedLinear":
            values.append(linked(eta))
        else:
            cumulative = _cumulative(graph, graph.add(eta, graph.scalar(offset)), model)
            values.append(cumulative if previous is None else str(graph.op("Sub", [cumulative, previous])))
            previous = cumulative
        if i == len(order) - 2 and kind == "generalizedLinear":
            previous = values[-1]
    one = graph.add(_zero(graph, env), graph.scalar(1.0))
    if kind == "multinomialLogistic":
        values.append(one)
        total = values[0]
        for v in values[1:]:
            total = graph.add(total, v)
        values = [str(graph.op("Div", [v, total])) for v in values]
    else:
        values.append(str(graph.op("Sub", [one, previous])) if previous is not None else one)
    return None, [values[order.index(c)] for c in classes]


def _cumulative(graph: Graph, eta: str, model: Element) -> str:
    link = model.get("cumulativeLink") or ""
    if link not in ("logit", "probit", "cloglog", "loglog", "cauchit"):
        raise model.refuse(f"cumulativeLink={link}")
    return _inverse_link(graph, eta, link, model)
