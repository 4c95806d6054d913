"""Safe extraction of tar, tar.gz and zip archives: every entry is checked (``archive_rules``) before any
byte is written, then regular files and directories are written below the destination, never followed
through links, with modes limited to rw-r--r-- / rwxr-xr-x.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO

from modelyard_runtime.loader.archive_rules import EntryKind, entry_problem, safe_relative
from modelyard_runtime.loader.errors import FetchError, UnsafeContentError


def _tar_kind(m: tarfile.TarInfo) -> EntryKind:
    if m.isreg():
        return EntryKind.FILE
    if m.isdir():
        return EntryKind.DIR
    if m.issym():
        return EntryKind.SYMLINK
    if m.islnk():
        return EntryKind.HARDLINK
    if m.ischr() or m.isblk():
        return EntryKind.DEVICE
    if m.isfifo():
        return EntryKind.FIFO
    return EntryKind.OTHER


def _zip_kind(info: zipfile.ZipInfo) -> EntryKind:
    mode = info.external_attr >> 16
    if info.is_dir():
        return EntryKind.DIR
    if mode and stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        return EntryKind.DEVICE
    if mode and stat.S_ISFIFO(mode):
        return EntryKind.FIFO
    return EntryKind.FILE


def _refuse(label: str, problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnsafeContentError(f"{label}: refused archive: {problems[0]}{more}")


def _new_file(dest: Path, rel: str) -> Path:
    target = dest / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        raise UnsafeContentError(f"archive entry {rel!r} appears twice")
    return target


def extract(archive: Path, kind: str, dest: Path, *, label: str, max_bytes: int) -> None:
    """Extract ``archive`` (``tar``, ``tar.gz`` or ``zip``) into the existing directory ``dest``."""
    written = 0
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _refuse(label, [p for i in infos if (p := entry_problem(i.filename, _zip_kind(i)))])
                for info in infos:
                    rel = safe_relative(info.filename)
                    if not rel:
                        continue
                    if info.is_dir():
                        (dest / rel).mkdir(parents=True, exist_ok=True)
                        continue
                    written += info.file_size
                    _limit(label, written, max_bytes)
                    target = _new_file(dest, rel)
                    with zf.open(info) as src, open(target, "xb") as out:
                        _copy_limited(src, out, info.file_size, label)
        else:
            mode = "r:gz" if kind == "tar.gz" else "r:"
            with tarfile.open(archive, mode) as tf:  # type: ignore[call-overload]
                members = tf.getmembers()
                _refuse(label, [p for m in members if (p := entry_problem(m.name, _tar_kind(m)))])
                for m in members:
                    rel = safe_relative(m.name)
                    if not rel:
                        continue
                    if m.isdir():
                        (dest / rel).mkdir(parents=True, exist_ok=True)
                        continue
                    written += m.size
                    _limit(label, written, max_bytes)
                    target = _new_file(dest, rel)
                    src = tf.extractfile(m)
                    if src is None:
                        raise UnsafeContentError(f"{label}: entry {rel!r} has no data")
                    with src, open(target, "xb") as out:
                        _copy_limited(src, out, m.size, label)
                    if m.mode & 0o111:
                        os.chmod(target, 0o755)  # noqa: S103  (executable bits of the entry, no write for others)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        if isinstance(e, FileExistsError):
            raise UnsafeContentError(f"{label}: an archive entry appears twice") from None
        raise FetchError(f"{label}: cannot read the {kind} archive: {e}") from None


def _limit(label: str, written: int, max_bytes: int) -> None:
    if written > max_bytes:
        raise UnsafeContentError(f"{label}: archive expands past the size limit of {max_bytes} bytes (--max-bytes)")


def _copy_limited(src: IO[bytes], out: IO[bytes], size: int, label: str) -> None:
    copied = 0
    while True:
        block = src.read(1 << 20)
        if not block:
            break
        copied += len(block)
        if copied > size:
            raise UnsafeContentError(f"{label}: an entry holds more data than its header says")
        out.write(block)
