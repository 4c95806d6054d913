"""Derived versions (``spec.derivedFrom``): the build Job and what its pod reports (pure: dicts in, dicts out).

The build Job fetches and verifies the parent's artifact (and the gate's samples or the calibration data) with the
loader, in init containers, then runs ``modelyard-build`` on it: the transforms, the gate, a latency measurement of
parent and derived model in the same pod, and a push of a model that passed to the installation's artifact store
(``--artifact-store``). Its termination message sums the outcome up; the operator records it in
``status.build`` and then validates the pushed artifact like any other (pods fetch it by the digest recorded).
Only the pod of the operator's own build Job counts (:func:`validation.trusted_pods`).
"""

from __future__ import annotations

import json
from typing import Any

from modelyard_operator.api.derived import PinnedFile
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig, runtime_image_for
from modelyard_operator.names import (
    LABEL_BUILDS,
    LABEL_MANAGED_BY,
    LABEL_MODEL,
    LABEL_VERSION,
    MANAGED_BY,
    versioned_name,
)
from modelyard_operator.render import (
    artifact_access,
    container_security,
    loader_args,
    loader_env,
)
from modelyard_operator.status import CondValue, set_abnormal_conditions, set_condition
from modelyard_operator.validation import Outcome, outcome_status, version_job

Obj = dict[str, Any]
CONTAINER = "build"
WORK_DIR = "/work"
PARENT_DIR = f"{WORK_DIR}/parent"
INPUTS_DIR = f"{WORK_DIR}/inputs"
OUT = f"{WORK_DIR}/out/model.onnx"
STORE_CREDENTIALS_DIR = "/var/run/secrets/modelyard/store-credentials"
TERMINATION_LOG = "/dev/termination-log"
EXIT_REASONS = {1: "GateFailed", 2: "InvalidSpec", 3: "BuildFailed", 4: "PushFailed"}


def job_name(mv_name: str) -> str:
    return versioned_name(mv_name, "build")


def push_target(mv: ModelVersion, store: str) -> str:
    """Where ``mv`` is pushed: ``PREFIX/<namespace>/<model>:<version>`` under the store."""
    namespace = mv.metadata.namespace or "default"
    return f"{store.rstrip('/')}/{namespace}/{mv.spec.model}:{mv.spec.version}"


def _pinned_files(mv: ModelVersion) -> list[PinnedFile]:
    """The files the build reads besides the parent, in the order of their init containers: each quantize
    transform's calibration, then the gate's samples."""
    derived = mv.spec.derived_from
    assert derived is not None
    found = [t.quantize.calibration for t in derived.transforms if t.quantize and t.quantize.calibration]
    return found + ([derived.gate.samples] if derived.gate.samples else [])


def build_spec(mv: ModelVersion) -> Obj:
    """``{transforms, gate}`` for ``modelyard-build --spec-json``, each pinned file at the folder its init container
    fetched it to (same order as :func:`_pinned_files`; the tool checks the digest again)."""
    derived = mv.spec.derived_from
    assert derived is not None
    document: Obj = {"transforms": [t.to_wire() for t in derived.transforms], "gate": derived.gate.to_wire()}
    slots = [t["quantize"]["calibration"] for t in document["transforms"] if "calibration" in t.get("quantize", {})]
    slots += [document["gate"]["samples"]] if "samples" in document["gate"] else []
    for i, slot in enumerate(slots):
        slot["uri"] = f"{INPUTS_DIR}/{i}"
    return document


def render_build_job(mv: ModelVersion, parent: ModelVersion, config: OperatorConfig) -> Obj:
    """A one-shot Job, owned by the derived ModelVersion, that builds, gates and pushes it."""
    assert config.artifact_store is not None
    assert mv.spec.derived_from is not None
    meta = mv.metadata
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_MODEL: mv.spec.model, LABEL_VERSION: mv.spec.version,
              LABEL_BUILDS: meta.name}  # fmt: skip
    work: list[Obj] = [{"name": "work", "mountPath": WORK_DIR}, {"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108
    volumes: list[Obj] = [{"name": "work", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    env = loader_env(config)

    def fetcher(name: str, source: ModelVersion, dest: str, suffix: str) -> Obj:
        access_args, access_volumes, access_mounts = artifact_access(source, config, suffix=suffix)
        volumes.extend(v for v in access_volumes if v["name"] not in {x["name"] for x in volumes})
        return {
            "name": name,
            "image": config.runtime_image,
            "imagePullPolicy": config.image_pull_policy,
            "command": ["modelyard-loader"],
            "args": [
                *loader_args("fetch", source, dest, access_args),
                "--no-progress",
                "--termination-log",
                TERMINATION_LOG,
            ],
            "volumeMounts": work + access_mounts,
            **({"env": env} if env else {}),
            "securityContext": container_security(),
            "terminationMessagePath": TERMINATION_LOG,
            "terminationMessagePolicy": "File",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
        }

    init = [fetcher("fetch-parent", parent, PARENT_DIR, "")]
    for i, pinned in enumerate(_pinned_files(mv)):
        unsigned = parent.artifact.model_copy(update={"uri": pinned.uri, "digest": pinned.digest, "signature": None})
        source = parent.model_copy(update={"spec": parent.spec.model_copy(update={"artifact": unsigned})})
        init.append(fetcher(f"fetch-input-{i}", source, f"{INPUTS_DIR}/{i}", f"-input-{i}"))
    args = ["--parent", PARENT_DIR, "--format", parent.spec.format, "--out", OUT,
            "--spec-json", json.dumps(build_spec(mv), separators=(",", ":"), sort_keys=True),
            "--push", push_target(mv, config.artifact_store), "--termination-log", TERMINATION_LOG]  # fmt: skip
    mounts = list(work)
    if config.artifact_store_plain_http:
        args.append("--oci-plain-http")
    if config.loader_allow_hosts:
        args += ["--allow-hosts", ",".join(config.loader_allow_hosts)]
    if config.artifact_store_secret:
        args += ["--credentials-dir", STORE_CREDENTIALS_DIR]
        volumes.append({"name": "store-credentials", "secret": {"secretName": config.artifact_store_secret}})
        mounts.append({"name": "store-credentials", "mountPath": STORE_CREDENTIALS_DIR, "readOnly": True})
    container: Obj = {
        "name": CONTAINER,
        "image": runtime_image_for(config, [parent.spec.format]),  # a SavedModel's convert needs TensorFlow
        "imagePullPolicy": config.image_pull_policy,
        "command": ["modelyard-build"],
        "args": args,
        "volumeMounts": mounts,
        **({"env": env} if env else {}),
        "securityContext": container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": config.validation_memory}},
    }
    pod = {"initContainers": init, "containers": [container], "volumes": volumes}
    return version_job(mv, job_name(meta.name), labels, config, pod)


def _terminated(pod: Obj, name: str, key: str) -> Obj | None:
    for status in (pod.get("status") or {}).get(key) or []:
        if status.get("name") == name:
            terminated = (status.get("state") or {}).get("terminated")
            return terminated if isinstance(terminated, dict) else None
    return None


def outcome_from_pod(pod: Obj) -> Outcome | None:
    """The build's outcome once its pod ended (None while it runs): the builder's summary, or why a fetch failed."""
    for init in ((pod.get("spec") or {}).get("initContainers")) or []:
        stopped = _terminated(pod, init.get("name"), "initContainerStatuses")
        if stopped is not None and int(stopped.get("exitCode", 0)) != 0:
            text = (stopped.get("message") or "").strip()
            try:
                found = json.loads(text) if text else {}
            except ValueError:
                found = {}
            found = found if isinstance(found, dict) else {}
            what = "the parent" if init.get("name") == "fetch-parent" else "an input file"
            message = str(found.get("message") or text or f"exit code {stopped.get('exitCode')}")
            return Outcome(False, str(found.get("reason") or "ParentFetchFailed"), f"fetching {what}: {message}"[:1024])
    stopped = _terminated(pod, CONTAINER, "containerStatuses")
    if stopped is None:
        if (pod.get("status") or {}).get("phase") == "Failed":
            return Outcome(False, "BuildPodFailed", (pod.get("status") or {}).get("message") or "the build pod failed")
        return None
    code = int(stopped.get("exitCode", 0))
    try:
        summary = json.loads((stopped.get("message") or "").strip() or "{}")
    except ValueError:
        summary = {}
    summary = summary if isinstance(summary, dict) else {}
    if code == 0 and summary.get("ok") is True:
        if (summary.get("pushed") or {}).get("uri"):
            return Outcome(True, "Built", "built, gated and pushed", summary)
        return Outcome(False, "NotPushed", "the build reported no pushed artifact", summary)
    reason = str(summary.get("reason") or EXIT_REASONS.get(code) or stopped.get("reason") or "BuildFailed")
    message = str(summary.get("message") or f"modelyard-build exited with code {code}")
    return Outcome(False, reason, message[:1024], summary)


def build_status(parent: ModelVersion, outcome: Outcome, job: Obj | None, config: OperatorConfig) -> Obj:
    """``status.build`` from a build's summary (the numbers also when the gate failed)."""
    summary = outcome.result
    gate = summary.get("gate") or {}
    latency = summary.get("latency") or {}
    pushed = summary.get("pushed") or {}
    out: Obj = {
        "job": (job or {}).get("metadata", {}).get("name"),
        "jobUid": (job or {}).get("metadata", {}).get("uid"),
        "parent": parent.metadata.name,
        # a SavedModel parent is a folder the loader extracted: its archive's pinned digest stands for it
        "parentDigest": (summary.get("parent") or {}).get("digest")
        or (parent.artifact.digest if parent.built else None),
        "uri": pushed.get("uri"),
        "digest": pushed.get("digest"),
        "credentialsSecret": config.artifact_store_secret if pushed else None,
        "sizeBytesBefore": (summary.get("parent") or {}).get("sizeBytes"),
        "sizeBytesAfter": (summary.get("derived") or {}).get("sizeBytes"),
        "derivedModelDigest": (summary.get("derived") or {}).get("digest"),
        "latencyMsBefore": latency.get("parentMs"),
        "latencyMsAfter": latency.get("derivedMs"),
        "latencyBatch": latency.get("batch"),
        "achievedSparsity": summary.get("achievedSparsity"),
        "gate": {k: gate.get(k) for k in ("passed", "inputs", "rows", "maxAbsDiff", "rmse", "top1Agreement")}
        | {"failures": [str(f)[:200] for f in gate.get("failures") or []][:8]}
        if gate
        else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def building_status(status: Obj, generation: int, now: str, reason: str, message: str) -> Obj:
    """Phase Validating while the parent is awaited or the build runs: kstatus's Reconciling says which."""
    conditions = list(status.get("conditions") or [])
    for type_ in ("Built", "ArtifactVerified", "Validated", "Ready"):
        conditions = set_condition(conditions, type_, "Unknown", reason, message, now=now, generation=generation)
    done: CondValue = ("False", "Building", "the build has no answer yet")
    conditions = set_abnormal_conditions(
        conditions, reconciling=("True", reason, message), stalled=done, now=now, generation=generation
    )
    return {"observedGeneration": generation, "phase": "Validating", "conditions": conditions}


def built_status(status: Obj, record: Obj, generation: int, now: str) -> Obj:
    """The build passed and pushed: ``status.build`` recorded, and the pushed artifact's validation running."""
    message = f"built, gated and pushed to {record.get('uri')}; validating it"
    out = building_status(status, generation, now, "Validating", message)
    out["conditions"] = set_condition(out["conditions"], "Built", "True", "Built", message, now=now,
                                      generation=generation)  # fmt: skip
    out["build"] = record
    return out


def build_failed_status(status: Obj, outcome: Outcome, record: Obj, generation: int, now: str) -> Obj:
    """Failed (Stalled): the gate did not hold, or the build, a fetch or the push failed; the numbers stay."""
    out = outcome_status(status, outcome, generation, now)
    out["conditions"] = set_condition(out["conditions"], "Built", "False", outcome.reason, outcome.message, now=now,
                                      generation=generation)  # fmt: skip
    out["build"] = record
    return out
