"""ModelVersion: one immutable, digest-pinned, optionally signed artifact of one model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelyard_operator.api.common import (
    DIGEST,
    ApiModel,
    Condition,
    ModelName,
    ObjectMeta,
    SecretKeyRef,
    VersionName,
    schema_default,
)

ModelFormat = Literal["onnx", "tensorrt", "savedmodel", "pmml"]
Engine = Literal["onnxruntime", "tensorrt"]
ExecutionProvider = Literal[
    "CPUExecutionProvider",
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "ROCMExecutionProvider",
    "OpenVINOExecutionProvider",
]
MVPhase = Literal["Pending", "Validating", "Ready", "Failed"]

SUPPORTED_SCHEMES = ("http", "https", "s3", "oci", "pvc", "file")
URI_PATTERN = r"^(https?|s3|oci|pvc|file)://[^\s]+$"


class SigstoreIdentity(ApiModel):
    """Keyless (sigstore) signer identity; verified offline against the operator's trust root."""

    identity: str = Field(max_length=1024, min_length=1, description="Expected certificate identity (e-mail or URI).")
    issuer: str = Field(max_length=1024, min_length=1, description="Expected OIDC issuer URL.")


class SignatureSpec(ApiModel):
    """An OpenSSF model-signing bundle and exactly one way to verify it."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "[has(self.publicKeySecret), has(self.certificateChainSecret), has(self.sigstore)]"
                    ".filter(x, x).size() == 1",
                    "message": "set exactly one of publicKeySecret, certificateChainSecret or sigstore",
                }
            ]
        }
    }

    uri: str = Field(max_length=2048, pattern=URI_PATTERN, description="Where the signature bundle is.")
    public_key_secret: SecretKeyRef | None = Field(default=None, description="Verify with a public key (PEM).")
    certificate_chain_secret: SecretKeyRef | None = Field(
        default=None, description="Verify with a certificate chain (PEM)."
    )
    sigstore: SigstoreIdentity | None = Field(default=None, description="Verify a keyless sigstore signature.")


S3AddressingStyle = Literal["path", "virtual"]


class S3Settings(ApiModel):
    """How the loader reaches an ``s3://`` artifact's store. A field left out falls back to the credentials
    Secret's key of the same name, then to the chart's ``operator.s3`` values, then to AWS's defaults."""

    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s/?#]+/?$",
        description="S3 endpoint URL of an S3-compatible store, e.g. https://minio.storage.svc:9000 (the "
        "default: AWS's regional endpoint). Still subject to the loader's SSRF guard.",
    )
    region: str | None = Field(
        default=None, max_length=64, pattern=r"^[a-z0-9-]+$", description="Region requests are signed for."
    )
    addressing_style: S3AddressingStyle | None = Field(
        default=None,
        description="path: ENDPOINT/BUCKET/KEY; virtual: BUCKET.ENDPOINT-HOST/KEY (virtual-hosted). Default: "
        "virtual on AWS's endpoints, path on any other endpoint.",
    )


class ArtifactSpec(ApiModel):
    """Where the model's bytes are and what they must hash to."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!self.uri.startsWith('pvc://') || self.uri.matches('^pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?/.+$')",
                    "message": "a pvc:// URI must be pvc://CLAIM/PATH",
                },
                {
                    "rule": "!has(self.s3) || self.uri.startsWith('s3://')",
                    "message": "s3 settings apply to s3:// URIs only",
                },
            ]
        }
    }

    uri: str = Field(
        max_length=2048,
        pattern=URI_PATTERN,
        description="Artifact location: http(s)://, s3://, oci://, pvc://CLAIM/PATH, or file:// when the "
        "operator allows it.",
    )
    digest: str | None = Field(
        default=None,
        max_length=71,
        pattern=DIGEST,
        description="sha256:<64 hex> of the artifact; required unless the operator allows unpinned artifacts.",
    )
    credentials_secret: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        description="Secret in this namespace with the store's credentials (never logged), mounted into the "
        "loader only. It must carry the label modelyard.dev/artifact-credentials=true (docs/security.md). "
        "Keys: S3 accessKeyId/secretAccessKey[/sessionToken] (or a shared credentials file 'credentials' with "
        "'profile'), endpoint, region, addressingStyle, caBundle; HTTP token (bearer) or username/password "
        "(basic); OCI username/password or .dockerconfigjson; 'host': the only host(s) credentials are sent to.",
    )
    s3: S3Settings | None = Field(default=None, description="S3 endpoint, region and addressing (s3:// URIs).")
    signature: SignatureSpec | None = Field(default=None, description="Optional model-signing signature.")


class RuntimeSpec(ApiModel):
    """How the server runs the model."""

    engine: Engine = Field(default="onnxruntime", description="Inference engine.")
    execution_providers: list[ExecutionProvider] = Field(
        default_factory=lambda: list[ExecutionProvider](["CPUExecutionProvider"]),
        max_length=5,
        description="ONNX Runtime execution providers in order of preference.",
    )


class BatchingSpec(ApiModel):
    """Server-side dynamic batching."""

    max_batch_size: int = Field(default=0, ge=0, le=4096, description="Largest merged batch; 0 turns batching off.")
    max_queue_delay_ms: float = Field(
        default=0.0, ge=0, le=10000, description="Longest a request waits for others to batch with."
    )


class WarmupSpec(ApiModel):
    """Requests the server sends itself before reporting ready."""

    requests: int = Field(default=0, ge=0, le=1000, description="Number of warm-up inferences.")


class ModelVersionSpec(ApiModel):
    """Immutable description of one artifact; a new artifact is a new ModelVersion."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec is immutable: create a new ModelVersion instead"},
                {
                    "rule": "self.format != 'tensorrt' || self.runtime.engine == 'tensorrt'",
                    "message": "format tensorrt needs runtime.engine tensorrt",
                },
            ]
        }
    }

    model: ModelName
    version: VersionName
    format: ModelFormat = Field(default="onnx", description="Artifact format.")
    artifact: ArtifactSpec
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, json_schema_extra=schema_default(RuntimeSpec))
    batching: BatchingSpec = Field(default_factory=BatchingSpec, json_schema_extra=schema_default(BatchingSpec))
    warmup: WarmupSpec = Field(default_factory=WarmupSpec, json_schema_extra=schema_default(WarmupSpec))


class TensorSpec(ApiModel):
    """One input or output tensor as the validation found it (-1 marks a variable dimension)."""

    name: str = Field(max_length=256)
    datatype: str = Field(max_length=16)
    shape: list[int] = Field(max_length=16)


class ModelSignatureStatus(ApiModel):
    """The model's inputs and outputs."""

    inputs: list[TensorSpec] = Field(default_factory=list, max_length=256)
    outputs: list[TensorSpec] = Field(default_factory=list, max_length=256)


class ArtifactStatus(ApiModel):
    """What the artifact turned out to be."""

    digest: str | None = Field(default=None, max_length=71)
    size_bytes: int | None = Field(default=None, ge=0)


class ValidationJobRef(ApiModel):
    """The operator's validation Job whose pod produced the recorded result."""

    name: str = Field(max_length=253)
    uid: str = Field(max_length=64)


class ModelVersionStatus(ApiModel):
    """What the operator found out about the artifact."""

    observed_generation: int | None = Field(default=None, ge=0)
    phase: MVPhase | None = Field(default=None, description="Pending, Validating, Ready or Failed.")
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    artifact: ArtifactStatus | None = None
    signature: ModelSignatureStatus | None = None
    load_seconds: float | None = Field(default=None, ge=0)
    validation_job: ValidationJobRef | None = Field(
        default=None, description="The Job whose pod produced this result (only the operator's own Job counts)."
    )


class ModelVersion(ApiModel):
    """A ModelVersion object as read from the API server."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    metadata: ObjectMeta
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)
