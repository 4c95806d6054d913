"""Names and labels of the objects the operator renders (pure)."""

from __future__ import annotations

import hashlib
import re

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MODEL = "modelyard.dev/model"
LABEL_VERSION = "modelyard.dev/version"
LABEL_BUILDS = "modelyard.dev/builds"  # on a build Job (spec.derivedFrom): the ModelVersion it builds
LABEL_DEPLOYMENT = "modelyard.dev/deployment"
SERVER_NAME = "modelyard-server"
MANAGED_BY = "modelyard"

_MAX_NAME = 63


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def version_slug(version: str) -> str:
    """A DNS-1123 form of a version; a hash suffix keeps distinct versions distinct ("1.0" vs "1-0")."""
    slug = re.sub(r"[^a-z0-9-]", "-", version.lower()).strip("-") or "v"
    if slug != version:
        slug = f"{slug}-{_short_hash(version)}"
    return slug


def versioned_name(base: str, version: str) -> str:
    """``<base>-<version slug>``, shortened with a hash when it would not fit a DNS-1123 label."""
    name = f"{base}-{version_slug(version)}"
    if len(name) <= _MAX_NAME:
        return name
    digest = _short_hash(name)
    return f"{name[: _MAX_NAME - len(digest) - 1].rstrip('-')}-{digest}"


def deployment_name(md_name: str, version: str) -> str:
    return versioned_name(md_name, version)


def common_labels(md_name: str, model: str) -> dict[str, str]:
    return {
        LABEL_NAME: SERVER_NAME,
        LABEL_INSTANCE: md_name,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MODEL: model,
        LABEL_DEPLOYMENT: md_name,
    }


def version_labels(md_name: str, model: str, version: str) -> dict[str, str]:
    return {**common_labels(md_name, model), LABEL_VERSION: version}


def selector(md_name: str, version: str | None = None) -> dict[str, str]:
    labels = {LABEL_NAME: SERVER_NAME, LABEL_INSTANCE: md_name}
    if version is not None:
        labels[LABEL_VERSION] = version
    return labels
