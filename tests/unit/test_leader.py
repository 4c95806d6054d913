"""Leader election's decision (pure: the Lease as read, when it last changed, now) and the probes' bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime

from modelyard_operator.health import Probes, Watches, watch_key
from modelyard_operator.leader import LEASE_SECONDS, Observation, claim, micro_time

WALL = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def lease(holder: str, version: str = "10", transitions: int = 0) -> dict:
    return {
        "metadata": {"resourceVersion": version},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": LEASE_SECONDS, "leaseTransitions": transitions},
    }


def test_micro_time_always_has_six_fractional_digits() -> None:
    assert micro_time(WALL) == "2026-12-05T12:00:00.000000Z"


def test_a_held_lease_is_taken_only_after_its_term_unchanged_on_our_clock() -> None:
    seen = Observation()
    assert claim(lease("a"), seen, "b", now=100.0, wall=WALL) is None  # first look: the term starts now
    assert seen.at == 100.0
    assert claim(lease("a"), seen, "b", now=100.0 + LEASE_SECONDS - 0.1, wall=WALL) is None
    assert claim(lease("a", version="11"), seen, "b", now=112.0, wall=WALL) is None  # renewed: counted anew
    assert claim(lease("a", version="11"), seen, "b", now=112.0 + LEASE_SECONDS - 0.1, wall=WALL) is None
    taken = claim(lease("a", version="11", transitions=3), seen, "b", now=112.0 + LEASE_SECONDS, wall=WALL)
    assert taken == {
        "holderIdentity": "b",
        "leaseDurationSeconds": LEASE_SECONDS,
        "renewTime": "2026-12-05T12:00:00.000000Z",
        "acquireTime": "2026-12-05T12:00:00.000000Z",
        "leaseTransitions": 4,
    }


def test_the_holder_renews_and_a_released_lease_is_free_at_once() -> None:
    renewed = claim(lease("a"), Observation(), "a", now=0.0, wall=WALL)
    assert renewed is not None
    assert "acquireTime" not in renewed  # renewing keeps acquireTime and the transition count
    free = claim(lease(""), Observation(), "b", now=0.0, wall=WALL)
    assert free is not None
    assert free["holderIdentity"] == "b"


def test_watch_key_names_the_kind_and_namespace() -> None:
    assert watch_key("https://h/apis/modelyard.dev/v1alpha1/namespaces/ml/modeldeployments?watch=true") == (
        "modeldeployments",
        "ml",
    )
    assert watch_key("https://h/apis/apps/v1/deployments?watch=true&labelSelector=x") == ("deployments", "")
    assert watch_key("/api/v1/namespaces?watch=true") == ("namespaces", "")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_liveness_fails_only_after_a_stream_stays_down_past_the_bound() -> None:
    clock = Clock()
    watches = Watches(clock=clock)
    expected = [("modeldeployments", ""), ("deployments", "")]
    probes = Probes(watches, dead_after=60, expected=expected, acting=True)
    watches.expect(expected)
    assert probes.ready() == (False, "initial lists in progress")
    clock.now = 61
    assert probes.live()[0] is False  # never opened: as dead as a broken one
    for key in expected:
        watches.opened(key)
    assert probes.live()[0] is True
    assert probes.ready()[0] is True
    watches.closed(expected[0])
    clock.now = 100
    watches.opened(expected[0])  # reconnected (a watch's normal timeout): never counted
    watches.closed(expected[1])
    clock.now = 160
    assert probes.live()[0] is True
    clock.now = 160.5
    assert probes.live() == (False, "watch streams down for 60.5s (limit 60s)")
    assert probes.ready()[0] is True  # readiness is about the initial lists, done once
    watches.opened(expected[1])
    assert probes.live()[0] is True
