"""``modelyard-loader validate``: what the operator's validation Job runs for a new ModelVersion.

Fetch and verify exactly as ``fetch`` does, find the model the ModelVersion's ``format`` names (an ``.onnx`` file
for ``onnx``, a ``.plan``/``.engine`` TensorRT plan for ``tensorrt``, the ``model.onnx`` compiled from the PMML
document for ``pmml``, whose digest the result records, a SavedModel's ``saved_model.pb`` for ``savedmodel``), load
it once (an ONNX Runtime session on the CPU; a TensorRT engine on the node's GPU; the SavedModel's
``serving_default`` signature with TensorFlow), measure how long that took, read the inputs and outputs, and write one
compact JSON object to the termination-log path (what Kubernetes shows as the container's termination message,
at most 4096 bytes) and to stdout. The shape is documented in docs/loader.md; the exit code is the loader's usual
one, with 7 for a model that was verified but does not load (or holds no model of the format).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from modelyard_runtime.loader.errors import EngineUnavailableError, FormatMismatchError, LoaderError, ValidationError
from modelyard_runtime.loader.pipeline import FetchRequest, run_fetch
from modelyard_runtime.modelfile import ModelFileError, choose_model
from modelyard_runtime.protocol.datatypes import from_onnx_type

TERMINATION_LOG_LIMIT = 4096


def find_model(root: Path, files: list[str], model_format: str = "onnx") -> Path:
    """The model the server will serve from this artifact (:func:`modelyard_runtime.modelfile.choose_model`)."""
    try:
        return root / choose_model(files, model_format)
    except ModelFileError as e:
        raise FormatMismatchError(f"format {model_format}: {e}") from None


def find_onnx(root: Path, files: list[str]) -> Path:
    return find_model(root, files, "onnx")


def load_plan_once(plan: Path) -> tuple[float, list[dict[str, Any]], list[dict[str, Any]]]:
    """Deserialize the plan with the TensorRT runtime on this node's GPU and read its I/O tensors."""
    from modelyard_runtime.backends import BackendUnavailableError
    from modelyard_runtime.backends.options import parse_backend_options

    start = time.perf_counter()
    try:
        from modelyard_runtime.backends.tensorrt import TensorRTBackend

        backend = TensorRTBackend(plan, parse_backend_options({"kind": "tensorrt"}, model_file=plan))
    except BackendUnavailableError as e:
        raise EngineUnavailableError(f"{plan.name}: {e}") from None
    except Exception as e:
        raise ValidationError(f"{plan.name}: TensorRT cannot load it: {str(e)[:500]}") from None
    seconds = time.perf_counter() - start
    tensors = ([t.to_json() for t in backend.inputs], [t.to_json() for t in backend.outputs])
    backend.close()
    return seconds, *tensors


def load_savedmodel_once(
    model: Path, signature: str = "serving_default"
) -> tuple[float, list[dict[str, Any]], list[dict[str, Any]]]:
    """Load the SavedModel holding ``model`` (its saved_model.pb) with TensorFlow and read the signature's I/O."""
    from modelyard_runtime.backends import BackendUnavailableError
    from modelyard_runtime.backends.options import parse_backend_options

    start = time.perf_counter()
    try:
        from modelyard_runtime.backends.tensorflow import TensorFlowBackend

        options = parse_backend_options({"kind": "tensorflow", "signature": signature}, model_file=model)
        backend = TensorFlowBackend(model, options)
    except BackendUnavailableError as e:
        raise EngineUnavailableError(f"{model.parent.name}: {e}") from None
    except Exception as e:
        raise ValidationError(f"{model.parent.name}: TensorFlow cannot load it: {str(e)[:500]}") from None
    seconds = time.perf_counter() - start
    tensors = ([t.to_json() for t in backend.inputs], [t.to_json() for t in backend.outputs])
    backend.close()
    return seconds, *tensors


def _loader_for(model_format: str) -> Any:
    if model_format == "tensorrt":
        return load_plan_once
    if model_format == "savedmodel":
        return load_savedmodel_once
    return load_once


def _tensors(metas: list[Any]) -> list[dict[str, Any]]:
    out = []
    for m in metas:
        try:
            datatype = from_onnx_type(m.type)
        except Exception:
            datatype = str(m.type)
        shape = [d if isinstance(d, int) and d >= 0 else -1 for d in m.shape]
        out.append({"name": m.name, "datatype": datatype, "shape": shape})
    return out


def load_once(model: Path) -> tuple[float, list[dict[str, Any]], list[dict[str, Any]]]:
    try:
        import onnxruntime as ort
    except ImportError as e:  # pragma: no cover - the runtime image always has it
        raise ValidationError(f"onnxruntime is not installed: {e}") from None
    start = time.perf_counter()
    try:
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ValidationError(f"{model.name}: ONNX Runtime cannot load it: {str(e)[:500]}") from None
    seconds = time.perf_counter() - start
    return seconds, _tensors(session.get_inputs()), _tensors(session.get_outputs())


def compact(result: dict[str, Any], limit: int = TERMINATION_LOG_LIMIT) -> str:
    """The JSON text of ``result`` within ``limit`` bytes: long tensor lists and messages are cut, marked."""
    text = json.dumps(result, separators=(",", ":"))
    if len(text.encode()) <= limit:
        return text
    r = dict(result)
    r["truncated"] = True
    while len(json.dumps(r, separators=(",", ":")).encode()) > limit and (r.get("inputs") or r.get("outputs")):
        key = "inputs" if len(r.get("inputs") or []) >= len(r.get("outputs") or []) else "outputs"
        r[key] = r[key][:-1]
    if len(json.dumps(r, separators=(",", ":")).encode()) > limit:
        r["message"] = str(r.get("message", ""))[:200]
    return json.dumps(r, separators=(",", ":"))


def run_validate(req: FetchRequest, termination_log: str, model_format: str = "onnx") -> int:
    result: dict[str, Any] = {"ok": False, "reason": "", "message": ""}
    code = 0
    try:
        fetched = run_fetch(req)
        result["artifact"] = {"digest": fetched.digest, "sizeBytes": fetched.size}
        result["signature"] = {"verified": fetched.signature is not None, "method": fetched.signature}
        if fetched.compiled is not None:  # pmml: what the server serves is the compiled model
            model = req.dest / fetched.compiled.model
            result["compiled"] = fetched.compiled.as_dict()
        else:
            model = find_model(req.dest, fetched.files, model_format)
        seconds, inputs, outputs = _loader_for(model_format)(model)
        result.update(
            format=model_format,
            ok=True,
            reason="Validated",
            message=f"{model.relative_to(req.dest)} loads in {seconds:.3f}s",
            model=str(model.relative_to(req.dest)),
            loadSeconds=round(seconds, 4),
            inputs=inputs,
            outputs=outputs,
        )
    except LoaderError as e:
        result.update(reason=e.reason, message=str(e))
        if e.artifact and "artifact" not in result:
            result["artifact"] = e.artifact
        code = e.exit_code
    text = compact(result)
    try:
        with open(termination_log, "w") as f:
            f.write(text)
    except OSError as e:
        sys.stderr.write(f"modelyard-loader: cannot write the termination log {termination_log}: {e.strerror}\n")
    print(text)
    return code
