"""The optional access log (``--access-log``): one line per inference request, HTTP and gRPC, on the logger
``modelyard.access``.

A line says who asked what and how it ended: protocol, method and path (HTTP) or RPC (gRPC), model, version, status
(the HTTP status, also for gRPC: the code table's), duration in milliseconds, request bytes and peer. It never holds
tensor contents, parameters or headers (Authorization, cookies): only what is listed here. With ``--log-format json``
the values are the line's fields; as text they follow the message, control characters replaced (names come from
clients).
"""

from __future__ import annotations

import logging

log = logging.getLogger("modelyard.access")
MAX_NAME = 200  # a client's model name or path, cut to this in a line


def _clean(text: str) -> str:
    text = text[:MAX_NAME]
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


class AccessLog:
    def __init__(self, enabled: bool = False) -> None:
        self.enabled = enabled

    def request(
        self,
        *,
        protocol: str,
        method: str,
        model: str,
        version: str,
        status: int,
        seconds: float,
        request_bytes: int,
        peer: str,
    ) -> None:
        if not self.enabled:
            return
        fields = {
            "protocol": protocol,
            "method": _clean(method),
            "model": _clean(model),
            "version": _clean(version),
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "request_bytes": request_bytes,
            "peer": _clean(peer),
        }
        log.info(
            "%s %s model=%s version=%s status=%d %.1fms %dB peer=%s",
            protocol, fields["method"], fields["model"], fields["version"] or "-", status,
            fields["duration_ms"], request_bytes, fields["peer"],
            extra=fields,
        )  # fmt: skip
