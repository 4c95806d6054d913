"""grpc.aio against grpc's synchronous server (a thread pool), each with the smallest ModelInfer handler.

Usage: ``.venv/bin/python benchmarks/runtime/experiments/grpc_servers.py aio,sync:1,sync:2,sync:8 [ROUNDS]``.
Each variant is this file run as a server (``serve MODE PORT MODEL [THREADS]``): it decodes the raw input, runs
the benchmark MLP with ONNX Runtime (spinning off, as modelyard-server) and answers with raw output contents, with
no admission, metrics or batching, so what is left is gRPC's own cost per call. The load is the benchmark's own
(``loadgen.run_cell``: tritonclient gRPC, one process per worker), concurrency 1 and 8, batch 1, rounds over the
variants in turn.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[3] / "hack")]


def serve(mode: str, port: int, model: str, threads: int) -> None:
    import grpc
    import numpy as np
    import onnxruntime as ort
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    input_name, output_name = session.get_inputs()[0].name, session.get_outputs()[0].name

    def infer(request: Any) -> Any:
        tensor = request.inputs[0]
        x = np.frombuffer(request.raw_input_contents[0], dtype=np.float32).reshape(list(tensor.shape))
        y = session.run([output_name], {input_name: x})[0]
        response = service_pb2.ModelInferResponse(model_name=request.model_name, model_version="1", id=request.id)
        out = response.outputs.add()
        out.name, out.datatype = output_name, "FP32"
        out.shape.extend(y.shape)
        response.raw_output_contents.append(y.tobytes())
        return response

    class Sync(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
        def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802 (the RPC's name)
            return infer(request)

    class Aio(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
        async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
            return infer(request)

    if mode == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(threads))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Sync(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        print("up", flush=True)
        server.wait_for_termination()
        return

    async def run() -> None:
        server = grpc.aio.server()
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(Aio(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print("up", flush=True)
        await server.wait_for_termination()

    asyncio.run(run())


def main() -> None:
    import loadgen

    import models
    from devcluster import free_port

    variants, rounds = sys.argv[1].split(","), int(sys.argv[2]) if len(sys.argv) > 2 else 3
    model = Path(tempfile.gettempdir()) / "modelyard-grpc-servers" / "mlp.onnx"
    if not model.exists():
        model.parent.mkdir(parents=True, exist_ok=True)
        models.mlp(model)
    for number in range(rounds):
        for variant in variants:
            mode, _, threads = variant.partition(":")
            port = free_port()
            argv = [sys.executable, __file__, "serve", mode, str(port), str(model), threads or "8"]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE)
            assert proc.stdout is not None
            proc.stdout.readline()
            time.sleep(0.3)
            target = loadgen.Target("grpc", f"127.0.0.1:{port}", "mlp")
            cells = []
            for concurrency in (1, 8):
                cell = loadgen.run_cell(target, concurrency=concurrency, batch=1, warmup_s=1, duration_s=3,
                                        server_pid=proc.pid).summary()  # fmt: skip
                cells.append(f"c{concurrency} {cell['req_per_s']:.0f} req/s p50 {cell['p50_ms']:.2f} ms "
                             f"server {cell['server_cpu_cores']} cores")  # fmt: skip
            proc.kill()
            proc.wait()
            print(f"round {number + 1} {variant}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        main()
