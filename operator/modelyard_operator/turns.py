"""One reconcile of an object at a time, and no queue of identical ones behind it.

Every reconcile reads the object and its children from the watch-fed indexes when its turn starts, whatever
started it. So while one reconcile of a ModelDeployment runs and another waits for its turn, a third trigger (a
Deployment status event, a ModelVersion event) has nothing to add: the waiting one will read the state that
triggered it, since kopf updates the indexes before it calls a handler. Such a trigger *joins* the waiting
reconcile instead of queueing behind it. At scale a ModelDeployment otherwise ran one full reconcile per event
that arrived while it was busy, each finding nothing new to do.

Only triggers whose failure nobody retries may join (kopf's event handlers); a create or update handler always
takes its own turn, so its retry on a transient error stays with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Hashable


class Turns:
    """A lock per key, and how many wait for each."""

    def __init__(self) -> None:
        self._locks: collections.defaultdict[Hashable, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._waiting: collections.Counter[Hashable] = collections.Counter()

    def __getitem__(self, key: Hashable) -> asyncio.Lock:
        return self._locks[key]

    def waiting(self, key: Hashable) -> bool:
        """Someone waits for this key's turn and has not started yet."""
        return self._waiting[key] > 0

    @contextlib.asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks[key]
        self._waiting[key] += 1
        try:
            await lock.acquire()
        finally:
            self._waiting[key] -= 1
            if self._waiting[key] <= 0:
                del self._waiting[key]
        try:
            yield
        finally:
            lock.release()
