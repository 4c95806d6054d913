"""Leader election over a coordination.k8s.io/v1 Lease: of several operator replicas, exactly one acts.

The rules are Kubernetes' own (client-go's ``leaderelection``):

- A candidate that finds the Lease held by someone else waits until the holder has not renewed it for
  ``leaseDurationSeconds``, measured on the candidate's own clock from the moment it last saw the Lease change
  (so clocks that disagree between nodes do not matter), then takes it. Updates carry the resourceVersion they
  were read at: of two candidates in the same round, one gets a conflict and stays standby.
- The leader renews every :data:`RETRY_SECONDS`. One that has not managed to renew for :data:`RENEW_DEADLINE_SECONDS`
  (less than the lease duration) stops acting before anyone else may take over: the process exits and Kubernetes
  restarts it as a candidate.
- A leader that stops normally (SIGTERM: a rolling update, a scale-down) gives the Lease up, so a standby takes
  over within one retry period instead of a lease duration.

A standby never starts kopf: it opens no watch and writes nothing but its attempts on the Lease.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

LEASE_SECONDS = 15
RENEW_DEADLINE_SECONDS = 10.0
RETRY_SECONDS = 2.0

Obj = dict[str, Any]
log = logging.getLogger("modelyard.operator")


class Store(Protocol):
    async def get(self) -> Obj | None: ...
    async def create(self, spec: Obj) -> bool: ...
    async def update(self, resource_version: str, spec: Obj) -> bool: ...


def micro_time(now: datetime) -> str:
    """A MicroTime as the API server parses it (RFC 3339 with exactly six fractional digits)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Observation:
    """The Lease as this candidate last saw it change, and when (its own monotonic clock)."""

    resource_version: str = ""
    at: float = 0.0


def claim(lease: Obj, seen: Observation, identity: str, now: float, wall: datetime) -> Obj | None:
    """The Lease spec to write to hold (or keep holding) ``lease``, or None while another holder's term runs.

    ``seen`` is updated in place when the Lease changed since the last look: its holder's term is counted from then.
    """
    meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
    version = str(meta.get("resourceVersion") or "")
    if version != seen.resource_version:
        seen.resource_version, seen.at = version, now
    holder = spec.get("holderIdentity") or ""
    term = float(spec.get("leaseDurationSeconds") or LEASE_SECONDS)
    if holder and holder != identity and now < seen.at + term:
        return None
    stamp = micro_time(wall)
    new: Obj = {"holderIdentity": identity, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": stamp}
    if holder != identity:
        new.update(acquireTime=stamp, leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1)
    return new


class LeadershipLostError(Exception):
    pass


class Elector:
    """One candidate: :meth:`acquire` returns once it leads; :meth:`keep` renews until it cannot."""

    def __init__(self, store: Store, identity: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.identity, self.clock = store, identity, clock
        self.seen = Observation()
        self.leading = False
        self.last_attempt = clock()  # the loop's heartbeat (liveness of a standby)
        self.reached_api = False  # the Lease was read at least once (readiness of a standby)
        self.holder = ""  # the holder the Lease named when last read

    async def _try(self) -> bool:
        self.last_attempt = self.clock()
        lease = await self.store.get()
        self.reached_api = True
        self.holder = ((lease or {}).get("spec") or {}).get("holderIdentity") or ""
        if lease is None:
            return await self.store.create({"holderIdentity": self.identity, "leaseDurationSeconds": LEASE_SECONDS})
        spec = claim(lease, self.seen, self.identity, self.clock(), datetime.now(UTC))
        if spec is None:
            return False
        return await self.store.update(str(lease["metadata"].get("resourceVersion") or ""), spec)

    async def acquire(self) -> None:
        log.info("leader election: %s is a candidate; standing by until it holds the Lease", self.identity)
        while True:
            try:
                if await self._try():
                    break
            except Exception as exc:  # an API error: try again next period, like any other failed round
                log.warning("leader election: %s", exc)
            await asyncio.sleep(RETRY_SECONDS)
        self.leading = True
        log.info("leader election: %s holds the Lease and acts", self.identity)

    async def keep(self) -> None:
        """Renew every retry period; raise :class:`LeadershipLostError` once no renewal succeeded for the deadline."""
        renewed = self.clock()
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                ok = await self._try()
            except Exception as exc:
                log.warning("leader election: renewing: %s", exc)
                ok = False
            if ok:
                renewed = self.clock()
            elif self.holder not in ("", self.identity):
                self.leading = False
                raise LeadershipLostError(f"the Lease is held by {self.holder}")
            elif self.clock() - renewed > RENEW_DEADLINE_SECONDS:
                self.leading = False
                raise LeadershipLostError(f"no renewal of the Lease for {RENEW_DEADLINE_SECONDS:.0f}s")

    async def release(self) -> None:
        """Give the Lease up (a normal stop), so a standby takes over without waiting for the term to run out."""
        if not self.leading:
            return
        self.leading = False
        lease = await self.store.get()
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        spec = {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time(datetime.now(UTC))}
        if await self.store.update(str(lease["metadata"].get("resourceVersion") or ""), spec):
            log.info("leader election: %s released the Lease", self.identity)


def elector(namespace: str, name: str) -> Elector:
    """A candidate for Lease ``namespace/name``, identified by its host name (the pod's name) and a random suffix
    (a restarted container is a new candidate: it waits for its predecessor's term like anyone else)."""
    from modelyard_operator.kube import LeaseStore

    return Elector(LeaseStore(namespace, name), f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}")


async def close(candidate: Elector) -> None:
    """Release the Lease if held (a normal stop) and close the candidate's client."""
    try:
        await candidate.release()
    except Exception as exc:
        log.warning("leader election: releasing: %s", exc)
    close_store = getattr(candidate.store, "close", None)
    if close_store is not None:
        await close_store()
