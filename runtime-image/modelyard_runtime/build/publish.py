"""What ``modelyard-build`` does in the operator's build Job besides building: reading the fetched parent (a folder
the loader published), pushing the derived model to the artifact store, and summing the report up in the
container's termination message, which the operator reads (at most 4 KiB, so the summary keeps the numbers and
cuts the lists)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from modelyard_runtime.loader import ssrf
from modelyard_runtime.loader.errors import LoaderError
from modelyard_runtime.loader.net import NetPolicy
from modelyard_runtime.loader.ocipush import Pushed, push_file
from modelyard_runtime.loader.sources import SourceOptions
from modelyard_runtime.modelfile import choose_onnx

ENV_ALLOW_HOSTS = "MODELYARD_LOADER_ALLOW_HOSTS"
TERMINATION_LIMIT = 4096
PMML_SUFFIXES = (".pmml", ".xml")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--push",
        metavar="oci://REGISTRY/REPOSITORY[:TAG]",
        help="push the derived model there (after the gate passed) and add its digest to the report",
    )
    p.add_argument(
        "--termination-log",
        type=Path,
        help="write a summary of the outcome (JSON, at most 4 KiB) here: a pod's /dev/termination-log",
    )
    p.add_argument(
        "--allow-hosts",
        action="append",
        default=[],
        help=f"hosts/IPs/CIDRs let through the SSRF guard for --push (also ${ENV_ALLOW_HOSTS})",
    )
    p.add_argument("--credentials-dir", help="mounted Secret: the registry's username/password or .dockerconfigjson")
    p.add_argument("--docker-config", help="docker config.json with registry auths")
    p.add_argument("--oci-plain-http", action="store_true", help="talk plain http to the registry (a local one)")
    p.add_argument("--ca-file", help="PEM bundle of extra CAs for https")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per connection attempt and read")


def parent_file(path: Path, parent_format: str | None) -> Path:
    """``path``, or the model inside it when it is the folder the loader published (for a SavedModel: its folder)."""
    if parent_format == "savedmodel":
        from modelyard_runtime.build.savedmodel import savedmodel_folder

        return savedmodel_folder(path)
    if not path.is_dir():
        return path
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    if parent_format == "pmml":
        found = [f for f in files if f.lower().endswith(PMML_SUFFIXES)]
        if len(found) != 1:
            raise ValueError(f"{path} holds {len(found)} PMML documents (.pmml or .xml); expected one")
        return path / found[0]
    return path / choose_onnx(files)


def push(model: Path, target: str, args: argparse.Namespace, annotations: dict[str, str]) -> Pushed:
    allow = [h for h in ",".join([*args.allow_hosts, os.environ.get(ENV_ALLOW_HOSTS, "")]).split(",") if h.strip()]
    policy = NetPolicy(allow=ssrf.Allowlist.parse(allow), timeout=args.timeout,
                       ca_file=args.ca_file or os.environ.get("MODELYARD_LOADER_CA_FILE"))  # fmt: skip
    opts = SourceOptions(policy=policy, credentials_dir=args.credentials_dir, docker_config=args.docker_config,
                         oci_plain_http=args.oci_plain_http, progress=False)  # fmt: skip
    return push_file(model, target, opts, annotations=annotations)


PushError = LoaderError  # what --push raises: UsageError for a malformed target, FetchError from the registry


def summary(ok: bool, reason: str, message: str, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """The termination message: the outcome and the report's numbers, without its per-transform lists."""
    out: dict[str, Any] = {"ok": ok, "reason": reason, "message": message[:1024]}
    if report:
        for key in ("parent", "derived", "pushed", "latency"):
            if key in report:
                out[key] = report[key]
        gate = dict(report.get("gate") or {})
        if gate:
            gate["failures"] = [str(f)[:200] for f in gate.get("failures") or []][:4]
            out["gate"] = gate
        sparsity = [t["prune"].get("achievedSparsity") for t in report.get("transforms") or [] if "prune" in t]
        if sparsity:
            out["achievedSparsity"] = sparsity[-1]
    text = json.dumps(out, separators=(",", ":"))
    if len(text.encode()) > TERMINATION_LIMIT:  # never expected: the numbers are a few hundred bytes
        out = {"ok": ok, "reason": reason, "message": message[:1024]}
    return out


def write_termination(path: Path | None, document: dict[str, Any]) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError):  # the exit code still says what happened
        path.write_text(json.dumps(document, separators=(",", ":")))
