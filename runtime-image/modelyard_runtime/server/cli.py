"""``modelyard-server``: the Open Inference Protocol server (the serving core lands with the
inference-server issue; this entry point already parses its full command line)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from modelyard_runtime.config import parse_server_args


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_server_args(argv)
    if not config.model_repository.is_dir():
        sys.exit(f"modelyard-server: model repository {config.model_repository} is not a directory")
    sys.exit("modelyard-server: serving is not implemented in this build yet (see the inference-server issue)")
