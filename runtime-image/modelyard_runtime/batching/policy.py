"""When a dynamic batch runs and which queued requests it takes (pure: no clock, no asyncio, no numpy).

Adaptive batching: the batch size follows the load instead of a timer.

- A request that finds the model idle (nothing executing, nothing queued) runs at once: it never waits for
  company, so batching costs nothing at low load.
- Requests that arrive while a batch executes queue up; when the model is free again they run together as the
  next batch (up to ``max_batch_size`` rows), at once. Under load batches grow by themselves, because every
  execution leaves the next batch more time to gather. A batch that is already full runs at once even while
  another executes: waiting cannot make it larger (this keeps large requests running in parallel).
- ``preferred`` batch sizes work as in Triton's dynamic batcher: when the queue can form a batch of a preferred
  size, the largest such batch runs at once (the rest stays queued). When it cannot (and the batch is not full),
  the batch waits for company, but only while the model is free and only until its oldest request has waited
  ``max_delay_s``; then the largest batch that fits runs. Without preferred sizes a free model never waits.

The scheduler (``server.batcher``) asks :func:`decide` whenever something changes: a request arrives, a batch
finishes, or a wait it was told to take has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PolicyError(ValueError):
    """Batching settings that cannot work together; the message says which."""


@dataclass(frozen=True)
class Policy:
    max_batch_size: int
    max_delay_s: float = 0.0
    preferred: tuple[int, ...] = ()  # preferred batch sizes in rows, as Triton's preferred_batch_size

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise PolicyError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_delay_s < 0:
            raise PolicyError(f"the queue delay must be >= 0, got {self.max_delay_s}")
        wrong = [size for size in self.preferred if not 1 <= size <= self.max_batch_size]
        if wrong:
            raise PolicyError(
                f"preferred batch sizes must be between 1 and max_batch_size ({self.max_batch_size}), got {wrong}"
            )


@dataclass(frozen=True)
class Run:
    """Run the first ``count`` queued requests as one batch now."""

    count: int


@dataclass(frozen=True)
class Wait:
    """Nothing runs yet; ask again after ``seconds`` (or sooner, when a request arrives)."""

    seconds: float


def decide(
    policy: Policy, rows: Sequence[int], *, idle_arrival: bool, waited_s: float, free: bool = True
) -> Run | Wait | None:
    """What the model does with its queue now.

    ``rows``: the rows of each queued request in arrival order (at least the first ``max_batch_size + 1`` of
    them); ``idle_arrival``: the oldest queued request found the model idle when it arrived; ``waited_s``: how
    long the oldest has been queued; ``free``: no batch executes (or fewer than the model's concurrency).
    ``None``: nothing to do until something changes (the queue is empty, or the model is busy and the queue
    gathers). While the model is busy only a full batch runs, beside the executing one: it cannot grow by waiting.
    """
    if not rows:
        return None
    count, total = 0, 0
    for r in rows:  # the prefix that fits; a request as large as the limit or larger runs alone
        if count and total + r > policy.max_batch_size:
            break
        count, total = count + 1, total + r
    full = total >= policy.max_batch_size or count < len(rows)
    if not free:
        return Run(count) if full else None
    if policy.preferred:
        best = 0
        running = 0
        for i, r in enumerate(rows[:count], start=1):
            running += r
            if running in policy.preferred:
                best = i
        if best:
            return Run(best)
    if full or idle_arrival or not policy.preferred:
        return Run(count)
    remaining = policy.max_delay_s - waited_s
    if remaining <= 0:
        return Run(count)
    return Wait(remaining)
