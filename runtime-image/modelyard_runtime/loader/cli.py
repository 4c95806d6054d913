"""``modelyard-loader``: fetches, verifies and publishes model artifacts (fetching lands with the
loader issue; the entry point and its sub-commands exist so images and rendered pods can name them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="modelyard-loader", description="Fetch and verify model artifacts")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("fetch", "sidecar", "validate"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--uri", required=name != "sidecar")
        cmd.add_argument("--dest")
        cmd.add_argument("--digest")
    args = p.parse_args(argv)
    sys.exit(f"modelyard-loader {args.command}: not implemented in this build yet (see the loader issue)")
