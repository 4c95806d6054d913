"""NormContinuous, NormDiscrete, Discretize and MapValues (pure; the expression half of :mod:`.transforms`).

- ``NormContinuous``: piecewise linear between the ``LinearNorm`` points, ``y1 + (x - x1) / (x2 - x1) * (y2 - y1)``;
  outside them the first or last piece goes on (``outliers="asIs"``), the result is missing (``asMissingValues``) or
  the end's value (``asExtremeValues``).
- ``NormDiscrete``: 1 where the field equals the value, else 0.
- ``Discretize``: the first bin whose ``Interval`` holds the value, else ``defaultValue`` (else missing).
- ``MapValues`` over one input column: the row whose key equals the value, else ``defaultValue`` (else missing).
Each gives ``mapMissingTo`` (else missing) for a missing value. String results are codes (:mod:`.inputs`).
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from .document import Element, PMMLError
from .graph import Graph
from .inputs import Context

if TYPE_CHECKING:
    from .transforms import Value


class Norms:
    graph: Graph
    ctx: Context

    def field(self, name: str, where: Element) -> Value:
        raise NotImplementedError

    def missing_to(self, elem: Element, value: Value, categories: list[str] | None, missing: str) -> Value:
        raise NotImplementedError

    def constant(self, raw: str, categories: list[str] | None, where: Element) -> str:
        raise NotImplementedError

    def interval(self, elem: Element, x: str) -> str:
        raise NotImplementedError

    def _result(self, e: Element, x: Value, value: str, categories: list[str] | None) -> Value:
        from .transforms import Value

        g = self.graph
        missing = g.op("IsNaN", [x.tensor])
        value = g.op("Where", [missing, g.scalar(math.nan), value])
        return self.missing_to(e, Value(value, categories), categories, missing)

    def norm_continuous(self, e: Element) -> Value:
        g = self.graph
        x = self.field(e.get("field") or "", e)
        points = [(p.number("orig"), p.number("norm")) for p in e.findall("LinearNorm")]
        if len(points) < 2 or any(a[0] >= b[0] for a, b in itertools.pairwise(points)):
            raise e.refuse("LinearNorm points must be at least two, in increasing orig")
        if x.categories is not None:
            raise e.refuse("NormContinuous of a string field")

        def piece(i: int) -> str:
            (x1, y1), (x2, y2) = points[i], points[i + 1]
            ratio = g.op("Div", [g.op("Sub", [x.tensor, g.scalar(x1)]), g.scalar(x2 - x1)])
            return g.add(g.scalar(y1), g.mul(ratio, g.scalar(y2 - y1)))

        value = piece(len(points) - 2)
        for i in range(len(points) - 3, -1, -1):
            value = g.op("Where", [g.op("Less", [x.tensor, g.scalar(points[i + 1][0])]), piece(i), value])
        below = g.op("Less", [x.tensor, g.scalar(points[0][0])])
        above = g.op("Greater", [x.tensor, g.scalar(points[-1][0])])
        outliers = e.get("outliers", "asIs")
        if outliers == "asMissingValues":
            value = g.op("Where", [g.op("Or", [below, above]), g.scalar(math.nan), value])
        elif outliers == "asExtremeValues":
            value = g.op("Where", [below, g.scalar(points[0][1]), value])
            value = g.op("Where", [above, g.scalar(points[-1][1]), value])
        elif outliers != "asIs":
            raise e.refuse(f"outliers={outliers}")
        return self._result(e, x, value, None)

    def norm_discrete(self, e: Element) -> Value:
        g = self.graph
        name = e.get("field") or ""
        x = self.field(name, e)
        code = self.constant(e.get("value") or "", x.categories, e)
        return self._result(e, x, g.double(g.op("Equal", [x.tensor, code])), None)

    def _outputs(self, e: Element, dtype: str | None, raws: list[str]) -> list[str] | None:
        """The categories of a string-valued result (its outputs, default and mapMissingTo), or None: numbers."""
        extra = [e.get(a) for a in ("defaultValue", "mapMissingTo")]
        everything = raws + [r for r in extra if r is not None]
        if dtype == "string":
            return list(dict.fromkeys(everything))
        if dtype not in (None, "double", "float", "integer"):
            raise e.refuse(f"dataType={dtype}")
        for raw in everything:
            try:
                number = float(raw)
            except ValueError:
                raise e.refuse(f"{raw!r} is not a number; set dataType=string") from None
            if dtype == "integer" and not number.is_integer():
                raise e.refuse(f"{raw!r} is not an integer")
        return None

    def _otherwise(self, e: Element, categories: list[str] | None) -> str:
        default = e.get("defaultValue")
        return self.graph.scalar(math.nan) if default is None else self.constant(default, categories, e)

    def discretize(self, e: Element) -> Value:
        g = self.graph
        x = self.field(e.get("field") or "", e)
        if x.categories is not None:
            raise e.refuse("Discretize of a string field")
        bins = e.findall("DiscretizeBin")
        raws = [b.get("binValue") or "" for b in bins]
        categories = self._outputs(e, e.get("dataType"), raws)
        value = self._otherwise(e, categories)
        for b, raw in reversed(list(zip(bins, raws, strict=True))):
            inside = self.interval(b.require("Interval"), x.tensor)
            value = g.op("Where", [inside, self.constant(raw, categories, b), value])
        if not bins:
            raise e.refuse("no DiscretizeBin")
        return self._result(e, x, value, categories)

    def map_values(self, e: Element) -> Value:
        g = self.graph
        pairs = e.findall("FieldColumnPair")
        if len(pairs) != 1:
            raise e.refuse(f"{len(pairs)} FieldColumnPairs; one input column is compiled")
        x = self.field(pairs[0].get("field") or "", pairs[0])
        # a column may be a prefixed name ("data:input") for a namespaced cell element; cells are read by local name
        column, out = (_local(pairs[0].get("column") or ""), _local(e.get("outputColumn") or ""))
        table = e.find("InlineTable")
        if table is None:
            raise e.refuse("MapValues without an InlineTable")
        rows = []
        for row in table.findall("row"):
            cells = {c.tag: c.text.strip() for c in row.children}
            if column not in cells or out not in cells:
                raise row.refuse(f"a row without {column!r} or {out!r}")
            rows.append((row, cells[column], cells[out]))
        categories = self._outputs(e, e.get("dataType"), [r[2] for r in rows])
        value = self._otherwise(e, categories)
        for row, key, result in reversed(rows):
            try:
                code = self.ctx.code(pairs[0].get("field") or "", key, row) if x.categories is None else (
                    float(x.categories.index(key)))  # fmt: skip
            except ValueError:
                raise row.refuse(f"key {key!r} is not a category of the input") from None
            except PMMLError:
                raise
            hit = g.op("Equal", [x.tensor, g.scalar(code)])
            value = g.op("Where", [hit, self.constant(result, categories, row), value])
        return self._result(e, x, value, categories)


def _local(name: str) -> str:
    return name.rsplit(":", 1)[-1]
