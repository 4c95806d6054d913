"""``modelyard``: the user's command line (small for now).

modelyard version          the installed version
modelyard crds             the CustomResourceDefinitions as YAML (pipe into ``kubectl apply -f -``)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import yaml

from modelyard_operator import __version__
from modelyard_operator.api.crd import all_crds


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="modelyard", description="Modelyard command line")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the version")
    sub.add_parser("crds", help="print the CRDs as YAML")
    args = p.parse_args(argv)
    if args.command == "version":
        print(f"modelyard {__version__}")
    elif args.command == "crds":
        sys.stdout.write(yaml.safe_dump_all(all_crds(), sort_keys=False))
