"""The gate's numbers: largest and root-mean-square difference over float outputs, top-1 agreement over class
scores or labels, and the sentences of a failed gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelyard_runtime.build.compare import Agreement, verdict


def test_differences_over_every_float_element() -> None:
    a = Agreement()
    a.add({"y": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)}, {"y": np.array([[1.0, 2.5], [3.0, 3.0]], np.float16)})
    assert a.rows == 2
    assert a.elements == 4
    assert a.max_abs_diff == pytest.approx(1.0)
    assert a.rmse == pytest.approx(math.sqrt((0.25 + 1.0) / 4))
    assert a.top1_agreement == 0.5  # row 0: class 1 on both; row 1: class 1 vs class 0


def test_batches_accumulate_and_the_lowest_share_counts() -> None:
    a = Agreement()
    scores = np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)
    a.add({"p": scores, "label": np.array([1, 0])}, {"p": scores, "label": np.array([1, 1])})
    a.add({"p": scores, "label": np.array([1, 0])}, {"p": scores[::-1], "label": np.array([1, 0])})
    assert a.rows == 4
    assert a.top1_same == {"p": 2, "label": 3}
    assert a.top1_total == {"p": 4, "label": 4}
    assert a.top1_agreement == 0.5


def test_string_labels_and_nan_on_one_side() -> None:
    a = Agreement()
    a.add({"label": np.array(["cat", "dog"], dtype=object), "y": np.array([np.nan, 1.0])},
          {"label": np.array(["cat", "cat"], dtype=object), "y": np.array([np.nan, np.nan])})  # fmt: skip
    assert a.top1_agreement == 0.5
    assert a.max_abs_diff == math.inf  # NaN on both sides is equal; NaN against 1.0 is the worst difference
    assert verdict(a, 0.1, None, None) == ["maxAbsDiff inf is above 0.1"]


def test_outputs_must_match() -> None:
    with pytest.raises(ValueError, match=r"outputs \['z'\] differ from the parent's \['y'\]"):
        Agreement().add({"y": np.zeros(2)}, {"z": np.zeros(2)})
    with pytest.raises(ValueError, match=r"output 'y': the derived model gives shape \[3\], the parent \[2\]"):
        Agreement().add({"y": np.zeros(2)}, {"y": np.zeros(3)})


def test_verdict_names_each_missed_threshold() -> None:
    a = Agreement()
    a.add({"y": np.array([[0.0, 1.0]])}, {"y": np.array([[0.5, 0.4]])})
    assert verdict(a, 1.0, 1.0, 0.5) == ["top1Agreement 0.0000 is below 0.5"]
    assert verdict(a, 0.1, 0.1, None) == ["maxAbsDiff 0.6 is above 0.1", "rmse 0.552268 is above 0.1"]
    regression = Agreement()
    regression.add({"y": np.array([1.0, 2.0])}, {"y": np.array([1.0, 2.0])})
    assert verdict(regression, 0.0, 0.0, None) == []
    assert verdict(regression, None, None, 0.9) == [
        "top1Agreement: the model has no class output (scores over two or more classes, or labels)"
    ]
