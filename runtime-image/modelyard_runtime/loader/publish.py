"""Atomic publishing: stage in a temporary directory beside the destination, fsync, rename.

A reader of the destination sees either nothing (or the previous content) or the complete, verified
artifact — never a partial one. On any failure the staging directory is removed and the destination is
left as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from modelyard_runtime.loader.errors import UsageError
from modelyard_runtime.loader.tree import fsync_dir, fsync_tree


class Staging:
    """``tree``: what will become the destination; ``scratch``: raw downloads, signatures, archives."""

    def __init__(self, dest: Path) -> None:
        self.dest = Path(os.path.abspath(dest))
        if self.dest.parent == self.dest or self.dest.name in ("", ".", ".."):
            raise UsageError(f"--dest {dest} cannot be published to (a root or a relative parent)")
        if self.dest.is_symlink() or (self.dest.exists() and not self.dest.is_dir()):
            raise UsageError(f"--dest {self.dest} exists and is not a directory")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.tmp-", dir=self.dest.parent))
        self.tree = self.root / "tree"
        self.scratch = self.root / "scratch"
        self.tree.mkdir()
        self.scratch.mkdir()

    def publish(self) -> None:
        fsync_tree(self.tree)
        old = self.root / "previous"
        if self.dest.exists():
            os.rename(self.dest, old)
        os.rename(self.tree, self.dest)
        fsync_dir(self.dest.parent)

    def reset(self) -> None:
        """Empty the staging tree and scratch (after an unusable cache entry, before fetching)."""
        for d in (self.tree, self.scratch):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.cleanup()
