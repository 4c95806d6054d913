"""Categorical inputs and transformations against the reference: scikit-learn pipelines over a DataFrame with string,
integer-category and numeric columns (one-hot encoding, scaling, binning, sklearn2pmml's domain decorators with
their missing- and invalid-value treatments), exported by sklearn2pmml, compiled here, run by ONNX Runtime and
compared with ``jpmml_evaluator`` on rows with missing values and categories never seen in training. Where the
reference finds a row invalid (an error), every compiled output must be missing. Each case prints its worst
difference."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import KBinsDiscretizer, MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn2pmml import sklearn2pmml
from sklearn2pmml.decoration import CategoricalDomain, ContinuousDomain
from sklearn2pmml.pipeline import PMMLPipeline
from sklearn2pmml.preprocessing import ExpressionTransformer

from .test_pmml_reference import TOLERANCE, compare

pytestmark = pytest.mark.timeout(300)

COLORS, SHAPES, GRADES = ["red", "green", "blue"], ["a", "b", "c", "d"], [1, 2, 3, 4]
NUMBERS = ["x1", "x2", "x3"]


def frame(seed: int, rows: int, unseen: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    colors, shapes, grades = COLORS + (["pink"] if unseen else []), SHAPES + (["zz"] if unseen else []), GRADES
    x = pd.DataFrame(rng.normal(size=(rows, len(NUMBERS))), columns=NUMBERS)
    x["color"] = rng.choice(colors, rows).astype(object)
    x["shape"] = rng.choice(shapes, rows).astype(object)
    x["grade"] = rng.choice(grades + ([9] if unseen else []), rows).astype(np.float64)
    if unseen:  # missing values in every column
        x.loc[x.index[::11], "color"] = None
        x.loc[x.index[3::13], "shape"] = None
        x.loc[x.index[5::17], "x1"] = np.nan
        x.loc[x.index[7::19], "grade"] = np.nan
    return x


def score(x: pd.DataFrame) -> pd.Series:
    noise = np.random.default_rng(7).normal(scale=0.2, size=len(x))
    bonus = x.color.map({"red": 1.5, "green": -0.5, "blue": 0.0}) + x["shape"].map({"a": 0.5, "b": -1, "c": 0, "d": 1})
    return pd.Series(x.x1 - 0.5 * x.x2 + bonus + 0.3 * x.grade + noise, name="y")


def three_classes(x: pd.DataFrame) -> pd.Series:
    y = score(x)
    return pd.Series(np.where(y > 1.5, "high", np.where(y < 0.3, "low", "mid")), name="y")


def two_classes(x: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where(score(x) > 0.8, "yes", "no"), name="y")


def onehot(scaler: Callable[[], Any]) -> ColumnTransformer:
    return ColumnTransformer([("cat", OneHotEncoder(), ["color", "shape", "grade"]), ("num", scaler(), NUMBERS)])


def domains(color: dict[str, Any], shape: dict[str, Any], numbers: dict[str, Any]) -> ColumnTransformer:
    """sklearn2pmml's decorators: each says the field's valid values and its missing- and invalid-value treatment."""
    return ColumnTransformer([
        ("color", CategoricalDomain(**color), ["color"]),
        ("shape", CategoricalDomain(**shape), ["shape"]),
        ("grade", CategoricalDomain(invalid_value_treatment="as_missing"), ["grade"]),
        ("num", ContinuousDomain(**numbers), NUMBERS),
    ])  # fmt: skip


def decorated(color: dict[str, Any], shape: dict[str, Any], numbers: dict[str, Any]) -> list[tuple[str, Any]]:
    encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [0, 1, 2])], remainder="passthrough")
    return [("domains", domains(color, shape, numbers)), ("encode", encode)]


CASES: dict[str, tuple[Callable[[], list[tuple[str, Any]]], Callable[[pd.DataFrame], pd.Series]]] = {
    "onehot-standard-tree-classifier": (
        lambda: [("t", onehot(StandardScaler)), ("m", DecisionTreeClassifier(max_depth=6, random_state=0))],
        three_classes,
    ),
    "onehot-standard-logistic": (
        lambda: [("t", onehot(StandardScaler)), ("m", LogisticRegression(max_iter=500))],
        three_classes,
    ),
    "onehot-minmax-forest-regressor": (
        lambda: [
            ("t", onehot(MinMaxScaler)),
            ("m", RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0)),
        ],
        score,
    ),
    "ordinal-encoder-gradient-boosting-regressor": (  # MapValues from each category to its ordinal
        lambda: [
            ("t", ColumnTransformer([("o", OrdinalEncoder(), ["color", "shape"]), ("n", "passthrough", NUMBERS)])),
            ("m", GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0)),
        ],
        score,
    ),
    "expressions-linear-regression": (  # sklearn2pmml's ExpressionTransformer: Apply with if, max, abs
        lambda: [
            (
                "t",
                ColumnTransformer(
                    [
                        ("if", ExpressionTransformer("X[0] * 2 if X[1] > 0 else X[0] - 1"), ["x1", "x2"]),
                        ("max", ExpressionTransformer("max(X[0], X[1]) + abs(X[1])"), ["x2", "x3"]),
                        ("n", "passthrough", NUMBERS),
                    ]
                ),
            ),
            ("m", LinearRegression()),
        ],
        score,
    ),
    "kbins-linear-regression": (
        lambda: [
            ("t", ColumnTransformer([("bins", KBinsDiscretizer(n_bins=5, encode="ordinal"), NUMBERS)])),
            ("m", LinearRegression()),
        ],
        score,
    ),
    "kbins-onehot-tree-regressor": (
        lambda: [
            ("t", ColumnTransformer([("bins", KBinsDiscretizer(n_bins=4, encode="onehot-dense"), NUMBERS)])),
            ("m", DecisionTreeRegressor(max_depth=5, random_state=0)),
        ],
        score,
    ),
    "domains-as-missing-return-invalid-forest": (
        lambda: (
            [
                *decorated(
                    {"invalid_value_treatment": "as_missing"}, {"invalid_value_treatment": "return_invalid"}, {}
                ),
                ("m", RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)),
            ]
        ),
        two_classes,
    ),
    "domains-replacements-gradient-boosting": (
        lambda: (
            [
                *decorated(
                    {"missing_value_replacement": "green", "invalid_value_treatment": "as_missing"},
                    {"missing_value_replacement": "b", "invalid_value_treatment": "as_is"},
                    {"missing_value_replacement": 0.25},
                ),
                ("m", GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)),
            ]
        ),
        two_classes,
    ),
    "domains-outliers-logistic": (
        lambda: (
            [
                *decorated(
                    {"invalid_value_treatment": "as_missing", "missing_value_replacement": "red"},
                    {"invalid_value_treatment": "as_missing", "missing_value_replacement": "a"},
                    {
                        "outlier_treatment": "as_extreme_values",
                        "low_value": -1.0,
                        "high_value": 1.2,
                        "missing_value_replacement": 0.0,
                    },
                ),
                ("m", LogisticRegression(max_iter=500)),
            ]
        ),
        three_classes,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_categorical_inputs_and_transformations_match_jpmml_evaluator(case: str, tmp_path: Path) -> None:
    steps, target = CASES[case]
    train = frame(0, 400, unseen=False)
    pipeline = PMMLPipeline(steps())
    pipeline.fit(train[["color", "shape", "grade", *NUMBERS]], target(train))
    pmml = tmp_path / f"{case}.pmml"
    sklearn2pmml(pipeline, str(pmml))
    rows = frame(1, 400, unseen=True)
    worst, outputs, invalid = compare(pmml, rows)
    unseen = int(
        (
            (rows.color.notna() & ~rows.color.isin(COLORS))
            | (rows["shape"].notna() & ~rows["shape"].isin(SHAPES))
            | (rows.grade.notna() & ~rows.grade.isin(GRADES))
        ).sum()
    )
    print(f"{case}: {len(rows)} rows ({int(rows.isna().any(axis=1).sum())} with a missing value, {unseen} with an "
          f"unseen category, {invalid} invalid for the reference), outputs {outputs}, worst difference from "
          f"jpmml_evaluator {worst:.1e}")  # fmt: skip
    assert worst <= TOLERANCE
