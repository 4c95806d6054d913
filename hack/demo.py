#!/usr/bin/env python3
"""``make demo``: Modelyard on a local control plane, end to end, then everything stopped again.

1. build (or reuse) and start the control plane (hack/devcluster);
2. ``helm install`` the chart: CRDs and the operator's RBAC (the operator Deployment is scaled to 0
   because this machine has no container runtime; the operator runs as a local process instead, with
   the chart's ServiceAccount token, so the demo also proves the chart's RBAC is enough);
3. apply a ModelVersion and a ModelDeployment and wait until the deployment is Ready;
4. publish version 2 and switch the deployment to it (strategy ``immediate``);
5. print ``kubectl get md,mv,deploy,pods`` and a summary with timings; stop everything (Ctrl-C too).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devcluster import REPO, ClusterError, DevCluster

NAMESPACE = "modelyard-demo"
SYSTEM_NAMESPACE = "modelyard-system"
DIGEST_V2 = "sha256:" + "7d" * 32


def step(msg: str) -> None:
    print(f"\n==> {msg}", flush=True)


class Demo:
    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster
        self.operator: subprocess.Popen[bytes] | None = None
        self.timings: list[tuple[str, float]] = []

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.cluster.kubectl(*args, stdin=stdin, capture=True)

    def timed(self, label: str, started: float) -> None:
        self.timings.append((label, time.monotonic() - started))

    def wait_md(self, what: str, check: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            md = json.loads(self.kubectl("get", "md", "fraud", "-n", NAMESPACE, "-o", "json"))
            if check(md.get("status", {})):
                return
            if self.operator is not None and self.operator.poll() is not None:
                raise ClusterError(f"the operator exited with code {self.operator.returncode}")
            time.sleep(0.25)
        raise ClusterError(f"timed out waiting for {what}")

    def run(self, operator_log: Path) -> None:
        started = time.monotonic()
        step("Starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
        self.cluster.up()
        self.timed("control plane up (6 kwok nodes Ready)", started)

        step("Installing the Helm chart (CRDs + operator RBAC)")
        t = time.monotonic()
        helm = self.cluster.bin / "helm"
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}
        subprocess.run(
            [str(helm), "install", "modelyard", str(REPO / "charts" / "modelyard"), "--namespace", SYSTEM_NAMESPACE,
             "--create-namespace", "--set", "operator.replicas=0", "--wait", "--timeout", "60s"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.timed("helm install", t)

        step("Running modelyard-operator as the chart's ServiceAccount")
        token = self.kubectl("create", "token", "modelyard-operator", "-n", SYSTEM_NAMESPACE, "--duration=1h").strip()
        state = self.cluster.state()
        assert state is not None
        kubeconfig = self.cluster.dir / "operator.kubeconfig"
        ca = str(self.cluster.dir / "pki" / "ca.crt")
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "operator",
            "clusters": [{"name": "dev", "cluster": {"server": state.apiserver, "certificate-authority": ca}}],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [{"name": "operator", "context": {"cluster": "dev", "user": "operator"}}],
        }))  # fmt: skip
        with open(operator_log, "wb") as log:
            self.operator = subprocess.Popen(
                [str(Path(sys.executable).parent / "modelyard-operator")],
                env={**os.environ, "KUBECONFIG": str(kubeconfig), "MODELYARD_LOG_LEVEL": "WARNING"},
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        print(f"    operator pid {self.operator.pid}, log {operator_log}")

        step("Applying examples/quickstart.yaml (ModelVersion fraud-1, ModelDeployment fraud)")
        self.kubectl("create", "namespace", NAMESPACE)
        t = time.monotonic()
        self.kubectl("apply", "-n", NAMESPACE, "-f", str(REPO / "examples" / "quickstart.yaml"))
        self.wait_md("fraud to be Healthy", lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == "1")
        self.timed("apply -> ModelDeployment Ready (2 pods)", t)
        print(self.kubectl("get", "md,mv,deploy,pods", "-n", NAMESPACE, "-o", "wide"))

        step("Publishing version 2 and switching the deployment to it")
        t = time.monotonic()
        v2 = {
            "apiVersion": "modelyard.dev/v1alpha1", "kind": "ModelVersion", "metadata": {"name": "fraud-2"},
            "spec": {"model": "fraud", "version": "2",
                     "artifact": {"uri": "https://models.example.com/fraud/2/model.onnx", "digest": DIGEST_V2}},
        }  # fmt: skip
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(v2))
        self.kubectl("patch", "md", "fraud", "-n", NAMESPACE, "--type=merge", "-p", '{"spec":{"version":"2"}}')
        self.wait_md("version 2 to be stable", lambda s: s.get("phase") == "Healthy" and s.get("stableVersion") == "2")
        self.timed("version switch 1 -> 2 (old Deployment removed)", t)

        step("kubectl get md,mv,deploy,pods")
        print(self.kubectl("get", "md,mv,deploy,pods", "-n", NAMESPACE))
        events = self.kubectl("get", "events", "-n", NAMESPACE, "--field-selector=involvedObject.kind=ModelDeployment",
                              "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message")  # fmt: skip
        print(events)

    def stop(self) -> None:
        if self.operator is not None and self.operator.poll() is None:
            self.operator.send_signal(signal.SIGINT)
            try:
                self.operator.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.operator.kill()
                self.operator.wait()

    def summary(self) -> None:
        step("Summary")
        for label, seconds in self.timings:
            print(f"    {label:<48} {seconds:6.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=REPO / ".devcluster-demo", help="state folder of the demo cluster")
    args = parser.parse_args(argv)
    cluster = DevCluster(args.dir)
    demo = Demo(cluster)
    # Ctrl-C and SIGTERM both end in the finally below, which stops everything that was started.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code = 0
    try:
        demo.run(args.dir / "operator.log")
        demo.summary()
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        code = 130
    except (ClusterError, subprocess.CalledProcessError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        demo.stop()
        stopped = cluster.down()
        print(f"\nStopped the operator and {len(stopped)} control-plane processes; nothing is left running.")
    return code


if __name__ == "__main__":
    sys.exit(main())
