"""KServe Python model server wrapping ONNX Runtime, speaking V2 (the benchmark's KServe peer).

Runs in its own virtual environment (kserve, onnxruntime): ``python kserve_server.py --model_name mlp
--model_path DIR/mlp/1/model.onnx --http_port P --grpc_port Q`` plus any other ``kserve.ModelServer`` flag.
Written the way the KServe docs show a custom model: load in ``load``, V2 ``InferRequest`` in, ``InferResponse``
out, binary outputs when the client asks for them.
"""

from __future__ import annotations

import argparse
import logging
import uuid
from typing import Any

import kserve
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse
from kserve.model_server import parser as kserve_parser


class OnnxModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.session: Any = None
        self.load()

    def load(self) -> bool:
        # the same session options as modelyard-server and the in-process limit: defaults, CPU provider
        self.session = ort.InferenceSession(
            self.path, sess_options=ort.SessionOptions(), providers=["CPUExecutionProvider"]
        )
        self.ready = True
        return True

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        feed = {inp.name: inp.as_numpy() for inp in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        outputs = []
        for name, array in zip(names, self.session.run(names, feed), strict=True):
            out = InferOutput(name=name, shape=list(array.shape), datatype="FP32")
            out.set_data_from_numpy(array, binary_data=True)
            outputs.append(out)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),  # V2 allows requests without an id
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=payload.use_binary_outputs,
        )


def main() -> None:
    p = argparse.ArgumentParser(parents=[kserve_parser], conflict_handler="resolve")
    p.add_argument("--model_path", required=True)
    p.add_argument("--quiet_request_logs", type=lambda v: v.lower() in ("1", "true", "yes"), default=True)
    args, _ = p.parse_known_args()
    model = OnnxModel(args.model_name, args.model_path)
    server = kserve.ModelServer()  # configures KServe's logging
    if args.quiet_request_logs:
        # no log line per request (uvicorn's access log, the trace timings, the gRPC interceptor's method line):
        # the serving work is measured, not terminal I/O; start-up messages and warnings still show
        for name in ("uvicorn.access", "kserve.trace", "kserve"):
            logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])


if __name__ == "__main__":
    main()
