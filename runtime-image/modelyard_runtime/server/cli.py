"""``modelyard-server``: the Open Inference Protocol server over HTTP and gRPC."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Sequence

from aiohttp import web

from modelyard_runtime.config import ServerConfig, parse_server_args
from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.server.core import DataPlane
from modelyard_runtime.server.grpc_service import build_server
from modelyard_runtime.server.http import build_app

log = logging.getLogger("modelyard.server")


async def serve(config: ServerConfig, stop: asyncio.Event) -> None:
    plane = DataPlane(
        config.model_repository,
        ServerMetrics(),
        mode=config.load_mode,
        memory_budget=config.memory_budget,
        max_batch_size=config.max_batch_size,
        max_queue_delay_ms=config.max_queue_delay_ms,
        config_dir=config.model_config_dir,
    )
    runner = web.AppRunner(build_app(plane, max_body_bytes=config.max_body_bytes), access_log=None)
    await runner.setup()
    grpc_server = build_server(plane, max_receive_bytes=config.max_body_bytes)
    try:
        await web.TCPSite(runner, config.host, config.http_port, reuse_address=True).start()
        if grpc_server.add_insecure_port(f"{config.host}:{config.grpc_port}") == 0:
            raise RuntimeError(f"cannot listen for gRPC on {config.host}:{config.grpc_port}")
        await grpc_server.start()
        log.info(
            "listening: HTTP %s:%d, gRPC %s:%d (%s loading; not ready until models are loaded)",
            config.host, config.http_port, config.host, config.grpc_port, config.load_mode,
        )  # fmt: skip
        started = time.perf_counter()
        await plane.start()
        count = sum(len(v) for v in plane.models.values())
        log.info(
            "ready: %d model version(s) from %s in %.2fs", count, config.model_repository, time.perf_counter() - started
        )
        await stop.wait()
        log.info("stopping: finishing requests in flight")
    finally:
        await grpc_server.stop(grace=5)
        await runner.cleanup()
        await plane.close()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_server_args(argv)
    if not config.model_repository.is_dir():
        sys.exit(f"modelyard-server: model repository {config.model_repository} is not a directory")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop)

    try:
        asyncio.run(run())
    except RuntimeError as exc:  # a model that cannot load: say which and why, exit non-zero
        sys.exit(f"modelyard-server: {exc}")
