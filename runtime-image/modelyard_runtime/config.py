"""Settings of ``modelyard-server`` from flags and ``MODELYARD_*`` environment variables (pure).

Flags win over the environment, the environment over defaults (DESIGN.md §3).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard_runtime.modelconfig import ModelConfigError, parse_version_config
from modelyard_runtime.server.readiness import parse_serve

_SUFFIXES = {
    "": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
    "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40,
}  # fmt: skip


def parse_bytes(text: str) -> int:
    """``8Gi``, ``512M``, ``1000000`` → bytes (Kubernetes quantity suffixes); ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]i?)?\s*", text)
    if not m:
        raise ValueError(f"invalid byte size {text!r}: expected e.g. 8Gi, 512Mi, 1000000")
    number, suffix = m.group(1), (m.group(2) or "").lower()
    return int(float(number) * _SUFFIXES[suffix])


def _serve_flag(text: str) -> tuple[str, str | None]:
    try:
        return parse_serve(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


VersionConfigs = dict[tuple[str, str], dict[str, Any]]


def _version_config_flag(text: str) -> tuple[tuple[str, str], dict[str, Any]]:
    """``fraud:42={"backend": {...}, "warmup": {...}}`` → ``(("fraud", "42"), {...})``, checked like config.yaml."""
    target, sep, document = text.partition("=")
    try:
        model, version = parse_serve(target)
        if not sep or version is None:
            raise ValueError("expected MODEL:VERSION=JSON")
        return (model, version), parse_version_config(json.loads(document))
    except (ValueError, ModelConfigError) as exc:  # JSONDecodeError is a ValueError
        raise argparse.ArgumentTypeError(f"--version-config {target!r}: {exc}") from None


@dataclass(frozen=True)
class ServerConfig:
    model_repository: Path
    host: str = "0.0.0.0"
    http_port: int = 8080
    grpc_port: int = 8081
    load_mode: str = "static"
    memory_budget: int | None = None
    max_batch_size: int = 0
    max_queue_delay_ms: float = 0.0
    max_body_bytes: int = 64 * 2**20
    model_config_dir: Path | None = None
    drain_seconds: float = 0.0
    serve: tuple[tuple[str, str | None], ...] = ()  # versions readiness requires (see server.readiness)
    admin_host: str = "127.0.0.1"
    admin_port: int = 8082  # 0: no admin API at all
    admin_token_file: Path | None = None
    max_inflight_requests: int = 256
    max_buffered_bytes: int = 256 * 2**20
    body_timeout_seconds: float = 60.0
    idle_timeout_seconds: float = 30.0
    grpc_max_connection_age_seconds: float = 300.0
    version_configs: VersionConfigs = field(default_factory=dict)  # (model, version) → its backend / warmup
    termination_log: Path | None = None  # where a start that fails writes {"reason", "message"} (Kubernetes reads it)
    log_format: str = "text"  # text | json (modelyard_runtime.logs)
    access_log: bool = False  # one line per inference request (server.access)


def _boolean(text: str, name: str, parser: argparse.ArgumentParser) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    parser.error(f"{name}={text!r} is not a boolean (true or false)")


def parse_server_args(argv: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> ServerConfig:
    env = os.environ if environ is None else environ

    def default(flag: str, fallback: str | None) -> str | None:
        return env.get("MODELYARD_" + flag.upper().replace("-", "_"), fallback)

    p = argparse.ArgumentParser(prog="modelyard-server", description="Open Inference Protocol model server")
    p.add_argument("--model-repository", default=default("model-repository", None), help="DIR/<model>/<version>/")
    p.add_argument("--host", default=default("host", "0.0.0.0"))
    p.add_argument("--http-port", type=int, default=default("http-port", "8080"))
    p.add_argument("--grpc-port", type=int, default=default("grpc-port", "8081"))
    p.add_argument("--load-mode", choices=["static", "dynamic"], default=default("load-mode", "static"))
    p.add_argument("--memory-budget", type=parse_bytes, default=default("memory-budget", None))
    p.add_argument("--max-batch-size", type=int, default=default("max-batch-size", "0"))
    p.add_argument("--max-queue-delay-ms", type=float, default=default("max-queue-delay-ms", "0"))
    p.add_argument("--max-body-bytes", type=parse_bytes, default=default("max-body-bytes", "64Mi"), help="413 above")
    p.add_argument(
        "--model-config-dir",
        default=default("model-config-dir", None),
        help="DIR2/<model>/config.yaml overrides the repository's (e.g. a mounted ConfigMap; re-read when it changes)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=default("drain-seconds", "0"),
        help="on SIGTERM, report not ready but keep serving this long before stopping (a second signal ends it)",
    )
    p.add_argument(
        "--serve",
        action="append",
        type=_serve_flag,
        default=None,
        metavar="MODEL[:VERSION]",
        help="readiness is false while this version is not servable (repeatable; MODELYARD_SERVE: comma-separated; "
        "default in static mode: every version loaded at start)",
    )
    p.add_argument("--admin-host", default=default("admin-host", "127.0.0.1"), help="the admin API's address")
    p.add_argument(
        "--admin-port", type=int, default=default("admin-port", "8082"), help="repository load/unload; 0: none"
    )
    p.add_argument(
        "--admin-token-file", default=default("admin-token-file", None), help="bearer token of the admin API"
    )
    p.add_argument(
        "--max-inflight-requests", type=int, default=default("max-inflight-requests", "256"), help="429 above"
    )
    p.add_argument(
        "--max-buffered-bytes", type=parse_bytes, default=default("max-buffered-bytes", "256Mi"), help="429 above"
    )
    p.add_argument(
        "--body-timeout-seconds", type=float, default=default("body-timeout-seconds", "60"), help="408 after"
    )
    p.add_argument(
        "--idle-timeout-seconds",
        type=float,
        default=default("idle-timeout-seconds", "30"),
        help="close a connection that has not completed a request's headers this long after it opened or after "
        "its last response",
    )
    p.add_argument(
        "--grpc-max-connection-age-seconds",
        type=float,
        default=default("grpc-max-connection-age-seconds", "300"),
        help="send a gRPC connection GOAWAY this long after it opened and close it --body-timeout-seconds later: "
        "bounds a message that trickles in, and lets clients rebalance over the Service's pods",
    )
    p.add_argument(
        "--version-config",
        action="append",
        type=_version_config_flag,
        default=[],
        metavar="MODEL:VERSION=JSON",
        help="a version's own backend and warmup settings (config.yaml's keys), over the model's config.yaml",
    )
    p.add_argument(
        "--termination-log",
        default=default("termination-log", None),
        help="file that gets {reason, message} as JSON when the server cannot start (e.g. /dev/termination-log)",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=default("log-format", "text"),
        help="text, or one JSON object per line (time, level, logger, message and the line's fields)",
    )
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=_boolean(default("access-log", "false") or "false", "MODELYARD_ACCESS_LOG", p),
        help="one line per inference request, HTTP and gRPC (protocol, path or RPC, model, version, status, "
        "duration, request bytes, peer; never tensors or headers)",
    )
    args = p.parse_args(argv)
    if args.log_format not in ("text", "json"):  # a default from the environment skips choices=
        p.error(f"MODELYARD_LOG_FORMAT must be text or json, not {args.log_format!r}")
    if not args.model_repository:
        p.error("--model-repository (or MODELYARD_MODEL_REPOSITORY) is required")
    if args.load_mode not in ("static", "dynamic"):
        p.error(f"--load-mode must be static or dynamic, not {args.load_mode!r}")
    for name, port in (
        ("--http-port", args.http_port),
        ("--grpc-port", args.grpc_port),
        ("--admin-port", args.admin_port),
    ):
        if not 0 <= port <= 65535:
            p.error(f"{name} {port} is not a port number")
    if not 0 <= args.drain_seconds <= 3600:
        p.error(f"--drain-seconds {args.drain_seconds} must be between 0 and 3600")
    if args.serve is None:  # flags win over the variable, not add to it
        try:
            args.serve = [parse_serve(v) for v in (default("serve", "") or "").split(",") if v.strip()]
        except ValueError as exc:
            p.error(f"MODELYARD_SERVE: {exc}")
    if args.max_inflight_requests < 1:
        p.error(f"--max-inflight-requests {args.max_inflight_requests} must be at least 1")
    if args.max_buffered_bytes < args.max_body_bytes:
        p.error(
            f"--max-buffered-bytes {args.max_buffered_bytes} is below --max-body-bytes {args.max_body_bytes}: "
            "a body of the allowed size could never be read"
        )
    for name, seconds, most in (("--body-timeout-seconds", args.body_timeout_seconds, 3600),
                                ("--idle-timeout-seconds", args.idle_timeout_seconds, 3600),
                                ("--grpc-max-connection-age-seconds", args.grpc_max_connection_age_seconds,
                                 86400)):  # fmt: skip
        if not 0 < seconds <= most:
            p.error(f"{name} {seconds} must be above 0 and at most {most}")
    return ServerConfig(
        model_repository=Path(args.model_repository),
        host=args.host,
        http_port=int(args.http_port),
        grpc_port=int(args.grpc_port),
        load_mode=args.load_mode,
        memory_budget=args.memory_budget,  # argparse applies type= to string defaults too
        max_batch_size=int(args.max_batch_size),
        max_queue_delay_ms=float(args.max_queue_delay_ms),
        max_body_bytes=args.max_body_bytes,
        model_config_dir=Path(args.model_config_dir) if args.model_config_dir else None,
        drain_seconds=float(args.drain_seconds),
        serve=tuple(args.serve),
        admin_host=args.admin_host,
        admin_port=int(args.admin_port),
        admin_token_file=Path(args.admin_token_file) if args.admin_token_file else None,
        max_inflight_requests=int(args.max_inflight_requests),
        max_buffered_bytes=args.max_buffered_bytes,
        body_timeout_seconds=float(args.body_timeout_seconds),
        idle_timeout_seconds=float(args.idle_timeout_seconds),
        grpc_max_connection_age_seconds=float(args.grpc_max_connection_age_seconds),
        version_configs=dict(args.version_config),
        termination_log=Path(args.termination_log) if args.termination_log else None,
        log_format=args.log_format,
        access_log=bool(args.access_log),
    )
