"""Log lines of the server and the loader: text (the default) or one JSON object per line (``--log-format json``).

A JSON line has ``time`` (RFC 3339, UTC), ``level``, ``logger`` and ``message``, then the record's structured
fields (``extra=``), so a log pipeline can filter on ``model`` or ``status`` without parsing prose. The server logs
through :mod:`logging`; the loader writes its few lines itself (:func:`line`), with the same shape.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ENV = "MODELYARD_LOG_FORMAT"
# a LogRecord's own attributes: everything else on a record came from ``extra=`` and is a field of the line
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_line(time: float, level: str, logger: str, message: str, fields: Mapping[str, Any]) -> str:
    doc: dict[str, Any] = {"time": rfc3339(time), "level": level, "logger": logger, "message": message}
    for key, value in fields.items():
        doc.setdefault(key, value)
    return json.dumps(doc, default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring); a traceback goes into ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.created, record.levelname, record.name, record.getMessage(), fields)


def log_format(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The format a flag (or else ``MODELYARD_LOG_FORMAT``) asks for; ValueError for anything but text or json."""
    chosen = (value or (os.environ if environ is None else environ).get(ENV, "") or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"log format {chosen!r}: expected text or json")
    return chosen


def configure(fmt: str, level: int | str = logging.INFO) -> None:
    """The root logger writes to stderr in ``fmt``, replacing whatever handlers it had."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def line(program: str, message: str, *, stream: TextIO | None = None, level: str = "INFO", **fields: Any) -> None:
    """One line of a program that writes its own (the loader): ``program: message`` as text, or a JSON object
    (``logger`` is the program) when ``MODELYARD_LOG_FORMAT`` is json (the loader's ``--log-format`` sets it)."""
    out = stream or sys.stderr
    if os.environ.get(ENV, "").strip().lower() == "json":
        out.write(json_line(time.time(), level, program, message, fields) + "\n")
    else:
        out.write(f"{program}: {message}\n")
    out.flush()
