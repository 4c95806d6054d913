"""PMML DerivedFields (TransformationDictionary, LocalTransformations) as graph values in ``env`` (pure).

Each expression becomes ``[N]`` doubles (NaN: missing) or, for a string result, category codes like a string input's
(:mod:`.inputs`). ``Apply`` follows JPMML-Evaluator's order: when an argument is missing and ``mapMissingTo`` is set,
that is the result; else ``+ - * /`` are missing when an argument is, ``min``, ``max``, ``sum`` and ``avg`` skip
missing values, ``if`` is missing where its branch is, and every other function fails the row (as a missing ``if``
condition does). A NaN result (infinities are valid) is invalid and
gets the Apply's ``invalidValueTreatment``: ``returnInvalid`` or ``asIs``: the rows that read the field have missing
results; ``asMissing``: the result is missing. A missing result then takes ``defaultValue``. The
TransformationDictionary's ``DefineFunction``s are inlined where they are applied. A DerivedField's
``dataType="float"`` rounds to float32, as the reference does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .document import Element
from .graph import Graph
from .inputs import Context, interval
from .norms import Norms

UNARY = {"abs": "Abs", "exp": "Exp", "sqrt": "Sqrt", "ln": "Log", "floor": "Floor", "ceil": "Ceil"}
BINARY = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div", "pow": "Pow"}
AGGREGATE = {"min": "Min", "max": "Max", "sum": "Sum", "avg": "Sum"}
COMPARE = {"equal": "Equal", "notEqual": "Equal", "lessThan": "Less", "lessOrEqual": "LessOrEqual",
           "greaterThan": "Greater", "greaterOrEqual": "GreaterOrEqual"}  # fmt: skip
LENIENT = {"+", "-", "*", "/", "if", *AGGREGATE}  # missing arguments give a missing result, not a failure
ARITHMETIC = {*UNARY, *BINARY, *AGGREGATE, "log10", "round"}
EXPRESSIONS = {"Constant", "FieldRef", "Apply", "NormContinuous", "NormDiscrete", "Discretize", "MapValues"}


@dataclass
class Value:
    """An expression's result: a tensor (``scalar``: a constant, not yet of the batch's shape), codes into
    ``categories``, or a string ``literal`` that only a comparison with a string field can use."""

    tensor: str = ""
    categories: list[str] | None = None
    literal: str | None = None
    scalar: bool = False


class Transformer(Norms):
    def __init__(self, graph: Graph, env: dict[str, str], ctx: Context) -> None:
        self.graph, self.env, self.ctx = graph, env, ctx
        self.scope: list[dict[str, Value]] = []  # the parameters of the DefineFunctions being inlined
        self.reads: list[str] = []  # the invalid masks of what the field being derived reads

    def derive(self, container: Element) -> None:
        """Add each DerivedField of ``container`` to ``env``, in order (a field may use the ones before it)."""
        for df in container.children:
            if df.tag == "DefineFunction":
                self.ctx.functions[df.get("name") or ""] = df
                continue
            if df.tag != "DerivedField":
                raise df.refuse()
            name = df.get("name") or ""
            self.reads = []
            expression = self._one(df)
            if df.get("dataType") == "integer" and expression.tag not in ("Discretize", "MapValues"):
                # the reference fails the row when a double-valued expression meets an integer field
                raise df.refuse(f"dataType=integer for a {expression.tag}")
            value = self.expression(expression, df)
            if self.reads:
                self.ctx.invalid_of[name] = self._any(list(dict.fromkeys(self.reads)))
            else:
                self.ctx.invalid_of.pop(name, None)
            self.env[name] = self._typed(df, value)
            if value.categories is not None:
                self.ctx.codes[name] = value.categories
            else:
                self.ctx.codes.pop(name, None)

    def _one(self, parent: Element) -> Element:
        found = [c for c in parent.children if c.tag in EXPRESSIONS]
        if len(found) != 1:
            other = next((c for c in parent.children if c.tag not in EXPRESSIONS | {"Extension", "Value"}), parent)
            raise other.refuse("an expression this compiler does not know")
        return found[0]

    def _typed(self, df: Element, value: Value) -> str:
        dtype = df.get("dataType")
        if value.literal is not None:
            raise df.refuse("a string constant as a field")
        if (dtype == "string") != (value.categories is not None):
            raise df.refuse(f"dataType={dtype} for a {'string' if value.categories else 'numeric'} expression")
        tensor = self._batch(value).tensor
        if dtype == "float":
            tensor = self.graph.double(self.graph.op("Cast", [tensor], to=1))
        elif dtype not in ("double", "string", "boolean", "integer"):
            raise df.refuse(f"dataType={dtype}")
        return tensor

    def _batch(self, value: Value) -> Value:
        if not value.scalar:
            return value
        shape = self.graph.op("Shape", [next(iter(self.env.values()))])
        return Value(self.graph.op("Expand", [value.tensor, shape]), value.categories)

    def field(self, name: str, where: Element) -> Value:
        for scope in reversed(self.scope):
            if name in scope:
                return scope[name]
        if name not in self.env:
            raise where.refuse(f"{name!r} is not an input or an earlier derived field")
        if name in self.ctx.invalid_of:
            self.reads.append(self.ctx.invalid_of[name])
        return Value(self.env[name], self.ctx.codes.get(name))

    def missing_to(self, elem: Element, value: Value, categories: list[str] | None, missing: str) -> Value:
        """``value`` where ``missing`` is false, else ``elem``'s ``mapMissingTo``, if it has one."""
        raw = elem.get("mapMissingTo")
        if raw is None:
            return value
        replacement = self.constant(raw, categories, elem)
        return Value(self.graph.op("Where", [missing, replacement, value.tensor]), value.categories)

    def constant(self, raw: str, categories: list[str] | None, where: Element) -> str:
        """A constant in the code space of ``categories`` (its index)."""
        if categories is not None:
            if raw not in categories:  # an undeclared value kept asIs would equal it: refuse rather than guess
                raise where.refuse(f"{raw!r} is not a declared category")
            return self.graph.scalar(float(categories.index(raw)))
        return self.graph.scalar(self._number(raw, where))

    def _number(self, raw: str, where: Element) -> float:
        if raw in ("true", "false"):
            return 1.0 if raw == "true" else 0.0
        try:
            return float(raw)
        except ValueError:
            raise where.refuse(f"{raw!r} is not a number") from None

    def expression(self, e: Element, where: Element) -> Value:
        if e.tag == "Constant":
            if e.get("missing") == "true":
                return Value(self.graph.scalar(math.nan), scalar=True)
            if e.get("dataType") == "string":
                return Value(literal=e.text.strip())
            return Value(self.graph.scalar(self._number(e.text.strip(), e)), scalar=True)
        if e.tag == "FieldRef":
            value = self.field(e.get("field") or "", e)
            return self.missing_to(e, value, value.categories, self.graph.op("IsNaN", [value.tensor]))
        if e.tag == "Apply":
            return self.apply(e)
        if e.tag == "NormContinuous":
            return self.norm_continuous(e)
        if e.tag == "NormDiscrete":
            return self.norm_discrete(e)
        if e.tag == "Discretize":
            return self.discretize(e)
        if e.tag == "MapValues":
            return self.map_values(e)
        raise e.refuse()

    def apply(self, e: Element) -> Value:
        g = self.graph
        name = e.get("function") or ""
        args = [self.expression(c, e) for c in e.children if c.tag != "Extension"]
        if name in self.ctx.functions:
            return self._inline(e, self.ctx.functions[name], args)
        tensors = [a.tensor for a in args if not a.scalar and a.literal is None]
        missing = self._any([g.op("IsNaN", [t]) for t in tensors]) if tensors else None
        if name in ("isMissing", "isNotMissing"):
            if len(args) != 1 or missing is None:
                raise e.refuse(f"{name} of {len(args)} arguments")
            test = missing if name == "isMissing" else g.op("Not", [missing])
            return self._defaulted(e, Value(g.double(test)))
        if e.get("mapMissingTo") is None:  # the reference fails most functions on a missing argument
            strict = missing if name not in LENIENT else None
            if name == "if" and not args[0].scalar:
                strict = g.op("IsNaN", [args[0].tensor])
            if strict is not None:
                self.reads.append(strict)
        result = self._function(e, name, args)
        if name in ARITHMETIC:  # a NaN from values that are not missing is invalid (infinities are not)
            nan = g.op("IsNaN", [result.tensor])
            bad = nan if missing is None else g.op("And", [nan, g.op("Not", [missing])])
            how = e.get("invalidValueTreatment", "returnInvalid")
            if how in ("returnInvalid", "asIs"):
                self.reads.append(bad)
            elif how == "asMissing":
                result = Value(g.op("Where", [bad, g.scalar(math.nan), result.tensor]), scalar=result.scalar)
            else:
                raise e.refuse(f"invalidValueTreatment={how}")
        result = self._defaulted(e, result)
        if missing is not None and e.get("mapMissingTo") is not None:
            result = self.missing_to(e, self._batch(result), result.categories, missing)
        return result

    def _defaulted(self, e: Element, result: Value) -> Value:
        if e.get("defaultValue") is None:
            return result
        result = self._batch(result)
        default = self.constant(e.get("defaultValue") or "", result.categories, e)
        nan = self.graph.op("IsNaN", [result.tensor])
        return Value(self.graph.op("Where", [nan, default, result.tensor]), result.categories)

    def _inline(self, e: Element, fn: Element, args: list[Value]) -> Value:
        params = [p.get("name") or "" for p in fn.findall("ParameterField")]
        if len(params) != len(args):
            raise e.refuse(f"{fn.get('name')} takes {len(params)} arguments, given {len(args)}")
        if len(self.scope) > 16:
            raise e.refuse("DefineFunctions nested more than 16 deep")
        self.scope.append(dict(zip(params, args, strict=True)))
        try:
            return self.expression(self._one(fn), fn)
        finally:
            self.scope.pop()

    def _any(self, masks: list[str]) -> str:
        acc = masks[0]
        for m in masks[1:]:
            acc = self.graph.op("Or", [acc, m])
        return acc

    def _function(self, e: Element, name: str, args: list[Value]) -> Value:
        g = self.graph
        scalar = all(a.scalar for a in args)
        if name in COMPARE and len(args) == 2:
            a, b = self._comparable(e, name, args)
            test = g.op(COMPARE[name], [a, b])
            if name == "notEqual":
                test = g.op("Not", [test])
            return self._nan_if_missing([a, b], g.double(test), scalar)
        if any(a.literal is not None or a.categories is not None for a in args) and name != "if":
            raise e.refuse(f"{name} of a string value")
        t = [a.tensor for a in args]
        if name in UNARY and len(t) == 1:
            return Value(g.op(UNARY[name], t), scalar=scalar)
        if name == "log10" and len(t) == 1:
            return Value(g.op("Div", [g.op("Log", t), g.scalar(math.log(10.0))]), scalar=scalar)
        if name == "round" and len(t) == 1:  # half up, like Java's Math.round
            return Value(g.op("Floor", [g.add(t[0], g.scalar(0.5))]), scalar=scalar)
        if name in BINARY and len(t) == 2:
            return Value(g.op(BINARY[name], t), scalar=scalar)
        if name == "threshold" and len(t) == 2:
            return self._nan_if_missing(t, g.double(g.op("Greater", t)), scalar)
        if name in AGGREGATE and t:
            return self._aggregate(name, t, scalar)
        if name in ("and", "or") and len(t) >= 2:
            flags = [g.op("Not", [g.op("Equal", [x, g.scalar(0.0)])]) for x in t]
            acc = flags[0]
            for f in flags[1:]:
                acc = g.op("And" if name == "and" else "Or", [acc, f])
            return self._nan_if_missing(t, g.double(acc), scalar)
        if name == "not" and len(t) == 1:
            return self._nan_if_missing(t, g.double(g.op("Equal", [t[0], g.scalar(0.0)])), scalar)
        if name == "if" and len(t) in (2, 3):
            return self._if(e, args)
        raise e.refuse(f"function={name} with {len(args)} arguments")

    def _aggregate(self, name: str, t: list[str], scalar: bool) -> Value:
        """min, max, sum, avg of the values that are not missing (missing if all are)."""
        g = self.graph
        neutral = g.scalar({"min": math.inf, "max": -math.inf}.get(name, 0.0))
        nans = [g.op("IsNaN", [x]) for x in t]
        out = g.op(AGGREGATE[name], [g.op("Where", [n, neutral, x]) for n, x in zip(nans, t, strict=True)])
        present = g.op("Sum", [g.double(g.op("Not", [n])) for n in nans])
        if name == "avg":
            out = g.op("Div", [out, present])
        none = g.op("Equal", [present, g.scalar(0.0)])
        return Value(g.op("Where", [none, g.scalar(math.nan), out]), scalar=scalar)

    def _nan_if_missing(self, tensors: list[str], value: str, scalar: bool) -> Value:
        missing = self._any([self.graph.op("IsNaN", [x]) for x in tensors])
        return Value(self.graph.op("Where", [missing, self.graph.scalar(math.nan), value]), scalar=scalar)

    def _comparable(self, e: Element, name: str, args: list[Value]) -> tuple[str, str]:
        a, b = args
        if a.literal is not None and b.literal is None:
            a, b = b, a
        if b.literal is not None:
            if a.categories is None or name not in ("equal", "notEqual"):
                raise e.refuse(f"{name} of a string constant and a value that is not a string field")
            return a.tensor, self.constant(b.literal, a.categories, e)
        if a.categories != b.categories or (a.categories is not None and name not in ("equal", "notEqual")):
            raise e.refuse(f"{name} of string fields with different categories")
        return a.tensor, b.tensor

    def _if(self, e: Element, args: list[Value]) -> Value:
        g = self.graph
        cond, then = args[0], args[1]
        other = args[2] if len(args) == 3 else Value(g.scalar(math.nan), then.categories, scalar=True)
        if cond.categories is not None or then.categories != other.categories or then.literal or other.literal:
            raise e.refuse("if over string values")
        chosen = g.op("Where", [g.op("Equal", [cond.tensor, g.scalar(0.0)]), other.tensor, then.tensor])
        nan = g.op("IsNaN", [cond.tensor])
        result = g.op("Where", [nan, g.scalar(math.nan), chosen])
        return Value(result, then.categories, scalar=cond.scalar and then.scalar and other.scalar)

    def interval(self, elem: Element, x: str) -> str:
        return interval(elem, x, self.graph)
