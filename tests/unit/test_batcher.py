"""The asyncio scheduler of adaptive batching around the pure policy and merge/split core, with numpy functions
as the model and a real thread pool."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelyard_runtime.errors import UnavailableError
from modelyard_runtime.server.batcher import Batcher, Outputs, Timing, next_estimate

IN_POOL = 0  # inline_below_ns=0: every batch runs in the pool, so the loop stays free while it executes


class Doubler:
    """Y = 2·X, recording the batch sizes it ran, the thread and the input buffer; ``gate`` holds the first run."""

    def __init__(self, fail_on: int | None = None, hold_first: bool = False) -> None:
        self.sizes: list[int] = []
        self.threads: list[int] = []
        self.addresses: list[int] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.gate = threading.Event()
        if not hold_first:
            self.gate.set()

    def __call__(self, inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        x = inputs["X"]
        with self.lock:
            self.sizes.append(int(x.shape[0]))
            self.threads.append(threading.get_ident())
            self.addresses.append(x.__array_interface__["data"][0])
        self.started.set()
        self.gate.wait(10)
        if self.fail_on is not None and self.fail_on in x[:, 0]:
            raise ValueError("model error")
        return {"Y": x * 2}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def until(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10)


def ones(i: float, rows: int = 1, width: int = 2) -> dict[str, npt.NDArray[Any]]:
    return {"X": np.full((rows, width), i, np.float32)}


def test_requests_ready_in_the_same_turn_share_a_batch_and_get_their_own_rows() -> None:
    model = Doubler()

    async def main() -> list[tuple[Any, Any]]:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=16, max_delay_s=0.2, inline_below_ns=IN_POOL)
            requests = [np.full((1 + i % 3, 2), i, np.float32) for i in range(6)]
            results = await asyncio.gather(*(batcher.submit({"X": r}) for r in requests))
            await batcher.close()
            return list(zip(requests, results, strict=True))

    results = run(main())
    for request, (outputs, timing) in results:
        np.testing.assert_array_equal(outputs["Y"], request * 2)
        assert timing.batch_size == 12
    assert model.sizes == [12]  # 1+2+3+1+2+3 rows, one execution
    first, second = results[0][1][0]["Y"], results[1][1][0]["Y"]
    assert np.shares_memory(first.base, second.base)  # outputs are views of one batch output, not copies


def test_a_request_on_an_idle_model_does_not_wait_for_the_delay() -> None:
    model = Doubler()

    async def main() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=30.0, preferred=(8,))
            started = time.perf_counter()
            for i in range(3):  # one after the other: each finds the model idle
                out, timing = await batcher.submit(ones(i))
                np.testing.assert_array_equal(out["Y"], ones(2 * i)["X"])
                assert timing.batch_size == 1
            waited = time.perf_counter() - started
            await batcher.close()
            return waited

    assert run(main()) < 5.0  # far below one 30 s delay
    assert model.sizes == [1, 1, 1]


def test_requests_arriving_while_a_batch_executes_form_the_next_batch() -> None:
    model = Doubler(hold_first=True)

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=30.0, inline_below_ns=IN_POOL)
            first = asyncio.ensure_future(batcher.submit(ones(100)))
            await until(model.started)  # the first runs alone, at once
            later = [asyncio.ensure_future(batcher.submit(ones(i))) for i in range(6)]
            await asyncio.sleep(0.05)
            assert model.sizes == [1]  # the others wait for the model, not for company
            model.gate.set()
            results = await asyncio.gather(first, *later)
            await batcher.close()
        assert [float(out["Y"][0, 0]) for out, _ in results[1:]] == [2.0 * i for i in range(6)]
        assert sum(1 for _, timing in results if timing.leader) == len(model.sizes)

    run(main())
    assert model.sizes == [1, 6]  # gathered into one batch as soon as the model was free, no delay waited


def test_full_batches_run_beside_the_executing_one_and_never_exceed_the_maximum() -> None:
    model = Doubler(hold_first=True)

    async def main() -> None:
        with ThreadPoolExecutor(3) as pool:
            batcher = Batcher(model, pool, max_batch_size=4, max_delay_s=30.0, inline_below_ns=IN_POOL)
            first = asyncio.ensure_future(batcher.submit(ones(100)))
            await until(model.started)
            later = [asyncio.ensure_future(batcher.submit(ones(i))) for i in range(10)]
            await asyncio.sleep(0.1)
            assert model.sizes == [1, 4, 4]  # waiting could not make these larger; the 2 left wait for the model
            model.gate.set()
            results = await asyncio.gather(first, *later)
            await batcher.close()
        assert [float(out["Y"][0, 0]) for out, _ in results[1:]] == [2.0 * i for i in range(10)]

    run(main())
    assert model.sizes == [1, 4, 4, 2]


def test_preferred_sizes_run_at_once_and_the_rest_waits_for_company() -> None:
    model = Doubler(hold_first=True)

    async def main() -> float:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=30.0, preferred=(4,), inline_below_ns=IN_POOL)
            first = asyncio.ensure_future(batcher.submit(ones(100)))
            await until(model.started)
            five = [asyncio.ensure_future(batcher.submit(ones(i))) for i in range(5)]
            await asyncio.sleep(0.01)
            started = time.perf_counter()
            model.gate.set()
            await asyncio.gather(first, *five[:4])  # a preferred batch of 4 runs as soon as the model is free
            await asyncio.sleep(0.05)
            assert not five[4].done()  # one left: it waits (up to the delay) for a preferred size
            three = [asyncio.ensure_future(batcher.submit(ones(i))) for i in range(3)]
            await asyncio.gather(five[4], *three)  # ... which three more make
            waited = time.perf_counter() - started
            await batcher.close()
            return waited

    assert run(main()) < 5.0
    assert model.sizes == [1, 4, 4]


def test_the_delay_bounds_the_wait_for_a_preferred_size() -> None:
    model = Doubler(hold_first=True)

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.05, preferred=(4,), inline_below_ns=IN_POOL)
            first = asyncio.ensure_future(batcher.submit(ones(100)))
            await until(model.started)
            two = [asyncio.ensure_future(batcher.submit(ones(i))) for i in range(2)]
            await asyncio.sleep(0.2)  # they have waited out the delay while the model was busy
            model.gate.set()
            await asyncio.wait_for(asyncio.gather(first, *two), 5.0)
            await batcher.close()

    run(main())
    assert model.sizes == [1, 2]  # no preferred size formed: the largest batch ran when the delay was over


def test_incompatible_shapes_run_as_separate_groups() -> None:
    model = Doubler()

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.1, inline_below_ns=IN_POOL)
            a, b = np.ones((1, 2), np.float32), np.ones((1, 3), np.float32)
            (ya, _), (yb, _) = await asyncio.gather(batcher.submit({"X": a}), batcher.submit({"X": b}))
            await batcher.close()
        assert ya["Y"].shape == (1, 2)
        assert yb["Y"].shape == (1, 3)

    run(main())
    assert model.sizes == [1, 1]


def test_a_failing_batch_fails_only_its_members() -> None:
    model = Doubler(fail_on=7)

    async def main() -> list[Any]:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.1, inline_below_ns=IN_POOL)
            good = batcher.submit({"X": np.full((1, 2), 1, np.float32)})
            bad = batcher.submit({"X": np.full((1, 3), 7, np.float32)})  # other shape: its own group
            results = await asyncio.gather(good, bad, return_exceptions=True)
            after = await batcher.submit(ones(3))  # the batcher keeps serving
            await batcher.close()
            return [*results, after]

    good, bad, after = run(main())
    np.testing.assert_array_equal(good[0]["Y"], np.full((1, 2), 2, np.float32))
    assert isinstance(bad, ValueError)
    np.testing.assert_array_equal(after[0]["Y"], ones(6)["X"])


def test_small_lone_runs_move_onto_the_loop_thread_once_measured() -> None:
    model = Doubler()

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.0, inline_below_ns=10**9)
            for i in range(3):
                await batcher.submit(ones(i))
            await batcher.close()

    run(main())
    loop_thread = threading.get_ident()
    assert model.threads[0] != loop_thread  # unmeasured: in the pool
    assert model.threads[1:] == [loop_thread, loop_thread]


def test_batches_reuse_one_preallocated_input_buffer() -> None:
    model = Doubler()

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.0, inline_below_ns=IN_POOL)
            for round_ in range(3):
                xs = [ones(10 * round_ + i) for i in range(2 + round_)]
                results = await asyncio.gather(*(batcher.submit(x) for x in xs))
                for x, (out, _) in zip(xs, results, strict=True):
                    np.testing.assert_array_equal(out["Y"], x["X"] * 2)
            await batcher.close()

    run(main())
    assert model.sizes == [2, 3, 4]
    assert len(set(model.addresses)) == 1  # the rows went into the same preallocated array each time


def test_a_buffer_an_output_points_into_is_not_reused() -> None:
    """A model that returns its input as is (a view): reusing the buffer would overwrite earlier answers."""

    def identity(inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        return {"Y": inputs["X"]}

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(identity, pool, max_batch_size=8, max_delay_s=0.0, inline_below_ns=IN_POOL)
            first = await asyncio.gather(*(batcher.submit(ones(i)) for i in range(3)))
            await asyncio.gather(*(batcher.submit(ones(50 + i)) for i in range(3)))
            await batcher.close()
        assert [float(out["Y"][0, 0]) for out, _ in first] == [0.0, 1.0, 2.0]

    run(main())


@pytest.mark.parametrize("concurrency", [1, 2])
def test_many_requests_all_answered(concurrency: int) -> None:
    model = Doubler()

    async def main() -> None:
        with ThreadPoolExecutor(3) as pool:
            batcher = Batcher(model, pool, max_batch_size=32, max_delay_s=0.001, concurrency=concurrency)
            xs = [np.full((1 + i % 2, 4), i, np.float32) for i in range(200)]
            results = await asyncio.gather(*(batcher.submit({"X": x}) for x in xs))
            await batcher.close()
        for x, (out, _) in zip(xs, results, strict=True):
            np.testing.assert_array_equal(out["Y"], x * 2)

    run(main())
    assert sum(model.sizes) == 300
    assert max(model.sizes) <= 32


def test_close_fails_queued_requests_and_refuses_new_ones() -> None:
    model = Doubler(hold_first=True)

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.0, inline_below_ns=IN_POOL)
            first = asyncio.ensure_future(batcher.submit(ones(1)))
            await until(model.started)
            queued = asyncio.ensure_future(batcher.submit(ones(2)))
            await asyncio.sleep(0.01)
            closing = asyncio.ensure_future(batcher.close())
            await asyncio.sleep(0.01)
            model.gate.set()
            await closing
            out, _ = await first  # the executing batch finishes
            np.testing.assert_array_equal(out["Y"], ones(2)["X"])
            with pytest.raises(UnavailableError):
                await queued
            with pytest.raises(UnavailableError):
                await batcher.submit(ones(3))

    run(main())


def test_a_run_in_the_pool_can_only_lower_the_estimate_an_inline_run_moves_it_both_ways() -> None:
    """A run in the pool comes back only once its thread has the GIL again: under load its wall time is mostly
    waiting, so it may lower a model's estimate (the model is at most that slow) but never raise it."""
    assert next_estimate(800_000, 5_000_000, inline=False) == 800_000  # slow in the pool: no news
    assert next_estimate(800_000, 0, inline=False) == 700_000  # fast in the pool: the model is small
    assert next_estimate(800_000, 1_600_000, inline=True) == 900_000  # inline: measured as it is
    assert next_estimate(800_000, 0, inline=True) == 700_000


def test_a_slow_lone_model_stays_in_the_pool() -> None:
    def slow(inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        time.sleep(0.02)
        return {"Y": inputs["X"] * 2}

    threads: list[int] = []

    def recording(inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        threads.append(threading.get_ident())
        return slow(inputs)

    async def main() -> None:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(recording, pool, max_batch_size=8, max_delay_s=0.0, inline_below_ns=10_000_000)
            for i in range(4):
                await batcher.submit(ones(i))
            await batcher.close()

    run(main())
    assert len(threads) == 4
    assert threading.get_ident() not in threads


def test_queued_requests_of_a_small_measured_model_run_as_batches_on_the_loop_thread() -> None:
    """Once lone runs show the model is small, a batch estimated under the threshold (rows × a lone run) runs on the
    loop thread too: a hop to the pool would cost more than the run."""
    model = Doubler()

    async def main() -> list[tuple[Outputs, Timing]]:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.0, inline_below_ns=10**9)
            for i in range(12):  # the estimate starts at the threshold; a dozen fast runs bring it under a quarter
                await batcher.submit(ones(i))
            results = await asyncio.gather(*(batcher.submit(ones(10 + i)) for i in range(4)))
            await batcher.close()
            return results

    results = run(main())
    loop_thread = threading.get_ident()
    assert model.threads[0] != loop_thread  # unmeasured: in the pool
    assert model.threads[1:] == [loop_thread] * (len(model.threads) - 1)
    assert sum(model.sizes[12:]) == 4
    assert len(model.sizes[12:]) < 4  # the four queued ones ran batched
    for i, (out, _) in enumerate(results):
        np.testing.assert_array_equal(out["Y"], ones(10 + i)["X"] * 2)
