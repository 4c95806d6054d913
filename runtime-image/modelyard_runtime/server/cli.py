"""``modelyard-server``: the Open Inference Protocol server over HTTP and gRPC.

Only the standard library and the settings parser are imported before the model versions start opening
(static mode), so session creation overlaps with importing the web stack: time to ready is close to that of
creating the sessions alone.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from modelyard_runtime.config import parse_server_args
from modelyard_runtime.server.preload import Preload


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_server_args(argv)
    if not config.model_repository.is_dir():
        sys.exit(f"modelyard-server: model repository {config.model_repository} is not a directory")

    preload = None
    if config.load_mode == "static" and config.memory_budget is None:
        preload = Preload(config.model_repository, config.model_config_dir).start()
    from modelyard_runtime.server.app import serve  # the heavy imports, while the versions open

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop, preload)

    try:
        asyncio.run(run())
    except RuntimeError as exc:  # a model that cannot load: say which and why, exit non-zero
        sys.exit(f"modelyard-server: {exc}")
