"""The server process: the data plane behind both bindings, started and stopped together (heavy imports live here)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import web

from modelyard_runtime.config import ServerConfig
from modelyard_runtime.metrics import ServerMetrics
from modelyard_runtime.server.admin import TokenFile, build_admin_app
from modelyard_runtime.server.core import DataPlane
from modelyard_runtime.server.grpc_service import build_server
from modelyard_runtime.server.http import build_app
from modelyard_runtime.server.httpcommon import HttpSettings
from modelyard_runtime.server.limits import Admission
from modelyard_runtime.server.preload import Preload

log = logging.getLogger("modelyard.server")


async def drain(plane: DataPlane, stop: asyncio.Event, seconds: float) -> None:
    """Report not ready but keep answering for ``seconds``, so that endpoints drop the pod before it stops
    listening; a second signal (``stop`` set again) ends the wait early."""
    plane.draining = True
    log.info("draining: readiness now fails, still serving for %.1fs (signal again to stop now)", seconds)
    stop.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class AdminListener:
    """The admin API's own listener (server.admin), when ``--admin-port`` is not 0."""

    def __init__(self, plane: DataPlane, config: ServerConfig) -> None:
        self.config = config
        self.runner: web.AppRunner | None = None
        if config.admin_port:
            token = None
            if config.admin_token_file is not None:
                try:
                    token = TokenFile(config.admin_token_file)
                except ValueError as exc:
                    raise RuntimeError(str(exc)) from None
            self.runner = web.AppRunner(build_admin_app(plane, token), access_log=None)
        protected = ", bearer token" if config.admin_token_file else ""
        self.where = f"{config.admin_host}:{config.admin_port}{protected}" if config.admin_port else "off"

    async def start(self) -> None:
        if self.runner is not None:
            await self.runner.setup()
            host, port = self.config.admin_host, self.config.admin_port
            try:
                await web.TCPSite(self.runner, host, port, reuse_address=True).start()
            except OSError as exc:  # most likely a second server on one host: say which flag to change
                raise RuntimeError(
                    f"cannot listen for the admin API on {host}:{port}: {exc.strerror or exc} "
                    "(another server on this host? choose --admin-port, or 0 for no admin API)"
                ) from None

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def serve(config: ServerConfig, stop: asyncio.Event, preload: Preload | None = None) -> None:
    plane = DataPlane(
        config.model_repository,
        ServerMetrics(),
        mode=config.load_mode,
        memory_budget=config.memory_budget,
        max_batch_size=config.max_batch_size,
        max_queue_delay_ms=config.max_queue_delay_ms,
        config_dir=config.model_config_dir,
        preload=preload,
        required=config.serve,
        version_configs=config.version_configs,
    )
    plane.access.enabled = config.access_log
    admission = Admission(config.max_inflight_requests, config.max_buffered_bytes)
    settings = HttpSettings(admission, config.max_body_bytes, config.body_timeout_seconds)
    # keepalive_timeout: aiohttp closes a connection whose request headers are not complete this long after it
    # opened or after its last response (slowloris on the headers), as well as idle keep-alive connections
    runner = web.AppRunner(build_app(plane, settings), access_log=None, keepalive_timeout=config.idle_timeout_seconds)
    admin = AdminListener(plane, config)
    await runner.setup()
    grpc_server = build_server(
        plane,
        admission,
        max_receive_bytes=config.max_body_bytes,
        handshake_seconds=config.idle_timeout_seconds,
        max_age_seconds=config.grpc_max_connection_age_seconds,
        age_grace_seconds=config.body_timeout_seconds,
    )
    try:
        await web.TCPSite(runner, config.host, config.http_port, reuse_address=True).start()
        if grpc_server.add_insecure_port(f"{config.host}:{config.grpc_port}") == 0:
            raise RuntimeError(f"cannot listen for gRPC on {config.host}:{config.grpc_port}")
        await grpc_server.start()
        await admin.start()
        log.info(
            "listening: HTTP %s:%d, gRPC %s:%d, admin %s (%s loading; not ready until models are loaded)",
            config.host, config.http_port, config.host, config.grpc_port, admin.where, config.load_mode,
        )  # fmt: skip
        started = time.perf_counter()
        starting = asyncio.ensure_future(plane.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # asked to stop while still loading (or waiting for models to appear)
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            log.info("stopping before ready")
            return
        stopping.cancel()
        starting.result()  # a load failure ends the process with its reason
        count = sum(len(v) for v in plane.models.values())
        log.info(
            "ready: %d model version(s) from %s in %.2fs", count, config.model_repository, time.perf_counter() - started
        )
        await stop.wait()
        if config.drain_seconds > 0:
            await drain(plane, stop, config.drain_seconds)
        log.info("stopping: finishing requests in flight")
    finally:
        await grpc_server.stop(grace=5)
        await admin.stop()
        await runner.cleanup()
        await plane.close()
