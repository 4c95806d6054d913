#!/usr/bin/env python3
"""The project's container images, built from its Dockerfiles with buildah: no daemon (docs/images.md).

``make images`` runs ``hack/images.py build``. It makes a Python base image from Debian's packages with
mmdebstrap (or takes it from the cache), builds modelyard-operator, modelyard-runtime and modelyard-runtime-gpu
(and, with ``--only modelyard-runtime-tf``, the runtime-tf variant with TensorFlow) on it with
``buildah bud --layers --pull=never`` and writes each as an OCI archive ``dist/images/<name>.tar``
holding one image named ``ghcr.io/modelyard/<name>:<version>``: the chart's default references, so
``kind load image-archive`` makes the chart's defaults resolvable without a registry. An image whose inputs
(Dockerfile, pyproject.toml, its sources, the base, the version and commit) did not change is not built again: its
archive comes from the cache (``$MODELYARD_CACHE/images``, default ``~/.cache/modelyard/images``).

``make push`` (``hack/images.py push REGISTRY``) copies the archives to ``REGISTRY/<name>:<version>`` with skopeo;
:func:`push` is the same for callers in Python (the dev cluster).

Environment: MODELYARD_CACHE (cache root), MODELYARD_BUILDAH_ROOT (a buildah storage and run state of its own,
e.g. to measure a cold build; default: buildah's usual storage), MODELYARD_GPU_EXTRAS (the GPU image's extras,
default ``gpu``), PIP_CERT (the CA bundle pip trusts in RUN steps, default the system's) and PIP_DEFAULT_TIMEOUT
(passed on to pip in the build stages only).

Standard library only: it runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DIST = REPO / "dist" / "images"
NAME_PREFIX = "ghcr.io/modelyard"  # names inside the archives: the chart's default image references
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
PIP_CA_ID = "pip-cert"  # the build secret holding the host's CA bundle, for pip in the build stages
KEY_FORMAT = 1  # bump to invalidate every cached archive


@dataclass(frozen=True)
class ImageSpec:
    name: str
    dockerfile: str
    target: str | None  # the Dockerfile stage; None: the last one
    sources: tuple[str, ...]  # what the image's COPY steps take from the repository (its cache key)
    default: bool = True  # built by `hack/images.py build` without --only (make images)


IMAGES: dict[str, ImageSpec] = {
    spec.name: spec
    for spec in (
        ImageSpec(
            "modelyard-operator",
            "operator/Dockerfile",
            None,
            ("operator/modelyard_operator", "images/locks/operator.txt"),
        ),
        ImageSpec(
            "modelyard-runtime",
            "runtime-image/Dockerfile",
            "cpu",
            ("runtime-image/modelyard_runtime", "images/locks/runtime.txt"),
        ),
        ImageSpec(
            "modelyard-runtime-gpu",
            "runtime-image/Dockerfile",
            "gpu",
            ("runtime-image/modelyard_runtime", "images/locks/runtime-gpu.txt"),
        ),
        # the runtime-tf variant (format savedmodel): TensorFlow makes it large, so only on request (--only, or
        # `make images IMAGES=modelyard-runtime-tf`)
        ImageSpec(
            "modelyard-runtime-tf",
            "runtime-image/Dockerfile",
            "tf",
            ("runtime-image/modelyard_runtime", "images/locks/runtime-tf.txt"),
            default=False,
        ),
    )
}
COMMON_INPUTS = ("pyproject.toml", "README.md", ".dockerignore")

# ----------------------------------------------------------------------------------------------- the base image
# Debian's Python 3.11 in a minimal root filesystem. `python3 -m venv /usr/local` makes it behave like
# python:3.11-slim: `pip`, `python3` and console scripts live in /usr/local/bin, and `pip install --prefix=/install`
# lays files out as /install/{bin,lib/python3.11/site-packages}, which the Dockerfiles copy onto /usr/local.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
BASE_DPKG_OPTIONS = (  # no manuals, docs (but licences) or translations, as in the slim images
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)
BASE_HOOKS = (
    'chroot "$1" python3 -m venv /usr/local',
    # nothing of this machine in the image: its apt mirror and options, its resolver and host name
    'rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap" "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*',
    'rm -f "$1/etc/resolv.conf" && : > "$1/etc/hostname"',
)
BASE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
BASE_TITLE = f"modelyard-base ({BASE_SUITE}, Debian's Python)"
BASE_REPOSITORY = "localhost/modelyard-base"
DEBIAN_SUITE = re.compile(rf"^{BASE_SUITE}(-updates|-security|-backports)?$")


class ImageError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    root = os.environ.get("MODELYARD_CACHE") or str(Path.home() / ".cache" / "modelyard")
    return Path(root) / "images"


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def project_source() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        urls = tomllib.load(f)["project"].get("urls", {})
    return str(urls.get("Source", ""))


def reference(name: str, version: str | None = None) -> str:
    return f"{NAME_PREFIX}/{name}:{version or project_version()}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(paths: Sequence[str], root: Path = REPO) -> str:
    """One digest of files and trees under ``root`` (names, executable bits, contents; no caches)."""
    h = hashlib.sha256()
    for rel in sorted(paths):
        top = root / rel
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else []
        for path in files:
            parts = path.relative_to(root).parts
            if any(p == "__pycache__" or p.endswith(".egg-info") for p in parts) or path.suffix == ".pyc":
                continue
            h.update(f"{path.relative_to(root)}\0{os.access(path, os.X_OK)}\0".encode())
            h.update(sha256_hex(path.read_bytes()).encode())
        if not files:
            h.update(f"{rel}\0missing\0".encode())
    return h.hexdigest()


def git_revision(paths: Sequence[str]) -> str:
    """The revision of what an image packages: the last commit that changed ``paths`` (so commits elsewhere do not
    rebuild it), with ``-dirty`` when they have uncommitted changes; ``unknown`` outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("log", "-1", "--format=%H", "--", *paths) or git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--", *paths)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


# ------------------------------------------------------------------------------------------------------- buildah
class Buildah:
    """buildah in the usual storage, or in one of its own under ``root`` (storage, run state, temporary files)."""

    def __init__(self, root: str | None = None) -> None:
        self.globals: list[str] = []
        self.env: dict[str, str] | None = None
        if root:
            for sub in ("storage", "run", "tmp"):
                Path(root, sub).mkdir(parents=True, exist_ok=True)
            self.globals = ["--root", f"{root}/storage", "--runroot", f"{root}/run"]
            self.env = {**os.environ, "TMPDIR": f"{root}/tmp"}

    def __call__(self, *args: str, capture: bool = False, check: bool = True, quiet: bool = False) -> str:
        cmd = ["buildah", *self.globals, *args]
        proc = subprocess.run(
            cmd,
            env=self.env,
            stdout=subprocess.PIPE if capture or quiet else None,
            stderr=subprocess.PIPE if capture or quiet else None,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            detail = f": {(proc.stderr or '').strip()[-2000:]}" if capture or quiet else ""
            raise ImageError(f"buildah {' '.join(args[:2])} failed (exit {proc.returncode}){detail}")
        return (proc.stdout or "").strip()

    def image_exists(self, ref: str) -> bool:
        return (
            subprocess.run(
                ["buildah", *self.globals, "inspect", "--type", "image", ref],
                env=self.env,
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )


def require_tools(tools: Sequence[str]) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ImageError(f"missing {', '.join(missing)}: `make image-tools` installs Debian's packages")


# --------------------------------------------------------------------------------------------------- base image
def base_digest() -> str:
    """The base's cache key: its recipe (suite, packages, options, hooks, image settings)."""
    recipe = {
        "suite": BASE_SUITE,
        "variant": "minbase",
        "packages": BASE_PACKAGES,
        "dpkg": BASE_DPKG_OPTIONS,
        "hooks": BASE_HOOKS,
        "env": BASE_ENV,
        "title": BASE_TITLE,
    }
    return sha256_hex(json.dumps(recipe, sort_keys=True).encode())[:16]


def host_debian_sources(paths: Sequence[Path] | None = None) -> list[str]:
    """This machine's apt entries for the base's suite (main, updates, security) as one-line ``deb`` entries,
    so mmdebstrap fetches from the same mirror as the host's apt. Other repositories are left out."""
    if paths is None:
        d = Path("/etc/apt/sources.list.d")
        paths = [Path("/etc/apt/sources.list"), *sorted(d.glob("*.list")), *sorted(d.glob("*.sources"))]
    entries: list[str] = []
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", "").split():
                    continue
                options = f" [signed-by={fields['signed-by']}]" if fields.get("signed-by", "").startswith("/") else ""
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        if DEBIAN_SUITE.match(suite):
                            entries.append(f"deb{options} {uri} {suite} {fields.get('components', 'main')}")
        else:
            for line in text.splitlines():
                m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$", line.strip())
                if m and DEBIAN_SUITE.match(m.group(3)):
                    entries.append(line.strip())
    return entries


@dataclass
class Base:
    reference: str
    how: str  # present (in buildah's storage), loaded (from the cached archive) or built (mmdebstrap)
    seconds: float
    archive: str
    compressed_bytes: int
    mmdebstrap_seconds: float | None = None


def ensure_base(b: Buildah) -> Base:
    """The base image in buildah's storage: present already, loaded from the cached archive, or built with
    mmdebstrap (and archived into the cache)."""
    digest = base_digest()
    ref = f"{BASE_REPOSITORY}:{digest}"
    archive = cache_dir() / f"base-{digest}.tar"
    size = archive.stat().st_size if archive.exists() else 0
    started = time.monotonic()
    if b.image_exists(ref):
        return Base(ref, "present", 0.0, str(archive), size)
    if archive.exists():
        image_id = b("pull", "--quiet", f"oci-archive:{archive}", capture=True).splitlines()[-1]
        b("tag", image_id, ref)
        seconds = time.monotonic() - started
        log(f"base {ref}: loaded from {archive} in {seconds:.1f}s")
        return Base(ref, "loaded", round(seconds, 1), str(archive), size)
    require_tools(["mmdebstrap"])
    started = time.monotonic()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="base-", dir=archive.parent) as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        cmd = [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root" if os.geteuid() == 0 else "--mode=unshare",
            f"--include={','.join(BASE_PACKAGES)}",
            '--aptopt=APT::Install-Recommends "false"',
            '--aptopt=Acquire::Check-Valid-Until "false"',  # the host's mirror may be a snapshot
            *[f"--dpkgopt={opt}" for opt in BASE_DPKG_OPTIONS],
            *[f"--customize-hook={hook}" for hook in BASE_HOOKS],
            "--skip=output/dev",
        ]
        ca = Path(os.environ.get("PIP_CERT") or HOST_CA)
        if ca.is_file():  # https mirrors behind a TLS-intercepting proxy; the option leaves with 99mmdebstrap
            cmd.append(f'--aptopt=Acquire::https::CaInfo "{ca}"')
        cmd += [BASE_SUITE, str(rootfs), *host_debian_sources()]
        log(f"base {ref}: mmdebstrap {BASE_SUITE} with {', '.join(BASE_PACKAGES)}")
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        debootstrapped = time.monotonic() - started
        ctr = b("from", "scratch", capture=True)
        try:
            mnt = b("mount", ctr, capture=True)
            subprocess.run(["tar", "--numeric-owner", "-xpf", str(rootfs), "-C", mnt], check=True)
            b("umount", ctr, quiet=True)
            b(
                "config",
                *[a for env in BASE_ENV for a in ("--env", env)],
                "--cmd",
                '["python3"]',
                "--label",
                f"org.opencontainers.image.title={BASE_TITLE}",
                ctr,
                quiet=True,
            )
            b("commit", "--quiet", "--rm", "--identity-label=false", ctr, ref, quiet=True)
        except BaseException:
            b("rm", ctr, check=False, quiet=True)
            raise
        partial = Path(tmp) / "base.tar"
        b("push", "--quiet", ref, f"oci-archive:{partial}:{ref}", quiet=True)
        os.replace(partial, archive)
    for old in archive.parent.glob("base-*.tar"):
        if old != archive:
            old.unlink()
    seconds = time.monotonic() - started
    log(f"base {ref}: built in {seconds:.1f}s (mmdebstrap {debootstrapped:.1f}s), cached")
    return Base(ref, "built", round(seconds, 1), str(archive), archive.stat().st_size, round(debootstrapped, 1))


# ---------------------------------------------------------------------------------------------- project images
@dataclass
class Result:
    name: str
    reference: str
    archive: str
    key: str
    cached: bool  # the archive came from the cache: nothing was built
    seconds: float  # wall time of this run for this image
    build_seconds: float  # buildah bud of the build that made the archive
    export_seconds: float  # writing the archive of that build
    compressed_bytes: int
    unpacked_bytes: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    version: str
    revisions: dict[str, str]  # per image: git_revision() of its inputs
    source: str
    gpu_extras: str

    @classmethod
    def current(cls) -> Context:
        return cls(
            version=project_version(),
            revisions={n: git_revision([*COMMON_INPUTS, s.dockerfile, *s.sources]) for n, s in IMAGES.items()},
            source=project_source(),
            gpu_extras=os.environ.get("MODELYARD_GPU_EXTRAS") or "gpu",
        )

    def build_args(self, spec: ImageSpec) -> dict[str, str]:
        args = {"VERSION": self.version, "REVISION": self.revisions.get(spec.name, "unknown")}
        if self.source:
            args["SOURCE"] = self.source
        if spec.target == "gpu":
            args["GPU_EXTRAS"] = self.gpu_extras
        if os.environ.get("PIP_DEFAULT_TIMEOUT"):
            args["PIP_DEFAULT_TIMEOUT"] = os.environ["PIP_DEFAULT_TIMEOUT"]
        return args


def image_key(spec: ImageSpec, ctx: Context) -> str:
    """The image's cache key: what goes into it. Its Dockerfile, pyproject.toml, README.md, .dockerignore, its
    sources, the base recipe, the build arguments (version, commit...) and this script."""
    inputs = {
        "format": KEY_FORMAT,
        "name": spec.name,
        "target": spec.target,
        "files": tree_digest([*COMMON_INPUTS, spec.dockerfile, *spec.sources]),
        "base": base_digest(),
        "args": ctx.build_args(spec),
        "script": sha256_hex(Path(__file__).read_bytes()),
    }
    return sha256_hex(json.dumps(inputs, sort_keys=True).encode())[:16]


def unpacked_size(layout: Path, sizes_file: Path | None = None) -> int:
    """The size of the layout's image unpacked: the sum of its layers' uncompressed sizes. Each layer is counted once
    and remembered in ``sizes_file`` by its uncompressed digest (the GPU image's dependency layer is 3 GB)."""
    index = json.loads((layout / "index.json").read_text())

    def blob(digest: str) -> Path:
        return layout / "blobs" / "sha256" / digest.split(":", 1)[1]

    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    diff_ids = json.loads(blob(manifest["config"]["digest"]).read_text())["rootfs"]["diff_ids"]
    known: dict[str, int] = {}
    if sizes_file and sizes_file.exists():
        with contextlib.suppress(ValueError):
            known = json.loads(sizes_file.read_text())
    total = 0
    for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True):
        if diff_id not in known:
            if layer["mediaType"].endswith("+gzip"):
                with gzip.open(blob(layer["digest"])) as f:
                    known[diff_id] = sum(len(chunk) for chunk in iter(lambda: f.read(1 << 20), b""))
            else:
                known[diff_id] = blob(layer["digest"]).stat().st_size
        total += known[diff_id]
    if sizes_file:
        sizes_file.write_text(json.dumps(dict(list(known.items())[-500:]), indent=0) + "\n")
    return total


def write_archive(layout: Path, archive: Path, ref: str) -> None:
    """The OCI layout as an oci-archive (a tar of the layout). The index also names the image in containerd's
    annotation, which ``ctr images import`` and ``kind load image-archive`` read first."""
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text())
    if len(index.get("manifests", [])) != 1:
        raise ImageError(f"{layout}: expected one image in the layout, found {len(index.get('manifests', []))}")
    annotations = index["manifests"][0].setdefault("annotations", {})
    annotations["org.opencontainers.image.ref.name"] = ref
    annotations["io.containerd.image.name"] = ref
    index_path.write_text(json.dumps(index, separators=(",", ":")))

    def normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in [layout / "oci-layout", index_path, *sorted((layout / "blobs").rglob("*"))]:
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False, filter=normalize)


def link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def build_image(
    spec: ImageSpec, b: Buildah, ctx: Context, base: Callable[[], Base], *, rebuild: bool = False
) -> Result:
    started = time.monotonic()
    ref = reference(spec.name, ctx.version)
    key = image_key(spec, ctx)
    cached = cache_dir() / f"{spec.name}-{key}.tar"
    meta = cached.with_suffix(".json")
    dest = DIST / f"{spec.name}.tar"
    if not rebuild and cached.exists() and meta.exists():
        if not (dest.exists() and os.path.samefile(cached, dest)):
            link_or_copy(cached, dest)
        found = Result(**json.loads(meta.read_text()))
        found.cached, found.seconds, found.archive = True, time.monotonic() - started, str(dest)
        log(f"{spec.name}: inputs unchanged (key {key}): {dest.relative_to(REPO)} from the cache")
        return found

    base_ref = base().reference
    started = time.monotonic()  # this image's time, without the base's
    args = ["bud", "--layers", "--pull=never", "--identity-label=false", "--network=host", "--format=oci"]
    build_args = {"BASE_IMAGE": base_ref, **ctx.build_args(spec)}
    ca = Path(os.environ.get("PIP_CERT") or HOST_CA)
    if ca.is_file():  # pip trusts the host's CA bundle (TLS interception): a secret, mounted only where asked for
        args += ["--secret", f"id={PIP_CA_ID},src={ca}"]
        build_args["PIP_CERT"] = f"/run/secrets/{PIP_CA_ID}"
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    if spec.target:
        args += ["--target", spec.target]
    args += ["--file", str(REPO / spec.dockerfile), "--tag", ref, str(REPO)]
    log(f"{spec.name}: buildah bud {spec.dockerfile}{f' --target {spec.target}' if spec.target else ''} -> {ref}")
    built = time.monotonic()
    b(*args)
    build_seconds = time.monotonic() - built

    exported = time.monotonic()
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{spec.name}-", dir=cached.parent) as tmp:
        layout = Path(tmp) / "layout"
        b("push", "--quiet", ref, f"oci:{layout}:{ref}", quiet=True)
        unpacked = unpacked_size(layout, cached.parent / "layer-sizes.json")
        partial = Path(tmp) / "image.tar"
        write_archive(layout, partial, ref)
        os.replace(partial, cached)
    export_seconds = time.monotonic() - exported
    labels = json.loads(b("inspect", "--type", "image", ref, capture=True))["OCIv1"]["config"].get("Labels") or {}
    result = Result(
        name=spec.name,
        reference=ref,
        archive=str(dest),
        key=key,
        cached=False,
        seconds=0.0,
        build_seconds=round(build_seconds, 1),
        export_seconds=round(export_seconds, 1),
        compressed_bytes=cached.stat().st_size,
        unpacked_bytes=unpacked,
        labels=labels,
    )
    meta.write_text(json.dumps(asdict(result), indent=2) + "\n")
    link_or_copy(cached, dest)
    for old in cached.parent.glob(f"{spec.name}-*"):  # one cached archive per image
        if old not in (cached, meta) and old.suffix in (".tar", ".json"):
            old.unlink()
    result.seconds = time.monotonic() - started
    log(f"{spec.name}: built in {build_seconds:.1f}s, archived in {export_seconds:.1f}s -> {dest.relative_to(REPO)}")
    return result


def human(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def report(results: list[Result], base: Base | None, total_seconds: float) -> None:
    DIST.mkdir(parents=True, exist_ok=True)
    rows = [asdict(r) | {"seconds": round(r.seconds, 1)} for r in results]
    report_path = DIST / "report.json"
    previous: dict[str, Any] = {}
    if report_path.exists():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            previous = {i["name"]: i for i in json.loads(report_path.read_text())["images"]}
    previous.update({r["name"]: r for r in rows})
    report_path.write_text(
        json.dumps(
            {
                "base": asdict(base) if base else {"reference": f"{BASE_REPOSITORY}:{base_digest()}", "how": "unused"},
                "seconds": round(total_seconds, 1),
                "images": [previous[n] for n in IMAGES if n in previous],
            },
            indent=2,
        )
        + "\n"
    )
    if base and base.how != "present":
        print(f"\nbase {base.reference}: {base.how} in {base.seconds:.0f}s ({human(base.compressed_bytes)} archive)")
    print(f"\n{'image':<24}{'reference':<46}{'this run':>14}{'build':>9}{'compressed':>12}{'unpacked':>11}")
    for r in results:
        how = f"cached {r.seconds:.1f}s" if r.cached else f"built {r.seconds:.0f}s"
        print(
            f"{r.name:<24}{r.reference:<46}{how:>14}{r.build_seconds + r.export_seconds:>8.0f}s"
            f"{human(r.compressed_bytes):>12}{human(r.unpacked_bytes):>11}"
        )
    print(f"archives in {DIST.relative_to(REPO)}/, report {report_path.relative_to(REPO)} ({total_seconds:.1f}s)")


def select(only: Sequence[str] | None) -> list[ImageSpec]:
    names = [n for item in only or [] for n in re.split(r"[,\s]+", item) if n] or [
        n for n, spec in IMAGES.items() if spec.default
    ]
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        raise ImageError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(IMAGES)}")
    return [IMAGES[n] for n in IMAGES if n in names]


def build(only: Sequence[str] | None = None, *, rebuild: bool = False) -> list[Result]:
    """Build (or take from the cache) the images named in ``only`` (by default all but those with
    ``default=False``: the runtime-tf variant); write report.json."""
    specs = select(only)
    require_tools(["buildah"])
    started = time.monotonic()
    b = Buildah(os.environ.get("MODELYARD_BUILDAH_ROOT") or None)
    ctx = Context.current()
    bases: list[Base] = []

    def base() -> Base:  # made or loaded only when an image is built
        if not bases:
            bases.append(ensure_base(b))
        return bases[0]

    results = [build_image(spec, b, ctx, base, rebuild=rebuild) for spec in specs]
    report(results, bases[0] if bases else None, time.monotonic() - started)
    return results


def push(registry: str, *, insecure: bool = False, names: Sequence[str] | None = None) -> list[str]:
    """Copy the archives in dist/images to ``registry/<name>:<version>`` (``registry`` is host[:port][/prefix]);
    ``insecure``: plain HTTP or an unverified certificate. Returns the references pushed."""
    require_tools(["skopeo"])
    version = project_version()
    pushed = []
    for spec in select(names):
        archive = DIST / f"{spec.name}.tar"
        if not archive.exists():
            raise ImageError(f"{archive.relative_to(REPO)} is missing: run `make images` first")
        dest = f"{registry.rstrip('/')}/{spec.name}:{version}"
        cmd = ["skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"docker://{dest}"]
        if insecure:
            cmd.insert(2, "--dest-tls-verify=false")
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise ImageError(f"pushing {archive.name} to {dest} failed: {proc.stderr.strip()[-1000:]}")
        log(f"pushed {dest} in {time.monotonic() - started:.1f}s")
        pushed.append(dest)
    return pushed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the images (or take them from the cache) into dist/images")
    p_build.add_argument("--only", action="append", metavar="NAME", help=f"one of {', '.join(IMAGES)} (repeatable)")
    p_build.add_argument("--rebuild", action="store_true", help="ignore cached archives (buildah's layers still count)")
    sub.add_parser("base", help="build (or load) the base image only and print its reference")
    p_push = sub.add_parser("push", help="push dist/images/*.tar to REGISTRY/<name>:<version> with skopeo")
    p_push.add_argument("registry", help="host[:port][/prefix], e.g. 127.0.0.1:5000 or registry.example/team")
    p_push.add_argument(
        "--insecure", action="store_true", help="plain HTTP or unverified TLS (--dest-tls-verify=false)"
    )
    p_push.add_argument("--only", action="append", metavar="NAME")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args.only, rebuild=args.rebuild)
        elif args.command == "base":
            require_tools(["buildah"])
            print(ensure_base(Buildah(os.environ.get("MODELYARD_BUILDAH_ROOT") or None)).reference)
        else:
            for ref in push(args.registry, insecure=args.insecure, names=args.only):
                print(ref)
    except (ImageError, subprocess.CalledProcessError) as exc:
        print(f"[images] error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
