"""Virtual environments the benchmarks create for their peers and tools, reused across runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PY_SPY_VERSION = "0.4.3"


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def ensure_venv(directory: Path, requirements: list[str]) -> Path:
    """Create ``directory`` as a venv with exactly ``requirements`` (pinned); reuse it when the stamp matches."""
    stamp = directory / ".modelyard-bench-installed"
    wanted = "\n".join(requirements) + "\n"
    if stamp.is_file() and stamp.read_text() == wanted:
        return directory
    log(f"creating {directory} with {' '.join(requirements)} (one-off, a few minutes)")
    if directory.exists():
        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
    pip = [str(directory / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *requirements], check=True)
    stamp.write_text(wanted)
    return directory
