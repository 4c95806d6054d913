"""The asyncio batching queue around the pure merge/split core, with a numpy function as the model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelyard_runtime.server.batcher import Batcher


class Doubler:
    """Y = 2·X, recording the batch sizes it ran."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.sizes: list[int] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        x = inputs["X"]
        with self.lock:
            self.sizes.append(int(x.shape[0]))
        if self.fail_on is not None and self.fail_on in x[:, 0]:
            raise ValueError("model error")
        return {"Y": x * 2}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_requests_share_a_batch_and_get_their_own_rows() -> None:
    model = Doubler()

    async def main() -> list[tuple[Any, Any]]:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=16, max_delay_s=0.2, concurrency=1)
            requests = [np.full((1 + i % 3, 2), i, np.float32) for i in range(6)]
            results = await asyncio.gather(*(batcher.submit({"X": r}) for r in requests))
            await batcher.close()
            return list(zip(requests, results, strict=True))

    for request, (outputs, timing) in run(main()):
        np.testing.assert_array_equal(outputs["Y"], request * 2)
        assert timing.batch_size == 12
    assert model.sizes == [12]  # 1+2+3+1+2+3 rows, one execution


def test_batches_never_exceed_the_maximum() -> None:
    model = Doubler()

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=4, max_delay_s=0.05, concurrency=1)
            results = await asyncio.gather(*(batcher.submit({"X": np.full((1, 1), i, np.float32)}) for i in range(10)))
            await batcher.close()
        assert [float(o["Y"][0, 0]) for o, _ in results] == [2.0 * i for i in range(10)]
        assert sum(1 for _, t in results if t.leader) == len(model.sizes)

    run(main())
    assert max(model.sizes) <= 4
    assert sum(model.sizes) == 10


def test_incompatible_shapes_run_as_separate_groups() -> None:
    model = Doubler()

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.1, concurrency=1)
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
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.1, concurrency=1)
            good = batcher.submit({"X": np.full((1, 2), 1, np.float32)})
            bad = batcher.submit({"X": np.full((1, 3), 7, np.float32)})  # other shape: its own group
            results = await asyncio.gather(good, bad, return_exceptions=True)
            await batcher.close()
            return list(results)

    good, bad = run(main())
    np.testing.assert_array_equal(good[0]["Y"], np.full((1, 2), 2, np.float32))
    assert isinstance(bad, ValueError)


def test_the_delay_bounds_how_long_a_lone_request_waits() -> None:
    model = Doubler()

    async def main() -> float:
        with ThreadPoolExecutor(1) as pool:
            batcher = Batcher(model, pool, max_batch_size=8, max_delay_s=0.05, concurrency=1)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await batcher.submit({"X": np.ones((1, 1), np.float32)})
            waited = loop.time() - started
            await batcher.close()
            return waited

    waited = run(main())
    assert 0.04 <= waited < 1.0
    assert model.sizes == [1]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_many_requests_all_answered(concurrency: int) -> None:
    model = Doubler()

    async def main() -> None:
        with ThreadPoolExecutor(3) as pool:
            batcher = Batcher(model, pool, max_batch_size=32, max_delay_s=0.001, concurrency=concurrency)
            xs = [np.full((1, 4), i, np.float32) for i in range(200)]
            results = await asyncio.gather(*(batcher.submit({"X": x}) for x in xs))
            await batcher.close()
        for x, (out, _) in zip(xs, results, strict=True):
            np.testing.assert_array_equal(out["Y"], x * 2)

    run(main())
    assert sum(model.sizes) == 200
