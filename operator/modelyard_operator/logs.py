"""The operator's log lines: text (the default) or one JSON object per line (``--log-format json``).

JSON lines come from kopf's own JSON formatter, so kopf's lines (handler outcomes, watch errors, its per-object
``object`` reference) and ours share one shape: ``time`` (RFC 3339), ``level``, ``logger`` and ``message``, kopf's
``severity``, and each line's structured fields (``extra=``: a decision's namespace, modeldeployment, model,
version, reason and type).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# pythonjsonlogger's names for the record's attributes, renamed to the fields every modelyard JSON line has
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
RENAMED = {"levelname": "level", "name": "logger"}


def configure(fmt: str, level: str = "INFO") -> None:
    """The root logger writes to stderr in ``fmt`` (text or json) at ``level``."""
    root = logging.getLogger()
    if fmt == "json":
        before = set(root.handlers)
        kopf.configure(log_format=kopf.LogFormat.JSON)  # its stream handler on the root logger, its JSON formatter
        for handler in root.handlers:
            if handler not in before and handler.formatter is not None:
                handler.setFormatter(with_common_fields(handler.formatter))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(TEXT))
        root.handlers[:] = [handler]
    root.setLevel(level.upper())


def with_common_fields(kopf_formatter: logging.Formatter) -> logging.Formatter:
    """Another of kopf's JSON formatters (same class: its ``object`` reference and ``severity`` stay) that also
    writes ``time``, ``level`` and ``logger``; kopf's default writes only ``message``, ``timestamp`` and
    ``severity``."""
    kind: Any = type(kopf_formatter)
    formatter: logging.Formatter = kind(JSON_FIELDS, rename_fields=RENAMED, timestamp="time")
    return formatter
