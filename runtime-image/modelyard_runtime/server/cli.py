"""``modelyard-server``: the Open Inference Protocol server over HTTP and gRPC.

Only the standard library and the settings parser are imported before the model versions start opening
(static mode), so session creation overlaps with importing the web stack: time to ready is close to that of
creating the sessions alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from modelyard_runtime import logs
from modelyard_runtime.config import parse_server_args
from modelyard_runtime.server.preload import Preload


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_server_args(argv)
    logs.configure(config.log_format)
    if not config.model_repository.is_dir():
        sys.exit(f"modelyard-server: model repository {config.model_repository} is not a directory")

    preload = None
    if config.load_mode == "static" and config.memory_budget is None:
        preload = Preload(config.model_repository, config.model_config_dir, config.version_configs).start()
        preload.opening.wait(10)  # the session starts first, then the web stack imports beside it
    from modelyard_runtime.server.webstack import import_aiohttp

    import_aiohttp()  # before the web stack: aiohttp without its client's CA bundle
    import asyncio  # not before the preload starts: ~45 ms of imports (ssl, socket) that delayed the first session
    import signal

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
        if config.termination_log is not None:
            write_termination_log(config.termination_log, exc)
        sys.exit(f"modelyard-server: {exc}")


def failure_reason(exc: BaseException) -> str:
    """The CamelCase reason of a failed start: a provider or engine the image lacks, a model that does not load."""
    from modelyard_runtime.backends import BackendUnavailableError
    from modelyard_runtime.server.versions import LoadError

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, BackendUnavailableError):
            return "ExecutionProviderUnavailable"
        cause = cause.__cause__
    return "ModelLoadFailed" if isinstance(exc, LoadError) else "ServerFailed"


def write_termination_log(path: Path, exc: BaseException) -> None:
    """``{"reason", "message"}`` where Kubernetes reads a container's termination message (at most 4096 bytes)."""
    import json

    text = json.dumps({"reason": failure_reason(exc), "message": str(exc)[:3500]})
    try:
        path.write_text(text)
    except OSError as err:
        sys.stderr.write(f"modelyard-server: cannot write the termination log {path}: {err.strerror}\n")
