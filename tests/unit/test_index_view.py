"""Which ModelDeployments a ModelVersion event reaches (``View.model_deployments_naming``)."""

from __future__ import annotations

from typing import Any

from modelyard_operator.indexes import View


def view(mds: dict[Any, list[Any]]) -> View:
    return View(mds, {}, {}, {}, {}, {}, {})


MDS = {
    ("model", "ns", "m1"): ["d1"],
    ("model", "ns", "m2"): ["d2"],
    ("lacking-version", "ns", "1"): ["d1", "d3"],  # d3 asks for m3:1, which does not exist
}


def test_a_version_that_appears_or_goes_reaches_its_models_deployments_and_those_lacking_its_version() -> None:
    assert view(MDS).model_deployments_naming("ns", "m1", "1") == {"d1", "d3"}
    assert view(MDS).model_deployments_naming("other", "m1", "1") == set()


def test_a_change_of_a_living_version_reaches_its_models_deployments_only() -> None:
    # a mismatch names versions of other models by name and model, which never change: at 300 ModelDeployments
    # that lacked their version for a while, each status write of every version reconciled all of them
    assert view(MDS).model_deployments_naming("ns", "m2", None) == {"d2"}
