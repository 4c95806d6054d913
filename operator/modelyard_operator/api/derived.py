"""``ModelVersion.spec.derivedFrom``: a version built by the operator from another version of the same model.

The shape is ``modelyard-build``'s spec (runtime-image ``build/spec.py``) plus ``version``: the build Job passes
the transforms and the gate to that tool as they are written here (docs/optimization.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelyard_operator.api.common import DIGEST, ApiModel, VersionName, schema_default

URI_PATTERN = r"^(https?|s3|oci|pvc|file)://[^\s]+$"


class PinnedFile(ApiModel):
    """A small input file (OIP request bodies, JSON), fetched by the build Job like the parent and pinned by digest."""

    uri: str = Field(max_length=2048, pattern=URI_PATTERN, description="Where the file is (the parent's schemes and "
                     "credentials).")  # fmt: skip
    digest: str = Field(max_length=71, pattern=DIGEST, description="sha256:<64 hex> of the file.")


class QuantizeTransform(ApiModel):
    """ONNX Runtime's quantization: dynamic (weights int8, activations at run time; convolutions stay float) or
    static (QDQ, activations calibrated on ``calibration``)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode != 'static' || has(self.calibration)",
                    "message": "static quantization needs calibration (uri and digest of sample inputs)",
                }
            ]
        }
    }

    mode: Literal["dynamic", "static"] = Field(default="dynamic", description="dynamic or static.")
    weight_type: Literal["int8", "uint8"] = Field(default="int8", description="int8 or uint8 weights.")
    per_channel: bool = Field(default=False, description="One scale per output channel instead of per tensor.")
    calibration: PinnedFile | None = Field(default=None, description="Sample inputs for static quantization.")


class Float16Transform(ApiModel):
    """Float tensors to float16 (half the size; faster only where the hardware has FP16 kernels)."""

    keep_io: bool = Field(default=True, alias="keepIO", description="Keep float32 inputs and outputs.")


class PruneTransform(ApiModel):
    """Magnitude pruning: the smallest weights of each MatMul/Gemm/Conv set to zero. The file compresses better;
    dense kernels get no faster (the status reports the achieved sparsity)."""

    sparsity: float = Field(default=0.5, ge=0.0, le=0.99, description="Share of each weight tensor set to zero.")
    method: Literal["magnitude"] = Field(default="magnitude", description="magnitude (the only method).")


class Transform(ApiModel):
    """One step; exactly one key."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.convert), has(self.quantize), has(self.float16), has(self.prune)]"
                    ".filter(x, x).size() == 1",
                    "message": "a transform has exactly one of convert, quantize, float16 or prune",
                }
            ]
        }
    }

    convert: Literal["onnx"] | None = Field(
        default=None, description="onnx: compile a PMML parent, or convert a SavedModel parent with tf2onnx (first)."
    )
    quantize: QuantizeTransform | None = Field(default=None, description="Quantize to int8/uint8.")
    float16: Float16Transform | None = Field(default=None, description="Convert to float16.")
    prune: PruneTransform | None = Field(default=None, description="Magnitude pruning.")


class Gate(ApiModel):
    """What the derived model must keep of the parent's answers, on ``samples`` or on seeded random inputs."""

    samples: PinnedFile | None = Field(default=None, description="Real inputs (OIP request bodies) to compare on.")
    generated: int = Field(default=64, ge=1, le=100000, description="Rows of seeded random inputs without samples.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the generated inputs.")
    max_abs_diff: float | None = Field(default=None, ge=0, description="Largest absolute output difference allowed.")
    rmse: float | None = Field(default=None, ge=0, description="Largest root-mean-square output difference allowed.")
    top1_agreement: float | None = Field(
        default=None, ge=0, le=1, description="Smallest share of rows whose arg-max (class) agrees (classifiers)."
    )


class DerivedFrom(ApiModel):
    """Build this version from another version of the same model: fetch and verify it, apply the transforms in
    order, gate, push the result to the installation's artifact store, then validate it like any artifact."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.transforms.all(t, !has(t.convert) || self.transforms.indexOf(t) == 0)",
                    "message": "convert comes first (it changes the model's format)",
                }
            ]
        }
    }

    version: VersionName = Field(description="The parent: spec.version of a ModelVersion of the same model.")
    transforms: list[Transform] = Field(min_length=1, max_length=8, description="Applied in order.")
    gate: Gate = Field(default_factory=Gate, json_schema_extra=schema_default(Gate))


class BuildGateStatus(ApiModel):
    """The gate's numbers."""

    passed: bool | None = Field(default=None, description="Whether every threshold held.")
    inputs: str | None = Field(default=None, max_length=16, description="samples or generated.")
    rows: int | None = Field(default=None, ge=0, description="Rows compared.")
    max_abs_diff: float | None = Field(default=None, description="Largest absolute output difference.")
    rmse: float | None = Field(default=None, description="Root-mean-square output difference.")
    top1_agreement: float | None = Field(default=None, description="Share of rows whose arg-max agrees.")
    failures: list[str] = Field(default_factory=list, max_length=8, description="Thresholds that did not hold.")


class BuildStatus(ApiModel):
    """What the build Job made (derivedFrom): the parent it read, the artifact it pushed, and the numbers."""

    job: str | None = Field(default=None, max_length=253, description="The build Job whose pod produced this.")
    job_uid: str | None = Field(default=None, max_length=64, description="Its UID.")
    parent: str | None = Field(default=None, max_length=253, description="The parent ModelVersion's name.")
    parent_digest: str | None = Field(
        default=None,
        max_length=71,
        description="Digest of the parent's model bytes (of a SavedModel: its pinned archive's).",
    )
    uri: str | None = Field(default=None, max_length=2048, description="Where the derived model was pushed, by digest.")
    digest: str | None = Field(default=None, max_length=71, description="The pushed artifact's (manifest) digest.")
    credentials_secret: str | None = Field(
        default=None, max_length=253, description="The artifact store's credentials Secret the pods read it with."
    )
    size_bytes_before: int | None = Field(default=None, ge=0, description="The parent model's size.")
    size_bytes_after: int | None = Field(default=None, ge=0, description="The derived model's size.")
    derived_model_digest: str | None = Field(default=None, max_length=71, description="sha256 of the derived model.")
    latency_ms_before: float | None = Field(default=None, description="p50 ms of the parent (same Job, same batch).")
    latency_ms_after: float | None = Field(default=None, description="p50 ms of the derived model.")
    latency_batch: int | None = Field(default=None, ge=0, description="Rows per inference of the latency figures.")
    achieved_sparsity: float | None = Field(default=None, description="prune: share of weights that are zero.")
    gate: BuildGateStatus | None = Field(default=None, description="The gate's numbers.")
