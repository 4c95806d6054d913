"""A mounted credentials Secret (``--credentials-dir``): its keys, and the hosts its credentials may go to.

A Secret's ``host`` key names the only hosts (``HOST`` or ``HOST:PORT``, comma-separated) that the loader sends
its credentials to; without it, only the artifact's own host. A URI on any other host is refused before a
request is made, and a redirect elsewhere never carries them (``net.open_url``). Values are read here and handed
on; nothing in this module prints one.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from modelyard_runtime.loader.errors import UsageError

MAX_VALUE = 1 << 20


def read_key(directory: str | None, *names: str) -> str | None:
    """The first of ``names`` present in the Secret directory, stripped (None when none is)."""
    if not directory:
        return None
    d = Path(directory)
    for name in names:
        p = d / name
        if p.is_file():
            data = p.read_bytes()[:MAX_VALUE]
            return data.decode("utf-8", "replace").strip()
    return None


def key_path(directory: str | None, name: str) -> str | None:
    """The path of key ``name`` when the Secret has it."""
    if directory and (Path(directory) / name).is_file():
        return str(Path(directory) / name)
    return None


def bound_hosts(directory: str | None, default_host: str) -> list[tuple[str, int | None]]:
    """The (host, port or None) pairs credentials may go to: the Secret's ``host`` key, else ``default_host``."""
    raw = read_key(directory, "host") or default_host
    out: list[tuple[str, int | None]] = []
    for entry in raw.replace("\n", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if "://" in entry:
            entry = urlsplit(entry).netloc
        host, port = entry, None
        if entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry):
            h, _, p = entry.rpartition(":")
            if p.isdigit():
                host, port = h, int(p)
        out.append((host.strip("[]"), port))
    return out


def host_allowed(url: str, hosts: list[tuple[str, int | None]]) -> bool:
    """Whether a request to ``url`` may carry the credentials bound to ``hosts``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return False
    return any(host == h and (p is None or p == port) for h, p in hosts)


def require_host(url: str, hosts: list[tuple[str, int | None]], label: str) -> None:
    """Refuse, before any request, an artifact whose host the credentials Secret does not name."""
    if not host_allowed(url, hosts):
        named = ", ".join(f"{h}:{p}" if p else h for h, p in hosts)
        raise UsageError(
            f"{label}: the credentials Secret names host {named}, not this URI's host: its credentials are not sent "
            "(set the Secret's 'host' key to the store's host)"
        )
