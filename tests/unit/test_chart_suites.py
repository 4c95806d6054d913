"""The chart's helm-unittest suites (charts/modelyard/tests) set every value at least once, so a value no suite
exercises fails here (the suites themselves run in tests/integration/test_chart_unittest.py)."""

from __future__ import annotations

from typing import Any

import yaml

from ..conftest import REPO

CHART = REPO / "charts" / "modelyard"


def leaves(node: Any, prefix: str = "") -> set[str]:
    """Dotted paths of a values tree's leaves (scalars, lists and empty maps)."""
    if isinstance(node, dict) and node:
        out: set[str] = set()
        for key, value in node.items():
            out |= leaves(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix}


def suite_paths() -> set[str]:
    """Every value path a suite sets (``set:`` keys may be dotted and hold maps)."""
    found: set[str] = set()
    for path in sorted((CHART / "tests").glob("*_test.yaml")):
        suite = yaml.safe_load(path.read_text())
        for test in suite["tests"]:
            for key, value in (test.get("set") or {}).items():
                found |= {f"{key}.{leaf}" if leaf else key for leaf in leaves(value)}
    return found


def test_every_value_is_set_by_some_suite() -> None:
    values = leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
    assert len(values) > 40
    covered = suite_paths()
    missing = sorted(v for v in values if not any(c == v or c.startswith(v + ".") for c in covered))
    assert missing == [], f"values no helm-unittest suite sets: {missing}"


def test_suites_set_only_values_the_chart_has() -> None:
    values = leaves(yaml.safe_load((CHART / "values.yaml").read_text()))
    unknown = sorted(
        c for c in suite_paths()
        if not any(c == v or c.startswith(v + ".") for v in values) and not c.startswith("global.")
    )  # fmt: skip
    assert unknown == [], f"suites set values the chart does not have (typos?): {unknown}"
