"""A content-addressed cache of verified artifacts, keyed by their pinned digest.

Layout below ``--cache DIR``::

    sha256/<hex>/tree/...        the artifact's published files (an archive's: none), read-only
    sha256/<hex>/source/...      the raw bytes a hit checks against the pinned digest again: ``archive`` (the
                                 archive itself), or ``manifest.json`` and ``blobs/<hex>`` (an OCI artifact's
                                 manifest and the blobs of its extracted layers)
    sha256/<hex>/index.json      {"format": 2, "digest", "size", "kind", "files": {relative path: sha256 hex}}
    locks/<hex>.lock             fcntl lock: one loader fills an entry, the others wait, then hit
    tmp/                         entries being built; renamed into sha256/ only when complete

An entry exists only once complete (rename is atomic), so a reader never sees half an entry. A hit is placed
into the staging directory by ``cachehit`` (hard links when the cache shares the destination's file system,
copies otherwise) and, with ``--cache-verify``, checked against the pinned digest before anything is
published; an entry that fails is evicted and fetched again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from modelyard_runtime import logs
from modelyard_runtime.loader.archive_rules import EntryKind, entry_problem
from modelyard_runtime.loader.sources import Fetched
from modelyard_runtime.loader.tree import fsync_dir, fsync_tree, hash_file, link_or_copy, walk_files

FORMAT = 2  # entries of the first layout (no source/, trusted by their index alone) are evicted on use


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

    def lookup(self, digest: str) -> dict[str, object] | None:
        """The index of a complete entry for ``digest``, or None (an unreadable or foreign entry is evicted).

        The index says how to place the entry; it is no evidence of the content (``cachehit`` checks that).
        """
        entry = self.entry(digest)
        try:
            index = json.loads((entry / "index.json").read_text())
        except (OSError, ValueError):
            if entry.exists():
                self.evict(digest, "unreadable index")
            return None
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            self.evict(digest, "an index of another layout")
            return None
        if index.get("digest") != digest:
            self.evict(digest, "index names another digest")
            return None
        return dict(index)

    def evict(self, digest: str, why: str) -> None:
        logs.line("modelyard-loader", f"cache entry {digest} evicted: {why}", level="WARNING", digest=digest)
        entry = self.entry(digest)
        if entry.exists():
            doomed = Path(tempfile.mkdtemp(prefix="evict-", dir=self.root / "tmp"))
            os.rename(entry, doomed / "entry")
            shutil.rmtree(doomed, ignore_errors=True)

    def insert(self, digest: str, tree: Path, fetched: Fetched) -> None:
        """Add the verified ``tree`` (left in place: the files ``fetched.keep`` names, all when None) and the raw
        bytes of ``fetched.evidence`` under ``digest``; call with the lock held."""
        if self.entry(digest).exists():
            return
        work = Path(tempfile.mkdtemp(prefix="fill-", dir=self.root / "tmp"))
        try:
            files: dict[str, str] = {}
            keep = walk_files(tree, label="staged artifact") if fetched.keep is None else fetched.keep
            for rel in keep:
                target = work / "tree" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(tree / rel, target)
                files[rel] = hash_file(target)
                os.chmod(target, 0o444)
            (work / "tree").mkdir(exist_ok=True)
            (work / "source").mkdir()
            for name, raw in fetched.evidence.items():
                target = work / "source" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                link_or_copy(raw, target)
                os.chmod(target, 0o444)
            index = {"format": FORMAT, "digest": digest, "size": fetched.size, "kind": fetched.kind, "files": files}
            (work / "index.json").write_text(json.dumps(index))
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
