"""``modelyard`` and ``kubectl-modelyard`` (the kubectl plugin): see :mod:`modelyard_operator.kubectl.app`."""

from __future__ import annotations

from modelyard_operator.kubectl.app import main

__all__ = ["main"]
