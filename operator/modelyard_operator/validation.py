"""ModelVersion validation (pure): the Job that runs ``modelyard-loader validate`` and what its result means.

The validator writes one JSON document to its termination message (``/dev/termination-log``): the kubelet puts
it into the pod's status, where the operator reads it. So model pods and validation pods need no API access
at all (``automountServiceAccountToken: false``), and a crash of the operator loses nothing: the result stays
on the pod until the Job is cleaned up, and the status is rewritten from it on the next event.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from modelyard_operator.api.common import ConditionStatus
from modelyard_operator.api.modelversion import SERVABLE_FORMATS, ModelVersion
from modelyard_operator.config import OperatorConfig, runtime_image_for
from modelyard_operator.names import LABEL_MANAGED_BY, LABEL_MODEL, LABEL_VERSION, MANAGED_BY, versioned_name
from modelyard_operator.podoverrides import image_pull_secrets
from modelyard_operator.render import (
    artifact_access,
    container_security,
    loader_args,
    loader_env,
    owner_reference,
    pod_security_context,
)
from modelyard_operator.runtime_config import GPU_RESOURCE
from modelyard_operator.status import CondValue, set_abnormal_conditions, set_condition

Obj = dict[str, Any]

LABEL_VALIDATES = "modelyard.dev/validates"
CONTAINER = "validate"
WORK_DIR = "/work"
TERMINATION_LOG = "/dev/termination-log"
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
NO_RESULT_GRACE_SECONDS = 30.0  # a finished validator whose message never arrives fails after this

# exit codes of modelyard-loader (docs/loader.md) → condition reasons, for when no JSON result arrived
EXIT_REASONS = {
    2: "InvalidArguments",
    3: "FetchFailed",
    4: "DigestMismatch",
    5: "SignatureInvalid",
    6: "UnsafeContent",
    7: "ModelLoadFailed",
}
# reasons that are about the artifact's integrity (ArtifactVerified=False) rather than the model
INTEGRITY_REASONS = {"DigestMismatch", "SignatureInvalid", "UnsafeContent", "AddressBlocked"}


def job_name(mv_name: str) -> str:
    return versioned_name(mv_name, "validate")


def render_validation_job(mv: ModelVersion, config: OperatorConfig) -> Obj:
    """A one-shot Job, owned by the ModelVersion, that fetches, verifies, inspects and loads the artifact once."""
    meta, spec = mv.metadata, mv.spec
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_MODEL: spec.model,
        LABEL_VERSION: spec.version,
        LABEL_VALIDATES: meta.name,
    }
    mounts: list[Obj] = [
        {"name": "work", "mountPath": WORK_DIR},
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108  (an emptyDir in the pod)
    ]
    volumes: list[Obj] = [{"name": "work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    access_args, access_volumes, access_mounts = artifact_access(mv, config)
    volumes += access_volumes
    mounts += access_mounts
    args = [*loader_args("validate", mv, f"{WORK_DIR}/model", access_args), "--format", spec.format]  # no digest yet
    args += ["--termination-log", TERMINATION_LOG]
    resources: Obj = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": config.validation_memory}}
    if spec.format == "tensorrt":  # a plan only deserializes on a GPU (of the kind it was built for)
        resources["limits"][GPU_RESOURCE] = 1
    container: Obj = {
        "name": CONTAINER,
        "image": runtime_image_for(config, [spec.format]),
        "imagePullPolicy": config.image_pull_policy,
        "command": ["modelyard-loader"],
        "args": args,
        "volumeMounts": mounts,
        **({"env": env} if (env := loader_env(config)) else {}),
        "securityContext": container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "resources": resources,
    }
    return version_job(mv, job_name(meta.name), labels, config, {"containers": [container], "volumes": volumes})


def version_job(mv: ModelVersion, name: str, labels: dict[str, str], config: OperatorConfig, pod: Obj) -> Obj:
    """A one-shot Job owned by ``mv`` (validation, build): never retried (a failure is an answer, not a flake),
    bounded by --validation-timeout, its pod restricted (no service account token, non-root) and placed where
    validation pods go; ``pod`` adds the containers and volumes."""
    meta = mv.metadata
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference("ModelVersion", meta.name, meta.uid or "")],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": int(config.validation_timeout_seconds),
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    **({"imagePullSecrets": secrets} if (secrets := image_pull_secrets(None, config)) else {}),
                    **pod,
                    **placement(config),
                },
            },
        },
    }


def unsupported_format(mv: ModelVersion) -> Outcome | None:
    """A format the project cannot serve yet (the CRD refuses it; this covers objects stored before that rule)."""
    if mv.spec.format in SERVABLE_FORMATS:
        return None
    return Outcome(
        False,
        "UnsupportedFormat",
        f"format {mv.spec.format} cannot be served yet (supported: {', '.join(SERVABLE_FORMATS)})",
    )


def unschedulable(pods: list[Obj]) -> str | None:
    """The scheduler's message when the validation pod fits no node (e.g. no GPU node for a TensorRT plan)."""
    for pod in pods:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                return str(condition.get("message") or "no node fits the validation pod")
    return None


def waiting_for_node_status(status: Obj, mv: ModelVersion, scheduler_message: str, generation: int, now: str) -> Obj:
    """A validation that cannot start because no node fits: Validated=Unknown with why (the phase stays
    Validating; the Job starts by itself once a node appears)."""
    if mv.spec.format == "tensorrt":
        reason = "NoGPUNodeForValidation"
        message = (
            f"a TensorRT plan is validated on a GPU node ({GPU_RESOURCE}); none fits the validation pod "
            f"(operator's validation placement): {scheduler_message}"
        )
    else:
        reason, message = "ValidationUnschedulable", f"no node fits the validation pod: {scheduler_message}"
    conditions = set_condition(
        list(status.get("conditions") or []), "Validated", "Unknown", reason, message[:1024], now=now,
        generation=generation,
    )  # fmt: skip
    return {"conditions": conditions}


def placement(config: OperatorConfig) -> Obj:
    placement = config.validation_placement
    out: Obj = {}
    if placement.get("nodeSelector"):
        out["nodeSelector"] = dict(placement["nodeSelector"])
    if placement.get("tolerations"):
        out["tolerations"] = [dict(t) for t in placement["tolerations"]]
    return out


@dataclass(frozen=True)
class Outcome:
    """What one finished validation says."""

    ok: bool
    reason: str
    message: str
    result: Obj = field(default_factory=dict)  # the validator's JSON document, when there was one


def _terminated(pod: Obj) -> Obj | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            terminated = (status.get("state") or {}).get("terminated")
            return terminated if isinstance(terminated, dict) else None
    return None


def outcome_from_pod(pod: Obj, now_epoch: float, finished_epoch: float | None) -> Outcome | None:
    """The outcome once the validator container has terminated; None while it runs (or its message is due).

    ``finished_epoch`` is the container's finishedAt as seconds (the caller parses it), so this stays clock-free.
    """
    terminated = _terminated(pod)
    if terminated is None:
        if (pod.get("status") or {}).get("phase") == "Failed":
            message = (pod.get("status") or {}).get("message") or "the validation pod failed before it ran"
            return Outcome(False, "ValidationPodFailed", message)
        return None
    code = int(terminated.get("exitCode", 0))
    text = (terminated.get("message") or "").strip()
    result: Obj = {}
    if text:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            result = parsed
    if code == 0 and result.get("ok") is True:
        return Outcome(True, "Validated", "artifact fetched, verified and loaded", result)
    if code == 0 and not result:
        if finished_epoch is not None and now_epoch - finished_epoch < NO_RESULT_GRACE_SECONDS:
            return None  # the message may still be on its way
        return Outcome(False, "NoResult", "the validator exited without writing its result")
    reason = str(result.get("reason") or EXIT_REASONS.get(code) or terminated.get("reason") or "ValidationFailed")
    message = str(result.get("message") or text or f"the validator exited with code {code}")
    return Outcome(False, reason, message[:1024], result)


def _controlled_by(obj: Obj, kind: str, uid: str | None) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return bool(uid) and any(r.get("controller") and r.get("kind") == kind and r.get("uid") == uid for r in refs)


def _containers(pod_spec: Obj) -> list[tuple[Any, ...]]:
    """What a container runs: image, command and arguments (what a look-alike would have to copy exactly)."""
    return [(c.get("name"), c.get("image"), c.get("command"), c.get("args")) for c in pod_spec.get("containers") or []]


def job_finished(job: Obj) -> bool:
    status = job.get("status") or {}
    done = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
    return bool(status.get("succeeded") or status.get("failed") or done & {"Complete", "Failed", "SuccessCriteriaMet"})


def outcome_from_failed_job(job: Obj) -> Outcome | None:
    """A Job that failed with no pod left to read (its deadline passed and its pod was killed, say)."""
    failed = next(
        (
            c
            for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") == "Failed" and c.get("status") == "True"
        ),
        None,
    )
    if failed is None:
        return None
    if failed.get("reason") == "DeadlineExceeded":
        return Outcome(False, "ValidationTimedOut", "the validation Job ran past --validation-timeout")
    return Outcome(False, "ValidationJobFailed", str(failed.get("message") or failed.get("reason") or "the Job failed"))


def trusted_pods(mv: Obj, job: Obj | None, pods: list[Obj], name: str | None = None) -> list[Obj]:
    """The pods whose result may count for ``mv``: those its own validation Job created.

    The chain is checked by UID: the Job has the name the operator gives it and is controlled by this very
    ModelVersion, and each pod is controlled by that Job and runs exactly the Job's containers. A pod that only
    carries the right labels (anyone who may create pods in the namespace can make one, with any termination
    message) never counts, nor does a Job left over from a ModelVersion of the same name that was deleted.
    """
    meta = mv.get("metadata") or {}
    expected = name or job_name(meta.get("name", ""))  # the validation Job's, unless the caller names its own
    if job is None or (job.get("metadata") or {}).get("name") != expected:
        return []
    if not _controlled_by(job, "ModelVersion", meta.get("uid")):
        return []
    template = _containers(((job.get("spec") or {}).get("template") or {}).get("spec") or {})
    job_uid = job["metadata"].get("uid")
    return [p for p in pods if _controlled_by(p, "Job", job_uid) and _containers(p.get("spec") or {}) == template]


def _tensors(items: Any) -> list[Obj]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            shape = [int(d) if isinstance(d, int) else -1 for d in item.get("shape") or []]
            out.append({"name": item["name"], "datatype": str(item.get("datatype", "")), "shape": shape})
    return out


def validating_status(status: Obj, generation: int, now: str) -> Obj:
    conditions = list(status.get("conditions") or [])
    for type_ in ("ArtifactVerified", "Validated", "Ready"):
        conditions = set_condition(
            conditions, type_, "Unknown", "Validating", "validation Job running", now=now, generation=generation
        )
    conditions = _abnormal(conditions, ("True", "Validating", "validation Job running"), None, now, generation)
    return {"observedGeneration": generation, "phase": "Validating", "conditions": conditions}


def _abnormal(
    conditions: list[Obj], reconciling: CondValue | None, stalled: CondValue | None, now: str, generation: int
) -> list[Obj]:
    """kstatus's Reconciling (validating) and Stalled (failed: only a new spec helps), each False unless given."""
    done: CondValue = ("False", "Decided", "validation has its answer")
    return set_abnormal_conditions(
        conditions, reconciling=reconciling or done, stalled=stalled or done, now=now, generation=generation
    )


def skipped_status(status: Obj, generation: int, now: str) -> Obj:
    """``--model-validation off``: the version may serve at once; the loader in each pod still verifies it."""
    conditions = list(status.get("conditions") or [])
    values: list[tuple[str, ConditionStatus, str, str]] = [
        ("ArtifactVerified", "Unknown", "VerifiedByLoader", "the loader verifies the artifact in every pod"),
        ("Validated", "Unknown", "ValidationDisabled", "the operator runs with --model-validation off"),
        ("Ready", "True", "ValidationDisabled", "ready to serve without a validation Job"),
    ]
    for type_, value, reason, message in values:
        conditions = set_condition(conditions, type_, value, reason, message, now=now, generation=generation)
    conditions = _abnormal(conditions, None, None, now, generation)
    return {"observedGeneration": generation, "phase": "Ready", "conditions": conditions}


def backfilled_status(status: Obj, generation: int, now: str) -> Obj | None:
    """Reconciling/Stalled for a version decided by an operator that did not write them yet (None: nothing to add),
    so kstatus reads an old Failed version as Failed rather than Current."""
    conditions = list(status.get("conditions") or [])
    if not decided(status, generation) or any(c.get("type") == "Stalled" for c in conditions):
        return None
    ready: Obj = next((c for c in conditions if c.get("type") == "Ready"), {})
    failed: CondValue | None = None
    if status.get("phase") == "Failed":
        failed = ("True", str(ready.get("reason") or "ValidationFailed"), str(ready.get("message") or ""))
    return {"conditions": _abnormal(conditions, None, failed, now, generation)}


def decided(status: Obj, generation: int) -> bool:
    """Whether this generation's validation already has its answer (results are written once)."""
    return status.get("phase") in ("Ready", "Failed") and status.get("observedGeneration") == generation


def finished_at(pod: Obj) -> str | None:
    terminated = _terminated(pod)
    return terminated.get("finishedAt") if terminated else None


def outcome_status(status: Obj, outcome: Outcome, generation: int, now: str, job: Obj | None = None) -> Obj:
    """The ModelVersion status an outcome leads to: Ready with what was found, or Failed with the reason; ``job``
    is the validation Job whose pod reported it."""
    conditions = list(status.get("conditions") or [])
    result = outcome.result
    out: Obj = {"observedGeneration": generation, "phase": "Ready" if outcome.ok else "Failed"}
    if job is not None:
        out["validationJob"] = {"name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}

    def cond(type_: str, ok: bool | None, reason: str, message: str) -> None:
        nonlocal conditions
        value: ConditionStatus = "Unknown" if ok is None else ("True" if ok else "False")
        conditions = set_condition(conditions, type_, value, reason, message, now=now, generation=generation)

    if outcome.ok:
        cond("ArtifactVerified", True, "Verified", _verified_message(result))
        cond("Validated", True, "Loaded", "the model loaded and its inputs and outputs were read")
        cond("Ready", True, "Validated", "ready to serve")
    else:
        integrity = outcome.reason in INTEGRITY_REASONS
        # a model that fails to load was fetched and verified first; fetch errors say nothing about the bytes
        verified = False if integrity else (True if outcome.reason == "ModelLoadFailed" else None)
        cond("ArtifactVerified", verified, outcome.reason, outcome.message)
        cond("Validated", False, outcome.reason, outcome.message)
        cond("Ready", False, outcome.reason, outcome.message)
    stalled: CondValue | None = None if outcome.ok else ("True", outcome.reason, outcome.message)
    conditions = _abnormal(conditions, None, stalled, now, generation)
    artifact = result.get("artifact")
    if isinstance(artifact, dict):
        found: Obj = {}
        if artifact.get("digest"):
            found["digest"] = artifact["digest"]
            found["shortDigest"] = short_digest(artifact["digest"])
        if isinstance(artifact.get("sizeBytes"), int):  # 0 is a size (an empty file), not a missing one
            found["sizeBytes"] = artifact["sizeBytes"]
            found["size"] = human_size(artifact["sizeBytes"])
        if found:
            out["artifact"] = found
    if result.get("inputs") is not None or result.get("outputs") is not None:
        out["signature"] = {"inputs": _tensors(result.get("inputs")), "outputs": _tensors(result.get("outputs"))}
    if isinstance(result.get("loadSeconds"), int | float):
        out["loadSeconds"] = round(float(result["loadSeconds"]), 3)
    if outcome.ok and (compiled := _compiled(result.get("compiled"))):
        out["compiled"] = compiled
    out["conditions"] = conditions
    return out


def _compiled(found: Any) -> Obj | None:
    """The validator's ``compiled`` object as status (format pmml), None when absent or not a digest."""
    if not isinstance(found, dict) or not isinstance(found.get("digest"), str) or not DIGEST.fullmatch(found["digest"]):
        return None
    out: Obj = {"digest": found["digest"]}
    if isinstance(found.get("from"), str):
        out["from"] = found["from"][:1024]
    if isinstance(found.get("sizeBytes"), int) and found["sizeBytes"] >= 0:
        out["sizeBytes"] = found["sizeBytes"]
    if isinstance(found.get("seconds"), int | float) and found["seconds"] >= 0:
        out["seconds"] = round(float(found["seconds"]), 3)
    return out


def short_digest(digest: str) -> str:
    """``sha256:<64 hex>`` as ``sha256:<first 12>``, the length ``docker images`` and ``crictl`` show."""
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}:{hex_[:12]}" if hex_ else digest[:19]


def human_size(n: int) -> str:
    """Bytes in binary units with one decimal (``kubectl``-style suffixes): 999B, 1.0KiB, 12.5MiB, 3.2GiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _verified_message(result: Obj) -> str:
    signature = result.get("signature")
    signed = isinstance(signature, dict) and signature.get("verified") is True
    digest = (result.get("artifact") or {}).get("digest") if isinstance(result.get("artifact"), dict) else None
    parts = [f"digest {digest} matches" if digest else "digest checked"]
    if signed:
        parts.append("signature verified")
    return "; ".join(parts)


CREDENTIALS_OPT_IN = "modelyard.dev/artifact-credentials"  # label or annotation a credentialsSecret must carry


def credentials_refusal(mv: ModelVersion, secret: Obj | None) -> Outcome | None:
    """Why ``mv`` may not use its credentialsSecret (None: it may, or it names none).

    A Secret is mounted into a loader only when its owner opted in with the label (or annotation)
    ``modelyard.dev/artifact-credentials: "true"``: otherwise anyone who may create a ModelVersion could have the
    operator mount any Secret of the namespace into a pod that sends it to a URI of their choosing.
    ``secret`` is the Secret's metadata (None: it does not exist; the caller waits for it instead).
    """
    return secret_refusal(mv.artifact.credentials_secret, secret)


def secret_refusal(name: str | None, secret: Obj | None) -> Outcome | None:
    """Why the Secret ``name`` (metadata ``secret``) may not be mounted into a loader or a build (None: it may)."""
    if not name or secret is None:
        return None
    meta = secret.get("metadata") or {}
    marks = {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}
    if str(marks.get(CREDENTIALS_OPT_IN, "")).lower() == "true":
        return None
    return Outcome(
        False,
        "CredentialsSecretNotAllowed",
        f"Secret {name} does not carry the label {CREDENTIALS_OPT_IN}=true (or that annotation), which marks a "
        "Secret as artifact credentials; no pod mounts it (docs/security.md)",
    )
