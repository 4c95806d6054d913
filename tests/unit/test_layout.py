"""The repository layout keeps the standard library's ``operator`` module reachable."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_operator_from_repository_root_is_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__); print(operator.add(2, 3))"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(out[0]).resolve().parent == stdlib
    assert out[1] == "5"


def test_no_top_level_package_named_operator() -> None:
    assert (REPO / "operator").is_dir()
    assert not (REPO / "operator" / "__init__.py").exists()


def test_console_scripts_are_installed() -> None:
    bindir = Path(sys.executable).parent
    for script in ("modelyard-operator", "modelyard-server", "modelyard-loader", "modelyard"):
        assert (bindir / script).exists(), script


def test_modelyard_cli_prints_the_crds() -> None:
    out = subprocess.run(
        [str(Path(sys.executable).parent / "modelyard"), "crds"], capture_output=True, text=True, check=True
    ).stdout
    assert "name: modelversions.modelyard.dev" in out
    assert "name: modeldeployments.modelyard.dev" in out
