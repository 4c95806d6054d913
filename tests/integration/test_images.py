"""The container images `make images` writes to dist/images (docs/images.md), checked from their OCI archives.

Missing archives are built first with hack/images.py (a cold GPU build takes minutes). The contents are checked
by running commands in a buildah container made from each archive, as the image's user (UID 65532).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "dist" / "images"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
NAMES = ("modelyard-operator", "modelyard-runtime", "modelyard-runtime-gpu")
LABELS = ("version", "revision", "source", "title", "licenses")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(1800),  # a missing GPU archive is built first
    pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed (make image-tools)"),
]

# Installed distributions and the packages their files provide, printed as JSON by the image's own Python.
LIST_DISTRIBUTIONS = """
import json, importlib.metadata as md
print(json.dumps({d.metadata["Name"].lower(): d.version for d in md.distributions()}))
"""

Run = Callable[..., subprocess.CompletedProcess[str]]


def read_archive(name: str) -> dict[str, Any]:
    """index.json, the image manifest and its config from ``dist/images/<name>.tar``."""
    with tarfile.open(DIST / f"{name}.tar") as tar:

        def blob(digest: str) -> Any:
            f = tar.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}")
            assert f is not None
            return json.load(f)

        f = tar.extractfile("index.json")
        assert f is not None
        index = json.load(f)
        manifest = blob(index["manifests"][0]["digest"])
        return {"index": index, "manifest": manifest, "config": blob(manifest["config"]["digest"])}


@pytest.fixture(scope="module")
def archives() -> dict[str, Path]:
    missing = [n for n in NAMES if not (DIST / f"{n}.tar").exists()]
    if missing:
        subprocess.run(
            [sys.executable, str(REPO / "hack" / "images.py"), "build", *[a for n in missing for a in ("--only", n)]],
            check=True,
        )
    return {n: DIST / f"{n}.tar" for n in NAMES}


def container(archive: Path) -> Iterator[Run]:
    """A buildah container from the archive; yields run(*argv, user=...) -> CompletedProcess."""
    ctr = subprocess.run(
        ["buildah", "from", "--quiet", "--pull=never", f"oci-archive:{archive}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    def run(*argv: str, user: str = "65532:65532", check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["buildah", "run", "--user", user, ctr, "--", *argv], capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        return proc

    try:
        yield run
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


@pytest.fixture(scope="module")
def operator(archives: dict[str, Path]) -> Iterator[Run]:
    yield from container(archives["modelyard-operator"])


@pytest.fixture(scope="module")
def runtime(archives: dict[str, Path]) -> Iterator[Run]:
    yield from container(archives["modelyard-runtime"])


@pytest.fixture(scope="module")
def gpu(archives: dict[str, Path]) -> Iterator[Run]:
    yield from container(archives["modelyard-runtime-gpu"])


def distributions(run: Run) -> dict[str, str]:
    return dict(json.loads(run("python3", "-c", LIST_DISTRIBUTIONS).stdout))


def assert_nothing_of_the_build(run: Run) -> None:
    """No build-stage leftovers in the final filesystem: the mounted CA bundle, pip's cache, the sources."""
    paths = ["/run/secrets/pip-cert", "/etc/ssl/certs/modelyard-build-ca.crt", "/root/.cache/pip", "/src", "/install"]
    left = run("sh", "-c", 'for p in "$@"; do [ -e "$p" ] && echo "$p"; done; true', "sh", *paths).stdout.split()
    assert left == []


def test_gpu_image_has_onnxruntime_gpu_and_nvidia_libraries_and_no_cpu_onnxruntime(gpu: Run) -> None:
    dists = distributions(gpu)
    assert "onnxruntime-gpu" in dists
    assert "onnxruntime" not in dists  # the old Dockerfile left the CPU build beside the GPU one
    for lib in ("nvidia-cuda-runtime", "nvidia-cudnn-cu13", "nvidia-cublas", "nvidia-curand", "nvidia-cufft"):
        assert lib in dists, lib
    assert "cuda-bindings" in dists
    assert "cuda-python" in dists
    providers = gpu("python3", "-c", "import onnxruntime as o; print(o.get_available_providers())").stdout
    assert "CUDAExecutionProvider" in providers
    # every library the CUDA provider links resolves inside the image, except the driver's (from the host)
    lib = gpu("python3", "-c", "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))").stdout.strip()
    ldd = gpu("ldd", f"{lib}/capi/libonnxruntime_providers_cuda.so", check=False).stdout
    unresolved = sorted({line.split()[0] for line in ldd.splitlines() if "not found" in line})
    assert unresolved == ["libcuda.so.1"], ldd
    assert_nothing_of_the_build(gpu)
    assert "libcudnn" in gpu("sh", "-c", "ls $(echo $LD_LIBRARY_PATH | tr : ' ')").stdout


def test_operator_image_starts_without_the_data_plane(operator: Run) -> None:
    assert "usage: modelyard-operator" in operator("modelyard-operator", "--help").stdout
    dists = distributions(operator)
    assert {"kopf", "lightkube", "pydantic", "modelyard"} <= set(dists)
    assert not {"numpy", "onnxruntime", "onnxruntime-gpu", "grpcio", "tritonclient"} & set(dists)
    found = operator("python3", "-c", "import importlib.util as u; print(u.find_spec('modelyard_runtime'))").stdout
    assert found.strip() == "None"
    assert_nothing_of_the_build(operator)


def test_runtime_image_runs_server_and_loader_as_65532(runtime: Run) -> None:
    assert runtime("id", "-u").stdout.strip() == "65532"
    assert "usage: modelyard-server" in runtime("modelyard-server", "--help").stdout
    assert "usage: modelyard-loader" in runtime("modelyard-loader", "--help").stdout
    dists = distributions(runtime)
    assert "onnxruntime" in dists
    assert "onnxruntime-gpu" not in dists
    assert not {"kopf", "lightkube"} & set(dists)
    assert_nothing_of_the_build(runtime)


@pytest.mark.parametrize("name", NAMES)
def test_archive_config_user_labels_and_nothing_of_the_build_host(archives: dict[str, Path], name: str) -> None:
    config = read_archive(name)["config"]["config"]
    assert config["User"] == "65532:65532"
    labels = config["Labels"]
    for key in LABELS:
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == name
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert not [e for e in config.get("Env", []) if e.startswith(("PIP_", "HTTP", "http"))]
    assert config["Entrypoint"] == (["modelyard-operator"] if name == "modelyard-operator" else ["modelyard-server"])


@pytest.mark.parametrize("name", NAMES)
def test_archive_names_the_image_with_the_package_version(archives: dict[str, Path], name: str) -> None:
    index = read_archive(name)["index"]
    assert len(index["manifests"]) == 1
    annotations = index["manifests"][0]["annotations"]
    ref = f"ghcr.io/modelyard/{name}:{VERSION}"
    assert annotations["org.opencontainers.image.ref.name"] == ref
    assert annotations["io.containerd.image.name"] == ref
    assert ref.rsplit(":", 1)[1] == VERSION
