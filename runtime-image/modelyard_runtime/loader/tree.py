"""Model directories: walking without following links, the tree digest, copying local trees.

The digest of a directory artifact (an S3 prefix, a PVC or local directory) is the sha256 of the lines
``<sha256 hex>  <relative path>\\n`` of every regular file, sorted by path (bytewise) — what
``find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs -d '\\n' sha256sum | sha256sum`` prints in a
shell. ``modelyard-loader digest PATH`` computes it too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

from modelyard_runtime.loader.errors import FetchError, UnsafeContentError

BLOCK = 4 << 20


def tree_digest_of(entries: Iterable[tuple[str, str]]) -> str:
    """Tree digest from (relative path, sha256 hex) pairs."""
    h = hashlib.sha256()
    for rel, hexdigest in sorted(entries, key=lambda e: e[0].encode()):
        h.update(f"{hexdigest}  {rel}\n".encode())
    return "sha256:" + h.hexdigest()


def walk_files(root: Path, *, label: str) -> list[str]:
    """Relative paths of the regular files below ``root``; refuses symlinks and special files anywhere."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeContentError(f"{label}: {rel!r} is a symbolic link (refused inside a model directory)")
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeContentError(f"{label}: {rel!r} is not a regular file")
            out.append(rel.replace(os.sep, "/"))
    return sorted(out)


def hash_file(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: Path, *, label: str) -> tuple[str, int]:
    """(tree digest, total bytes) of the directory ``root``."""
    files = walk_files(root, label=label)
    total = sum((root / rel).stat().st_size for rel in files)
    return tree_digest_of((rel, hash_file(root / rel)) for rel in files), total


def copy_file_hashing(src: Path, dst: Path, *, max_bytes: int, label: str) -> tuple[str, int]:
    """Copy ``src`` (not a link) to the new file ``dst``; return (sha256 hex, size)."""
    h = hashlib.sha256()
    size = 0
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise FetchError(f"{label}: cannot open {src.name}: {e.strerror}") from None
    with os.fdopen(fd, "rb", buffering=0) as fin, open(dst, "xb") as fout:
        if not stat.S_ISREG(os.fstat(fin.fileno()).st_mode):
            raise UnsafeContentError(f"{label}: {src.name} is not a regular file")
        while block := fin.read(BLOCK):
            size += len(block)
            if size > max_bytes:
                raise UnsafeContentError(f"{label}: larger than the size limit of {max_bytes} bytes (--max-bytes)")
            h.update(block)
            fout.write(block)
    return h.hexdigest(), size


def copy_tree_hashing(src: Path, dst: Path, *, max_bytes: int, label: str) -> tuple[str, int]:
    """Copy the directory ``src`` below ``dst``; symlinks refused before anything is hashed."""
    files = walk_files(src, label=label)
    entries: list[tuple[str, str]] = []
    total = 0
    for rel in files:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        hexdigest, size = copy_file_hashing(src / rel, target, max_bytes=max_bytes - total, label=label)
        total += size
        entries.append((rel, hexdigest))
    return tree_digest_of(entries), total


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``; copy it when a link cannot be made (another file system)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below ``root`` (and ``root``)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
