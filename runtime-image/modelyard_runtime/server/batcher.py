"""Dynamic batching: an asyncio queue per model version in front of the pure merge/split core.

The first queued request opens a batch; requests already waiting join at once, later ones until
``max_delay`` has passed or ``max_batch_size`` rows are reached. Merging, running and splitting happen in
the inference thread pool, so the event loop only moves futures. ``concurrency`` batches may run at the
same time; while they do, the queue fills and the next batch is larger (throughput grows with load).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from modelyard_runtime.batching.merge import Tensors, batch_size, group_compatible, merge, split

Outputs = dict[str, npt.NDArray[Any]]
Runner = Callable[[Mapping[str, npt.NDArray[Any]]], Outputs]


@dataclass
class Timing:
    """Nanoseconds spent per phase, for the statistics extension and metrics."""

    queue_ns: int = 0
    input_ns: int = 0
    infer_ns: int = 0
    output_ns: int = 0
    batch_size: int = 1
    leader: bool = True  # one member per execution counts it


@dataclass
class _Pending:
    inputs: Tensors
    future: asyncio.Future[tuple[Outputs, Timing]]
    enqueued_ns: int


class Batcher:
    def __init__(
        self,
        runner: Runner,
        pool: Executor,
        *,
        max_batch_size: int,
        max_delay_s: float,
        concurrency: int = 2,
    ) -> None:
        self._runner = runner
        self._pool = pool
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Future[None]] = set()

    async def submit(self, inputs: Tensors) -> tuple[Outputs, Timing]:
        if self._task is None:
            self._task = asyncio.create_task(self._collect(), name="batcher")
        future: asyncio.Future[tuple[Outputs, Timing]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(inputs, future, time.perf_counter_ns()))
        return await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                batch = [await self._queue.get()]
                rows = batch_size(batch[0].inputs)
                deadline = loop.time() + self.max_delay_s
                while rows < self.max_batch_size:
                    if self._queue.empty():
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        try:
                            item = await asyncio.wait_for(self._queue.get(), remaining)
                        except TimeoutError:
                            break
                    else:
                        item = self._queue.get_nowait()
                    batch.append(item)
                    rows += batch_size(item.inputs)
            except BaseException:
                self._slots.release()
                raise
            future = loop.run_in_executor(self._pool, self._execute, batch)
            self._running.add(future)
            future.add_done_callback(self._finished)

    def _finished(self, future: asyncio.Future[None]) -> None:
        self._running.discard(future)
        self._slots.release()

    def _execute(self, batch: list[_Pending]) -> None:
        """In a pool thread: merge each compatible group, run it once, split the rows back."""
        dispatched = time.perf_counter_ns()
        for group in group_compatible([p.inputs for p in batch], self.max_batch_size):
            members = [batch[i] for i in group]
            try:
                t0 = time.perf_counter_ns()
                merged = merge([m.inputs for m in members])
                t1 = time.perf_counter_ns()
                outputs = self._runner(merged.inputs)
                t2 = time.perf_counter_ns()
                parts = split(merged, outputs)
                t3 = time.perf_counter_ns()
            except Exception as exc:
                for member in members:
                    member.future.get_loop().call_soon_threadsafe(_set_exception, member.future, exc)
                continue
            for rank, (member, part) in enumerate(zip(members, parts, strict=True)):
                timing = Timing(
                    queue_ns=dispatched - member.enqueued_ns,
                    input_ns=t1 - t0,
                    infer_ns=t2 - t1,
                    output_ns=t3 - t2,
                    batch_size=merged.size,
                    leader=rank == 0,
                )
                member.future.get_loop().call_soon_threadsafe(_set_result, member.future, (part, timing))


def _set_result(future: asyncio.Future[tuple[Outputs, Timing]], value: tuple[Outputs, Timing]) -> None:
    if not future.done():  # the client may have gone away
        future.set_result(value)


def _set_exception(future: asyncio.Future[tuple[Outputs, Timing]], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
