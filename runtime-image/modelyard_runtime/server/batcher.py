"""Dynamic batching: the asyncio scheduler per model version around the pure policy and merge/split core.

When to run and what (``batching.policy``): a request that finds the model idle runs at once; requests that
arrive while a batch executes are gathered and run together as soon as it finishes; the queue delay only
bounds a wait for a preferred batch size. Requests that become ready in the same turn of the event loop (e.g.
several sockets readable after the loop was busy) are gathered too: the decision is taken one turn after an
arrival, not inside ``submit``.

Where it runs: a batch whose estimated run (rows times a lone request's average run, ``lone_ewma_ns``) is under a
thread hop's worth (``inline_below_ns``) runs on the event loop thread, as the unbatched path does, and what arrives
meanwhile forms the next batch; every other batch runs in the inference thread pool (ONNX Runtime releases the GIL
while it computes), so the loop keeps reading and answering requests meanwhile and gathers the next batch. Each
execution is one hop back to the loop, not one per request. Rows of a batch
are copied into a preallocated buffer per execution slot; outputs go back to each caller as views.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from modelyard_runtime.batching.merge import (
    Signature,
    Tensors,
    allocate_for,
    batch_size,
    group_compatible,
    merge,
    shares_buffer,
    signature,
    split,
)
from modelyard_runtime.batching.policy import Policy, Run, decide
from modelyard_runtime.errors import UnavailableError

Outputs = dict[str, npt.NDArray[Any]]
Runner = Callable[[Mapping[str, npt.NDArray[Any]]], Outputs]
# Runs averaging less than this may stay on the loop thread. A hop to the pool costs the loop the hand-over both ways
# and the run the wait for the GIL, which the busy loop holds for up to the switch interval: on the 2-core benchmark
# machine a 0.2 ms run went faster inline at concurrency 1 and 8 and even a 3 ms one did no better in the pool
# (benchmarks/RESULTS.md, "inline threshold"), so only runs well above a millisecond leave the loop.
INLINE_BELOW_NS = 1_000_000


def next_estimate(estimate_ns: int, measured_ns: int, *, inline: bool) -> int:
    """A model's average run time after one more run. An inline run measures it; a run in the pool measures it plus
    its wait for the GIL on the way back, which under load can be many times the run, so it can only lower the
    estimate (otherwise a small model first measured under load would never leave the pool)."""
    if not inline and measured_ns >= estimate_ns:
        return estimate_ns
    return estimate_ns + (measured_ns - estimate_ns) // 8


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
    rows: int
    idle_arrival: bool  # nothing executed or waited when it arrived: it must not wait for company


Result = tuple[Outputs, Timing] | BaseException


class Batcher:
    def __init__(
        self,
        runner: Runner,
        pool: Executor,
        *,
        max_batch_size: int,
        max_delay_s: float,
        preferred: tuple[int, ...] = (),
        concurrency: int = 1,
        inline_below_ns: int = INLINE_BELOW_NS,
    ) -> None:
        self._runner = runner
        self._pool = pool
        self.policy = Policy(max_batch_size, max_delay_s, preferred)
        self.max_batch_size = max_batch_size
        self._concurrency = concurrency  # batches executing at once, full ones aside (Triton's instance count)
        self._inline_below_ns = inline_below_ns
        self._queue: deque[_Pending] = deque()
        self._executing = 0
        self._kicked = False  # a decision is scheduled for the next turn of the loop
        self._timer: asyncio.TimerHandle | None = None
        self._in_pool: set[asyncio.Future[list[Result]]] = set()
        self._buffers: dict[Signature, list[dict[str, npt.NDArray[Any]]]] = {}  # free input buffers per signature
        self.lone_ewma_ns = inline_below_ns  # a lone request's run time; starts in the pool until measured
        self._closed = False

    async def submit(self, inputs: Tensors) -> tuple[Outputs, Timing]:
        if self._closed:
            raise UnavailableError("the model was unloaded")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Outputs, Timing]] = loop.create_future()
        idle = self._executing == 0 and not self._queue
        self._queue.append(_Pending(inputs, future, time.perf_counter_ns(), batch_size(inputs), idle))
        self._kick(loop)
        return await future

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(UnavailableError("the model was unloaded"))
        if self._in_pool:
            await asyncio.gather(*self._in_pool, return_exceptions=True)

    # --- scheduling (event loop thread) -----------------------------------------------------------------------

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._kicked:
            self._kicked = True
            loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        """Start batches while a slot is free and the policy says run; arm a timer when it says wait."""
        self._kicked = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue and not self._closed:
            oldest = self._queue[0]
            rows = [p.rows for p in itertools.islice(self._queue, self.max_batch_size + 1)]
            waited_s = (time.perf_counter_ns() - oldest.enqueued_ns) / 1e9
            free = self._executing < self._concurrency
            decision = decide(self.policy, rows, idle_arrival=oldest.idle_arrival, waited_s=waited_s, free=free)
            if not isinstance(decision, Run):
                if decision is not None:
                    self._timer = asyncio.get_running_loop().call_later(decision.seconds, self._dispatch)
                return
            batch = [self._queue.popleft() for _ in range(decision.count)]
            self._start(batch)

    def _start(self, batch: list[_Pending]) -> None:
        self._executing += 1
        if self.lone_ewma_ns * sum(p.rows for p in batch) < self._inline_below_ns:
            # a thread hop would cost more than the run (rows times a lone request's average run, no less):
            # run it here; the loop is busy only briefly, and what arrives meanwhile forms the next batch
            try:
                results = self._execute(batch)
            except Exception as exc:
                results = [exc]
            self._complete(batch, results, inline=True)
            return
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._execute, batch)
        self._in_pool.add(future)
        future.add_done_callback(lambda f: self._pool_done(batch, f))

    def _pool_done(self, batch: list[_Pending], future: asyncio.Future[list[Result]]) -> None:
        self._in_pool.discard(future)
        try:
            results: list[Result] = future.result()
        except (Exception, asyncio.CancelledError) as exc:  # _execute failed outside a group, or the pool stopped
            results = [exc] * len(batch)
        self._complete(batch, results, inline=False)
        if self._queue:  # what gathered meanwhile starts now, not a loop turn later behind other work
            self._dispatch()

    def _complete(self, batch: list[_Pending], results: list[Result], *, inline: bool) -> None:
        self._executing -= 1
        for member, result in zip(batch, results, strict=True):
            if member.future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                member.future.set_exception(result)
            else:
                member.future.set_result(result)
        if len(batch) == 1 and not isinstance(results[0], BaseException):
            self.lone_ewma_ns = next_estimate(self.lone_ewma_ns, results[0][1].infer_ns, inline=inline)

    # --- execution (a pool thread, or the loop thread for a small lone request) ----------------------------------

    def _execute(self, batch: list[_Pending]) -> list[Result]:
        """Merge each compatible group, run it once, split the rows back: one result per member, in order."""
        dispatched = time.perf_counter_ns()
        if len(batch) == 1:  # nothing to merge or split: the model's outputs are the caller's
            lone = batch[0]
            try:
                outputs = self._runner(lone.inputs)
            except Exception as exc:
                return [exc]
            infer_ns = time.perf_counter_ns() - dispatched
            return [(outputs, Timing(dispatched - lone.enqueued_ns, 0, infer_ns, 0, lone.rows))]
        results: list[Result] = [UnavailableError("not run")] * len(batch)
        inputs = [p.inputs for p in batch]
        keys = [signature(x) for x in inputs]  # once per request: grouping, merging and buffers share them
        sizes = [p.rows for p in batch]
        for group in group_compatible(inputs, self.max_batch_size, keys, sizes):
            key = keys[group[0]]
            buffers = self._take_buffers(key) if len(group) > 1 else None
            try:
                t0 = time.perf_counter_ns()
                merged = merge(
                    [inputs[i] for i in group], buffers, signature_of_all=key, sizes=[sizes[i] for i in group]
                )
                t1 = time.perf_counter_ns()
                outputs = self._runner(merged.inputs)
                t2 = time.perf_counter_ns()
                parts = split(merged, outputs)
                t3 = time.perf_counter_ns()
            except Exception as exc:
                for i in group:
                    results[i] = exc
                continue
            if buffers is not None and not shares_buffer(outputs, buffers):
                self._buffers.setdefault(key, []).append(buffers)
            for rank, (index, part) in enumerate(zip(group, parts, strict=True)):
                timing = Timing(
                    dispatched - batch[index].enqueued_ns, t1 - t0, t2 - t1, t3 - t2, merged.size, rank == 0
                )
                results[index] = (part, timing)
        return results

    def _take_buffers(self, key: Signature) -> dict[str, npt.NDArray[Any]]:
        """A free preallocated input buffer for requests of this signature (allocated on first use)."""
        free = self._buffers.get(key)
        with contextlib.suppress(IndexError):
            if free:
                return free.pop()  # list.pop is atomic: two pool threads never get the same buffer
        return allocate_for(key, self.max_batch_size)
