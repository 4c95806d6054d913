"""The inPod router in dynamic loading: a canary that needs nothing the pods lack joins them through the sidecar's
versions list (no template change, so no pod is replaced); any other canary gets a loader of its own (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelyard_operator.api.modeldeployment import ModelDeployment
from modelyard_operator.api.modelversion import ModelVersion
from modelyard_operator.config import OperatorConfig
from modelyard_operator.inpod import held_by_list, render_in_pod_deployment, render_version_weights, versions_entry

from .samples import DIGEST, model_deployment, model_version

CONFIG = OperatorConfig(runtime_image="registry.local/modelyard/runtime:test")
KEY = {"name": "signing", "key": "cosign.pub"}


def dynamic(**spec: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(model_deployment(loading={"mode": "dynamic"}, **spec))


def version(number: str, **spec: Any) -> ModelVersion:
    return ModelVersion.model_validate(model_version(f"fraud-{number}", version=number, **spec))


def artifact(number: str, **fields: Any) -> dict[str, Any]:
    return {"uri": f"s3://models/fraud/{number}/model.onnx", "digest": DIGEST, **fields}


def signed(number: str) -> dict[str, Any]:
    return artifact(number, signature={"uri": f"s3://models/fraud/{number}/model.sig", "publicKeySecret": KEY})


def template(md: ModelDeployment, stable: ModelVersion, canary: ModelVersion | None) -> dict[str, Any]:
    return render_in_pod_deployment(md, stable, canary, CONFIG, replicas=2)["spec"]["template"]


def test_a_listed_canary_leaves_the_pod_template_as_it_was() -> None:
    md, stable, canary = (
        dynamic(),
        version("42"),
        version("43", runtime={"executionProviders": ["CPUExecutionProvider"]}),
    )
    assert held_by_list(md, stable, canary, CONFIG)
    with_canary = render_in_pod_deployment(md, stable, canary, CONFIG, replicas=2)
    assert with_canary["spec"]["template"] == template(md, stable, None)  # the Deployment controller rolls nothing
    assert with_canary["metadata"]["annotations"] == {"modelyard.dev/versions": "42,43"}  # what the pods hold
    pod = with_canary["spec"]["template"]["spec"]
    (loader,) = pod["initContainers"]
    server = pod["containers"][0]
    i = loader["args"].index("--versions-file")
    assert loader["args"][i + 1] == "/etc/modelyard/versions/versions.json"
    mount = {"name": "versions", "mountPath": "/etc/modelyard/versions", "readOnly": True}
    assert mount in loader["volumeMounts"]
    assert all(m["name"] != "versions" for m in server["volumeMounts"])  # the server never sees the list
    (volume,) = [v for v in pod["volumes"] if v["name"] == "versions"]
    assert volume["configMap"] == {"name": "fraud-version-weights", "items": [{"key": "versions.json",
                                                                             "path": "versions.json"}]}  # fmt: skip
    assert server["args"].count("--serve") == 1  # readiness waits for the pod's own version only


def test_the_versions_list_carries_what_the_sidecar_fetches_and_the_version_settings() -> None:
    md = dynamic()
    canary = version("43", artifact=signed("43"), runtime={"executionProviders": ["CPUExecutionProvider"]},
                     warmup={"requests": 3}, batching={"maxBatchSize": 8, "preferredBatchSizes": [4]})  # fmt: skip
    config_map = render_version_weights(md, {"42": 50, "43": 50}, held=[canary])
    (entry,) = json.loads(config_map["data"]["versions.json"])["versions"]
    assert entry == versions_entry(canary)
    assert entry["uri"] == "s3://models/fraud/43/model.onnx"
    assert entry["digest"] == DIGEST
    assert entry["signature"] == "s3://models/fraud/43/model.sig"  # the key itself stays a flag of the sidecar
    assert "format" not in entry  # onnx, the sidecar's default
    assert entry["config"]["warmup"] == {"runs": 3}
    assert entry["config"]["backend"]["providers"] == ["CPUExecutionProvider"]
    assert entry["config"]["dynamic_batching"] == {"max_queue_delay_ms": 0.0, "preferred_batch_size": [4]}
    assert entry["config"]["max_batch_size"] == 8  # the canary's own, though the server's flags are the stable's
    assert json.loads(render_version_weights(md, {"42": 100})["data"]["versions.json"]) == {"versions": []}


@pytest.mark.parametrize(
    ("stable_spec", "canary_spec", "why"),
    [
        ({}, {"artifact": artifact("43", credentialsSecret="other-store")}, "credentials the pod does not mount"),
        ({}, {"artifact": signed("43")}, "a signature the sidecar has no key for"),
        ({"artifact": signed("42")}, {}, "unsigned, where the sidecar verifies signatures"),
        ({}, {"format": "savedmodel"}, "a SavedModel needs the runtime-tf image"),
        ({}, {"warmup": {"requests": 1, "samples": {"uri": "s3://models/fraud/43/samples.json",
                                                    "digest": DIGEST}}}, "warm-up samples: an init container"),
    ],
)  # fmt: skip
def test_a_canary_that_needs_more_than_the_pod_has_gets_a_loader_of_its_own(
    stable_spec: dict[str, Any], canary_spec: dict[str, Any], why: str
) -> None:
    md, stable, canary = dynamic(), version("42", **stable_spec), version("43", **canary_spec)
    assert not held_by_list(md, stable, canary, CONFIG), why
    deployment = render_in_pod_deployment(md, stable, canary, CONFIG, replicas=2)
    pod = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"] if c["name"].startswith("loader")] == ["loader", "loader-43"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["modelyard.dev/versions"] == "42,43"


def test_signed_versions_with_the_same_key_share_the_sidecar() -> None:
    md, stable, canary = dynamic(), version("42", artifact=signed("42")), version("43", artifact=signed("43"))
    assert held_by_list(md, stable, canary, CONFIG)
    assert template(md, stable, canary) == template(md, stable, None)


def test_static_loading_follows_the_list_with_a_sidecar_of_its_own() -> None:
    """The pod's own version still comes from the init container before the server starts; a sidecar that follows
    the versions list (and never touches that version, ``--dest``) adds the canary to the running server."""
    md = ModelDeployment.model_validate(model_deployment())
    stable, canary = version("42"), version("43")
    assert held_by_list(md, stable, canary, CONFIG)
    assert template(md, stable, canary) == template(md, stable, None)
    fetch, follower = template(md, stable, None)["spec"]["initContainers"]
    assert fetch["args"][0] == "fetch"
    assert "restartPolicy" not in fetch
    assert follower["name"] == "versions-loader"
    assert follower["restartPolicy"] == "Always"
    args = follower["args"]
    assert args[0] == "sidecar"
    assert "--uri" not in args
    assert args[args.index("--dest") + 1] == "/models/fraud/42"
    assert args[args.index("--versions-file") + 1] == "/etc/modelyard/versions/versions.json"
    assert args[args.index("--server-admin") + 1] == "http://127.0.0.1:8082"
    assert args[args.index("--listen") + 1] == "127.0.0.1:8091"  # clear of the pod's other loopback ports
    assert "--digest" in fetch["args"]
    assert "--digest" not in args  # digests come with each entry
