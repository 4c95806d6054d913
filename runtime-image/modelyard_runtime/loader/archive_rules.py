"""Which archive entries may be extracted (pure: names and entry kinds in, a verdict out).

Refused: absolute names, drive letters, backslashes, ``..`` segments, NUL bytes, and any entry that is not
a regular file or a directory (symbolic links, hard links, character/block devices, FIFOs). Refusing is
all-or-nothing: one bad entry refuses the whole archive before anything is written (CVE-2024-5187 class).
"""

from __future__ import annotations

import enum
import re

_DRIVE = re.compile(r"^[A-Za-z]:")


class EntryKind(enum.Enum):
    FILE = "file"
    DIR = "directory"
    SYMLINK = "symbolic link"
    HARDLINK = "hard link"
    DEVICE = "device file"
    FIFO = "FIFO"
    OTHER = "special entry"


def archive_kind(name: str) -> str | None:
    """``tar``, ``tar.gz`` or ``zip`` from a file name, or None when it is not an archive."""
    low = name.lower()
    if low.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if low.endswith(".tar"):
        return "tar"
    if low.endswith(".zip"):
        return "zip"
    return None


def entry_problem(name: str, kind: EntryKind) -> str | None:
    """Why the entry ``name`` of kind ``kind`` must not be extracted, or None when it may."""
    if kind not in (EntryKind.FILE, EntryKind.DIR):
        return f"{name!r} is a {kind.value}"
    if not name or "\x00" in name:
        return "an entry has an empty name or a NUL byte"
    if "\\" in name:
        return f"{name!r} contains a backslash"
    if name.startswith("/") or _DRIVE.match(name):
        return f"{name!r} is an absolute path"
    if ".." in name.split("/"):
        return f"{name!r} escapes the destination ('..')"
    return None


def safe_relative(name: str) -> str:
    """The normalized relative path of an accepted entry (``./a//b/`` -> ``a/b``)."""
    return "/".join(s for s in name.split("/") if s not in ("", "."))
