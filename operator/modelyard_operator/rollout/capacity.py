"""How many pods each version gets during a rollout, and the traffic share that gives (pure).

The ``replicas`` router splits traffic by Ready pods behind one Service, so a weight is only ever as fine as
the pod counts allow. The stable version keeps every pod it had until the rollout ends (a rollback needs no
scale-up, and a small ModelDeployment never hands all its traffic to an unproven version): the canary is
surged beside it, with the pod count whose share of all the pods comes closest to the weight asked for, at
most ``replicas`` (the capacity it takes over). The split in effect is what ``status.weights`` reports.

The other routers split by weight on the wire (HTTPRoute backend weights, the server's version weights):
their canary gets its share of ``replicas`` (rounded up, at least one pod) and the weight is exact.
"""

from __future__ import annotations

import math

# Requested and effective weights further apart than this (percentage points) make a Warning Event.
WEIGHT_TOLERANCE = 2


def _replicas_router_pods(replicas: int, weight: int) -> int:
    """Canary pods beside ``replicas`` stable pods whose share is nearest ``weight`` % (fewer pods on a tie)."""
    best, best_error = 1, math.inf
    for pods in range(1, replicas + 1):
        error = abs(100 * pods / (replicas + pods) - weight)
        if error < best_error - 1e-9:
            best, best_error = pods, error
    return best


def canary_pods(replicas: int, weight: int, *, router: str, full: bool = False) -> int:
    """Pods the canary needs for ``weight``: all ``replicas`` for a full copy (blueGreen, inPod) or 100 %;
    none at 0 %; under the ``replicas`` router the count nearest the weight beside the whole stable
    version; otherwise its share of ``replicas`` rounded up (at least one pod once it gets traffic)."""
    if replicas <= 0:
        return 0
    if full or weight >= 100:
        return replicas
    if weight <= 0:
        return 0
    if router == "replicas":
        return _replicas_router_pods(replicas, weight)
    return max(1, math.ceil(replicas * weight / 100))


def effective_weight(router: str, weight: int, *, stable_ready: int, canary_ready: int) -> int:
    """The canary's share of traffic in effect (percent).

    ``replicas`` router: the main Service selects the stable version alone at 0 %, the canary alone at 100 %,
    and both in between, where each Ready pod gets an equal share. Other routers apply ``weight`` itself.
    """
    weight = max(0, min(100, weight))
    if router != "replicas" or weight in (0, 100):
        return weight
    total = stable_ready + canary_ready
    return round(100 * canary_ready / total) if total else 0


def planned_weight(replicas: int, weight: int, *, router: str) -> int:
    """The effective weight once the pods for ``weight`` are all Ready (the stable version at ``replicas``)."""
    canary = canary_pods(replicas, weight, router=router)
    return effective_weight(router, weight, stable_ready=replicas, canary_ready=canary)


def weight_warning(replicas: int, weight: int, *, router: str) -> str | None:
    """Why ``weight`` cannot be kept with this many replicas (None when it can, within WEIGHT_TOLERANCE)."""
    effective = planned_weight(replicas, weight, router=router)
    if abs(effective - weight) <= WEIGHT_TOLERANCE:
        return None
    canary = canary_pods(replicas, weight, router=router)
    return (
        f"canary weight {weight}% is {effective}% in effect with {replicas} replica(s): the replicas router "
        f"splits traffic by Ready pods, here {canary} canary beside {replicas} stable pod(s), and the stable "
        "version keeps all of its pods until the rollout ends; use the gatewayAPI or inPod router for exact "
        "weights, or more replicas"
    )


def handover(replicas: int, new_ready: int, old_pods: int = 0, new_terminating: int = 0) -> tuple[int, int]:
    """(new, old) pod counts while a Deployment takes over from another one pod at a time.

    The inPod router's promotion: the new stable version's Deployment grows by one pod beyond its Ready ones,
    and the old Deployment (whose pods load both versions, so they serve the new one meanwhile) keeps only
    what the new one does not cover yet. Ready pods never drop below ``replicas`` (as a Deployment's own
    maxSurge 1 / maxUnavailable 0 update), and pods never exceed ``replicas + 1``, counting those still being
    deleted: ``old_pods`` is what the old Deployment has (its pods, also while a scale-down is not yet observed,
    plus its terminating ones) and ``new_terminating`` the new one's terminating pods, so the new Deployment grows
    only into the room that draining pods leave (Kubernetes 1.35's Deployment ``status.terminatingReplicas``;
    where a cluster lacks it, both are 0 and terminating pods come on top).
    """
    new_ready = max(0, min(replicas, new_ready))
    old = replicas - new_ready
    room = replicas + 1 - max(old, old_pods) - new_terminating
    return min(replicas, new_ready + 1, max(new_ready, room)), old


def paced_roll(replicas: int, loaders: int, live_loaders: int | None, live_paced: bool, live_settled: bool) -> bool:
    """Whether the inPod router's Deployment rolls its pods one at a time *without a surge*.

    A canary that needs mounts the pods lack gets a second loader in the pod template (``loaders`` 2), and adding
    or removing it rolls every pod. A surging roll (maxSurge 1) replaces a pod as soon as the old one's deletion
    starts, so with 2 or more replicas the draining pods (still answering for the server's drain) come on top of
    ``replicas + 1``. Paced, the roll deletes one old pod and starts its replacement (maxSurge 0, maxUnavailable 1)
    and waits for that pod to stay Ready longer than an old pod takes to drain (``minReadySeconds``) before the next
    one: never more than ``replicas + 1`` pods, draining ones included, at the cost of one pod's capacity during
    the roll. One replica surges (its one old pod goes as the new one is Ready: 2 pods at most either way).

    Paced while the template has a second loader, while the one applied differs (the roll that removes it), and
    until a paced roll has settled (a roll whose strategy changed half-way would surge).
    """
    if replicas < 2:
        return False
    if loaders > 1 or (live_loaders is not None and live_loaders != loaders):
        return True
    return live_paced and not live_settled
