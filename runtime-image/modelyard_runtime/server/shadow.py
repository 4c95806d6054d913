"""Shadow traffic: a copy of each request a model's serving versions answer goes to a candidate version, whose
answer is compared with the one the client got and then dropped.

The model's ``config.yaml`` says which version shadows and how much (``shadow: {version, percent, max_abs_diff}``;
the operator writes it for a rollout's ``shadow`` step). The copy runs after the client's answer is computed, as a
task of its own, so it adds no latency to the answer; at most ``MAX_IN_FLIGHT`` copies holding at most ``MAX_BYTES``
of inputs and answers run at once, and a request beyond that is counted ``skipped``, not queued (memory stays
bounded whatever the load). A copy that finds no candidate version in this pod's repository is ``skipped`` too: while
an ``inPod`` rollout rolls the pods, the ones not rolled yet do not hold the candidate, and counting their copies as
the candidate's errors would fail its analysis before it ran. A candidate that is there and fails is an ``error``.

With ``compare: values`` (the default) a request agrees when no float element of the two answers differs by more
than ``max_abs_diff``; with ``compare: top1`` when the candidate names the same class on every row (the arg-max of
scores over two or more classes, or a label output), which is what a quantized or distilled classifier should keep
(:mod:`modelyard_runtime.build.compare`, the same numbers as the build gate's). Metrics carry the candidate's
version: ``modelyard_shadow_comparisons_total{result}``, ``modelyard_shadow_abs_diff`` and
``modelyard_shadow_top1_rows_total{result}``; the operator's ``agreement`` analysis reads the first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy.typing as npt

from modelyard_runtime.build.compare import Agreement
from modelyard_runtime.errors import NotFoundError
from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.modelconfig import ShadowConfig

log = logging.getLogger("modelyard.server")
MAX_IN_FLIGHT = 8
MAX_BYTES = 64 << 20  # inputs and served answers held by the copies in flight

Arrays = dict[str, npt.NDArray[Any]]
RunCandidate = Callable[[str, str, Arrays, dict[str, str], list[str]], Awaitable[Arrays]]


def judge(agreement: Agreement, config: ShadowConfig) -> str:
    """``agree`` or ``disagree`` for one compared request (see the module docstring)."""
    if config.compare == "top1" and agreement.top1_total:
        return "agree" if all(agreement.top1_same[k] == n for k, n in agreement.top1_total.items()) else "disagree"
    return "agree" if agreement.max_abs_diff <= config.max_abs_diff else "disagree"


class Shadows:
    """The shadow copies in flight of one server."""

    def __init__(self, metrics: ServerMetrics, run: RunCandidate) -> None:
        self._metrics = metrics
        self._run = run
        self._tasks: set[asyncio.Task[None]] = set()
        self._bytes = 0  # held by the copies in flight
        self._credit: dict[str, float] = {}  # per model: percent owed, so 25 % copies exactly every fourth request

    def offer(self, config: ShadowConfig | None, name: str, served: str, inputs: Arrays, datatypes: dict[str, str],
              outputs: Mapping[str, npt.NDArray[Any]], classified: bool) -> None:  # fmt: skip
        """Copy one answered request to the shadow version, when ``config`` asks for it."""
        if config is None or served == config.version:
            return
        if config.percent < 100:
            credit = self._credit.get(name, 0.0) + config.percent
            self._credit[name] = credit % 100
            if credit < 100:
                return
        size = sum(a.nbytes for a in inputs.values()) + sum(a.nbytes for a in outputs.values())
        if classified or len(self._tasks) >= MAX_IN_FLIGHT or self._bytes + size > MAX_BYTES:
            self._metrics.shadow_comparisons.labels(name, config.version, "skipped").inc()
            return
        task = asyncio.get_running_loop().create_task(self._compare(config, name, inputs, datatypes, dict(outputs)))
        self._tasks.add(task)
        self._bytes += size

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._bytes -= size

        task.add_done_callback(done)

    async def _compare(self, config: ShadowConfig, name: str, inputs: Arrays, datatypes: dict[str, str],
                       served: Arrays) -> None:  # fmt: skip
        version = config.version
        try:
            theirs = await self._run(name, version, inputs, datatypes, list(served))
            agreement = Agreement()
            agreement.add(served, theirs)
        except asyncio.CancelledError:
            raise
        except NotFoundError:  # this pod does not hold the candidate (not rolled yet): nothing was compared
            self._metrics.shadow_comparisons.labels(name, version, "skipped").inc()
            return
        except Exception as exc:  # the candidate failed or answered another shape: that is a finding, not a crash
            log.info("shadow version %s of %s failed on a copied request: %s", version, name, str(exc)[:300])
            self._metrics.shadow_comparisons.labels(name, version, "error").inc()
            return
        self._metrics.shadow_comparisons.labels(name, version, judge(agreement, config)).inc()
        if agreement.elements:
            self._metrics.shadow_abs_diff.labels(name, version).observe(agreement.max_abs_diff)
        for key, total in agreement.top1_total.items():
            same = agreement.top1_same[key]
            if same:
                self._metrics.shadow_top1.labels(name, version, "agree").inc(same)
            if total - same:
                self._metrics.shadow_top1.labels(name, version, "disagree").inc(total - same)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
