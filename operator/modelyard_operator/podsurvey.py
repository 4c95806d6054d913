"""What a group of pods says, read with one pod LIST per namespace and interval, shared by everyone who asks.

Two questions are asked of pods while something waits: a ModelDeployment whose Deployment is still not rolled out
after a grace period asks whether a server or loader container reported why it cannot start, and a ModelVersion
still Validating asks whether its validation pod fits no node. One LIST per object asking cost the API server most
of what the operator sent while hundreds of them started at once (4 per ModelDeployment at 300, each LIST
filtering every pod of the namespace); one per namespace answers all of them with the same freshness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lightkube.operators import exists

from modelyard_operator.kube import Kube, KubeError
from modelyard_operator.names import LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from modelyard_operator.podhealth import StartFailure, start_failures
from modelyard_operator.validation import LABEL_VALIDATES, unschedulable

log = logging.getLogger("modelyard.operator")

POD_SURVEY_INTERVAL_SECONDS = 10.0  # at most one pod LIST per namespace and question in this time

T = TypeVar("T")
Pods = list[dict[str, Any]]


class PodSurvey(Generic[T]):
    """``summarize`` of the pods each value of the label ``by`` names (among those ``selector`` selects), by
    namespace, at most ``interval`` old; ``empty`` where no pod names it."""

    def __init__(
        self,
        kube: Kube,
        what: str,
        selector: dict[str, Any],
        by: str,
        summarize: Callable[[Pods], T],
        empty: T,
        *,
        interval: float = POD_SURVEY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube, self._what, self._selector, self._by = kube, what, selector, by
        self._summarize, self._empty, self._interval, self._clock = summarize, empty, interval, clock
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._seen: dict[str, tuple[float, dict[str, T]]] = {}  # namespace -> (when listed, label value -> summary)

    async def of(self, namespace: str, key: str) -> T:
        async with self._locks[namespace]:  # those who ask at once share one LIST
            listed = self._seen.get(namespace)
            if listed is None or self._clock() - listed[0] >= self._interval:
                listed = (self._clock(), await self._list(namespace))
                self._seen[namespace] = listed
        return listed[1].get(key, self._empty)

    async def _list(self, namespace: str) -> dict[str, T]:
        try:
            pods = await self._kube.list_pods(namespace, self._selector)
        except KubeError as exc:
            log.warning("cannot read the %s of namespace %s: %s", self._what, namespace, exc)
            return {}  # asked again after the interval
        grouped: defaultdict[str, Pods] = defaultdict(list)
        for pod in pods:
            grouped[((pod.get("metadata") or {}).get("labels") or {}).get(self._by, "")].append(pod)
        return {key: self._summarize(owned) for key, owned in grouped.items()}


def start_failure_survey(kube: Kube) -> PodSurvey[dict[str, StartFailure]]:
    """Per ModelDeployment, the latest start failure of each version's server or loader (``podhealth``)."""
    selector = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: "predictor"}
    return PodSurvey(kube, "model pods", selector, LABEL_INSTANCE, start_failures, {})


def unschedulable_survey(kube: Kube) -> PodSurvey[str | None]:
    """Per ModelVersion, the scheduler's message when its validation pod fits no node."""
    selector = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_VALIDATES: exists()}
    return PodSurvey(kube, "validation pods", selector, LABEL_VALIDATES, unschedulable, None)
