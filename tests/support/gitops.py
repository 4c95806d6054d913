"""The GitOps health readers the tests run on ModelDeployments and ModelVersions: the real kstatus library (the
Go checker hack/kstatus-check, built from sigs.k8s.io/cli-utils) and Argo CD's Lua health check
(examples/argocd/health.lua) in a real Lua 5.1 interpreter, the Lua version Argo CD's gopher-lua implements."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from lupa import lua51

REPO = Path(__file__).resolve().parents[2]
HEALTH_LUA = REPO / "examples" / "argocd" / "health.lua"


def argocd_health(obj: dict[str, Any], script: str | None = None) -> tuple[str, str]:
    """``(status, message)`` as Argo CD computes them: the object is the global ``obj``, the script returns a
    table with ``status`` and ``message``."""
    runtime = lua51.LuaRuntime()
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script if script is not None else HEALTH_LUA.read_text())
    return str(result["status"]), str(result["message"])


def go_checker(script: str) -> Path:
    """One of the project's Go checkers, built (or reused from the cache) by ``hack/<script>``."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / script)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hack/{script} failed: {proc.stderr}")
    return Path(proc.stdout.strip().splitlines()[-1])


def kstatus_binary() -> Path:
    """The kstatus checker (hack/kstatus-check, from sigs.k8s.io/cli-utils)."""
    return go_checker("build-kstatus-check.sh")


def kstatus(binary: Path, objects: list[dict[str, Any]]) -> list[dict[str, str]]:
    """kstatus's verdict on each object: ``{"kind", "namespace", "name", "status", "message"}``."""
    stream = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    proc = subprocess.run([str(binary)], input=stream, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"kstatus-check failed: {proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines()]
