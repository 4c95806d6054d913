"""``format: pmml`` in the loader, as a process against a real HTTP server: the validation compiles the verified
document to ``model.onnx`` and records the compiled digest; ``fetch`` (what each pod runs) compiles again and
publishes nothing when its digest differs from the recorded one; a document the compiler refuses fails with the
element and its line. The compiled model's predictions are checked against a reference evaluator in
test_pmml_reference.py and, served on the real node, in test_pmml_pods.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from support.httpserver import FileServer, serve
from support.loader import PLAIN_ONNX, result, run_loader, sha256, tar_bytes

from ..models import pmml_linear


@pytest.fixture
def site(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "site"
    pmml_linear(root / "linear.pmml")
    pmml_linear(root / "net.pmml", model="ClusteringModel")
    (root / "both.tar.gz").write_bytes(tar_bytes([("model.pmml", (root / "linear.pmml").read_bytes()),
                                               ("model.onnx", PLAIN_ONNX)]))  # fmt: skip
    with serve(root) as srv:
        yield srv


def loader(site: FileServer, command: str, path: str, dest: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    log = dest.parent / f"{dest.name}.termination-log"
    p = run_loader(command, "--uri", site.url + path, "--dest", str(dest), "--allow-hosts", "127.0.0.1",
                   "--format", "pmml", "--termination-log", str(log), "--no-progress", *extra)  # fmt: skip
    text = log.read_text() if log.exists() else p.stdout.strip().splitlines()[-1]
    return p.returncode, json.loads(text), p.stderr


def test_validation_compiles_the_document_and_records_the_compiled_digest(site: FileServer, tmp_path: Path) -> None:
    data = (site.root / "linear.pmml").read_bytes()
    code, r, err = loader(site, "validate", "/linear.pmml", tmp_path / "v", "--digest", sha256(data))
    assert code == 0, err
    assert (r["ok"], r["reason"], r["model"]) == (True, "Validated", "model.onnx")
    assert r["artifact"] == {"digest": sha256(data), "sizeBytes": len(data)}  # the document, as fetched
    compiled = (tmp_path / "v" / "model.onnx").read_bytes()
    assert r["compiled"]["digest"] == sha256(compiled)
    assert (r["compiled"]["from"], r["compiled"]["model"], r["compiled"]["sizeBytes"]) == (
        "linear.pmml", "model.onnx", len(compiled))  # fmt: skip
    assert r["inputs"] == [{"name": "x1", "datatype": "FP64", "shape": [-1]},
                           {"name": "x2", "datatype": "FP64", "shape": [-1]}]  # fmt: skip
    assert r["outputs"] == [{"name": "y", "datatype": "FP64", "shape": [-1]}]
    assert (tmp_path / "v" / "linear.pmml").read_bytes() == data  # the document is published too, unchanged
    session = ort.InferenceSession(compiled, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x1": np.array([1.0, 2.0]), "x2": np.array([4.0, 0.0])})
    assert y.tolist() == [0.5 + 2.0 - 6.0, 0.5 + 4.0]


def test_each_pod_compiles_the_same_model_and_refuses_another(site: FileServer, tmp_path: Path) -> None:
    code, validated, err = loader(site, "validate", "/linear.pmml", tmp_path / "v")
    assert code == 0, err
    recorded = validated["compiled"]["digest"]
    cache = tmp_path / "cache"
    for attempt in ("fetched", "from the cache"):  # the cache holds the document; every start compiles it again
        dest = tmp_path / attempt.replace(" ", "-")
        p = run_loader("fetch", "--uri", site.url + "/linear.pmml", "--dest", str(dest), "--allow-hosts",
                       "127.0.0.1", "--format", "pmml", "--compiled-digest", recorded, "--digest",
                       validated["artifact"]["digest"], "--cache", str(cache), "--no-progress")  # fmt: skip
        out = result(p)
        assert out["cacheHit"] is (attempt == "from the cache"), attempt
        assert out["compiled"]["digest"] == recorded
        assert sha256((dest / "model.onnx").read_bytes()) == recorded
    other = "sha256:" + "0" * 64
    code, r, _ = loader(site, "fetch", "/linear.pmml", tmp_path / "other", "--compiled-digest", other)
    assert (code, r["reason"]) == (4, "DigestMismatch")
    assert f"compiles to {recorded}, but the validation recorded {other}" in r["message"]
    assert not (tmp_path / "other").exists()  # nothing published


def test_a_document_the_compiler_refuses_fails_validation_naming_the_element(site: FileServer, tmp_path: Path) -> None:
    code, r, _ = loader(site, "validate", "/net.pmml", tmp_path / "v")
    assert (code, r["ok"], r["reason"]) == (7, False, "CompileFailed")
    assert "net.pmml: <ClusteringModel> at line 5 is not supported" in r["message"]
    assert r["artifact"]["digest"] == sha256((site.root / "net.pmml").read_bytes())  # fetched and verified first
    assert not (tmp_path / "v").exists()


def test_an_artifact_with_its_own_model_onnx_is_refused(site: FileServer, tmp_path: Path) -> None:
    code, r, _ = loader(site, "validate", "/both.tar.gz", tmp_path / "v")
    assert (code, r["reason"]) == (7, "FormatMismatch")
    assert "holds a model.onnx already" in r["message"]


def test_compiled_digest_is_refused_for_formats_that_are_not_compiled(site: FileServer, tmp_path: Path) -> None:
    p = run_loader("fetch", "--uri", site.url + "/linear.pmml", "--dest", str(tmp_path / "d"), "--allow-hosts",
                   "127.0.0.1", "--compiled-digest", "sha256:" + "0" * 64)  # fmt: skip
    assert p.returncode == 2
    assert "--compiled-digest is for a compiled format (pmml)" in p.stderr
