"""ModelVersion: one immutable, digest-pinned, optionally signed artifact of one model."""

from __future__ import annotations

from typing import Annotated, Literal

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
from modelyard_operator.api.derived import BuildStatus, DerivedFrom

ModelFormat = Literal["onnx", "tensorrt", "savedmodel", "pmml"]
Engine = Literal["onnxruntime", "tensorrt", "tensorflow"]
# The providers the project's images can run (the CPU image: CPU only; the GPU image: all three). A provider the
# pod's image lacks fails the server's start with a reason the ModelDeployment shows as Degraded, never a CPU fallback.
ExecutionProvider = Literal["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
SERVABLE_FORMATS = ("onnx", "tensorrt", "pmml", "savedmodel")
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


# The server's only writable place for caches is its cache volume (the root filesystem is read-only).
CACHE_PATH = r"^/var/cache/modelyard(/[-._A-Za-z0-9]+)*/?$"


class CudaOptions(ApiModel):
    """Options of ONNX Runtime's CUDA execution provider (unset: ONNX Runtime's default)."""

    gpu_mem_limit: int | None = Field(default=None, ge=0, description="Bytes the provider's arena may take.")
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] | None = Field(
        default=None, description="How cuDNN picks convolution algorithms."
    )
    use_tf32: bool | None = Field(default=None, description="Allow TF32 math on Ampere and newer GPUs.")
    enable_cuda_graph: bool | None = Field(default=None, description="Capture and replay the model as a CUDA graph.")


class TensorrtOptions(ApiModel):
    """Options of ONNX Runtime's TensorRT execution provider (it builds engines from the ONNX model)."""

    fp16: bool | None = Field(default=None, description="Let TensorRT build FP16 kernels (trt_fp16_enable).")
    int8: bool | None = Field(default=None, description="Let TensorRT build INT8 kernels (trt_int8_enable).")
    max_workspace_size: int | None = Field(default=None, ge=0, description="Bytes TensorRT may use to build engines.")
    engine_cache_path: str | None = Field(
        default=None,
        max_length=1024,
        pattern=CACHE_PATH,
        description="Directory for built engines, under the pod's cache volume /var/cache/modelyard (the only "
        "writable place); default /var/cache/modelyard/tensorrt/<model>/<version>.",
    )
    timing_cache_path: str | None = Field(
        default=None,
        max_length=1024,
        pattern=CACHE_PATH,
        description="Directory for the timing cache, under /var/cache/modelyard; default: the engine's.",
    )


class RuntimeSpec(ApiModel):
    """How the server runs the model: the backend and execution providers of this version in every pod."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.engine == 'onnxruntime' || self.executionProviders == ['CPUExecutionProvider']",
                    "message": "executionProviders apply to engine onnxruntime only (engine tensorrt runs a plan "
                    "on the GPU directly)",
                },
                {
                    "rule": "!has(self.cuda) || self.executionProviders.exists(p, p == 'CUDAExecutionProvider')",
                    "message": "cuda options need CUDAExecutionProvider in executionProviders",
                },
                {
                    "rule": "!has(self.tensorrt) || "
                    "self.executionProviders.exists(p, p == 'TensorrtExecutionProvider')",
                    "message": "tensorrt options need TensorrtExecutionProvider in executionProviders (a prebuilt "
                    "plan's precision is fixed when it is built)",
                },
                {
                    "rule": "self.executionProviders.indexOf('CPUExecutionProvider') in "
                    "[-1, size(self.executionProviders) - 1]",
                    "message": "CPUExecutionProvider must come last (providers after it would never get a node)",
                },
            ]
        }
    }

    engine: Engine = Field(
        default="onnxruntime",
        description="Backend: onnxruntime (formats onnx and pmml), tensorrt (format tensorrt: a serialized TensorRT "
        "plan) or tensorflow (format savedmodel: the SavedModel's serving_default signature, in the runtime-tf image).",
    )
    execution_providers: list[ExecutionProvider] = Field(
        default_factory=lambda: list[ExecutionProvider](["CPUExecutionProvider"]),
        min_length=1,
        max_length=3,
        json_schema_extra={"x-kubernetes-list-type": "set", "default": ["CPUExecutionProvider"]},
        description="ONNX Runtime execution providers in order of preference. A provider the image lacks, or "
        "cannot start on the node, fails the pod's start (Degraded on the ModelDeployment): never a CPU fallback.",
    )
    device_id: int = Field(default=0, ge=0, le=63, description="GPU the providers use (CUDA device ordinal).")
    cuda: CudaOptions | None = Field(default=None, description="CUDA execution provider options.")
    tensorrt: TensorrtOptions | None = Field(default=None, description="TensorRT options.")


class BatchingSpec(ApiModel):
    """Server-side dynamic batching. A request that finds the model idle runs at once; requests that arrive while a
    batch runs are merged into the next one, up to maxBatchSize rows."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.preferredBatchSizes) || self.preferredBatchSizes.all(s, s <= self.maxBatchSize)",
                    "message": "every preferredBatchSizes entry must be at most maxBatchSize",
                }
            ]
        }
    }

    max_batch_size: int = Field(default=0, ge=0, le=4096, description="Largest merged batch; 0 turns batching off.")
    max_queue_delay_ms: float = Field(
        default=0.0,
        ge=0,
        le=10000,
        description="Longest a partial batch waits to reach one of preferredBatchSizes while the model is free "
        "(without preferred sizes nothing waits: a free model runs what is queued at once).",
    )
    preferred_batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=list,
        max_length=16,
        description="Batch sizes to run as soon as the queue can form them (Triton's preferred_batch_size); a "
        "smaller batch waits up to maxQueueDelayMs for one.",
    )


class WarmupSamples(ApiModel):
    """A small, digest-pinned JSON file of real inputs (Open Inference Protocol request bodies)."""

    uri: str = Field(
        max_length=2048,
        pattern=URI_PATTERN,
        description="Where the samples file is (same schemes and credentials as the artifact).",
    )
    digest: str = Field(max_length=71, pattern=DIGEST, description="sha256:<64 hex> of the samples file.")


class WarmupSpec(ApiModel):
    """Requests the server sends itself before reporting ready (readiness waits for them)."""

    requests: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Number of warm-up inferences (0: none, or one per sample when samples are set). Without "
        "samples they use zero-filled inputs, with variable dimensions of 1.",
    )
    samples: WarmupSamples | None = Field(
        default=None,
        description="Real inputs for the warm-up, cycled through; a sample the model rejects fails the load.",
    )


class ModelVersionSpec(ApiModel):
    """Immutable description of one artifact; a new artifact is a new ModelVersion."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "spec is immutable: create a new ModelVersion instead"},
                {
                    "rule": "self.format != 'savedmodel' || self.runtime.engine == 'tensorflow'",
                    "message": "format savedmodel needs runtime.engine tensorflow",
                },
                {
                    "rule": "self.format != 'tensorrt' || self.runtime.engine == 'tensorrt'",
                    "message": "format tensorrt needs runtime.engine tensorrt",
                },
                {
                    "rule": "self.format != 'pmml' || self.runtime.engine == 'onnxruntime'",
                    "message": "format pmml needs runtime.engine onnxruntime (the loader compiles it to ONNX)",
                },
                {
                    "rule": "has(self.artifact) != has(self.derivedFrom)",
                    "message": "set artifact (where the model is) or derivedFrom (build it from another version), "
                    "exactly one",
                },
                {
                    "rule": "!has(self.derivedFrom) || self.format == 'onnx'",
                    "message": "a derived version is an ONNX model: format onnx",
                },
                {
                    "rule": "!has(self.derivedFrom) || self.derivedFrom.version != self.version",
                    "message": "derivedFrom.version names another version of the model, not this one",
                },
                {
                    "rule": "self.format != 'onnx' || self.runtime.engine == 'onnxruntime'",
                    "message": "format onnx needs runtime.engine onnxruntime (for TensorRT through ONNX Runtime, "
                    "list TensorrtExecutionProvider in runtime.executionProviders)",
                },
            ]
        }
    }

    model: ModelName
    version: VersionName
    format: ModelFormat = Field(
        default="onnx",
        description="Artifact format, checked by validation: onnx (an .onnx model), tensorrt (a .plan/.engine "
        "TensorRT plan, validated on a GPU node) or pmml (a PMML 4.x document, compiled to ONNX by the loader; the "
        "compiled model's digest is recorded in status.compiled and checked by every pod) or savedmodel (a TensorFlow "
        "SavedModel folder, model.savedmodel/ or saved_model.pb at the top, served by engine tensorflow in the "
        "runtime-tf image).",
    )
    artifact: ArtifactSpec | None = Field(default=None, description="Where the model is (or derivedFrom).")
    derived_from: DerivedFrom | None = Field(
        default=None,
        description="Build this version from another version of the same model instead (transforms, a gate): the "
        "operator's build Job pushes the result to the installation's artifact store (docs/optimization.md).",
    )
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, json_schema_extra=schema_default(RuntimeSpec))
    batching: BatchingSpec = Field(default_factory=BatchingSpec, json_schema_extra=schema_default(BatchingSpec))
    warmup: WarmupSpec = Field(default_factory=WarmupSpec, json_schema_extra=schema_default(WarmupSpec))


class TensorSpec(ApiModel):
    """One input or output tensor as the validation found it (-1 marks a variable dimension)."""

    name: str = Field(max_length=256, description="Tensor name.")
    datatype: str = Field(max_length=16, description="Open Inference Protocol datatype, e.g. FP32.")
    shape: list[int] = Field(max_length=16, description="Dimensions; -1 is variable.")


class ModelSignatureStatus(ApiModel):
    """The model's inputs and outputs."""

    inputs: list[TensorSpec] = Field(default_factory=list, max_length=256, description="Input tensors.")
    outputs: list[TensorSpec] = Field(default_factory=list, max_length=256, description="Output tensors.")


class ArtifactStatus(ApiModel):
    """What the artifact turned out to be."""

    digest: str | None = Field(default=None, max_length=71, description="sha256 digest of the bytes fetched.")
    size_bytes: int | None = Field(default=None, ge=0, description="Size of the artifact in bytes.")
    short_digest: str | None = Field(
        default=None, max_length=19, description="The digest's first 12 hex digits (the DIGEST column)."
    )
    size: str | None = Field(
        default=None, max_length=16, description="The size for people, e.g. 12.5MiB (the SIZE column)."
    )


class CompiledStatus(ApiModel):
    """The ONNX model the loader compiled a PMML document to (deterministic: every pod compiles the same bytes)."""

    source: str | None = Field(default=None, alias="from", max_length=1024, description="The compiled file.")
    digest: str | None = Field(
        default=None, max_length=71, description="sha256 digest of the compiled model; pods publish only this model."
    )
    size_bytes: int | None = Field(default=None, ge=0, description="Size of the compiled model in bytes.")
    seconds: float | None = Field(default=None, ge=0, description="Seconds the compilation took.")


class ValidationJobRef(ApiModel):
    """The operator's validation Job whose pod produced the recorded result."""

    name: str = Field(max_length=253, description="Name of the Job.")
    uid: str = Field(max_length=64, description="UID of the Job.")


class ModelVersionStatus(ApiModel):
    """What the operator found out about the artifact."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status was computed from."
    )
    phase: MVPhase | None = Field(default=None, description="Pending, Validating, Ready or Failed.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="ArtifactVerified, Validated, Ready, and kstatus's Reconciling (validating) and Stalled "
        "(failed: a new ModelVersion is needed).",
    )
    artifact: ArtifactStatus | None = None
    signature: ModelSignatureStatus | None = None
    load_seconds: float | None = Field(default=None, ge=0, description="Seconds the validation took to load the model.")
    compiled: CompiledStatus | None = Field(
        default=None, description="format pmml: the ONNX model the validation compiled the document to."
    )
    validation_job: ValidationJobRef | None = Field(
        default=None, description="The Job whose pod produced this result (only the operator's own Job counts)."
    )
    build: BuildStatus | None = Field(default=None, description="derivedFrom: what the build Job made.")


class ModelVersion(ApiModel):
    """A ModelVersion object as read from the API server."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    metadata: ObjectMeta
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)

    @property
    def built(self) -> bool:
        """Whether the artifact is known: given in the spec, or pushed by the build of a derived version."""
        return self.spec.artifact is not None or bool(self.status.build and self.status.build.uri)

    @property
    def artifact(self) -> ArtifactSpec:
        """The artifact the loader fetches: ``spec.artifact``, or the one the build of a derived version pushed to the
        artifact store (pinned by the digest it recorded). ValueError before a derived version is built."""
        if self.spec.artifact is not None:
            return self.spec.artifact
        build = self.status.build
        if build is None or not build.uri:
            raise ValueError(f"ModelVersion {self.metadata.name} is derived and not built yet")
        return ArtifactSpec(uri=build.uri, digest=build.digest, credentials_secret=build.credentials_secret)
