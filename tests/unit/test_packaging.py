"""One version for the package, the chart and the images; dependency extras that match what each side imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

import modelyard_operator
import modelyard_runtime
from modelyard_operator.config import DEFAULT_IMAGE

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
CHART = REPO / "charts" / "modelyard"
FIRST_PARTY = {"modelyard_operator", "modelyard_runtime"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings (extras, versions and markers dropped)."""
    return {norm(re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r).group(1)) for r in requirements}  # type: ignore[union-attr]


def extra(name: str) -> set[str]:
    return names(PROJECT["optional-dependencies"][name])


def third_party_imports(package_dir: Path) -> set[str]:
    """Top-level modules a package imports (statically), without the standard library and first-party code."""
    found: set[str] = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - FIRST_PARTY - {"__future__"}


def distributions_of(module: str) -> set[str]:
    return {norm(d) for d in metadata.packages_distributions().get(module, [])}


def test_one_version_for_package_chart_and_modules() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = PROJECT["version"]
    assert chart["version"] == chart["appVersion"] == version
    assert modelyard_operator.__version__ == modelyard_runtime.__version__ == version
    assert metadata.version("modelyard") == version  # the installed metadata (make venv reinstalls on a change)


def test_default_runtime_image_is_the_charts() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart_default = f"{values['imageRegistry']}/{values['runtime']['image']['repository']}:{PROJECT['version']}"
    assert DEFAULT_IMAGE == chart_default == f"ghcr.io/modelyard/modelyard-runtime:{PROJECT['version']}"
    assert values["operator"]["image"]["repository"] == "modelyard-operator"


def test_gpu_extra_is_the_runtime_extra_with_onnxruntime_gpu() -> None:
    runtime, gpu = extra("runtime"), extra("gpu")
    assert "onnxruntime" not in gpu  # both own onnxruntime/: the GPU image must never hold the CPU build
    assert runtime - {"onnxruntime"} <= gpu
    assert gpu - runtime == {"onnxruntime-gpu", "nvidia-cublas", "cuda-python"}
    assert any(r.startswith("onnxruntime-gpu[cuda,cudnn]") for r in PROJECT["optional-dependencies"]["gpu"])


def test_operator_imports_are_core_and_operator_dependencies() -> None:
    allowed = names(PROJECT["dependencies"]) | extra("operator")
    imports = third_party_imports(REPO / "operator" / "modelyard_operator")
    assert imports, "no imports found"
    missing = {m: distributions_of(m) for m in imports if not distributions_of(m) & allowed}
    assert not missing, f"imported by the operator, not in its dependencies: {missing}"
    assert not extra("operator") & {"numpy", "onnxruntime", "onnxruntime-gpu", "grpcio"}


def test_runtime_imports_are_core_and_runtime_dependencies() -> None:
    imports = third_party_imports(REPO / "runtime-image" / "modelyard_runtime")
    assert {"numpy", "onnxruntime", "grpc", "aiohttp"} <= imports
    for extra_name in ("runtime", "gpu"):
        allowed = names(PROJECT["dependencies"]) | extra(extra_name)
        if extra_name == "gpu":
            allowed |= {"onnxruntime"}  # the module onnxruntime comes from onnxruntime-gpu there
        missing = {m: distributions_of(m) for m in imports if not distributions_of(m) & allowed}
        assert not missing, f"imported by the runtime, not in [{extra_name}]: {missing}"
    assert not {"kopf", "lightkube"} & (extra("runtime") | extra("gpu"))


def test_dev_extra_installs_both_sides() -> None:
    dev = PROJECT["optional-dependencies"]["dev"]
    assert any(re.fullmatch(r"modelyard\[(operator,runtime|runtime,operator)\]", r.split(";")[0].strip()) for r in dev)


def test_one_license_for_the_repository_the_package_and_the_chart() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert PROJECT["license"] == {"text": "Apache-2.0"}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"


def test_changelog_has_an_unreleased_section_and_the_current_version() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert f"## [{PROJECT['version']}]" in text
