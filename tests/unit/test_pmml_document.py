"""The PMML compiler refuses what it cannot compile exactly, naming the element and its line (pure code)."""

from __future__ import annotations

import pytest

from modelyard_runtime.pmml import PMMLError, compile_pmml
from modelyard_runtime.pmml.document import Element
from modelyard_runtime.pmml.predicates import array

HEAD = '<?xml version="1.0"?>\n<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">\n<Header/>\n'
DD = ('<DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
      '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>\n')  # fmt: skip
SCHEMA = '<MiningSchema><MiningField name="x"/><MiningField name="y" usageType="target"/></MiningSchema>'


def test_a_doctype_is_refused_before_parsing() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><PMML version="4.4">&a;</PMML>'
    with pytest.raises(PMMLError, match="DOCTYPE"):
        compile_pmml(bomb)


def test_an_unsupported_model_is_named_with_its_line() -> None:
    doc = HEAD + DD + '<ClusteringModel functionName="clustering">' + SCHEMA + "</ClusteringModel>\n</PMML>"
    with pytest.raises(PMMLError, match=r"<ClusteringModel> at line 5 is not supported: this model type"):
        compile_pmml(doc.encode())


def test_an_unsupported_predicate_is_named_with_its_line() -> None:
    inner = '<Node score="2"><CompoundPredicate booleanOperator="and"/></Node>'
    doc = (HEAD + DD + '<TreeModel functionName="regression">' + SCHEMA + '\n<Node score="1"><True/>\n'
           + inner + "\n</Node></TreeModel>\n</PMML>")  # fmt: skip
    with pytest.raises(PMMLError, match=r"<CompoundPredicate> at line 7 is not supported"):
        compile_pmml(doc.encode())


REGRESSION = ('<RegressionModel functionName="regression">' + SCHEMA +
              '<RegressionTable intercept="1"><NumericPredictor name="z" coefficient="2"/></RegressionTable>'
              "</RegressionModel></PMML>")  # fmt: skip


def test_a_double_expression_is_not_an_integer_field() -> None:
    doc = (HEAD + DD + '<TransformationDictionary>\n<DerivedField name="z" optype="continuous" dataType="integer">'
           '<Apply function="/"><FieldRef field="x"/><Constant>3</Constant></Apply>'
           "</DerivedField></TransformationDictionary>\n" + REGRESSION)  # fmt: skip
    with pytest.raises(PMMLError, match=r"<DerivedField> at line 6 .*dataType=integer for a Apply"):
        compile_pmml(doc.encode())


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ('<Apply function="erf"><FieldRef field="x"/></Apply>', r"<Apply> at line 6 .*function=erf"),
        ('<Aggregate field="x" function="sum"/>', r"<Aggregate> at line 6 .*expression"),
        ('<Apply function="+"><FieldRef field="nope"/><Constant>1</Constant></Apply>', r"'nope' is not an input"),
        (
            '<MapValues outputColumn="o"><FieldColumnPair field="x" column="i"/><FieldColumnPair field="x" '
            'column="j"/></MapValues>',
            r"<MapValues> at line 6 .*2 FieldColumnPairs",
        ),
        ('<NormContinuous field="x"><LinearNorm orig="1" norm="0"/></NormContinuous>', "LinearNorm points"),
        (
            '<Discretize field="x" dataType="integer"><DiscretizeBin binValue="1.5"><Interval closure="openOpen"/>'
            "</DiscretizeBin></Discretize>",
            "'1.5' is not an integer",
        ),
    ],
)
def test_a_transformation_that_is_not_compiled_is_named_with_its_line(expression: str, message: str) -> None:
    doc = (HEAD + DD + '<TransformationDictionary>\n<DerivedField name="z" optype="continuous" dataType="double">'
           + expression + "</DerivedField></TransformationDictionary>\n" + REGRESSION)  # fmt: skip
    with pytest.raises(PMMLError, match=message):
        compile_pmml(doc.encode())


STRINGS = ('<DataDictionary><DataField name="x" optype="categorical" dataType="string">{values}</DataField>'
           '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>\n')  # fmt: skip


def tree_on_string(values: str, predicate: str) -> bytes:
    return (HEAD + STRINGS.format(values=values) + '<TreeModel functionName="regression">' + SCHEMA
            + '\n<Node score="1"><True/>\n<Node score="2">' + predicate + "</Node>\n</Node></TreeModel>\n</PMML>"
            ).encode()  # fmt: skip


def test_a_string_field_is_a_string_input() -> None:
    model = compile_pmml(tree_on_string('<Value value="a"/><Value value="b"/>',
                                        '<SimplePredicate field="x" operator="equal" value="b"/>'))  # fmt: skip
    assert model.graph.input[0].type.tensor_type.elem_type == 8  # STRING


@pytest.mark.parametrize(
    ("values", "predicate", "message"),
    [
        ("", '<SimplePredicate field="x" operator="equal" value="b"/>', "without valid <Value>"),
        ('<Value value="a"/>', '<SimplePredicate field="x" operator="lessThan" value="a"/>', "on a string field"),
        ('<Value value="a"/>', '<SimplePredicate field="x" operator="equal" value="q"/>', "'q' is not a category"),
        (
            '<Value value="a"/>',
            '<SimpleSetPredicate field="x" booleanOperator="isIn"><Array type="string" n="2">'
            "a</Array></SimpleSetPredicate>",
            r"<Array> at line 7 .*n=2 but 1 values",
        ),
        ('<Value value=""/>', '<SimplePredicate field="x" operator="equal" value="a"/>', "the empty string"),
    ],
)
def test_what_a_string_field_cannot_do_is_refused(values: str, predicate: str, message: str) -> None:
    with pytest.raises(PMMLError, match=message):
        compile_pmml(tree_on_string(values, predicate))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"<PMML", "not well-formed"),
        (b'<PMML version="3.2"></PMML>', "only PMML 4.x"),
        (b'<Other version="4.4"/>', "not <PMML>"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_broken_documents_get_a_clear_error(doc: bytes, message: str) -> None:
    with pytest.raises(PMMLError, match=message):
        compile_pmml(doc)


def test_a_linear_regression_compiles_to_one_input_per_field_and_the_target() -> None:
    doc = (HEAD + DD + '<RegressionModel functionName="regression">' + SCHEMA +
           '<RegressionTable intercept="1"><NumericPredictor name="x" coefficient="2"/></RegressionTable>'
           "</RegressionModel></PMML>")  # fmt: skip
    model = compile_pmml(doc.encode())
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["y"]


@pytest.mark.parametrize(
    ("text", "members"),
    [
        ('a "b c" d', ["a", "b c", "d"]),
        ('"say \\"hi\\"" ""', ['say "hi"', ""]),
        ("  1.5\n 2  ", ["1.5", "2"]),
    ],
)
def test_array_members_are_split_on_spaces_and_may_be_quoted(text: str, members: list[str]) -> None:
    assert array(Element("Array", {}, (), 1, text)) == members


def test_a_transformation_naming_an_undeclared_category_is_refused() -> None:
    doc = (HEAD + STRINGS.format(values='<Value value="a"/>') + "<TransformationDictionary>\n"
           '<DerivedField name="z" optype="continuous" dataType="double"><NormDiscrete field="x" value="q"/>'
           "</DerivedField></TransformationDictionary>\n" + REGRESSION)  # fmt: skip
    with pytest.raises(PMMLError, match=r"<NormDiscrete> at line 6 .*'q' is not a declared category"):
        compile_pmml(doc.encode())
