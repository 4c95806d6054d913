#!/usr/bin/env python3
"""``make demo``: Modelyard serving real inference on this machine, without Docker, then everything stopped.

1. build (or reuse) and start the control plane with the real node ``node-0`` (kubelet, containerd and runc run
   the project's images, pulled from the dev cluster's registry; Services get virtual IPs from kube-proxy, names
   from CoreDNS) and Prometheus; push the images ``make images`` built into the registry;
2. ``helm install`` the chart with those images: CRDs, RBAC and the operator's Deployment, which runs on the node;
3. generate a small ONNX model (OUT0 = A + B, OUT1 = A - B) in four versions and serve the files over HTTP;
4. version 1: a ModelVersion validated by a Job, a ModelDeployment of two pods; one request through the Service's
   virtual IP, then steady traffic balanced per request over the Service's ready endpoints, every answer checked;
5. version 2: a canary at 50 %, analysed on the error rate Prometheus measures, promoted;
6. version 3: a model that fails at run time, rolled out blue/green: its copy gets preview traffic only, the
   analysis fails and the operator rolls it back by itself;
7. version 4: a tampered artifact: validation rejects it (digest mismatch) and it never gets a pod;
8. the model pipeline (hack/demo_pipeline.py): a PMML document and a TensorFlow SavedModel served next to the ONNX
   models; an int8 version of a classifier derived by the operator (spec.derivedFrom: built, gated and pushed to an
   OCI registry), shadowed on live requests and promoted by the agreement analysis;
9. ``kubectl get md,mv,pods``, the rollout events and a summary with timings; everything stopped (Ctrl-C too).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as triton

from devcluster import REPO, ClusterError, DevCluster, dev_analysis
from fileserver import serve_directory
from kubeapi import Kube
from realnode import GATEWAY, NODE, PLACEMENT
from traffic import Traffic, infer_inputs

sys.path.insert(0, str(REPO / "tests"))
import demo_pipeline as pipeline
from models import binary_op, failing_model, pmml_linear  # the tests' generators (no downloads)

NAMESPACE = "modelyard-demo"
SYSTEM_NAMESPACE = "modelyard-system"
ANALYSIS = dev_analysis(
    [
        {"name": "error-rate", "template": "errorRate", "max": 0.01, "critical": True},
        {"name": "p99-latency", "template": "latencyP99", "max": 0.5},
    ],
    min_requests=30,
)
CANARY = {
    "strategy": "canary",
    "steps": [{"setWeight": 50}, {"analyze": {"minDuration": "10s", "maxDuration": "2m"}}],
    "analysis": ANALYSIS,
}
BLUE_GREEN = {"strategy": "blueGreen", "blueGreen": {"analyze": {"minDuration": "10s", "maxDuration": "2m"}},
              "analysis": ANALYSIS}  # fmt: skip
A = np.arange(8, dtype=np.float32).reshape(2, 4)
B = np.full((2, 4), 10, dtype=np.float32)


def step(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


def adds(inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> bool:
    return bool(np.array_equal(outputs["OUT0"], inputs["A"] + inputs["B"])
                and np.array_equal(outputs["OUT1"], inputs["A"] - inputs["B"]))  # fmt: skip


def model_version(version: str, uri: str, digest: str) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": f"adder-{version}"},
            "spec": {"model": "adder", "version": version, "format": "onnx",
                     "artifact": {"uri": uri, "digest": digest}}}  # fmt: skip


def model_deployment(version: str, rollout: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "adder"},
            "spec": {"model": "adder", "version": version, "replicas": 2, "placement": PLACEMENT,
                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}, "rollout": rollout}}  # fmt: skip


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


class Demo:
    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.timings: list[tuple[str, float]] = []
        self.users: Traffic | None = None
        self.previews: Traffic | None = None
        self.classified: Traffic | None = None
        self.passed_analysis = ""
        self.started = time.monotonic()

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.cluster.kubectl(*args, stdin=stdin, capture=True)

    def apply(self, *objects: dict[str, Any]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
        print("    " + self.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=body).strip().replace("\n", "\n    "))

    def timed(self, label: str, started: float) -> float:
        elapsed = time.monotonic() - started
        self.timings.append((label, elapsed))
        print(f"    ({label}: {elapsed:.1f} s)")
        return elapsed

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.cluster.kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False, capture=True)
        return dict(json.loads(out)) if out else {}

    def progress(self, status: dict[str, Any]) -> str:
        weights = status.get("weights") or {}
        line = f"    [{time.monotonic() - self.started:6.1f}s] {status.get('phase', '-'):<11}"
        line += f" stable={status.get('stableVersion', '-')} canary={status.get('canaryVersion') or '-'}"
        line += f" weights={weights.get('stable', 100)}/{weights.get('canary', 0)}"
        if decision := status.get("lastDecision"):
            line += f"  {decision.get('verdict')}: {decision.get('reason')}"
            if decision.get("reason") == "AnalysisPassed":  # the numbers the last passing analysis saw
                self.passed_analysis = f"{decision.get('verdict')}: {decision.get('reason')}: {decision.get('message')}"
        if self.users is not None:
            counts = self.users.versions()
            line += f"  | users: {len(self.users.results)} sent, {len(self.users.failures())} failed, by version "
            line += ", ".join(f"v{v}={n}" for v, n in sorted(counts.items())) or "-"
        return line

    def wait(self, what: str, check: Callable[[dict[str, Any]], bool], kind: str = "md", name: str = "adder",
             timeout: float = 180, md: str = "adder") -> dict[str, Any]:  # fmt: skip
        """Poll an object's status until ``check`` holds, printing the ModelDeployment's progress as it changes (for a
        ModelVersion, that of the ModelDeployment ``md``)."""
        deadline, shown, last_print = time.monotonic() + timeout, "", 0.0
        while time.monotonic() < deadline:
            obj = self.get(kind, name)
            status = obj.get("status") or {}
            md_status = status if kind == "md" else (self.get("md", md).get("status") or {})
            line = self.progress(md_status)
            key = line.split("]", 1)[1].split("|")[0]
            if key != shown or time.monotonic() - last_print > 5:
                print(line, flush=True)
                shown, last_print = key, time.monotonic()
            if check(status):
                return obj
            time.sleep(0.5)
        raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")

    def run(self, folder: Path) -> None:
        step(f"Starting the control plane, the real node {NODE} (kubelet + containerd + runc) and Prometheus")
        t = time.monotonic()
        self.cluster.up(nodes=False, real_node=True, prometheus=True)
        self.timed("control plane + real node + Prometheus up", t)
        t = time.monotonic()
        for ref in self.cluster.push_images(["modelyard-operator", "modelyard-runtime", "modelyard-runtime-tf"]):
            print(f"    pushed {ref}")
        self.timed("images pushed to the dev registry", t)

        step("Installing the Helm chart: CRDs, RBAC and the operator's Deployment, from the images just pushed")
        t = time.monotonic()
        cache = folder / "node-cache"  # the node's artifact cache; each namespace's loaders mount <cache>/<namespace>
        (cache / NAMESPACE).mkdir(parents=True, exist_ok=True)  # provisioning: a folder the loaders (UID 65532) own
        os.chown(cache / NAMESPACE, 65532, 65532)
        (cache / NAMESPACE).chmod(0o700)
        with pipeline.artifact_store(folder / "artifact-store") as store:
            values = {
                "operator.prometheusURL": str(self.cluster.prometheus_url()),
                "operator.loaderAllowHosts": "{" + GATEWAY + "}",
                "operator.artifactCache.hostPath": str(cache),
                "operator.artifactStore.uri": f"oci://{store}/modelyard",  # where derived versions are pushed
                "operator.artifactStore.plainHTTP": "true",
                "operator.logLevel": "WARNING",
            }
            self.cluster.install_chart(values, namespace=SYSTEM_NAMESPACE)
            self.installed(folder, values, t)

    def installed(self, folder: Path, values: dict[str, str], t: float) -> None:
        """Everything after ``helm install``, while the artifact store (derived versions) runs."""
        self.timed("helm install (operator Ready)", t)
        print("    " + " ".join(f"--set {key}={value}" for key, value in values.items()))
        print(
            "    " + self.kubectl("get", "pods", "-n", SYSTEM_NAMESPACE, "-o", "wide").strip().replace("\n", "\n    ")
        )

        step("Generating the model (OUT0 = A + B, OUT1 = A - B) in four versions, served over HTTP from this machine")
        models = folder / "artifacts"
        models.mkdir(parents=True, exist_ok=True)
        for version in ("1", "2"):
            binary_op(models / f"adder-v{version}.onnx")
        failing_model(models / "adder-v3.onnx")  # loads fine, fails on every request
        tampered = binary_op(models / "adder-v4.onnx", op="Mul")
        pinned_v4 = sha256(tampered)
        tampered.write_bytes(tampered.read_bytes() + b"\0")  # changed after its digest was published
        for path in sorted(models.iterdir()):
            print(f"    {path.name:<16} {path.stat().st_size:>5} bytes")
        with serve_directory(models) as port:
            base = f"http://{GATEWAY}:{port}"
            print(f"    artifacts served at {base}/ (the pods' loader fetches from here and checks the pinned digest)")
            self.kubectl("create", "namespace", NAMESPACE)
            try:
                self.story(base, models, pinned_v4)
                self.pipeline(base, models)
            finally:
                self.save_operator_log(folder / "operator.log")

    def save_operator_log(self, path: Path) -> None:
        log = self.cluster.kubectl("logs", "-n", SYSTEM_NAMESPACE, "deploy/modelyard-operator", check=False,
                                   capture=True)  # fmt: skip
        path.write_text(log)
        print(f"    operator log (kubectl logs -n {SYSTEM_NAMESPACE} deploy/modelyard-operator): {path}")

    def story(self, base: str, models: Path, pinned_v4: str) -> None:
        step(f"Version 1: apply a ModelVersion (validated by a Job) and a ModelDeployment of 2 pods on {NODE}")
        t = time.monotonic()
        self.apply(model_version("1", f"{base}/adder-v1.onnx", sha256(models / "adder-v1.onnx")),
                   model_deployment("1", CANARY))  # fmt: skip
        mv = self.wait("adder-1 validated", lambda s: s.get("phase") == "Ready", kind="mv", name="adder-1")
        self.timed("v1: kubectl apply -> ModelVersion validated", t)
        sig = mv["status"]["signature"]
        print(f"    validated: digest {mv['status']['artifact']['digest'][:19]}..., inputs "
              f"{[(i['name'], i['datatype'], i['shape']) for i in sig['inputs']]}")  # fmt: skip
        self.users = Traffic(Kube(self.cluster.kubeconfig), NAMESPACE, "adder", "adder", {"A": A, "B": B}, adds,
                             rate=20).start()  # fmt: skip
        first = None
        while first is None:
            first = next((r for r in self.users.results if r.ok), None)
            if time.monotonic() - t > 120:
                raise ClusterError("no correct answer within 120 s")
            time.sleep(0.05)
        self.timed("v1: kubectl apply -> first correct inference", t)
        print(f"    first answer from pod {first.pod_ip} (version {first.version}); steady traffic: 20 requests/s")
        self.wait("adder Healthy", lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == "1")
        print(self.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide"))
        self.through_service()

        step("Version 2: canary at 50 %, analysed on Prometheus (error rate, p99 latency), then promoted")
        t = time.monotonic()
        self.apply(model_version("2", f"{base}/adder-v2.onnx", sha256(models / "adder-v2.onnx")),
                   model_deployment("2", CANARY))  # fmt: skip
        self.wait("version 2 promoted", lambda s: s.get("stableVersion") == "2" and s.get("phase") == "Healthy")
        self.timed("v2: canary -> analysis -> promoted", t)

        step("Version 3: a model that fails at run time, as a blue/green copy with preview traffic only")
        t = time.monotonic()
        self.apply(model_version("3", f"{base}/adder-v3.onnx", sha256(models / "adder-v3.onnx")),
                   model_deployment("3", BLUE_GREEN))  # fmt: skip
        self.wait("the version 3 copy", lambda s: s.get("canaryVersion") == "3")
        self.previews = Traffic(Kube(self.cluster.kubeconfig), NAMESPACE, "adder-canary", "adder", {"A": A, "B": B},
                                adds, rate=10).start()  # fmt: skip
        try:
            status = self.wait("version 3 rolled back", lambda s: s.get("phase") == "RolledBack")["status"]
        finally:
            self.previews.stop()
        self.timed("v3: apply -> rolled back automatically", t)
        decision = status["lastDecision"]
        print(f"    {decision['verdict']}: {decision['reason']}: {decision['message']}")

        step("Version 4: a tampered artifact (its bytes changed after the digest was published)")
        t = time.monotonic()
        self.apply(model_version("4", f"{base}/adder-v4.onnx", pinned_v4), model_deployment("4", CANARY))
        mv = self.wait("adder-4 rejected", lambda s: s.get("phase") == "Failed", kind="mv", name="adder-4")
        self.timed("v4: apply -> rejected by validation", t)
        ready = next(c for c in mv["status"]["conditions"] if c["type"] == "Ready")
        print(f"    ModelVersion adder-4: {ready['reason']}: {ready['message'][:160]}")
        self.wait("adder Degraded", lambda s: s.get("phase") == "Degraded", timeout=30)
        time.sleep(2)  # a little more traffic on version 2
        self.users.stop()

        step("kubectl get md,mv,pods")
        print(self.kubectl("get", "md,mv,pods", "-n", NAMESPACE, "-o", "wide"))
        step("What the operator decided (Events)")
        print(self.kubectl("get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp",
                           "--field-selector=involvedObject.kind=ModelDeployment",
                           "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message"))  # fmt: skip

    def pipeline(self, base: str, models: Path) -> None:
        step("Formats: a PMML document (compiled to ONNX by the loader) and a TensorFlow SavedModel, next to ONNX")
        t = time.monotonic()
        churn = pmml_linear(models / "churn.pmml", {"x1": 2.0, "x2": -1.5}, intercept=0.5)
        dense = pipeline.savedmodel_archive(models)
        self.apply(pipeline.version("churn", "1", format="pmml",
                                    artifact={"uri": f"{base}/churn.pmml", "digest": pipeline.sha256(churn)}),
                   pipeline.version("dense", "1", format="savedmodel", runtime={"engine": "tensorflow"},
                                    artifact={"uri": f"{base}/dense.tar.gz", "digest": pipeline.sha256(dense)}),
                   pipeline.deployment("churn", "1"), pipeline.deployment("dense", "1"))  # fmt: skip
        answers = {}
        for model, inputs, datatype in (
            ("churn", {"x1": np.array([1.0]), "x2": np.array([2.0])}, "FP64"),
            ("dense", {"x": np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32)}, "FP32"),
        ):
            self.wait(f"{model} Healthy", lambda s: s.get("phase") == "Healthy", name=model, timeout=300)
            answers[model] = pipeline.one_answer(self.pod_ip(model), model, inputs, datatype)
        print(f"    churn (PMML RegressionModel y = 0.5 + 2 x1 - 1.5 x2), x1=1, x2=2: {answers['churn']}")
        print(f"    dense (SavedModel, engine tensorflow in the runtime-tf image): {answers['dense']}")
        self.timed("PMML + SavedModel: apply -> answers", t)

        step("An int8 version derived by the operator (spec.derivedFrom): built, gated, pushed, shadowed, promoted")
        t = time.monotonic()
        classifier = pipeline.classifier(models / "cls-v1.onnx")
        # the gate on seeded random inputs bounds the probabilities' change; the class is checked on live requests
        derive = {"version": "1", "transforms": [{"quantize": {"mode": "dynamic", "weightType": "int8"}}],
                  "gate": {"generated": 256, "seed": 7, "maxAbsDiff": 0.05}}  # fmt: skip
        self.apply(pipeline.version("cls", "1", artifact={"uri": f"{base}/cls-v1.onnx",
                                                          "digest": pipeline.sha256(classifier)}),
                   pipeline.version("cls", "1-int8", derivedFrom=derive),
                   pipeline.deployment("cls", "1", pipeline.SHADOW))  # fmt: skip
        mv = self.wait("cls-1-int8 built and validated", lambda s: s.get("phase") in ("Ready", "Failed"), kind="mv",
                       name="cls-1-int8", timeout=300, md="cls")  # fmt: skip
        if mv["status"]["phase"] != "Ready":
            ready = next(c for c in mv["status"]["conditions"] if c["type"] == "Ready")
            raise ClusterError(f"cls-1-int8 failed: {ready['reason']}: {ready['message']}")
        b, gate = mv["status"]["build"], mv["status"]["build"]["gate"]
        print(
            f"    build Job {b['job']}: {b['sizeBytesBefore']} -> {b['sizeBytesAfter']} bytes; gate on "
            f"{gate['rows']} rows: top-1 agreement {gate['top1Agreement']}, max |diff| {gate['maxAbsDiff']}; "
            f"median latency {b['latencyMsBefore']} -> {b['latencyMsAfter']} ms (batch {b['latencyBatch']})"
        )
        print(f"    pushed to the artifact store: {b['uri']}")
        self.timed("int8: apply -> built, gated, pushed, validated", t)
        self.wait("cls Healthy on version 1", lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == "1",
                  name="cls", timeout=240)  # fmt: skip
        data = pipeline.images(np.random.default_rng(5), 8)
        expected = pipeline.classes(classifier, data)
        self.classified = Traffic(Kube(self.cluster.kubeconfig), NAMESPACE, "cls", "cls", {"data": data},
                                  lambda _i, out: bool((out["probs"].argmax(axis=1) == expected).all()),
                                  rate=20).start()  # fmt: skip
        t = time.monotonic()
        self.apply(pipeline.deployment("cls", "1-int8", pipeline.SHADOW))
        status = self.wait("1-int8 shadowed, then promoted",
                           lambda s: s.get("stableVersion") == "1-int8" and s.get("phase") == "Healthy", name="cls",
                           timeout=300)["status"]  # fmt: skip
        self.classified.stop()
        self.timed("int8: shadowed -> agreement analysis -> promoted", t)
        decision = status.get("lastDecision") or {}
        print(f"    {decision.get('verdict')}: {decision.get('reason')}: {decision.get('message')}")
        print(f"    shadowed: {self.passed_analysis or 'no analysis decision seen'}")

    def pod_ip(self, instance: str) -> str:
        pods = json.loads(self.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={instance}",
                                       "-o", "json"))["items"]  # fmt: skip
        return str(next(p["status"]["podIP"] for p in pods if p["status"].get("podIP")))

    def through_service(self) -> None:
        """One request to the Service's virtual IP, as any in-cluster client would send it (kube-proxy routes it)."""
        vip = json.loads(self.kubectl("get", "service", "adder", "-n", NAMESPACE, "-o", "json"))["spec"]["clusterIP"]
        client = triton.InferenceServerClient(f"{vip}:8080", connection_timeout=5, network_timeout=10)
        inputs = infer_inputs({"A": A, "B": B})
        deadline = time.monotonic() + 20
        while True:
            try:
                out = client.infer("adder", inputs).as_numpy("OUT0")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)  # kube-proxy programs a new Service within a second or so
        print(f"    through the Service adder ({vip}:8080): A + B = {out[0].tolist()} ... (tritonclient over HTTP)")

    def stop_traffic(self) -> None:
        for load in (self.users, self.previews, self.classified):
            if load is not None:
                load.stop()

    def summary(self) -> None:
        step("Summary")
        for label, seconds in self.timings:
            print(f"    {label:<52} {seconds:6.1f} s")
        if self.users is not None:
            counts = ", ".join(f"v{v}: {n}" for v, n in sorted(self.users.versions().items()))
            print(f"    user requests: {len(self.users.results)} sent, {len(self.users.failures())} failed "
                  f"(answered right by {counts})")  # fmt: skip
        if self.previews is not None:
            sent, failed = len(self.previews.results), len(self.previews.failures())
            print(f"    preview requests to adder-canary: {sent} sent, {failed} failed on version 3 "
                  "- the analysis saw them, users never did")  # fmt: skip
        if self.classified is not None:
            counts = ", ".join(f"{v}: {n}" for v, n in sorted(self.classified.versions().items()))
            print(f"    classifier requests: {len(self.classified.results)} sent, {len(self.classified.failures())} "
                  f"failed (answered right by {counts}; the int8 version shadowed first, unseen)")  # fmt: skip
        print(f"    {'demo wall time (before stopping)':<52} {time.monotonic() - self.started:6.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO / ".devcluster-demo", help="state folder of the demo cluster")
    args = parser.parse_args(argv)
    cluster = DevCluster(args.dir)
    demo = Demo(cluster)
    # Ctrl-C and SIGTERM both end in the finally below, which stops everything that was started. SIGINT is set
    # explicitly: a process started from a background job of a non-interactive shell inherits it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code = 0
    try:
        demo.run(args.dir)
        demo.summary()
        failed = sum(len(t.failures()) for t in (demo.users, demo.classified) if t is not None)
        if failed:
            print(f"\ndemo failed: {failed} user requests failed", file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        code = 130
    except (ClusterError, subprocess.CalledProcessError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        demo.stop_traffic()
        t = time.monotonic()
        stopped = cluster.down()
        print(f"\nStopped {len(stopped)} cluster processes in {time.monotonic() - t:.1f} s (the operator and the "
              "model pods drained first; pods, network namespaces, the bridge and the node's host settings given "
              "back); nothing is left running.")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
