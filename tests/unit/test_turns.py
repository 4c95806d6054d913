"""turns.py: one reconcile per object at a time, and who may join one that waits."""

from __future__ import annotations

import asyncio

from modelyard_operator.turns import Turns


def test_a_trigger_behind_a_waiting_turn_can_join_it_and_the_count_goes_when_it_starts() -> None:
    async def scenario() -> list[str]:
        turns, key, ran = Turns(), ("ns", "md"), []
        release = asyncio.Event()

        async def run(label: str) -> None:
            async with turns.turn(key):
                ran.append(label)
                if label == "first":
                    await release.wait()

        first = asyncio.create_task(run("first"))
        await asyncio.sleep(0)
        assert turns[key].locked()
        assert not turns.waiting(key)  # running, nobody behind it
        second = asyncio.create_task(run("second"))
        await asyncio.sleep(0)
        assert turns.waiting(key)  # a third trigger would join "second"
        assert not turns.waiting(("ns", "other"))
        release.set()
        await asyncio.gather(first, second)
        assert not turns.waiting(key)
        assert not turns[key].locked()
        return ran

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_waiter_cancelled_before_its_turn_is_no_longer_counted() -> None:
    async def scenario() -> None:
        turns, key = Turns(), "k"
        async with turns.turn(key):
            waiter = asyncio.create_task(_enter(turns, key))
            await asyncio.sleep(0)
            assert turns.waiting(key)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            assert not turns.waiting(key)  # else every later event would join a reconcile that never runs
        async with turns.turn(key):  # the lock is free again
            pass

    asyncio.run(scenario())


async def _enter(turns: Turns, key: str) -> None:
    async with turns.turn(key):
        pass
