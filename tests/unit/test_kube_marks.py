"""When the operator re-sends a child it applied before (``kube.unchanged_since``): a cache that has not caught up
with its own apply is no reason to send it again, anyone's change after it is."""

from __future__ import annotations

from typing import Any

from modelyard_operator.kube import _mark, unchanged_since


def obj(uid: str = "u1", generation: int | None = None, rv: str = "100") -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "resourceVersion": rv}
    if generation is not None:
        meta["generation"] = generation
    return {"metadata": meta}


def test_a_cache_behind_our_own_apply_shows_nothing_changed() -> None:
    applied = _mark(obj(rv="120"))
    assert unchanged_since(applied, obj(rv="120"))
    assert unchanged_since(applied, obj(rv="101"))  # the watch has not brought our apply yet


def test_a_change_after_our_apply_is_seen() -> None:
    assert not unchanged_since(_mark(obj(rv="120")), obj(rv="121"))
    assert not unchanged_since(_mark(obj(generation=3, rv="120")), obj(generation=4, rv="90"))


def test_status_updates_do_not_count_where_the_object_has_a_generation() -> None:
    assert unchanged_since(_mark(obj(generation=3, rv="120")), obj(generation=3, rv="500"))


def test_a_recreated_object_counts_as_changed_even_with_a_lower_number() -> None:
    assert not unchanged_since(_mark(obj(uid="u1", generation=5)), obj(uid="u2", generation=1))


def test_an_opaque_resource_version_is_never_taken_as_unchanged() -> None:
    assert _mark(obj(rv="abc")) is None
    assert not unchanged_since(_mark(obj(rv="abc")), obj(rv="abc"))
    assert not unchanged_since(_mark(obj(rv="120")), obj(rv="x"))
