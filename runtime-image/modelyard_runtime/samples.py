"""Digest-pinned sample inputs: Open Inference Protocol request bodies in a JSON file.

One format serves the server's warm-up (``warmup.samples``) and the build gate of derived versions (``gate.samples``,
quantization's ``calibration``): one request body (``{"inputs": [...]}``), a list of them, or ``{"requests": [...]}``.
Each must give every input of the model; a ValueError names the sample and the input at fault.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy.typing as npt

from modelyard_runtime.protocol.datatypes import DatatypeError, array_from_values

MAX_SAMPLES_BYTES = 16 << 20

Sample = dict[str, npt.NDArray[Any]]


def samples_file(where: Path, what: str = "warm-up") -> Path:
    """``where`` itself, or the one ``.json`` file in the folder the loader published it into."""
    if not where.is_dir():
        return where
    found = sorted(p for p in where.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    if len(found) != 1:
        raise ValueError(f"{what} samples: expected one .json file in {where}, found {len(found)}")
    return found[0]


def read_samples(where: Path, wanted: Iterable[str], what: str = "warm-up") -> list[Sample]:
    """The samples in ``where`` (a file, or a folder with one ``.json`` file); ``wanted`` names the model's inputs."""
    file = samples_file(where, what)
    if file.stat().st_size > MAX_SAMPLES_BYTES:
        raise ValueError(f"{what} samples: {file.name} is larger than {MAX_SAMPLES_BYTES} bytes")
    try:
        document = json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{what} samples: {file.name} is not JSON ({e})") from None
    samples = parse_samples(document, set(wanted), what)
    if not samples:
        raise ValueError(f"{what} samples: {file.name} holds no request")
    return samples


def parse_samples(document: Any, wanted: set[str], what: str = "warm-up") -> list[Sample]:
    """Request bodies from a parsed JSON document, as arrays keyed by input name."""
    if isinstance(document, dict) and "requests" in document:
        document = document["requests"]
    requests = document if isinstance(document, list) else [document]
    samples: list[Sample] = []
    for i, request in enumerate(requests):
        tensors = request.get("inputs") if isinstance(request, dict) else None
        if not isinstance(tensors, list):
            raise ValueError(f"{what} sample {i}: expected an object with an inputs list")
        sample: Sample = {}
        for t in tensors:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise ValueError(f"{what} sample {i}: each input needs a name, datatype, shape and data")
            try:
                sample[t["name"]] = array_from_values(t.get("data"), str(t.get("datatype")), list(t.get("shape") or []))
            except (DatatypeError, TypeError) as exc:
                raise ValueError(f"{what} sample {i}, input {t['name']!r}: {exc}") from None
        if set(sample) != wanted:
            raise ValueError(f"{what} sample {i}: has inputs {sorted(sample)}, the model takes {sorted(wanted)}")
        samples.append(sample)
    return samples
