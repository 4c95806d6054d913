"""Content checks on a staged model tree before it is published or loaded (checklist items 4, 6, 7).

- no symbolic links or special files anywhere (``tree.walk_files``);
- no formats that run code when loaded: by suffix (.pt .pth .pkl .pickle .joblib .ckpt .bin-with-pickle)
  and by content (a pickle protocol 2–5 header, or a zip whose entries are pickles, as torch.save writes);
- every ONNX external-data location is relative, without ``..``, names a regular file (not a link)
  inside the model's directory tree — checked before any ONNX Runtime session exists.
"""

from __future__ import annotations

import mmap
import os
import stat
import zipfile
from pathlib import Path
from typing import cast

from modelyard_runtime.loader.errors import UnsafeContentError
from modelyard_runtime.loader.onnxscan import ProtobufError, external_locations, location_problem
from modelyard_runtime.loader.tree import walk_files

CODE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt", ".dill", ".npy.pkl")
MAX_ONNX_SCAN = 2 << 30  # models above this are refused rather than read into memory for the scan


def is_pickle(head: bytes) -> bool:
    """A pickle stream of protocol 2 or later starts with PROTO (0x80) and the protocol number."""
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _zip_holds_pickle(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith((".pkl", ".pickle")) or n.endswith("/data.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def scan(root: Path, *, label: str) -> list[str]:
    """Check the tree below ``root``; return its files (relative) or raise ``UnsafeContentError``."""
    files = walk_files(root, label=label)
    for rel in files:
        low = rel.lower()
        if low.endswith(CODE_SUFFIXES):
            raise UnsafeContentError(f"{label}: {rel!r} is a format that runs code when loaded (pickle)")
        path = root / rel
        with open(path, "rb") as f:
            head = f.read(4)
        if is_pickle(head):
            raise UnsafeContentError(f"{label}: {rel!r} is a pickle stream (runs code when loaded)")
        if head[:2] == b"PK" and _zip_holds_pickle(path):
            raise UnsafeContentError(f"{label}: {rel!r} is a zip of pickles (a torch checkpoint runs code when loaded)")
        if low.endswith(".onnx"):
            check_onnx_external_data(root, rel, label=label)
    return files


def _scan_mapped(model: Path) -> list[tuple[str, str]]:
    """Scan through a read-only mapping: only the pages the scanner touches are read (large initializers
    are skipped over), so a 1 GB model costs milliseconds, not a 1 GB copy."""
    with open(model, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return external_locations(cast(bytes, mm))


def check_onnx_external_data(root: Path, rel: str, *, label: str) -> None:
    model = root / rel
    size = model.stat().st_size
    if size > MAX_ONNX_SCAN:
        raise UnsafeContentError(f"{label}: {rel!r} is larger than {MAX_ONNX_SCAN} bytes; protobuf models cannot be")
    try:
        locations = _scan_mapped(model) if size else []
    except ProtobufError as e:
        raise UnsafeContentError(f"{label}: {rel!r} is not a well-formed ONNX model ({e})") from None
    base = model.parent
    real_root = os.path.realpath(root)
    for tensor, location in locations:
        problem = location_problem(location)
        if problem is None:
            target = base / location
            try:
                st = os.lstat(target)
            except FileNotFoundError:
                problem = f"location {location!r} does not exist"
            else:
                if stat.S_ISLNK(st.st_mode):
                    problem = f"location {location!r} is a symbolic link"
                elif not stat.S_ISREG(st.st_mode):
                    problem = f"location {location!r} is not a regular file"
                elif os.path.commonpath([real_root, os.path.realpath(target)]) != real_root:
                    problem = f"location {location!r} is outside the model directory"
        if problem:
            raise UnsafeContentError(f"{label}: {rel!r} tensor {tensor!r}: external data refused: {problem}")
