"""``modelyard-server``: the Open Inference Protocol server (HTTP; static loading)."""

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
from modelyard_runtime.server.http import build_app

log = logging.getLogger("modelyard.server")


async def serve(config: ServerConfig, stop: asyncio.Event) -> None:
    plane = DataPlane(config.model_repository, ServerMetrics())
    runner = web.AppRunner(build_app(plane, max_body_bytes=config.max_body_bytes), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.http_port, reuse_address=True)
    await site.start()
    log.info("HTTP listening on %s:%d (not ready until models are loaded)", config.host, config.http_port)
    started = time.perf_counter()
    try:
        await plane.load_all()
        count = sum(len(v) for v in plane.models.values())
        log.info(
            "ready: %d model version(s) from %s in %.2fs", count, config.model_repository, time.perf_counter() - started
        )
        await stop.wait()
    finally:
        await runner.cleanup()
        plane.close()


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_server_args(argv)
    if not config.model_repository.is_dir():
        sys.exit(f"modelyard-server: model repository {config.model_repository} is not a directory")
    if config.load_mode != "static":
        sys.exit("modelyard-server: --load-mode dynamic is not implemented yet; use static")

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
