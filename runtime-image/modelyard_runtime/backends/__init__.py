"""Inference backends behind one interface; heavy libraries are imported only when a backend loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt


@dataclass(frozen=True)
class TensorMeta:
    name: str
    datatype: str
    shape: list[int]  # -1 marks a variable dimension

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


class Backend(Protocol):
    platform: str
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    memory_bytes: int

    def run(self, inputs: dict[str, npt.NDArray[Any]], output_names: list[str]) -> dict[str, npt.NDArray[Any]]: ...


class BackendUnavailableError(RuntimeError):
    """The backend or execution provider asked for is not installed; the message names the package."""
