"""The real node's configuration (hack/realnode.py): the settings this machine needs, as files its parts read."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tomllib
from pathlib import Path

import realnode


def test_containerd_runs_runc_on_cgroupfs_with_restricted_oom_scores_and_the_dev_registry(tmp_path: Path) -> None:
    conf = tomllib.loads(realnode.containerd_config(bin_dir=tmp_path, registry="127.0.0.1:5000", metrics_port=9))
    assert conf["version"] == 3
    runtime = conf["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True  # else runc cannot start a sandbox in this VM
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False
    assert runtime["cni"]["bin_dirs"] == [str(tmp_path / "cni")]
    images = conf["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == f"127.0.0.1:5000/{realnode.PAUSE_IMAGE}"
    assert images["registry"]["config_path"] == str(realnode.RUN / "certs.d")
    assert conf["grpc"]["address"].startswith(str(realnode.RUN))


def test_kubelet_allows_cgroup_v1_without_systemd_and_authenticates_callers(tmp_path: Path) -> None:
    conf = realnode.kubelet_config(pki=tmp_path, healthz_port=1234)
    assert (conf["cgroupDriver"], conf["failCgroupV1"]) == ("cgroupfs", False)
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["authorization"]["mode"] == "Webhook"
    assert conf["readOnlyPort"] == 0
    assert conf["address"] == realnode.GATEWAY
    assert conf["clusterDNS"] == [realnode.DNS_IP]


def test_the_dev_registry_serves_its_own_names_and_mirrors_the_charts_default_registry() -> None:
    own = tomllib.loads(realnode.registry_hosts("127.0.0.1:5000", upstream="127.0.0.1:5000"))
    mirror = tomllib.loads(realnode.registry_hosts("127.0.0.1:5000", upstream="ghcr.io"))
    assert own["server"] == "http://127.0.0.1:5000"
    assert mirror["server"] == "https://ghcr.io"
    assert mirror["host"]["http://127.0.0.1:5000"]["capabilities"] == ["pull", "resolve"]


def test_pods_share_one_bridge_holding_the_node_address() -> None:
    bridge = realnode.cni_config()["plugins"][0]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"]) == ("bridge", realnode.BRIDGE, True)
    assert bridge["ipam"]["ranges"] == [[{"subnet": realnode.CIDR, "gateway": realnode.GATEWAY}]]
    assert realnode.GATEWAY == "10.244.100.1"


def test_pause_image_layout_is_a_valid_oci_image(tmp_path: Path) -> None:
    binary = tmp_path / "pause.bin"
    binary.write_bytes(b"\x7fELF not really")
    layout = realnode.pause_layout(binary, tmp_path / "layout")

    def blob(digest: str) -> bytes:
        data = (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest.removeprefix("sha256:")  # content-addressed
        return data

    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    layer = gzip.decompress(blob(manifest["layers"][0]["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert config["config"]["Entrypoint"] == ["/pause"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        member = tar.getmember("pause")
        assert member.mode == 0o755
        assert tar.extractfile(member).read() == binary.read_bytes()  # type: ignore[union-attr]
    again = realnode.pause_layout(binary, tmp_path / "again")
    assert (again / "index.json").read_text() == (layout / "index.json").read_text()  # the same digest at every up
