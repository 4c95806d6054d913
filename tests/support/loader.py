"""Helpers for loader tests: run ``modelyard-loader`` as a subprocess, build artifacts and archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

from onnx import TensorProto, helper

_X = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])
_Y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])
PLAIN_ONNX = helper.make_model(
    helper.make_graph([helper.make_node("Identity", ["X"], ["Y"])], "g", [_X], [_Y]),
    opset_imports=[helper.make_opsetid("", 17)],
).SerializeToString()
LOADER = str(Path(sys.executable).parent / "modelyard-loader")


def run_loader(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MODELYARD_LOADER_"))}
    full_env.update(env or {})
    return subprocess.run([LOADER, *args], capture_output=True, text=True, timeout=timeout, env=full_env, check=False)


def result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str:
    return sha256(path.read_bytes())


def tar_bytes(entries: list[tarfile.TarInfo | tuple[str, bytes]], gz: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tf.addfile(e)
            else:
                info = tarfile.TarInfo(e[0])
                info.size = len(e[1])
                tf.addfile(info, io.BytesIO(e[1]))
    return buf.getvalue()


def zip_bytes(entries: list[tuple[str, bytes]], symlinks: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            if name in symlinks:
                info.external_attr = 0o120777 << 16
            zf.writestr(info, data)
    return buf.getvalue()


def leftovers(parent: Path, name: str) -> list[str]:
    """Staging directories of ``name`` left in ``parent`` (there must be none after any run)."""
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.tmp-")] if parent.exists() else []
