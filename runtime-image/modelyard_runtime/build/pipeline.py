"""One build: the parent's bytes (a SavedModel's folder) in, the transforms in order, the gate, the report; the
derived model's bytes out.

Files named by the spec (gate samples, calibration data) come through ``resolve``, which the caller gives: the CLI
reads local files and checks their digests, a build Job its loader's verified downloads.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from modelyard_runtime.build import spec as s
from modelyard_runtime.build.compare import Agreement, verdict
from modelyard_runtime.build.run import Model, Runner, generated, latency_ms
from modelyard_runtime.samples import Sample, read_samples

log = logging.getLogger("modelyard.build")

Resolve = Callable[[s.Pinned, str], Path]
Parent = bytes | Path  # an ONNX model's or a PMML document's bytes, or a SavedModel's folder


class BuildError(RuntimeError):
    """A transform could not be applied; the message names it."""


@dataclass
class Built:
    model: bytes
    passed: bool
    report: dict[str, Any] = field(default_factory=dict)


def describe(data: bytes) -> dict[str, Any]:
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "sizeBytes": len(data),
            "compressedBytes": len(zlib.compress(data, 6))}  # fmt: skip


def _start(parent: Parent, parent_format: str, first: s.Transform | None) -> tuple[onnx.ModelProto, Runner | None]:
    """The ONNX model the transforms start from, and the gate's reference when it is not that model (TensorFlow's
    run of a SavedModel)."""
    if isinstance(first, s.Convert):
        if parent_format == "onnx":
            raise BuildError("convert: the parent is ONNX already")
        if isinstance(parent, Path):  # a SavedModel's folder
            from modelyard_runtime.build.savedmodel import ConvertError, TensorFlowReference, convert

            try:
                model = convert(parent)  # first: the child's TensorFlow has exited before this process loads one
                tensorflow = TensorFlowReference(parent)
                return tensorflow.named_as_signature(model), tensorflow
            except ConvertError as e:
                raise BuildError(f"convert: {e}") from None
        from modelyard_runtime.pmml import PMMLError, compile_pmml

        try:
            return compile_pmml(parent), None
        except PMMLError as e:
            raise BuildError(f"convert: {e}") from None
    if parent_format != "onnx" or isinstance(parent, Path):
        raise BuildError(f"the parent is {parent_format}: start the transforms with convert: onnx")
    try:
        return onnx.load_from_string(parent), None
    except Exception as e:  # protobuf's DecodeError and friends
        raise BuildError(f"the parent is not an ONNX model ({str(e)[:200]})") from None


def _apply(
    model: onnx.ModelProto, t: s.Transform, calibration: list[Sample] | None
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    if isinstance(t, s.Convert):
        return model, {"convert": "onnx"}
    if isinstance(t, s.Quantize):
        from modelyard_runtime.build.quantize import quantize

        return quantize(model, t, calibration), {"quantize": {"mode": t.mode, "weightType": t.weight_type,
                                                              "perChannel": t.per_channel}}  # fmt: skip
    if isinstance(t, s.Float16):
        from modelyard_runtime.build.float16 import to_float16

        return to_float16(model, t.keep_io), {"float16": {"keepIO": t.keep_io}}
    if isinstance(t, s.Prune):
        from modelyard_runtime.build.prune import prune

        result = prune(model, t.sparsity)
        return result.model, {"prune": {"sparsity": t.sparsity, "method": t.method, "tensors": result.tensors,
                                        "achievedSparsity": round(result.sparsity, 4)}}  # fmt: skip
    raise BuildError("tensorrtPlan: building TensorRT plans needs TensorRT on a GPU node, which this build lacks")


def _gate_inputs(gate: s.Gate, model: Runner, resolve: Resolve) -> tuple[list[Sample], str]:
    if gate.samples is not None:
        return read_samples(resolve(gate.samples, "gate.samples"), model.inputs, "gate"), "samples"
    return [generated(model, gate.generated, gate.seed)], "generated"


def build(parent: Parent, parent_format: str, spec: s.BuildSpec, resolve: Resolve, *,
          latency_batch: int = 32, latency_runs: int = 30) -> Built:  # fmt: skip
    """Apply ``spec`` to ``parent``; BuildError (or ValueError from the inputs) when a step cannot run. A failed gate
    is no error: ``Built.passed`` is false and the report says why."""
    first = spec.transforms[0]
    started = time.perf_counter()
    model, tensorflow = _start(parent, parent_format, first)
    converting = time.perf_counter() - started  # a convert's work happens here: counted in its step
    reference = model.SerializeToString(deterministic=True)
    calibration: list[Sample] | None = None
    steps: list[dict[str, Any]] = []
    for i, t in enumerate(spec.transforms):
        started = time.perf_counter()
        if isinstance(t, s.Quantize) and t.calibration is not None:
            inputs = [v.name for v in model.graph.input if v.name not in {x.name for x in model.graph.initializer}]
            calibration = read_samples(
                resolve(t.calibration, f"transforms[{i}].quantize.calibration"), inputs, "calibration"
            )
        try:
            model, step = _apply(model, t, calibration)
        except BuildError:
            raise
        except (ValueError, RuntimeError) as e:
            raise BuildError(f"transforms[{i}]: {e}") from None
        step["seconds"] = round(time.perf_counter() - started + (converting if i == 0 else 0.0), 3)
        steps.append(step)
        log.info(
            "transform %d of %d done in %.1f s: %s", i + 1, len(spec.transforms), step["seconds"], next(iter(step))
        )
    data = model.SerializeToString(deterministic=True)
    before, after = tensorflow or Model(reference, "the parent"), Model(data, "the derived model")
    samples, source = _gate_inputs(spec.gate, before, resolve)
    agreement = Agreement()
    for sample in samples:
        agreement.add(before.run(sample), after.run(sample))
    failures = verdict(agreement, spec.gate.max_abs_diff, spec.gate.rmse, spec.gate.top1_agreement)
    log.info("gate %s on %d rows (%s)", "failed" if failures else "passed", agreement.rows, source)
    report: dict[str, Any] = {
        "parent": _describe_parent(parent) | ({"compiledSizeBytes": len(reference)} if parent_format != "onnx" else {}),
        "derived": describe(data),
        "transforms": steps,
        "gate": _gate_report(spec.gate, agreement, source, failures),
    }
    if latency_runs > 0:
        sample = generated(before, latency_batch, 1)
        parent_ms, derived_ms = latency_ms(before, after, sample, latency_runs)
        report["latency"] = {"batch": latency_batch, "runs": latency_runs, "parentMs": round(parent_ms, 4),
                             "derivedMs": round(derived_ms, 4), "ratio": round(derived_ms / parent_ms, 3)}  # fmt: skip
    return Built(data, not failures, report)


def _describe_parent(parent: Parent) -> dict[str, Any]:
    if isinstance(parent, Path):
        from modelyard_runtime.build.savedmodel import describe_folder

        return describe_folder(parent)
    return describe(parent)


def _gate_report(gate: s.Gate, agreement: Agreement, source: str, failures: list[str]) -> dict[str, Any]:
    thresholds = {"maxAbsDiff": gate.max_abs_diff, "rmse": gate.rmse, "top1Agreement": gate.top1_agreement}
    top1 = agreement.top1_agreement
    return {
        "passed": not failures,
        "inputs": source,
        "rows": agreement.rows,
        "maxAbsDiff": round(agreement.max_abs_diff, 8),
        "rmse": round(agreement.rmse, 8),
        **({"top1Agreement": round(top1, 6)} if top1 is not None else {}),
        "thresholds": {k: v for k, v in thresholds.items() if v is not None},
        "failures": failures,
    }
