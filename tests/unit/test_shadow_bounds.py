"""The server's shadow copies are bounded: at most MAX_IN_FLIGHT at once and MAX_BYTES of arrays held; beyond, a
request is counted skipped, never queued. The copies run against a candidate that waits until released."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.modelconfig import ShadowConfig
from modelyard_runtime.server.shadow import MAX_BYTES, MAX_IN_FLIGHT, Shadows


def count(metrics: ServerMetrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "modelyard_shadow_comparisons_total", {"model": "m", "version": "2", "result": result}
    )
    return value or 0.0


def test_copies_beyond_the_bounds_are_skipped_and_the_rest_compared() -> None:
    async def scenario() -> ServerMetrics:
        metrics = ServerMetrics()
        release = asyncio.Event()

        async def candidate(name: str, version: str, inputs: Any, datatypes: Any, names: list[str]) -> Any:
            await release.wait()
            return {"y": inputs["x"] * 1}

        shadows = Shadows(metrics, candidate)
        config = ShadowConfig("2")
        small = {"x": np.ones((1, 4), np.float32)}
        for _ in range(MAX_IN_FLIGHT + 2):
            shadows.offer(config, "m", "1", small, {"x": "FP32"}, {"y": small["x"]}, False)
        await asyncio.sleep(0)
        assert count(metrics, "skipped") == 2
        release.set()
        await asyncio.sleep(0.05)
        assert count(metrics, "agree") == MAX_IN_FLIGHT
        release.clear()
        big = {"x": np.zeros(MAX_BYTES // 8, np.float32)}  # half the bound in inputs, half again in the answer
        shadows.offer(config, "m", "1", big, {"x": "FP32"}, {"y": big["x"]}, False)
        shadows.offer(config, "m", "1", small, {"x": "FP32"}, {"y": small["x"]}, False)  # over 64 MiB: skipped
        await asyncio.sleep(0)
        assert count(metrics, "skipped") == 3
        shadows.offer(config, "m", "2", small, {"x": "FP32"}, {"y": small["x"]}, False)  # the shadow itself: no copy
        shadows.offer(config, "m", "1", small, {"x": "FP32"}, {"y": small["x"]}, True)  # classification: skipped
        assert count(metrics, "skipped") == 4
        release.set()
        await asyncio.sleep(0.05)
        shadows.offer(config, "m", "1", small, {"x": "FP32"}, {"y": small["x"]}, False)  # room again
        await asyncio.sleep(0.05)
        assert count(metrics, "agree") == MAX_IN_FLIGHT + 2
        await shadows.close()
        return metrics

    asyncio.run(scenario())
