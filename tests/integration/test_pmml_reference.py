"""The PMML compiler against the reference: models trained by scikit-learn on seeded data, exported by sklearn2pmml
(the JPMML converter, on the JDK), compiled here to ONNX and run by ONNX Runtime; every prediction and probability
is compared with ``jpmml_evaluator`` (JPMML-Evaluator, the reference PMML engine) on the same rows, missing values
included, within 1e-5. Each case prints its worst difference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from jpmml_evaluator import make_evaluator
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR, NuSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn2pmml import sklearn2pmml
from sklearn2pmml.pipeline import PMMLPipeline
from xgboost import XGBClassifier, XGBRegressor

from modelyard_runtime.pmml import compile_pmml

pytestmark = pytest.mark.timeout(300)

TOLERANCE = 1e-5
COLUMNS = ["x1", "x2", "x3", "x4"]


def data(seed: int, rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(COLUMNS))), columns=COLUMNS)


def numeric(x: pd.DataFrame) -> pd.Series:
    noise = np.random.default_rng(7).normal(scale=0.2, size=len(x))
    return pd.Series(2 * x.x1 - x.x2 + 0.5 * x.x3 * x.x4 + noise, name="y")


def three_classes(x: pd.DataFrame) -> pd.Series:
    y = numeric(x)
    return pd.Series(np.where(y > 0.7, "high", np.where(y < -0.7, "low", "mid")), name="y")


def two_classes(x: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where(numeric(x) > 0, "yes", "no"), name="y")


CASES: dict[str, tuple[Callable[[], Any], Callable[[pd.DataFrame], pd.Series]]] = {
    "linear-regression": (LinearRegression, numeric),
    "logistic-binary": (LogisticRegression, two_classes),
    "logistic-multinomial": (LogisticRegression, three_classes),
    "tree-regressor": (lambda: DecisionTreeRegressor(max_depth=6, random_state=0), numeric),
    "tree-classifier": (lambda: DecisionTreeClassifier(max_depth=6, random_state=0), three_classes),
    "random-forest-regressor": (lambda: RandomForestRegressor(n_estimators=20, max_depth=5, random_state=0), numeric),
    "random-forest-classifier": (
        lambda: RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0),
        three_classes,
    ),
    "gradient-boosting-regressor": (
        lambda: GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0),
        numeric,
    ),
    "gradient-boosting-binary": (
        lambda: GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0),
        two_classes,
    ),
    "mlp-regressor-relu": (lambda: MLPRegressor(hidden_layer_sizes=(8, 4), max_iter=300, random_state=0), numeric),
    "mlp-binary-logistic": (lambda: MLPClassifier((6,), activation="logistic", max_iter=300, random_state=0),
                            two_classes),
    "mlp-3class-tanh": (lambda: MLPClassifier((6, 5), activation="tanh", max_iter=300, random_state=0),
                        three_classes),
    "mlp-3class-relu": (lambda: MLPClassifier((6,), max_iter=300, random_state=0), three_classes),
    "svc-linear-binary": (lambda: SVC(kernel="linear"), two_classes),
    "svc-rbf-3class": (lambda: SVC(kernel="rbf", gamma=0.5), three_classes),
    "svc-poly-3class": (lambda: SVC(kernel="poly", degree=3, coef0=1.0), three_classes),
    "svc-sigmoid-binary": (lambda: SVC(kernel="sigmoid", gamma=0.1), two_classes),
    "svr-rbf": (lambda: SVR(kernel="rbf", C=3.0), numeric),
    "nusvc-rbf-3class": (lambda: NuSVC(nu=0.3), three_classes),
    "gaussian-nb-binary": (GaussianNB, two_classes),
    "gaussian-nb-3class": (GaussianNB, three_classes),
}  # fmt: skip


def reference_scores(pmml: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """What JPMML-Evaluator, the reference engine, makes of ``rows`` (one column per result field)."""
    return make_evaluator(str(pmml)).verify().evaluateAll(rows)


def feed(session: ort.InferenceSession, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The rows as ONNX Runtime takes them: doubles (NaN: missing), or strings ("": missing) for string inputs."""
    out = {}
    for i in session.get_inputs():
        column = rows[i.name]
        if i.type == "tensor(string)":
            out[i.name] = np.array(["" if pd.isna(v) else str(v) for v in column], dtype=object)
        else:
            out[i.name] = column.to_numpy(np.float64)
    return out


def compare(pmml: Path, rows: pd.DataFrame) -> tuple[float, list[str], int]:
    """Worst absolute difference over numeric outputs, the outputs compared, and the number of rows the reference
    finds invalid (an error: all our outputs must be missing there); asserts labels and missingness."""
    model = compile_pmml(pmml.read_bytes())
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    ours = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed(session, rows)), strict=True))
    reference = reference_scores(pmml, rows[names])
    errors = reference["errors"].notna().to_numpy() if "errors" in reference else np.zeros(len(rows), bool)
    worst = 0.0
    for name, got in ours.items():
        want = reference[name].to_numpy()
        if got.dtype == object:
            expected = np.array(["" if w is None or (isinstance(w, float) and np.isnan(w)) else str(w) for w in want])
            assert (got.astype(str) == expected).all(), f"{name}: {got[got.astype(str) != expected][:5]}"
            continue
        want = want.astype(np.float64)
        assert (np.isnan(got) == np.isnan(want)).all(), (
            f"{name}: missing where the reference is not, or not where it is"
        )
        infinite = np.isinf(want)
        assert (got[infinite] == want[infinite]).all(), f"{name}: not the reference's infinities"
        finite = ~np.isnan(want) & ~infinite
        worst = max(worst, float(np.max(np.abs(got[finite] - want[finite]), initial=0.0)))
        assert np.isnan(got[errors]).all(), f"{name}: a value where the reference finds the row invalid"
    return worst, sorted(ours), int(errors.sum())


@pytest.mark.parametrize("case", [*sorted(CASES), "scaled-mlp-3class-relu", "scaled-svc-rbf-3class",
                                  "scaled-mlp-regressor-relu", "scaled-gaussian-nb-3class"])  # fmt: skip
def test_compiled_model_matches_jpmml_evaluator(case: str, tmp_path: Path) -> None:
    scaled = case.startswith("scaled-")  # a StandardScaler first: the model reads LocalTransformations' fields
    make, target = CASES[case.removeprefix("scaled-")]
    train = data(0)
    pipeline = PMMLPipeline([*([("scale", StandardScaler())] if scaled else []), ("model", make())])
    pipeline.fit(train, target(train))
    pmml = tmp_path / f"{case}.pmml"
    sklearn2pmml(pipeline, str(pmml))
    rows = data(1)
    rows.loc[rows.index[::13], "x1"] = np.nan  # missing values: the reference says what each model makes of them
    rows.loc[rows.index[5::29], "x3"] = np.nan
    worst, outputs, _ = compare(pmml, rows)
    print(f"{case}: {len(rows)} rows ({int(rows.isna().any(axis=1).sum())} with a missing value), outputs {outputs}, "
          f"worst difference from jpmml_evaluator {worst:.1e}")  # fmt: skip
    assert worst <= TOLERANCE


BOOSTED: dict[str, tuple[Callable[[], Any], Callable[[pd.DataFrame], pd.Series]]] = {
    "lightgbm-regressor": (lambda: LGBMRegressor(n_estimators=30, num_leaves=8, random_state=0, verbose=-1), numeric),
    "lightgbm-binary": (lambda: LGBMClassifier(n_estimators=30, num_leaves=8, random_state=0, verbose=-1),
                        two_classes),
    "lightgbm-3class": (lambda: LGBMClassifier(n_estimators=30, num_leaves=8, random_state=0, verbose=-1),
                        three_classes),
    "xgboost-regressor": (lambda: XGBRegressor(n_estimators=30, max_depth=3, random_state=0), numeric),
    "xgboost-binary": (lambda: XGBClassifier(n_estimators=30, max_depth=3, random_state=0), two_classes),
    "xgboost-3class": (lambda: XGBClassifier(n_estimators=30, max_depth=3, random_state=0), three_classes),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BOOSTED))
def test_lightgbm_and_xgboost_models_match_jpmml_evaluator(case: str, tmp_path: Path) -> None:
    """Boosted trees as LightGBM and XGBoost build them, exported by sklearn2pmml's LightGBM and XGBoost converters:
    a MiningModel chain of summed trees and a RegressionModel that normalizes (logit, softmax). A missing value takes
    the branch training chose for it: their PMML orders each node's children so that the comparison a missing value
    fails (``missingValueStrategy`` none) leads there."""
    make, target = BOOSTED[case]
    train = data(0)
    y = target(train)
    if case.startswith("xgboost") and y.dtype.kind not in "fiu":  # XGBoost's classifiers take class indexes
        y = y.map({label: i for i, label in enumerate(sorted(set(y)))})
    train.loc[train.index[::17], "x2"] = np.nan  # missing values in training: the trees learn where they go
    pipeline = PMMLPipeline([("model", make())])
    pipeline.fit(train, y)
    pmml = tmp_path / f"{case}.pmml"
    sklearn2pmml(pipeline, str(pmml))
    rows = data(1)
    rows.loc[rows.index[::13], "x1"] = np.nan
    rows.loc[rows.index[5::29], "x3"] = np.nan
    rows.loc[rows.index[3::31], "x2"] = np.nan
    worst, outputs, _ = compare(pmml, rows)
    print(f"{case}: outputs {outputs}, worst difference from jpmml_evaluator {worst:.1e}")
    assert worst <= TOLERANCE


# the opening of every hand-written document here: a DataDictionary that starts with two continuous inputs
X1_X2 = """<?xml version="1.0" encoding="UTF-8"?>
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header/>
  <DataDictionary>
    <DataField name="x1" optype="continuous" dataType="double"/>
    <DataField name="x2" optype="continuous" dataType="double"/>
"""

TREE = (
    X1_X2
    + """    <DataField name="y" optype="continuous" dataType="double"/>
  </DataDictionary>
  <TreeModel functionName="regression" missingValueStrategy="{strategy}" noTrueChildStrategy="{no_true}">
    <MiningSchema>
      <MiningField name="x1"/>
      <MiningField name="x2"/>
      <MiningField name="y" usageType="target"/>
    </MiningSchema>
    <Node id="r" score="1.5" defaultChild="b">
      <True/>
      <Node id="a" score="2.25" defaultChild="a2">
        <SimplePredicate field="x1" operator="lessThan" value="0"/>
        <Node id="a1" score="-4">
          <SimplePredicate field="x2" operator="greaterOrEqual" value="0.5"/>
        </Node>
        <Node id="a2" score="8">
          <SimplePredicate field="x2" operator="notEqual" value="0.5"/>
        </Node>
      </Node>
      <Node id="b" score="16" defaultChild="b1">
        <SimplePredicate field="x1" operator="greaterThan" value="1"/>
        <Node id="b1" score="32">
          <SimplePredicate field="x2" operator="isMissing"/>
        </Node>
        <Node id="b2" score="64">
          <SimplePredicate field="x2" operator="lessOrEqual" value="0"/>
        </Node>
      </Node>
    </Node>
  </TreeModel>
</PMML>
"""
)


@pytest.mark.parametrize("no_true", ["returnNullPrediction", "returnLastPrediction"])
@pytest.mark.parametrize("strategy", ["none", "nullPrediction", "lastPrediction", "defaultChild"])
def test_tree_missing_value_strategies_match_jpmml_evaluator(strategy: str, no_true: str, tmp_path: Path) -> None:
    pmml = tmp_path / "tree.pmml"
    pmml.write_text(TREE.format(strategy=strategy, no_true=no_true))
    grid = [-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]
    rows = pd.DataFrame([(a, b) for a in grid for b in grid], columns=["x1", "x2"])
    worst, _, _ = compare(pmml, rows)
    assert worst == 0.0


NEURAL = (
    X1_X2
    + """    <DataField name="y" {target}>
  </DataDictionary>
  <NeuralNetwork functionName="{function}" activationFunction="{activation}" threshold="0.25">
    <MiningSchema>
      <MiningField name="x1"/>
      <MiningField name="x2"/>
      <MiningField name="y" usageType="target"/>
    </MiningSchema>
    {output}
    <NeuralInputs>
      <NeuralInput id="a">
        <DerivedField optype="continuous" dataType="double">
          <NormContinuous field="x1" outliers="{outliers}" mapMissingTo="0.5">
            <LinearNorm orig="-1" norm="0"/><LinearNorm orig="0.5" norm="0.25"/><LinearNorm orig="2" norm="1"/>
          </NormContinuous>
        </DerivedField>
      </NeuralInput>
      <NeuralInput id="b">
        <DerivedField optype="continuous" dataType="double"><FieldRef field="x2"/></DerivedField>
      </NeuralInput>
    </NeuralInputs>
    <NeuralLayer>
      <Neuron id="h1" bias="0.1"><Con from="a" weight="0.8"/><Con from="b" weight="-0.6"/></Neuron>
      <Neuron id="h2" bias="-0.2"><Con from="a" weight="-0.4"/><Con from="b" weight="0.9"/></Neuron>
      <Neuron id="h3" bias="0.3"><Con from="b" weight="0.5"/></Neuron>
    </NeuralLayer>
    <NeuralLayer activationFunction="{last}" normalizationMethod="{normalization}">
      <Neuron id="o1" bias="0.2">
        <Con from="h1" weight="1.1"/><Con from="h2" weight="-0.7"/><Con from="a" weight="0.3"/>
      </Neuron>
      <Neuron id="o2" bias="0.4"><Con from="h2" weight="0.6"/><Con from="h3" weight="0.9"/></Neuron>
    </NeuralLayer>
    <NeuralOutputs>{outputs}</NeuralOutputs>
  </NeuralNetwork>
</PMML>
"""
)
CLASSIFICATION = {
    "target": 'optype="categorical" dataType="string"><Value value="no"/><Value value="yes"/></DataField',
    "function": "classification",
    "output": '<Output><OutputField name="p(no)" feature="probability" value="no"/>'
    '<OutputField name="p(yes)" feature="probability" value="yes"/></Output>',
    "outputs": '<NeuralOutput outputNeuron="o1"><DerivedField optype="categorical" dataType="string">'
    '<NormDiscrete field="y" value="no"/></DerivedField></NeuralOutput>'
    '<NeuralOutput outputNeuron="o2"><DerivedField optype="categorical" dataType="string">'
    '<NormDiscrete field="y" value="yes"/></DerivedField></NeuralOutput>',
}
REGRESSION = {
    "target": 'optype="continuous" dataType="double"/',
    "function": "regression",
    "output": "",
    "outputs": '<NeuralOutput outputNeuron="o2"><DerivedField optype="continuous" dataType="double">'
    '<NormContinuous field="y"><LinearNorm orig="10" norm="-1"/><LinearNorm orig="20" norm="0"/>'
    '<LinearNorm orig="50" norm="2"/></NormContinuous></DerivedField></NeuralOutput>',
}
ACTIVATIONS = ["identity", "logistic", "tanh", "rectifier", "exponential", "reciprocal", "square", "Gauss", "sine",
               "cosine", "Elliott", "arctan", "threshold"]  # fmt: skip


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_hand_written_neural_networks_match_jpmml_evaluator(activation: str, tmp_path: Path) -> None:
    """Each activation function, NormContinuous inputs (each outlier treatment, mapMissingTo) and outputs
    (inverted), connections that skip a layer, and the softmax, simplemax and no normalization."""
    grid = [-2.0, -1.0, -0.3, 0.5, 1.2, 3.0, np.nan]
    rows = pd.DataFrame([(a, b) for a in grid for b in grid if not np.isnan(b)], columns=["x1", "x2"])
    worst = 0.0
    documents = [(CLASSIFICATION, "softmax", "identity"), (CLASSIFICATION, "simplemax", "logistic"),
                 (REGRESSION, "none", activation)]  # fmt: skip
    for kind, normalization, last in documents:
        for outliers in ["asIs", "asMissingValues", "asExtremeValues"]:
            pmml = tmp_path / "nn.pmml"
            pmml.write_text(NEURAL.format(activation=activation, outliers=outliers, normalization=normalization,
                                          last=last, **kind))  # fmt: skip
            worst = max(worst, compare(pmml, rows)[0])
    print(f"neural network {activation}: {len(rows)} rows x 9 documents, worst difference {worst:.1e}")
    assert worst <= TOLERANCE


SVM = (
    X1_X2
    + """    <DataField name="y" optype="categorical" dataType="string">
      <Value value="a"/><Value value="b"/><Value value="c"/>
    </DataField>
  </DataDictionary>
  <SupportVectorMachineModel functionName="classification" {method}>
    <MiningSchema>
      <MiningField name="x1"/><MiningField name="x2"/><MiningField name="y" usageType="target"/>
    </MiningSchema>
    <LinearKernelType/>
    <VectorDictionary numberOfVectors="2">
      <VectorFields numberOfFields="2"><FieldRef field="x1"/><FieldRef field="x2"/></VectorFields>
      <VectorInstance id="v1"><Array type="real" n="2">1 0</Array></VectorInstance>
      <VectorInstance id="v2">
        <REAL-SparseArray n="2"><Indices>2</Indices><REAL-Entries>1</REAL-Entries></REAL-SparseArray>
      </VectorInstance>
    </VectorDictionary>
    {machines}
  </SupportVectorMachineModel>
</PMML>
"""
)
MACHINE = """<SupportVectorMachine targetCategory="{target}" {other} {threshold}>
      <SupportVectors><SupportVector vectorId="v1"/><SupportVector vectorId="v2"/></SupportVectors>
      <Coefficients absoluteValue="{offset}"><Coefficient value="{c1}"/><Coefficient value="{c2}"/></Coefficients>
    </SupportVectorMachine>"""
SVM_DOCUMENTS = {
    # one-against-one: votes with 1-1-1 ties (the first category voted for wins), a machine's own threshold
    "one-against-one": ('classificationMethod="OneAgainstOne"', [
        ("b", 'alternateTargetCategory="a"', "", 0, 1, 0),
        ("c", 'alternateTargetCategory="a"', "", 0.5, -1, 0),
        ("c", 'alternateTargetCategory="b"', 'threshold="0.3"', 0, 1, 0.5)]),
    "one-against-one-model-threshold": ('classificationMethod="OneAgainstOne" threshold="-0.5"', [
        ("a", 'alternateTargetCategory="b"', "", 0, 0.5, -1),
        ("c", 'alternateTargetCategory="b"', "", 0.5, 0, 1),
        ("a", 'alternateTargetCategory="c"', 'threshold="0.25"', 0, 1, 1)]),
    # one-against-all: the smallest value wins (ties: the earlier machine)
    "one-against-all": ('classificationMethod="OneAgainstAll"', [
        ("c", "", "", 0, 1, 0), ("a", "", "", 0, 0, 1), ("b", "", "", 0.5, -1, -1)]),
    # a binary machine read through the model's alternateBinaryTargetCategory: the value rounded, 1 or 0
    "alternate-binary": ('classificationMethod="OneAgainstOne" alternateBinaryTargetCategory="b"', [
        ("c", "", "", 0.5, 0.5, 0)]),
}  # fmt: skip


@pytest.mark.parametrize("document", sorted(SVM_DOCUMENTS))
def test_hand_written_svm_classifiers_match_jpmml_evaluator(document: str, tmp_path: Path) -> None:
    method, machines = SVM_DOCUMENTS[document]
    pmml = tmp_path / "svm.pmml"
    pmml.write_text(
        SVM.format(
            method=method,
            machines="".join(
                MACHINE.format(target=t, other=o, threshold=h, offset=b, c1=c1, c2=c2)
                for t, o, h, b, c1, c2 in machines
            ),
        )
    )
    grid = [-1.0, -0.5, 0.0, 0.25, 0.3, 0.5, 0.7, 1.0, 2.0, np.nan]
    rows = pd.DataFrame([(a, b) for a in grid for b in grid], columns=["x1", "x2"])
    worst, outputs, _ = compare(pmml, rows)
    print(f"svm {document}: {len(rows)} rows, labels equal")
    assert outputs == ["y"]
    assert worst == 0.0


BAYES = (
    X1_X2
    + """    <DataField name="y" optype="categorical" dataType="string">
      <Value value="a"/><Value value="b"/><Value value="c"/>
    </DataField>
  </DataDictionary>
  <NaiveBayesModel functionName="classification" threshold="{threshold}">
    <MiningSchema>
      <MiningField name="x1"/><MiningField name="x2"/><MiningField name="y" usageType="target"/>
    </MiningSchema>
    <Output>
      <OutputField name="p(a)" feature="probability" value="a"/>
      <OutputField name="p(b)" feature="probability" value="b"/>
      <OutputField name="p(c)" feature="probability" value="c"/>
    </Output>
    <BayesInputs>
      <BayesInput fieldName="x1"><TargetValueStats>
        <TargetValueStat value="c"><GaussianDistribution mean="2" variance="0.25"/></TargetValueStat>
        <TargetValueStat value="a"><GaussianDistribution mean="-1" variance="1"/></TargetValueStat>
        <TargetValueStat value="b"><GaussianDistribution mean="0.5" variance="4"/></TargetValueStat>
      </TargetValueStats></BayesInput>
      <BayesInput fieldName="x2"><TargetValueStats>
        <TargetValueStat value="a"><GaussianDistribution mean="0" variance="0.1"/></TargetValueStat>
        <TargetValueStat value="b"><GaussianDistribution mean="1" variance="0.5"/></TargetValueStat>
        <TargetValueStat value="c"><GaussianDistribution mean="-1" variance="2"/></TargetValueStat>
      </TargetValueStats></BayesInput>
    </BayesInputs>
    <BayesOutput fieldName="y"><TargetValueCounts>
      <TargetValueCount value="a" count="10"/><TargetValueCount value="b" count="25"/>
      <TargetValueCount value="c" count="5"/>
    </TargetValueCounts></BayesOutput>
  </NaiveBayesModel>
</PMML>
"""
)


@pytest.mark.parametrize("threshold", ["0", "0.001", "0.05"])
def test_hand_written_naive_bayes_matches_jpmml_evaluator(threshold: str, tmp_path: Path) -> None:
    """Categories listed out of order, the threshold (a density below it counts as the threshold), missing inputs."""
    pmml = tmp_path / "bayes.pmml"
    pmml.write_text(BAYES.format(threshold=threshold))
    grid = [-4.0, -1.0, -0.2, 0.0, 0.5, 1.5, 2.0, 6.0, np.nan]
    rows = pd.DataFrame([(a, b) for a in grid for b in grid], columns=["x1", "x2"])
    worst, outputs, _ = compare(pmml, rows)
    print(f"naive bayes threshold {threshold}: {len(rows)} rows, outputs {outputs}, worst difference {worst:.1e}")
    assert worst <= TOLERANCE


GENERAL = (
    X1_X2
    + """    <DataField name="y" {target}>
  </DataDictionary>
  <GeneralRegressionModel functionName="{function}" {attributes}>
    <MiningSchema>
      <MiningField name="x1"/><MiningField name="x2"/><MiningField name="y" usageType="target"/>
    </MiningSchema>
    {output}
    <ParameterList>
      <Parameter name="p0"/><Parameter name="p1"/><Parameter name="p2"/><Parameter name="p3"/><Parameter name="p4"/>
    </ParameterList>
    <CovariateList><Predictor name="x1"/><Predictor name="x2"/></CovariateList>
    <PPMatrix>
      <PPCell value="1" predictorName="x1" parameterName="p1"/>
      <PPCell value="2" predictorName="x2" parameterName="p2"/>
      <PPCell value="1" predictorName="x1" parameterName="p3"/><PPCell value="1" predictorName="x2" parameterName="p3"/>
    </PPMatrix>
    <ParamMatrix>{cells}</ParamMatrix>
  </GeneralRegressionModel>
</PMML>
"""
)
CONTINUOUS_TARGET = 'optype="continuous" dataType="double"/'
ABC = 'optype="categorical" dataType="string"><Value value="a"/><Value value="b"/><Value value="c"/></DataField'
YES_NO = 'optype="categorical" dataType="string"><Value value="no"/><Value value="yes"/></DataField'
LINEAR_CELLS = (
    '<PCell parameterName="p0" beta="0.3"/><PCell parameterName="p1" beta="0.6"/>'
    '<PCell parameterName="p2" beta="-0.2"/><PCell parameterName="p3" beta="0.15"/>'
)


def probabilities(*categories: str) -> str:
    return "<Output>" + "".join(f'<OutputField name="p({c})" feature="probability" value="{c}"/>'
                                for c in categories) + "</Output>"  # fmt: skip


def cells(category: str, scale: float) -> str:
    return "".join(f'<PCell targetCategory="{category}" parameterName="{p}" beta="{b * scale}"/>'
                   for p, b in [("p0", 0.3), ("p1", 0.6), ("p2", -0.2), ("p3", 0.15)])  # fmt: skip


LINKS = ["identity", "log", "logit", "cloglog", "loglog", "logc", "probit", 'negbin" distParameter="0.5',
         'power" linkParameter="0.5', 'power" linkParameter="0', 'oddspower" linkParameter="0.5',
         'oddspower" linkParameter="0']  # fmt: skip
GENERAL_DOCUMENTS: dict[str, tuple[str, str, str, str, str]] = {
    "regression": (CONTINUOUS_TARGET, "regression", 'modelType="regression"', "", LINEAR_CELLS),
    "general-linear": (CONTINUOUS_TARGET, "regression", 'modelType="generalLinear"', "", LINEAR_CELLS),
    **{"generalized-linear-" + link.replace('" distParameter="', "-").replace('" linkParameter="', "-"): (
        CONTINUOUS_TARGET, "regression",
        f'modelType="generalizedLinear" linkFunction="{link}" offsetValue="0.1" trialsValue="3"', "", LINEAR_CELLS)
       for link in LINKS},
    "multinomial-logistic": (ABC, "classification", 'modelType="multinomialLogistic"', probabilities("a", "b", "c"),
                             cells("a", 1.0) + cells("c", -0.7)),
    "multinomial-logistic-reference": (ABC, "classification", 'modelType="multinomialLogistic" '
                                       'targetReferenceCategory="a"', probabilities("a", "b", "c"),
                                       cells("b", 1.0) + cells("c", -0.7)),
    "binary-logit": (YES_NO, "classification", 'modelType="generalizedLinear" linkFunction="logit"',
                     probabilities("no", "yes"), cells("yes", 1.5)),
    **{f"ordinal-{link}": (ABC, "classification", f'modelType="ordinalMultinomial" cumulativeLink="{link}"',
                           probabilities("a", "b", "c"),
                           '<PCell targetCategory="a" parameterName="p0" beta="-0.5"/>'
                           '<PCell targetCategory="b" parameterName="p0" beta="0.8"/>'
                           '<PCell parameterName="p1" beta="0.6"/><PCell parameterName="p2" beta="-0.2"/>'
                           '<PCell parameterName="p3" beta="0.15"/>')
       for link in ["logit", "probit", "cloglog", "loglog", "cauchit"]},
}  # fmt: skip


@pytest.mark.parametrize("document", sorted(GENERAL_DOCUMENTS))
def test_hand_written_general_regression_matches_jpmml_evaluator(document: str, tmp_path: Path) -> None:
    """Covariates with exponents and an interaction; each model type, link and cumulative link function."""
    target, function, attributes, output, pcells = GENERAL_DOCUMENTS[document]
    pmml = tmp_path / "general.pmml"
    pmml.write_text(GENERAL.format(target=target, function=function, attributes=attributes, output=output,
                                   cells=pcells))  # fmt: skip
    grid = [-2.0, -0.7, 0.0, 0.4, 1.0, 2.5, np.nan]
    rows = pd.DataFrame([(a, b) for a in grid for b in grid], columns=["x1", "x2"])
    worst, outputs, _ = compare(pmml, rows)
    print(f"general regression {document}: {len(rows)} rows, outputs {outputs}, worst difference {worst:.1e}")
    assert worst <= TOLERANCE
