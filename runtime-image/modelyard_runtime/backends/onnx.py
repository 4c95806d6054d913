"""ONNX Runtime backend (CPU here; CUDA and TensorRT providers when onnxruntime-gpu is installed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.backends import BackendUnavailableError, TensorMeta
from modelyard_runtime.errors import BadRequestError
from modelyard_runtime.protocol.datatypes import from_onnx_type

_PROVIDER_PACKAGES = {
    "CUDAExecutionProvider": "onnxruntime-gpu",
    "TensorrtExecutionProvider": "onnxruntime-gpu with TensorRT libraries",
}


def _dims(shape: list[Any]) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


class OnnxBackend:
    platform = "onnxruntime_onnx"

    def __init__(self, path: Path, providers: list[str] | None = None, intra_op_threads: int = 0) -> None:
        import onnxruntime as ort  # lazily: the import costs ~0.3 s and GPU builds are large

        available = ort.get_available_providers()
        wanted = providers or ["CPUExecutionProvider"]
        missing = [p for p in wanted if p not in available]
        if missing:
            hints = ", ".join(
                f"{p} (install {_PROVIDER_PACKAGES.get(p, 'a build of onnxruntime with it')})" for p in missing
            )
            raise BackendUnavailableError(
                f"execution provider not available: {hints}; available: {', '.join(available)}"
            )
        options = ort.SessionOptions()
        if intra_op_threads:
            options.intra_op_num_threads = intra_op_threads
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
        self.inputs = [TensorMeta(i.name, from_onnx_type(i.type), _dims(i.shape)) for i in self.session.get_inputs()]
        self.outputs = [TensorMeta(o.name, from_onnx_type(o.type), _dims(o.shape)) for o in self.session.get_outputs()]
        self.memory_bytes = path.stat().st_size

    def run(self, inputs: dict[str, npt.NDArray[Any]], output_names: list[str]) -> dict[str, npt.NDArray[Any]]:
        feed = {name: _to_ort_strings(name, arr) if arr.dtype == np.object_ else arr for name, arr in inputs.items()}
        results = self.session.run(output_names, feed)
        return {
            name: _from_ort_strings(out) if out.dtype == np.object_ else out
            for name, out in zip(output_names, results, strict=True)
        }


def _to_ort_strings(name: str, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """ONNX string tensors are UTF-8 text in ONNX Runtime (bytes would be stringified as "b'...'")."""
    out = np.empty(array.shape, dtype=np.object_)
    flat_in, flat_out = array.reshape(-1), out.reshape(-1)
    for i, item in enumerate(flat_in):
        try:
            flat_out[i] = item.decode("utf-8") if isinstance(item, bytes) else str(item)
        except UnicodeDecodeError:
            raise BadRequestError(f"input {name!r}: ONNX string tensors need UTF-8, element {i} is not") from None
    return out


def _from_ort_strings(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    out = np.empty(array.shape, dtype=np.object_)
    out.reshape(-1)[:] = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in array.reshape(-1)]
    return out
