"""Pure parts of the loader: URI parsing and redaction, SSRF decisions, archive-entry rules, ONNX scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelyard_runtime.loader import ssrf
from modelyard_runtime.loader.archive_rules import EntryKind, archive_kind, entry_problem, safe_relative
from modelyard_runtime.loader.errors import UnsafeContentError, UsageError
from modelyard_runtime.loader.onnxscan import external_locations, location_problem
from modelyard_runtime.loader.uri import check_digest, origin, parse, redact

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("raw", "scheme", "host", "path"),
    [
        ("https://models.example.com/a/b.onnx", "https", "models.example.com", "/a/b.onnx"),
        ("http://10.1.2.3:8080/m.tar.gz", "http", "10.1.2.3", "/m.tar.gz"),
        ("s3://models/fraud/42/", "s3", "models", "fraud/42/"),
        ("s3://models", "s3", "models", ""),
        ("pvc://claim-a/fraud/42", "pvc", "claim-a", "/mnt/pvc/claim-a/fraud/42"),
        ("pvc://claim-a", "pvc", "claim-a", "/mnt/pvc/claim-a"),
        (f"oci://registry.example:5000/team/fraud@{DIGEST}", "oci", "registry.example:5000", "team/fraud"),
        (f"oci://ghcr.example/fraud:v42@{DIGEST}", "oci", "ghcr.example", "fraud"),
    ],
)
def test_parse_accepts(raw: str, scheme: str, host: str, path: str) -> None:
    u = parse(raw)
    assert (u.scheme, u.host, u.path) == (scheme, host, path)


def test_parse_pvc_root_is_configurable() -> None:
    assert parse("pvc://c/m/1", pvc_root="/data").path == "/data/c/m/1"


def test_oci_keeps_the_digest() -> None:
    assert parse(f"oci://r.example/x@{DIGEST}").digest == DIGEST


@pytest.mark.parametrize(
    "raw",
    [
        "ftp://host/x",
        "oci://registry.example/fraud:latest",  # not pinned
        "s3://UPPER/key",
        "http:///nohost",
        "file:///etc/passwd",  # without --allow-file
        "/models/x.onnx",  # without --allow-file
        "",
        "https://a.example/x\r\nInjected: 1",
    ],
)
def test_parse_rejects(raw: str) -> None:
    with pytest.raises(UsageError):
        parse(raw)


def test_pvc_traversal_is_refused() -> None:
    with pytest.raises(UnsafeContentError):
        parse("pvc://claim/../other-claim/secret")


def test_file_needs_allow_file() -> None:
    assert parse("file:///srv/m.onnx", allow_file=True).path == "/srv/m.onnx"
    assert parse("/srv/m", allow_file=True).scheme == "file"


def test_redact_strips_userinfo_and_secret_query_values() -> None:
    raw = (
        "https://user:hunter2@bucket.s3.example/m.onnx?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAXXX%2F20260101&X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok&part=1"
    )
    out = redact(raw)
    for secret in ("hunter2", "user:", "deadbeef", "AKIAXXX", "tok&"):
        assert secret not in out
    assert "part=1" in out
    assert out.startswith("https://***@bucket.s3.example/m.onnx?")
    assert redact("s3://models/fraud/42/") == "s3://models/fraud/42/"
    assert "sv=1" in redact("https://acct.blob.example/c/m?sv=1&sig=SECRET")
    assert "SECRET" not in redact("https://acct.blob.example/c/m?sv=1&sig=SECRET")


def test_origin_is_scheme_host_and_port() -> None:
    assert origin("https://Registry.example/v2/x") == origin("https://registry.example:443/other?q=1")
    assert origin("http://127.0.0.1/a") == ("http", "127.0.0.1", 80)
    assert origin("http://127.0.0.1:8080/a") != origin("http://127.0.0.1:8081/a")
    assert origin("http://h.example/a") != origin("https://h.example/a")
    assert origin("https://user:pw@h.example/a") == origin("https://h.example/b")


def test_check_digest() -> None:
    assert check_digest(DIGEST) == DIGEST
    for bad in ("sha256:abc", "md5:" + "a" * 32, DIGEST.upper()):
        with pytest.raises(UsageError):
            check_digest(bad)


NO_ALLOW = ssrf.Allowlist()


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("metadata.example.com", ["169.254.169.254"]),
        ("v6meta.example.com", ["fd00:ec2::254"]),
        ("link.example.com", ["fe80::1"]),
        ("loop.example.com", ["127.0.0.1"]),
        ("loop6.example.com", ["::1"]),
        ("mapped.example.com", ["::ffff:169.254.169.254"]),
        ("private.example.com", ["10.0.0.5"]),
        ("mixed.example.com", ["93.184.216.34", "192.168.1.1"]),  # every address is checked
        ("cgnat.example.com", ["100.64.0.1"]),
        ("zero.example.com", ["0.0.0.0"]),
        ("minio.storage.svc", ["93.184.216.34"]),  # the name alone is enough
        ("kubernetes.default", ["93.184.216.34"]),
        ("kubernetes.default.svc.cluster.local", ["93.184.216.34"]),
        ("metadata.google.internal", ["93.184.216.34"]),
        ("localhost", ["93.184.216.34"]),
        ("minio", ["93.184.216.34"]),  # single label: the cluster's search domains
        ("nothing.example.com", []),
    ],
)
def test_ssrf_refuses(host: str, addresses: list[str]) -> None:
    assert ssrf.decide(host, addresses, NO_ALLOW) is not None


def test_ssrf_accepts_public_addresses() -> None:
    assert ssrf.decide("models.example.com", ["93.184.216.34", "2606:2800:220:1::1"], NO_ALLOW) is None


def test_ssrf_allowlist_by_name_address_and_network() -> None:
    allow = ssrf.Allowlist.parse(["127.0.0.1", "minio.storage.svc", "10.20.0.0/16", " "])
    assert ssrf.decide("127.0.0.1", ["127.0.0.1"], allow) is None
    assert ssrf.decide("minio.storage.svc", ["10.96.0.10"], allow) is None
    assert ssrf.decide("store.example.com", ["10.20.3.4"], allow) is None
    assert ssrf.decide("store.example.com", ["10.21.3.4"], allow) is not None
    assert ssrf.decide("other.storage.svc", ["93.184.216.34"], allow) is not None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("../evil", EntryKind.FILE),
        ("a/../../evil", EntryKind.FILE),
        ("/etc/passwd", EntryKind.FILE),
        ("C:/windows/x", EntryKind.FILE),
        ("a\\..\\b", EntryKind.FILE),
        ("link", EntryKind.SYMLINK),
        ("hard", EntryKind.HARDLINK),
        ("dev", EntryKind.DEVICE),
        ("fifo", EntryKind.FIFO),
        ("", EntryKind.FILE),
    ],
)
def test_archive_entry_refused(name: str, kind: EntryKind) -> None:
    assert entry_problem(name, kind) is not None


def test_archive_entry_accepted_and_normalized() -> None:
    assert entry_problem("./model/1/model.onnx", EntryKind.FILE) is None
    assert entry_problem("model/", EntryKind.DIR) is None
    assert entry_problem("a..b/c", EntryKind.FILE) is None
    assert safe_relative("./model//1/./x.onnx") == "model/1/x.onnx"
    assert [archive_kind(n) for n in ("m.tar", "m.TGZ", "m.tar.gz", "m.zip", "m.onnx")] == [
        "tar",
        "tar.gz",
        "tar.gz",
        "zip",
        None,
    ]


def _external_model(location: str) -> bytes:
    init = numpy_helper.from_array(np.ones((4,), dtype="float32"), "W")
    init.data_location = TensorProto.EXTERNAL
    entry = init.external_data.add()
    entry.key, entry.value = "location", location
    init.ClearField("raw_data")
    const = helper.make_tensor("C", TensorProto.FLOAT, [1], [1.0])
    const.data_location = TensorProto.EXTERNAL
    e2 = const.external_data.add()
    e2.key, e2.value = "location", "const.bin"
    const.ClearField("float_data")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])
    node = helper.make_node("Add", ["X", "W"], ["Y"])
    cnode = helper.make_node("Constant", [], ["K"], value=const)
    graph = helper.make_graph([node, cnode], "g", [x], [y], initializer=[init])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_onnx_scan_finds_initializer_and_attribute_locations() -> None:
    data = _external_model("weights/w.bin")
    assert sorted(external_locations(data)) == [("C", "const.bin"), ("W", "weights/w.bin")]


def test_onnx_scan_matches_onnx_for_a_model_saved_with_external_data(tmp_path: Path) -> None:

    w = numpy_helper.from_array(np.arange(4096, dtype="float32"), "W")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [4096])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4096])
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "g", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0)
    assert external_locations((tmp_path / "m.onnx").read_bytes()) == [("W", "m.data")]


@pytest.mark.parametrize("loc", ["/etc/passwd", "../x.bin", "a/../../x", "a\\b", "C:x", ""])
def test_onnx_location_problems(loc: str) -> None:
    assert location_problem(loc) is not None


def test_onnx_location_fine() -> None:
    assert location_problem("weights/w.bin") is None
