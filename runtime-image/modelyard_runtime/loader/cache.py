"""A content-addressed cache of verified artifacts, keyed by their pinned digest.

Layout below ``--cache DIR``::

    sha256/<hex>/tree/...        the artifact as it is published (files read-only)
    sha256/<hex>/index.json      {"digest", "size", "kind", "files": {relative path: sha256 hex}}
    locks/<hex>.lock             fcntl lock: one loader fills an entry, the others wait, then hit
    tmp/                         entries being built; renamed into sha256/ only when complete

An entry exists only once complete (rename is atomic), so a reader never sees half an entry. A hit is
copied into the staging directory (hard links when the cache shares the destination's file system,
copies otherwise), and ``--cache-verify`` re-hashes every file against the index first; an entry that
fails is evicted and fetched again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelyard_runtime.loader.archive_rules import EntryKind, entry_problem
from modelyard_runtime.loader.tree import fsync_dir, fsync_tree, hash_file, link_or_copy, walk_files


class Cache:
    SUBDIRS = ("sha256", "locks", "tmp")

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        for sub in self.SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _hex(digest: str) -> str:
        return digest.split(":", 1)[1]

    def entry(self, digest: str) -> Path:
        return self.root / "sha256" / self._hex(digest)

    @contextlib.contextmanager
    def lock(self, digest: str) -> Iterator[None]:
        fd = os.open(self.root / "locks" / f"{self._hex(digest)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def lookup(self, digest: str, *, verify: bool) -> dict[str, object] | None:
        """The index of a complete entry for ``digest`` (re-hashed when ``verify``), or None."""
        entry = self.entry(digest)
        try:
            index = json.loads((entry / "index.json").read_text())
        except (OSError, ValueError):
            if entry.exists():
                self.evict(digest, "unreadable index")
            return None
        if index.get("digest") != digest:
            self.evict(digest, "index names another digest")
            return None
        if verify:
            files: dict[str, str] = index["files"]
            try:
                actual = {rel: hash_file(entry / "tree" / rel) for rel in walk_files(entry / "tree", label="cache")}
            except Exception:
                actual = {}
            if actual != files:
                self.evict(digest, "content does not match its index")
                return None
        return dict(index)

    def evict(self, digest: str, why: str) -> None:
        sys.stderr.write(f"modelyard-loader: cache entry {digest} evicted: {why}\n")
        entry = self.entry(digest)
        if entry.exists():
            doomed = Path(tempfile.mkdtemp(prefix="evict-", dir=self.root / "tmp"))
            os.rename(entry, doomed / "entry")
            shutil.rmtree(doomed, ignore_errors=True)

    def insert(self, digest: str, tree: Path, size: int, kind: str) -> None:
        """Add the verified ``tree`` (left in place) under ``digest``; call with the lock held."""
        if self.entry(digest).exists():
            return
        work = Path(tempfile.mkdtemp(prefix="fill-", dir=self.root / "tmp"))
        try:
            files: dict[str, str] = {}
            for rel in walk_files(tree, label="staged artifact"):
                target = work / "tree" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(tree / rel, target)
                files[rel] = hash_file(target)
                os.chmod(target, 0o444)
            (work / "tree").mkdir(exist_ok=True)
            (work / "index.json").write_text(json.dumps({"digest": digest, "size": size, "kind": kind, "files": files}))
            fsync_tree(work)
            os.rename(work, self.entry(digest))
            fsync_dir(self.entry(digest).parent)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def materialize(self, digest: str, tree: Path, files: list[str]) -> None:
        """Place the entry's ``files`` (from its index) below ``tree`` (hard links on one file system, else
        copies); a file that is missing raises ``OSError``."""
        src = self.entry(digest) / "tree"
        for rel in files:
            if entry_problem(rel, EntryKind.FILE):
                raise OSError(f"cache index names an unsafe path {rel!r}")
            target = tree / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(src / rel, target)
