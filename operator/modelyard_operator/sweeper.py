"""Periodic work over the indexes, in one task, instead of kopf timers on every object.

kopf puts a finalizer on each object a timer applies to: two extra writes per object (add, remove), and a
ModelDeployment deleted while the operator is down would stay until it comes back. One sweep per second over
the in-memory indexes does the same work without touching the objects:

- every second, each ModelDeployment whose rollout is in progress (measure when due, decide, apply);
- every :data:`RESYNC_SECONDS`, each ModelDeployment once, spread evenly over the interval (a reconcile of an
  unchanged object reads memory and writes nothing, so this only catches what no event announced);
- every :data:`VALIDATION_CHECK_SECONDS`, each ModelVersion still Validating (a missed Job event, a result that
  came after its grace period, a Job deleted by hand).

A ModelDeployment whose reconcile is still running is skipped until the next second.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from modelyard_operator.indexes import View
from modelyard_operator.reconcile import rollout_active

TICK_SECONDS = 1.0
RESYNC_SECONDS = 30
VALIDATION_CHECK_SECONDS = 10

log = logging.getLogger("modelyard.operator")

Reconcile = Callable[[str, str, Any, View], Awaitable[None]]
CheckValidation = Callable[[str, str, dict[str, Any], Any, View], Awaitable[None]]


def resync_slot(namespace: str, name: str) -> int:
    """The second, within each resync interval, at which this ModelDeployment is resynced (stable, spread)."""
    return zlib.crc32(f"{namespace}/{name}".encode()) % RESYNC_SECONDS


class Sweeper:
    def __init__(self, memo: Any, view: View, reconcile: Reconcile, check_validation: CheckValidation) -> None:
        self.memo, self.view = memo, view
        self.reconcile, self.check_validation = reconcile, check_validation
        self.indexed = asyncio.Event()  # set by the first resource handler: kopf runs them once indexes are full
        self._context: contextvars.Context | None = None
        self._running: set[asyncio.Task[None]] = set()

    def ready(self) -> None:
        """Called from resource handlers: kopf calls them only once its indexes hold the initial listing, and
        their context carries kopf's event queue (``kopf.event`` from the sweeper's work needs it)."""
        if self._context is None:
            self._context = contextvars.copy_context()
            self.indexed.set()

    async def run(self) -> None:
        await self.indexed.wait()
        tick = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            tick += 1
            self.sweep(tick)

    def sweep(self, tick: int) -> None:
        for (namespace, name), md in self.view.all_model_deployments():
            due = rollout_active(md) or resync_slot(namespace, name) == tick % RESYNC_SECONDS
            if due and not self.memo.locks[(namespace, name)].locked():
                self._spawn(self.reconcile(namespace, name, self.memo, self.view), f"{namespace}/{name}")
        if tick % VALIDATION_CHECK_SECONDS == 0:
            for (namespace, name), mv in self.view.all_model_versions():
                if (mv.get("status") or {}).get("phase") == "Validating":
                    self._spawn(self.check_validation(namespace, name, mv, self.memo, self.view), f"{namespace}/{name}")

    def _spawn(self, work: Awaitable[None], what: str) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # kopf's Temporary/PermanentError included: the next sweep retries
                log.warning("periodic reconcile of %s: %s", what, exc)

        task = asyncio.create_task(guarded(), context=self._context)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def stop(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
