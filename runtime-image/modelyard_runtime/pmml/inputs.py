"""The model's inputs: one per active MiningField, prepared the way PMML says (pure: builds graph nodes).

A numeric field is an ``[N]`` double input (NaN: missing). A string field (categorical or ordinal, with its valid
``<Value>``s in the DataDictionary) is an ``[N]`` string input (the empty string: missing); an ONNX-ML LabelEncoder
turns it into a code: the index of its category among the valid values, NaN for a missing value (the empty string or
a ``property="missing"`` marker) and -1 for a value that is not a valid category. Predicates, regression terms and
transformations on the field then compare codes, so every later step works on doubles.

Then, in JPMML's order: a value that is not valid (not a declared category, or outside every ``<Interval>`` of a
continuous field) gets the MiningField's ``invalidValueTreatment`` (``returnInvalid``: the row's results are missing;
``asMissing``: the value becomes missing; ``asValue``: ``invalidValueReplacement``; ``asIs``); a missing value gets
``missingValueTreatment="returnInvalid"`` or ``missingValueReplacement``; a valid continuous value gets ``outliers``
(``asMissingValues`` or ``asExtremeValues`` with ``lowValue``/``highValue``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from .document import Element, PMMLError
from .graph import Graph

NUMERIC = {"double", "float", "integer"}


@dataclass
class Context:
    """What the compiler knows beside the graph values in ``env``: the categories behind each string field's codes,
    the DataDictionary, the TransformationDictionary's functions, each field's rows that are invalid (``invalid_of``:
    a boolean tensor), and the masks of rows whose result is invalid.

    Like the reference, a field's invalid value fails the row only where the model reads the field: a model that
    reads every field it names (a regression) calls :meth:`use`; a tree checks the field on the paths that test it.
    """

    fields: dict[str, Element]
    codes: dict[str, list[str]] = field(default_factory=dict)
    functions: dict[str, Element] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    invalid_of: dict[str, str] = field(default_factory=dict)

    def use(self, name: str) -> None:
        """The model reads ``name`` on every row: the rows where it is invalid are invalid."""
        mask = self.invalid_of.get(name)
        if mask is not None and mask not in self.invalid:
            self.invalid.append(mask)

    def categories(self, name: str) -> list[str]:
        elem = self.fields.get(name)
        if elem is None:
            raise PMMLError(f"the target {name!r} is not in the DataDictionary")
        values = valid_values(elem)
        if not values:
            raise elem.refuse("a categorical target without <Value> elements")
        return values

    def code(self, name: str, value: str | None, where: Element) -> float:
        """The number a predicate compares ``name`` with: a string field's category index, else the value."""
        if value is None:
            raise where.refuse("a comparison without a value")
        if name in self.codes:
            if value not in self.codes[name]:
                raise where.refuse(f"{value!r} is not a category of {name!r}")
            return float(self.codes[name].index(value))
        if value in ("true", "false"):
            return 1.0 if value == "true" else 0.0
        try:
            return float(value)
        except ValueError:
            raise where.refuse(f"{value!r} is not a number, and {name!r} is not a string field") from None


def valid_values(elem: Element) -> list[str]:
    return [v.get("value") or "" for v in elem.findall("Value") if v.get("property", "valid") == "valid"]


def prepare(schema: Element, graph: Graph, env: dict[str, str], ctx: Context) -> list[onnx.ValueInfoProto]:
    """Add one input per active MiningField to ``env`` (prepared); returns the graph inputs."""
    inputs = []
    for mf in schema.findall("MiningField"):
        name = mf.get("name") or ""
        usage = mf.get("usageType", "active")
        if usage in ("target", "predicted"):
            continue
        if usage != "active":
            raise mf.refuse(f"usageType={usage}")
        dd = ctx.fields.get(name)
        if dd is None:
            raise mf.refuse(f"field {name!r} is not in the DataDictionary")
        optype, dtype = dd.get("optype"), dd.get("dataType")
        if dtype == "string" and optype in ("categorical", "ordinal"):
            inputs.append(helper.make_tensor_value_info(name, TensorProto.STRING, ["N"]))
            value, valid = _string(dd, name, graph, ctx)
        elif dtype in NUMERIC and optype in ("continuous", "categorical", "ordinal"):
            inputs.append(helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["N"]))
            value, valid = _numeric(dd, name, graph)
        else:
            raise dd.refuse(f"field {name!r}: optype={optype} dataType={dtype}")
        env[name] = _treat(mf, dd, name, value, valid, graph, ctx)
    return inputs


def _string(dd: Element, name: str, graph: Graph, ctx: Context) -> tuple[str, str | None]:
    values = valid_values(dd)
    if not values:
        raise dd.refuse(f"a string field {name!r} without valid <Value> elements")
    if "" in values:
        raise dd.refuse(f"the empty string is a category of {name!r}; it is the missing value here")
    markers = [v.get("value") or "" for v in dd.findall("Value") if v.get("property") == "missing"]
    keys = values + [m for m in markers if m not in values] + [""]
    codes = [float(i) for i in range(len(values))] + [math.nan] * (len(keys) - len(values))
    ctx.codes[name] = values
    encoded = graph.op("LabelEncoder", [name], domain="ai.onnx.ml", keys_strings=keys, values_floats=codes,
                       default_float=-1.0)  # fmt: skip
    code = graph.double(encoded)
    valid = graph.op("GreaterOrEqual", [code, graph.scalar(0.0)])  # false for -1 and for NaN
    return code, valid


def _numeric(dd: Element, name: str, graph: Graph) -> tuple[str, str | None]:
    value = name
    markers = [v for v in dd.findall("Value") if v.get("property") == "missing"]
    for m in markers:
        hit = graph.op("Equal", [value, graph.scalar(m.number("value"))])
        value = graph.op("Where", [hit, graph.scalar(math.nan), value])
    if dd.get("optype") == "continuous":
        if any(v.get("property", "valid") != "missing" for v in dd.findall("Value")):
            raise dd.refuse(f"valid or invalid <Value>s of the continuous field {name!r}")
        intervals = dd.findall("Interval")
        if not intervals:
            return value, None
        return value, _any([interval(i, value, graph) for i in intervals], graph)
    numbers = [v.number("value") for v in dd.findall("Value") if v.get("property", "valid") == "valid"]
    if not numbers:
        return value, None
    return value, _any([graph.op("Equal", [value, graph.scalar(n)]) for n in numbers], graph)


def interval(elem: Element, x: str, graph: Graph) -> str:
    """A boolean tensor: ``x`` lies in the <Interval> (false for NaN)."""
    closure = elem.get("closure") or ""
    if closure not in ("openOpen", "openClosed", "closedOpen", "closedClosed"):
        raise elem.refuse(f"closure={closure}")
    checks = []
    if elem.get("leftMargin") is not None:
        op = "GreaterOrEqual" if closure.startswith("closed") else "Greater"
        checks.append(graph.op(op, [x, graph.scalar(elem.number("leftMargin"))]))
    if elem.get("rightMargin") is not None:
        op = "LessOrEqual" if closure.endswith("Closed") else "Less"
        checks.append(graph.op(op, [x, graph.scalar(elem.number("rightMargin"))]))
    if not checks:
        return str(graph.op("Not", [graph.op("IsNaN", [x])]))
    return checks[0] if len(checks) == 1 else str(graph.op("And", checks))


def _any(masks: list[str], graph: Graph) -> str:
    acc = masks[0]
    for m in masks[1:]:
        acc = graph.op("Or", [acc, m])
    return acc


def _treat(mf: Element, dd: Element, name: str, value: str, valid: str | None, graph: Graph, ctx: Context) -> str:
    nan = graph.scalar(math.nan)
    if valid is not None:
        invalid = graph.op("And", [graph.op("Not", [valid]), graph.op("Not", [graph.op("IsNaN", [value])])])
        how = mf.get("invalidValueTreatment", "returnInvalid")
        if how == "returnInvalid":
            ctx.invalid_of[name] = invalid
        elif how == "asMissing":
            value = graph.op("Where", [invalid, nan, value])
        elif how == "asValue":
            replacement = graph.scalar(ctx.code(name, mf.get("invalidValueReplacement"), mf))
            value = graph.op("Where", [invalid, replacement, value])
        elif how != "asIs":
            raise mf.refuse(f"invalidValueTreatment={how}")
    missing = graph.op("IsNaN", [value])
    if mf.get("missingValueTreatment") == "returnInvalid":
        earlier = ctx.invalid_of.get(name)
        ctx.invalid_of[name] = missing if earlier is None else graph.op("Or", [earlier, missing])
    elif mf.get("missingValueReplacement") is not None:
        replacement = graph.scalar(ctx.code(name, mf.get("missingValueReplacement"), mf))
        value = graph.op("Where", [missing, replacement, value])
    outliers = mf.get("outliers", "asIs")
    if outliers != "asIs" and dd.get("optype") != "continuous":
        raise mf.refuse(f"outliers={outliers} on a field that is not continuous")
    if outliers in ("asMissingValues", "asExtremeValues"):
        low, high = graph.scalar(mf.number("lowValue")), graph.scalar(mf.number("highValue"))
        below, above = graph.op("Less", [value, low]), graph.op("Greater", [value, high])
        if outliers == "asMissingValues":
            value = graph.op("Where", [graph.op("Or", [below, above]), nan, value])
        else:
            value = graph.op("Where", [above, high, graph.op("Where", [below, low, value])])
    elif outliers != "asIs":
        raise mf.refuse(f"outliers={outliers}")
    return str(value)


def invalidate(graph: Graph, ctx: Context, value: str, dtype: int) -> str:
    """``value`` where no input of the row was invalid; missing (NaN, or the empty string) where one was."""
    if not ctx.invalid:
        return value
    empty = graph.const(np.array(""), "empty") if dtype == TensorProto.STRING else graph.scalar(math.nan)
    return str(graph.op("Where", [_any(ctx.invalid, graph), empty, value]))
