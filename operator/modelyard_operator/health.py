"""The operator's probes: ``/healthz`` (liveness) and ``/readyz`` (readiness), on ``--health-port``.

- **Liveness** fails when one of the operator's watch streams has been down (no open watch request on the API
  server) for longer than ``--watch-dead-seconds``. kopf reconnects a broken watch by itself; what liveness
  catches is a watch that stays broken (the API server unreachable from this pod, a wedged connection pool), where
  a restart is the remedy and kubelet applies it. A standby (leader election) is live while its election loop runs.
- **Readiness** is true once every watched kind's initial list succeeded (kopf opens the watch right after the
  list). A standby is Ready once it read the Lease: it can take over.

kopf does not tell when its watch requests open and close, so :func:`track_watches` wraps the two functions of
kopf's API client every watch goes through (``request``: the response arrived, the stream is open; ``stream``:
it ended). They are private to kopf: the wrapper checks they are there and fails at start if a kopf upgrade moved
them (``tests/integration/test_operator_ha.py`` proves the probes against a stopped API server).
"""

from __future__ import annotations

import contextvars
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_opened: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar("_opened", default=None)

# the kinds the operator watches (indexes.py, handlers.py): readiness waits for each one's initial list
WATCHED = ("modeldeployments", "modelversions", "deployments", "services", "jobs")


def watch_key(url: str) -> tuple[str, str]:
    """(plural, namespace or "") of a list/watch URL: /apis/G/V/namespaces/NS/PLURAL or /api/v1/PLURAL."""
    parts = [p for p in urllib.parse.urlsplit(url).path.split("/") if p]
    namespace = parts[parts.index("namespaces") + 1] if "namespaces" in parts[:-1] else ""
    return parts[-1] if parts else "", namespace


@dataclass
class Watches:
    """When each watch stream opened and closed (monotonic seconds), fed by :func:`track_watches`."""

    clock: Callable[[], float] = time.monotonic
    open: dict[tuple[str, str], int] = field(default_factory=dict)  # key -> open streams
    down_since: dict[tuple[str, str], float] = field(default_factory=dict)  # key -> when its last stream closed
    ever_opened: set[tuple[str, str]] = field(default_factory=set)

    def expect(self, keys: Iterable[tuple[str, str]]) -> None:
        """Streams that must open: down from now until they do (a watch that never opens is a dead one)."""
        for key in keys:
            if not self.open.get(key):
                self.down_since.setdefault(key, self.clock())

    def opened(self, key: tuple[str, str]) -> None:
        self.open[key] = self.open.get(key, 0) + 1
        self.down_since.pop(key, None)
        self.ever_opened.add(key)

    def closed(self, key: tuple[str, str]) -> None:
        self.open[key] = max(0, self.open.get(key, 0) - 1)
        if not self.open[key]:
            self.down_since[key] = self.clock()

    def dead_for(self) -> float:
        """How long the stream down the longest has been down (0 when all are open)."""
        now = self.clock()
        return max((now - since for since in self.down_since.values()), default=0.0)

    def listed(self, keys: Iterable[tuple[str, str]]) -> bool:
        return all(key in self.ever_opened for key in keys)


def track_watches(watches: Watches) -> None:
    """Wrap kopf's ``api.request`` and ``api.stream`` so ``watches`` learns when each watch opens and closes."""
    from kopf._cogs.clients import api

    request, stream = getattr(api, "request", None), getattr(api, "stream", None)
    if request is None or stream is None or getattr(stream, "_modelyard_tracked", False):
        if request is None or stream is None:
            raise RuntimeError("kopf's API client has no request/stream functions: the watch probe needs updating")
        return

    async def tracked_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = await request(method, url, *args, **kwargs)
        opened = _opened.get()
        if opened is not None and "watch=true" in url:
            watches.opened(watch_key(url))
            opened.append(watch_key(url))
        return response

    async def tracked_stream(url: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        opened: list[tuple[str, str]] = []  # the key, once this stream's request got its response
        _opened.set(opened)  # read by tracked_request, which the original stream awaits in this task
        try:
            async for item in stream(url, *args, **kwargs):
                yield item
        finally:
            for key in opened:
                watches.closed(key)

    tracked_stream._modelyard_tracked = True  # type: ignore[attr-defined]
    api.request = tracked_request
    api.stream = tracked_stream


@dataclass
class Probes:
    """What the two endpoints answer, from the watches (leader) or the election loop (standby)."""

    watches: Watches
    dead_after: float
    expected: list[tuple[str, str]]
    elector: Any = None  # leader.Elector when electing
    acting: bool = False  # kopf runs (always, without leader election)

    def live(self) -> tuple[bool, str]:
        if not self.acting:
            idle = time.monotonic() - self.elector.last_attempt if self.elector is not None else 0.0
            return idle <= self.dead_after, f"standby; election loop last ran {idle:.1f}s ago"
        dead = self.watches.dead_for()
        return dead <= self.dead_after, f"watch streams down for {dead:.1f}s (limit {self.dead_after:.0f}s)"

    def ready(self) -> tuple[bool, str]:
        if not self.acting:
            reached = self.elector is not None and self.elector.reached_api
            return reached, "standby; Lease read" if reached else "standby; Lease not read yet"
        listed = self.watches.listed(self.expected)
        return listed, "initial lists done" if listed else "initial lists in progress"


async def serve(probes: Probes, port: int) -> web.AppRunner:
    """Serve ``/healthz`` and ``/readyz`` on ``port`` (200 or 503, with the reason as text)."""

    def answer(check: Callable[[], tuple[bool, str]]) -> Callable[[web.Request], Any]:
        async def handle(_: web.Request) -> web.Response:
            ok, why = check()
            return web.Response(status=200 if ok else 503, text=("ok: " if ok else "failing: ") + why + "\n")

        return handle

    app = web.Application()
    app.add_routes([web.get("/healthz", answer(probes.live)), web.get("/readyz", answer(probes.ready))])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # kubelet probes it from outside the pod
    return runner
