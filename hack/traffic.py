"""Steady inference traffic to a Service, balanced per request over its ready endpoints.

kube-proxy gives the real node's Services virtual IPs, but a client that keeps its HTTP connections alive stays
on whichever pod its connection reached, and a request that races the pod's shutdown on such a connection fails.
So this client does what gRPC and service-mesh clients do: it follows the Service's EndpointSlices (read from the
API server every 0.25 s) and spreads requests round robin over the endpoints that are ``ready``. A pod being
deleted leaves them at once and keeps answering while it drains (the server's ``--drain-seconds``), so a correct
rollout costs no failed request.

Every request is recorded: when, which pod, which version answered, whether the answer was right. Used by
``make demo`` and the full-loop tests.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as triton
from tritonclient.utils import np_to_triton_dtype

from kubeapi import Kube

Check = Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], bool]


@dataclass(frozen=True)
class Result:
    at: float  # time.monotonic()
    pod_ip: str
    version: str  # as the server reported it; "" when the request failed
    ok: bool
    error: str = ""


class Endpoints:
    """The ready addresses of a Service, kept current by a background thread."""

    def __init__(self, kube: Kube, namespace: str, service: str, *, interval: float = 0.25) -> None:
        self._kube, self._path = kube, f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        self._selector = f"kubernetes.io/service-name={service}"
        self._interval = interval
        self.addresses: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name=f"endpoints-{service}", daemon=True)

    def read(self) -> tuple[str, ...]:
        slices = self._kube.get(self._path, labelSelector=self._selector)["items"]
        ready = {
            address
            for s in slices
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready") and not (e.get("conditions") or {}).get("terminating")
            for address in e.get("addresses") or []
        }
        return tuple(sorted(ready))

    def _follow(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # an API hiccup keeps the last known addresses
                self.addresses = self.read()
            self._stop.wait(self._interval)

    def start(self) -> Endpoints:
        self.addresses = self.read()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Traffic:
    """``rate`` requests per second of ``inputs`` to ``model`` through the Service's ready endpoints."""

    kube: Kube
    namespace: str
    service: str
    model: str
    inputs: dict[str, np.ndarray]
    check: Check
    rate: float = 20.0
    port: int = 8080
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _endpoints: Endpoints | None = None

    def start(self) -> Traffic:
        self._endpoints = Endpoints(self.kube, self.namespace, self.service).start()
        self._thread = threading.Thread(target=self._send, name=f"traffic-{self.service}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=15)
        if self._endpoints:
            self._endpoints.stop()

    def _request(self, client: triton.InferenceServerClient) -> tuple[str, bool, str]:
        try:
            result = client.infer(self.model, infer_inputs(self.inputs))
        except Exception as exc:  # tritonclient raises its own and the transport's exceptions
            return "", False, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        response = result.get_response()
        outputs = {o["name"]: result.as_numpy(o["name"]) for o in response["outputs"]}
        right = self.check(self.inputs, outputs)
        return str(response.get("model_version", "")), right, "" if right else "wrong answer"

    def _send(self) -> None:
        assert self._endpoints is not None
        clients: dict[str, triton.InferenceServerClient] = {}
        turn = 0
        while not self._stop.is_set():
            addresses = self._endpoints.addresses
            for gone in set(clients) - set(addresses):
                with contextlib.suppress(Exception):
                    clients.pop(gone).close()
            if addresses:
                ip = addresses[turn % len(addresses)]
                turn += 1
                if ip not in clients:
                    clients[ip] = triton.InferenceServerClient(
                        f"{ip}:{self.port}", connection_timeout=5, network_timeout=10
                    )
                version, ok, error = self._request(clients[ip])
                self.results.append(Result(time.monotonic(), ip, version, ok, error))
            self._stop.wait(1.0 / self.rate)
        for client in clients.values():
            with contextlib.suppress(Exception):
                client.close()

    # summaries
    def failures(self, since: float = 0.0) -> list[Result]:
        return [r for r in self.results if not r.ok and r.at >= since]

    def versions(self, since: float = 0.0) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            if r.ok and r.at >= since:
                counts[r.version] = counts.get(r.version, 0) + 1
        return counts


def infer_inputs(arrays: dict[str, np.ndarray]) -> list[triton.InferInput]:
    """tritonclient's HTTP inputs for named arrays."""
    tensors = []
    for name, array in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


@contextlib.contextmanager
def traffic(kubeconfig: Path, namespace: str, service: str, **kw: Any) -> Iterator[Traffic]:
    """:class:`Traffic` for the length of a ``with`` block."""
    t = Traffic(Kube(kubeconfig), namespace, service, **kw).start()
    try:
        yield t
    finally:
        t.stop()
