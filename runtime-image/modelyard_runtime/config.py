"""Settings of ``modelyard-server`` from flags and ``MODELYARD_*`` environment variables (pure).

Flags win over the environment, the environment over defaults (DESIGN.md §3).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    args = p.parse_args(argv)
    if not args.model_repository:
        p.error("--model-repository (or MODELYARD_MODEL_REPOSITORY) is required")
    if args.load_mode not in ("static", "dynamic"):
        p.error(f"--load-mode must be static or dynamic, not {args.load_mode!r}")
    for name, port in (("--http-port", args.http_port), ("--grpc-port", args.grpc_port)):
        if not 0 <= port <= 65535:
            p.error(f"{name} {port} is not a port number")
    if not 0 <= args.drain_seconds <= 3600:
        p.error(f"--drain-seconds {args.drain_seconds} must be between 0 and 3600")
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
    )
