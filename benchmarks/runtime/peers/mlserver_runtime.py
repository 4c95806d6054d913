"""MLServer custom runtime wrapping ONNX Runtime (the benchmark's MLServer peer).

Runs in its own virtual environment (mlserver, onnxruntime); the harness writes ``settings.json`` and
``<model>/model-settings.json`` with ``"implementation": "mlserver_runtime.OnnxRuntimeModel"`` and
``parameters.uri`` = the model file, puts this folder on PYTHONPATH and runs ``mlserver start DIR``.
"""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        uri = self.settings.parameters.uri
        # the same session options as modelyard-server and the in-process limit: defaults, CPU provider
        self.session: Any = ort.InferenceSession(
            uri, sess_options=ort.SessionOptions(), providers=["CPUExecutionProvider"]
        )
        self.output_names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feed = {inp.name: NumpyCodec.decode_input(inp) for inp in payload.inputs}
        results = self.session.run(self.output_names, feed)
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(n, a) for n, a in zip(self.output_names, results, strict=True)],
        )
