"""The derived version's spec (transforms and gate) is checked before anything runs, with the key at fault named."""

from __future__ import annotations

from typing import Any

import pytest

from modelyard_runtime.build.spec import Convert, Float16, Prune, Quantize, SpecError, TensorrtPlan, parse_spec

DIGEST = "sha256:" + "ab" * 32


def test_every_transform_with_its_defaults() -> None:
    spec = parse_spec({"transforms": [
        {"convert": "onnx"}, {"quantize": {}}, {"float16": None}, {"prune": {"sparsity": 0.7}}, {"tensorrtPlan": {}},
    ]})  # fmt: skip
    assert spec.transforms == (Convert(), Quantize("dynamic", "int8", False, None), Float16(True), Prune(0.7),
                               TensorrtPlan("fp16"))  # fmt: skip
    assert (spec.gate.samples, spec.gate.generated, spec.gate.max_abs_diff, spec.gate.top1_agreement) == (
        None, 64, None, None)  # fmt: skip


def test_static_quantization_and_gate_with_pinned_files() -> None:
    spec = parse_spec({
        "transforms": [{"quantize": {"mode": "static", "weightType": "uint8", "perChannel": True,
                                     "calibration": {"uri": "cal.json", "digest": DIGEST}}}],
        "gate": {"samples": {"uri": "s.json"}, "maxAbsDiff": 0.1, "rmse": 0.01, "top1Agreement": 0.99},
    })  # fmt: skip
    (q,) = spec.transforms
    assert isinstance(q, Quantize)
    assert q.per_channel
    assert q.weight_type == "uint8"
    assert q.calibration is not None
    assert q.calibration.digest == DIGEST
    assert spec.gate.samples is not None
    assert spec.gate.samples.uri == "s.json"
    assert spec.gate.samples.digest is None
    assert (spec.gate.max_abs_diff, spec.gate.rmse, spec.gate.top1_agreement) == (0.1, 0.01, 0.99)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "transforms: expected a non-empty list"),
        ({"transforms": []}, "transforms: expected a non-empty list"),
        ({"transforms": [{"quantize": {}}], "extra": 1}, "spec: unknown key(s) extra"),
        ({"transforms": ["quantize"]}, "transforms[0]: expected one of convert"),
        ({"transforms": [{"quantize": {}, "prune": {}}]}, "transforms[0]: expected one of"),
        ({"transforms": [{"sharpen": {}}]}, "transforms[0].sharpen: unknown transform"),
        ({"transforms": [{"convert": "tflite"}]}, "transforms[0].convert: only onnx"),
        ({"transforms": [{"quantize": {"mode": "fast"}}]}, "transforms[0].quantize.mode: 'fast' is not one of"),
        ({"transforms": [{"quantize": {"weightType": "int4"}}]}, "quantize.weightType: 'int4' is not one of"),
        ({"transforms": [{"quantize": {"perChannel": "yes"}}]}, "quantize.perChannel: expected true or false"),
        ({"transforms": [{"quantize": {"mode": "static"}}]}, "static quantization needs calibration data"),
        ({"transforms": [{"quantize": {"calibration": {"digest": DIGEST}}}]}, "quantize.calibration.uri: required"),
        ({"transforms": [{"quantize": {"calibration": {"uri": "c", "digest": "md5:1"}}}]}, "digest: expected sha256"),
        ({"transforms": [{"float16": {"keepIo": True}}]}, "float16: unknown key(s) keepIo (allowed: keepIO)"),
        ({"transforms": [{"prune": {"sparsity": 1}}]}, "prune.sparsity: expected a number from 0.0 to 0.99"),
        ({"transforms": [{"prune": {"sparsity": True}}]}, "prune.sparsity: expected a number"),
        ({"transforms": [{"prune": {"method": "random"}}]}, "prune.method: 'random' is not one of magnitude"),
        ({"transforms": [{"tensorrtPlan": {"precision": "int4"}}]}, "tensorrtPlan.precision"),
        ({"transforms": [{"prune": {}}, {"convert": "onnx"}]}, "transforms[1].convert: a conversion comes first"),
        (
            {"transforms": [{"tensorrtPlan": {}}, {"prune": {}}]},
            "transforms[0].tensorrtPlan: a TensorRT plan is the last",
        ),
        ({"transforms": [{"prune": {}}], "gate": []}, "gate: expected a mapping"),
        ({"transforms": [{"prune": {}}], "gate": {"top1": 0.9}}, "gate: unknown key(s) top1"),
        ({"transforms": [{"prune": {}}], "gate": {"top1Agreement": 1.5}}, "gate.top1Agreement: expected a number"),
        ({"transforms": [{"prune": {}}], "gate": {"maxAbsDiff": -1}}, "gate.maxAbsDiff: expected a number"),
        ({"transforms": [{"prune": {}}], "gate": {"generated": 0}}, "gate.generated: expected a count"),
        ({"transforms": [{"prune": {}}], "gate": {"seed": -1}}, "gate.seed: expected a non-negative integer"),
    ],
)
def test_refusals_name_the_key(document: Any, message: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(document)
    assert message in str(refused.value)


def test_thresholds_in_exponent_notation_are_numbers() -> None:
    """PyYAML (YAML 1.1) reads 1e-6 as a string; the tool reads YAML 1.2's floats, and --spec-json is JSON."""
    from modelyard_runtime.build.cli import _json, _yaml

    assert _yaml("{maxAbsDiff: 1e-6, rows: 12, top1Agreement: .99}", "--gate") == {
        "maxAbsDiff": 1e-6, "rows": 12, "top1Agreement": 0.99,
    }  # fmt: skip
    assert _yaml("{uri: '1e-6'}", "-t") == {"uri": "1e-6"}
    assert _json('{"gate": {"maxAbsDiff": 1e-06}}', "--spec-json") == {"gate": {"maxAbsDiff": 1e-6}}
