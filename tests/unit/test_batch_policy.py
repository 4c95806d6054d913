"""The pure scheduling policy of adaptive dynamic batching: one row per case."""

from __future__ import annotations

import pytest

from modelyard_runtime.batching.policy import Policy, PolicyError, Run, Wait, decide

PLAIN = Policy(max_batch_size=8, max_delay_s=0.001)
PREFERRED = Policy(max_batch_size=8, max_delay_s=0.002, preferred=(4, 8))


@pytest.mark.parametrize(
    ("policy", "rows", "idle", "waited", "expected"),
    [
        # nothing queued: nothing to do
        (PLAIN, [], True, 0.0, None),
        # a request that found the model idle runs at once, whatever the delay
        (PLAIN, [1], True, 0.0, Run(1)),
        (PREFERRED, [1], True, 0.0, Run(1)),
        (Policy(max_batch_size=8, max_delay_s=10.0, preferred=(8,)), [3], True, 0.0, Run(1)),
        # requests gathered while a batch executed run together as soon as the model is free (no preferred sizes)
        (PLAIN, [1, 1, 1], False, 0.0, Run(3)),
        (PLAIN, [2, 3], False, 0.0, Run(2)),
        # never more rows than max_batch_size: the first that does not fit waits for the next batch
        (PLAIN, [1] * 12, False, 0.0, Run(8)),
        (PLAIN, [5, 4], False, 0.0, Run(1)),
        (PLAIN, [3, 3, 3], False, 0.0, Run(2)),
        # a request at or above the limit runs alone (validation keeps it at most max_batch_size)
        (PLAIN, [8, 1], False, 0.0, Run(1)),
        (PLAIN, [1, 8], False, 0.0, Run(1)),
        # preferred sizes: the largest one the queue can form runs at once, the rest stays queued
        (PREFERRED, [1] * 5, False, 0.0, Run(4)),
        (PREFERRED, [1] * 9, False, 0.0, Run(8)),
        (PREFERRED, [2, 2, 3], False, 0.0, Run(2)),
        (PREFERRED, [2, 2, 3], True, 0.0, Run(2)),  # idle or not: a preferred batch is formed when it can be
        # no preferred size formed and the batch is not full: wait until the oldest has waited the delay
        (PREFERRED, [1, 1], False, 0.0, Wait(0.002)),
        (PREFERRED, [1, 1], False, 0.0015, Wait(0.002 - 0.0015)),
        (PREFERRED, [1, 1], False, 0.002, Run(2)),
        (PREFERRED, [1, 1], False, 0.5, Run(2)),
        (Policy(max_batch_size=8, max_delay_s=0.0, preferred=(4,)), [1, 1], False, 0.0, Run(2)),
        # ... but a batch that is already as full as it can get runs at once
        (PREFERRED, [3, 3, 3], False, 0.0, Run(2)),
        (Policy(max_batch_size=6, max_delay_s=1.0, preferred=(4,)), [3, 3], False, 0.0, Run(2)),
    ],
)
def test_decide(policy: Policy, rows: list[int], idle: bool, waited: float, expected: Run | Wait | None) -> None:
    got = decide(policy, rows, idle_arrival=idle, waited_s=waited)
    if isinstance(expected, Wait):
        assert isinstance(got, Wait)
        assert got.seconds == pytest.approx(expected.seconds)
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("policy", "rows", "expected"),
    [
        # while a batch executes the queue gathers ...
        (PLAIN, [1, 1, 1], None),
        (PREFERRED, [1, 1, 1, 1], None),  # ... a preferred size too (it runs when the model is free)
        # ... but a batch that cannot grow runs beside it
        (PLAIN, [1] * 9, Run(8)),
        (PLAIN, [8], Run(1)),
        (PLAIN, [5, 4], Run(1)),
        (PLAIN, [], None),
    ],
)
def test_decide_while_busy(policy: Policy, rows: list[int], expected: Run | None) -> None:
    assert decide(policy, rows, idle_arrival=False, waited_s=10.0, free=False) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch_size": 0}, "max_batch_size must be >= 1"),
        ({"max_batch_size": 4, "max_delay_s": -1.0}, "delay must be >= 0"),
        ({"max_batch_size": 4, "preferred": (2, 5)}, "between 1 and max_batch_size"),
        ({"max_batch_size": 4, "preferred": (0,)}, "between 1 and max_batch_size"),
    ],
)
def test_policy_rejects_settings_that_cannot_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy(**kwargs)  # type: ignore[arg-type]
