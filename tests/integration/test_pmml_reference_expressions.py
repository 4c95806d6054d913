"""Hand-written PMML documents against the reference, one expression or predicate at a time: each DerivedField is
the only term of a regression (so the prediction is the field's value, missing where it is missing, and the row
fails where the reference finds it invalid); each tree mixes set and compound predicates on a string field. Every
row of a grid (missing values, a category never declared, zero divisors, points on the interval bounds) is compared
with ``jpmml_evaluator``."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .test_pmml_reference import X1_X2, compare

pytestmark = pytest.mark.timeout(300)

HEAD = (
    X1_X2
    + """    <DataField name="c" optype="categorical" dataType="string">
      <Value value="a"/><Value value="b"/><Value value="c"/><Value value="NA" property="missing"/>
    </DataField>
    <DataField name="y" optype="continuous" dataType="double"/>
  </DataDictionary>
"""
)
SCHEMA = """<MiningSchema>
      <MiningField name="x1"/><MiningField name="x2"/><MiningField name="c" invalidValueTreatment="asIs"/>
      <MiningField name="y" usageType="target"/>
    </MiningSchema>"""
REGRESSION = (
    HEAD
    + """  <TransformationDictionary>
    <DefineFunction name="scaled" optype="continuous" dataType="double">
      <ParameterField name="v"/><ParameterField name="k"/>
      <Apply function="*"><FieldRef field="v"/><FieldRef field="k"/></Apply>
    </DefineFunction>
    <DerivedField name="z" optype="{optype}" dataType="{dtype}">
      {expression}
    </DerivedField>
  </TransformationDictionary>
  <RegressionModel functionName="regression">
    """
    + SCHEMA
    + """
    <RegressionTable intercept="0">{predictor}</RegressionTable>
  </RegressionModel>
</PMML>
"""
)

X1 = '<FieldRef field="x1"/>'
X2 = '<FieldRef field="x2"/>'


def apply(function: str, *args: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{v}"' for k, v in attrs.items())
    return f'<Apply function="{function}"{extra}>{"".join(args)}</Apply>'


def const(v: float | str, dtype: str = "double") -> str:
    return f'<Constant dataType="{dtype}">{v}</Constant>'


LIN = '<LinearNorm orig="-1" norm="0"/><LinearNorm orig="0" norm="0.25"/><LinearNorm orig="2" norm="1"/>'
BINS = (
    '<DiscretizeBin binValue="10"><Interval closure="openClosed" rightMargin="-0.5"/></DiscretizeBin>'
    '<DiscretizeBin binValue="20"><Interval closure="openOpen" leftMargin="-0.5" rightMargin="0.5"/></DiscretizeBin>'
    '<DiscretizeBin binValue="30"><Interval closure="closedClosed" leftMargin="0.5" rightMargin="1"/>'
    "</DiscretizeBin>"
)


def table(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<row><k>{k}</k><v>{v}</v></row>" for k, v in pairs)
    return f"<InlineTable>{rows}</InlineTable>"


# name: (expression, dataType, the regression's predictor of z)
NUMBER = '<NumericPredictor name="z" coefficient="1"/>'
EXPRESSIONS: dict[str, tuple[str, str, str]] = {
    **{f"arithmetic {f}": (apply(f, X1, X2), "double", NUMBER) for f in ["+", "-", "*", "/", "pow"]},
    **{f"aggregate {f}": (apply(f, X1, X2, const(0.5)), "double", NUMBER) for f in ["min", "max", "sum", "avg"]},
    **{
        f"unary {f}": (apply(f, X1), "double", NUMBER)
        for f in ["log10", "ln", "exp", "sqrt", "abs", "floor", "ceil", "round"]
    },
    "threshold": (apply("threshold", X1, const(0.5)), "double", NUMBER),
    **{
        f"compare {f}": (apply(f, X1, X2), "boolean", NUMBER)
        for f in ["equal", "notEqual", "lessThan", "lessOrEqual", "greaterThan", "greaterOrEqual"]
    },
    "and": (apply("and", apply("greaterThan", X1, const(0)), apply("lessThan", X2, const(1))), "boolean", NUMBER),
    "or": (apply("or", apply("greaterThan", X1, const(0)), apply("lessThan", X2, const(1))), "boolean", NUMBER),
    "not": (apply("not", apply("greaterThan", X1, const(0))), "boolean", NUMBER),
    "isMissing": (apply("isMissing", X1), "boolean", NUMBER),
    "isNotMissing": (apply("isNotMissing", X2), "boolean", NUMBER),
    "if-else": (apply("if", apply("greaterThan", X1, const(0)), X2, const(-7)), "double", NUMBER),
    "if-without-else": (apply("if", apply("greaterThan", X1, const(0)), X2), "double", NUMBER),
    "mapMissingTo": (apply("+", X1, X2, mapMissingTo="-99"), "double", NUMBER),
    "defaultValue": (apply("/", X1, X2, defaultValue="42"), "double", NUMBER),
    "ln asMissing with defaultValue": (
        apply("ln", X1, invalidValueTreatment="asMissing", defaultValue="-5"),
        "double",
        NUMBER,
    ),
    "fieldref mapMissingTo": ('<FieldRef field="x1" mapMissingTo="3.5"/>', "double", NUMBER),
    "string equal": (apply("equal", '<FieldRef field="c"/>', const("b", "string")), "boolean", NUMBER),
    "DefineFunction": (apply("scaled", X1, const(3)), "double", NUMBER),
    "dataType float": (apply("/", X1, const(3)), "float", NUMBER),
    **{
        f"NormContinuous {o}": (
            f'<NormContinuous field="x1" outliers="{o}" mapMissingTo="0.5">{LIN}</NormContinuous>',
            "double",
            NUMBER,
        )
        for o in ["asIs", "asMissingValues", "asExtremeValues"]
    },
    "NormDiscrete": ('<NormDiscrete field="c" value="b" mapMissingTo="0.5"/>', "double", NUMBER),
    "Discretize": (f'<Discretize field="x1" defaultValue="99">{BINS}</Discretize>', "double", NUMBER),
    "Discretize mapMissingTo": (f'<Discretize field="x2" mapMissingTo="-1">{BINS}</Discretize>', "double", NUMBER),
    "MapValues to numbers": (
        '<MapValues outputColumn="v" defaultValue="-1" mapMissingTo="-2"><FieldColumnPair field="c" column="k"/>'
        + table([("a", "1.5"), ("c", "3")])
        + "</MapValues>",
        "double",
        NUMBER,
    ),
    "MapValues to strings": (
        '<MapValues outputColumn="v" dataType="string" defaultValue="Q"><FieldColumnPair field="c" column="k"/>'
        + table([("a", "P"), ("b", "P"), ("c", "R")])
        + "</MapValues>",
        "string",
        '<CategoricalPredictor name="z" value="P" coefficient="1"/>'
        '<CategoricalPredictor name="z" value="Q" coefficient="10"/>',
    ),
    "MapValues numeric keys": (
        '<MapValues outputColumn="v"><FieldColumnPair field="x2" column="k"/>'
        + table([("0", "5"), ("1.5", "6")])
        + "</MapValues>",
        "double",
        NUMBER,
    ),
}


def grid() -> pd.DataFrame:
    x1 = [-2.0, -0.5, 0.0, 0.5, 1.0, 2.5, np.nan]
    x2 = [-1.0, 0.0, 1.5, np.nan]
    c = ["a", "b", "zz", None, "NA"]
    return pd.DataFrame(list(itertools.product(x1, x2, c)), columns=["x1", "x2", "c"])


@pytest.mark.parametrize("case", sorted(EXPRESSIONS))
def test_an_expression_matches_jpmml_evaluator(case: str, tmp_path: Path) -> None:
    expression, dtype, predictor = EXPRESSIONS[case]
    optype = "categorical" if dtype in ("string", "boolean") else "continuous"
    pmml = tmp_path / "expression.pmml"
    pmml.write_text(REGRESSION.format(expression=expression, dtype=dtype, optype=optype, predictor=predictor))
    rows = grid()
    worst, _, invalid = compare(pmml, rows)
    print(f"{case}: {len(rows)} rows, {invalid} invalid for the reference, worst difference {worst:.1e}")
    assert worst <= 1e-12


TREE = (
    HEAD
    + """  <TreeModel functionName="regression" missingValueStrategy="{strategy}">
    """
    + SCHEMA
    + """
    <Node id="n1" score="1" defaultChild="n6"><True/>
      <Node id="n2" score="2" defaultChild="n5">
        <SimpleSetPredicate field="c" booleanOperator="isIn">
          <Array type="string" n="2">a "b"</Array></SimpleSetPredicate>
        <Node id="n3" score="3"><CompoundPredicate booleanOperator="and">
          <SimplePredicate field="x1" operator="greaterThan" value="0"/>
          <SimplePredicate field="x2" operator="lessOrEqual" value="0"/>
        </CompoundPredicate></Node>
        <Node id="n4" score="4"><CompoundPredicate booleanOperator="or">
          <SimplePredicate field="x1" operator="lessThan" value="-1"/>
          <SimplePredicate field="x2" operator="greaterThan" value="1"/>
        </CompoundPredicate></Node>
        <Node id="n5" score="5"><True/></Node>
      </Node>
      <Node id="n6" score="6" defaultChild="n8">
        <CompoundPredicate booleanOperator="surrogate">
          <SimplePredicate field="x1" operator="lessOrEqual" value="0.5"/>
          <SimplePredicate field="x2" operator="greaterOrEqual" value="0"/>
          <False/>
        </CompoundPredicate>
        <Node id="n7" score="7"><CompoundPredicate booleanOperator="xor">
          <SimplePredicate field="c" operator="notEqual" value="c"/>
          <SimplePredicate field="x2" operator="equal" value="0"/>
        </CompoundPredicate></Node>
        <Node id="n8" score="8"><SimpleSetPredicate field="c" booleanOperator="isNotIn">
          <Array type="string">c</Array></SimpleSetPredicate></Node>
      </Node>
      <Node id="n9" score="9"><SimplePredicate field="c" operator="equal" value="c"/></Node>
    </Node>
  </TreeModel>
</PMML>
"""
)


@pytest.mark.parametrize("strategy", ["none", "nullPrediction", "lastPrediction", "defaultChild"])
def test_set_and_compound_predicates_match_jpmml_evaluator(strategy: str, tmp_path: Path) -> None:
    pmml = tmp_path / "tree.pmml"
    pmml.write_text(TREE.format(strategy=strategy))
    rows = grid()
    worst, _, _ = compare(pmml, rows)
    print(f"set and compound predicates, {strategy}: {len(rows)} rows, worst difference {worst:.1e}")
    assert worst == 0.0
