from __future__ import annotations

import re

import pytest

from modelyard_operator.names import deployment_name, version_slug

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize("version", ["42", "v2", "1.0", "1-0", "RC_1", "a" * 63])
def test_deployment_names_are_dns_labels(version: str) -> None:
    name = deployment_name("fraud-detector-with-a-rather-long-name", version)
    assert DNS_LABEL.match(name), name
    assert len(name) <= 63


def test_simple_versions_stay_readable() -> None:
    assert deployment_name("fraud", "42") == "fraud-42"
    assert version_slug("v2") == "v2"


def test_distinct_versions_get_distinct_names() -> None:
    versions = ["1.0", "1-0", "1_0", "1.0.0", "RC1", "rc1"]
    names = {deployment_name("fraud", v) for v in versions}
    assert len(names) == len(versions)
