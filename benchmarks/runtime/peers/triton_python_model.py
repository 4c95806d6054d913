"""The benchmark model inside NVIDIA's Triton Inference Server: a Python-backend model that runs the ONNX file with
ONNX Runtime in the backend's stub process.

Triton here is the ``tritonserver`` binary that the ``nvidia-pytriton`` wheel ships (the only Triton build installable
from PyPI; it carries the Python backend and no ONNX Runtime backend). Triton's own HTTP and gRPC frontends, its
dynamic batcher and its scheduling are the real thing; the model executes in ONNX Runtime, as in every other row.
Requests that Triton's dynamic batcher gathers arrive together and run as one ONNX Runtime call.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        folder = os.path.join(args["model_repository"], args["model_version"])
        self.session = ort.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def execute(self, requests: list[Any]) -> list[Any]:
        feeds = [[pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs] for r in requests]
        rows = [f[0].shape[0] for f in feeds]
        merged = {name: np.concatenate([f[i] for f in feeds]) for i, name in enumerate(self.inputs)}
        results = self.session.run(self.outputs, merged)
        responses, start = [], 0
        for n in rows:
            tensors = [
                pb_utils.Tensor(name, r[start : start + n]) for name, r in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses
