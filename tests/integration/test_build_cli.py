"""``modelyard-build`` as a user runs it (the installed console script, as a process) on real models: each transform
checked with ONNX Runtime against the parent, independently of the tool's own gate; the gate failing closed; the
report's sizes and digests matching the files; bad input refused with the key or file named."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from modelyard_runtime.pmml import compile_pmml

from ..models import image_classifier, matmul_chain, pmml_linear

TOOL = Path(sys.executable).parent / "modelyard-build"


def build(*args: str | Path, cwd: Path | None = None) -> tuple[int, dict[str, Any] | None, str]:
    done = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)
    report = json.loads(done.stdout) if done.stdout.strip() else None
    return done.returncode, report, done.stderr


def run(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)  # type: ignore[no-any-return]


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def samples_file(path: Path, rows: list[np.ndarray], name: str = "X") -> Path:
    bodies = [{"inputs": [{"name": name, "datatype": "FP32", "shape": list(r.shape), "data": r.ravel().tolist()}]}
              for r in rows]  # fmt: skip
    path.write_text(json.dumps({"requests": bodies}))
    return path


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return matmul_chain(tmp_path_factory.mktemp("mlp") / "mlp.onnx", width=256, depth=4)


def test_dynamic_int8_is_a_quarter_of_the_size_and_close_to_the_parent(mlp: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    code, report, err = build("--parent", mlp, "--out", out, "-t", "quantize: {mode: dynamic, weightType: int8}",
                              "--gate", "{maxAbsDiff: 0.5, rmse: 0.1}", "--latency-runs", "5")  # fmt: skip
    assert code == 0, err
    assert report is not None
    assert "transform 1 of 1 done" in err
    assert "gate passed on 64 rows (generated)" in err
    assert report["derived"] == {"digest": digest(out), "sizeBytes": out.stat().st_size,
                                 "compressedBytes": report["derived"]["compressedBytes"]}  # fmt: skip
    assert report["parent"]["digest"] == digest(mlp)
    assert report["derived"]["sizeBytes"] <= 0.3 * report["parent"]["sizeBytes"]
    assert {n.op_type for n in onnx.load(out).graph.node} >= {"DynamicQuantizeLinear", "MatMulInteger"}
    x = np.random.default_rng(7).standard_normal((16, 256)).astype(np.float32)
    (want,), (got,) = run(mlp, {"X": x}), run(out, {"X": x})
    assert np.abs(want - got).max() < 0.5  # checked here, apart from the tool's gate
    assert report["gate"]["passed"] is True
    assert report["gate"]["maxAbsDiff"] <= 0.5
    assert report["latency"]["batch"] == 32
    assert report["latency"]["ratio"] == pytest.approx(
        report["latency"]["derivedMs"] / report["latency"]["parentMs"], rel=0.01
    )


def test_static_quantization_calibrates_on_pinned_samples_and_gates_on_them(mlp: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    cal = samples_file(tmp_path / "cal.json", [rng.standard_normal((8, 256)).astype(np.float32) for _ in range(4)])
    gate = samples_file(tmp_path / "gate.json", [rng.standard_normal((5, 256)).astype(np.float32) for _ in range(3)])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "transforms:\n"
        f"  - quantize: {{mode: static, perChannel: true, calibration: {{uri: cal.json, digest: '{digest(cal)}'}}}}\n"
        f"gate: {{samples: {{uri: gate.json, digest: '{digest(gate)}'}}, maxAbsDiff: 1.0}}\n"
    )
    out = tmp_path / "qdq.onnx"
    code, report, err = build("--parent", mlp, "--out", out, "--spec", spec, "--latency-runs", "0",
                              "--report", tmp_path / "r.json")  # fmt: skip
    assert code == 0, err
    assert report is None  # the report went to --report
    report = json.loads((tmp_path / "r.json").read_text())
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(out).graph.node}
    assert (report["gate"]["inputs"], report["gate"]["rows"]) == ("samples", 15)
    assert "latency" not in report
    assert report["transforms"][0]["quantize"] == {"mode": "static", "weightType": "int8", "perChannel": True}


def test_float16_keeps_float32_io_and_halves_the_size(mlp: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp16.onnx"
    code, report, err = build("--parent", mlp, "--out", out, "-t", "float16: {keepIO: true}", "--gate", "rmse: 0.01",
                              "--latency-runs", "3")  # fmt: skip
    assert code == 0, err
    assert report is not None
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    x = np.random.default_rng(3).standard_normal((4, 256)).astype(np.float32)
    (want,), (got,) = run(mlp, {"X": x}), session.run(None, {"X": x})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0.02, atol=0.02)
    assert report["derived"]["sizeBytes"] < 0.55 * report["parent"]["sizeBytes"]


def test_prune_reports_sparsity_and_a_smaller_compressed_size(mlp: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned.onnx"
    code, report, err = build("--parent", mlp, "--out", out, "-t", "prune: {sparsity: 0.6}", "--latency-runs", "0")
    assert code == 0, err
    assert report is not None
    assert report["transforms"][0]["prune"]["achievedSparsity"] == 0.6
    weights = [onnx.numpy_helper.to_array(i) for i in onnx.load(out).graph.initializer if i.dims and len(i.dims) == 2]
    assert all(abs(float(np.mean(w == 0)) - 0.6) < 0.01 for w in weights)
    assert report["derived"]["compressedBytes"] < 0.75 * report["parent"]["compressedBytes"]
    assert report["derived"]["sizeBytes"] == pytest.approx(report["parent"]["sizeBytes"], rel=0.01)  # dense layout


def test_a_failed_gate_writes_no_model_and_says_why(mlp: Path, tmp_path: Path) -> None:
    out = tmp_path / "bad.onnx"
    code, report, err = build("--parent", mlp, "--out", out, "-t", "prune: {sparsity: 0.95}",
                              "--gate", "{maxAbsDiff: 0.001, top1Agreement: 0.99}", "--latency-runs", "0")  # fmt: skip
    assert code == 1
    assert not out.exists()
    assert report is not None
    assert report["gate"]["passed"] is False
    assert report["gate"]["failures"][0].startswith("maxAbsDiff ")
    assert "modelyard-build: gate failed: maxAbsDiff" in err


def test_classifier_top1_agreement(tmp_path: Path) -> None:
    parent = image_classifier(tmp_path / "cls.onnx")
    code, report, err = build("--parent", parent, "--out", tmp_path / "q.onnx", "-t", "quantize: {}", "--gate",
                              "{top1Agreement: 0.95, generated: 200, seed: 4}", "--latency-runs", "0")  # fmt: skip
    assert code == 0, err
    assert report is not None
    assert report["gate"]["rows"] == 200
    assert report["gate"]["top1Agreement"] >= 0.95


def test_pmml_converted_is_the_loaders_compiled_model(tmp_path: Path) -> None:
    pmml = pmml_linear(tmp_path / "linear.pmml")
    out = tmp_path / "linear.onnx"
    code, report, err = build("--parent", pmml, "--out", out, "-t", "convert: onnx", "--latency-runs", "0")
    assert code == 0, err
    assert report is not None
    assert out.read_bytes() == compile_pmml(pmml.read_bytes()).SerializeToString(deterministic=True)
    assert report["parent"]["digest"] == digest(pmml)
    code, _, err = build("--parent", pmml, "--out", out, "-t", "prune: {}")
    assert code == 3
    assert "the parent is pmml: start the transforms with convert: onnx" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "name the transforms"),
        (["-t", "quantize: {mode: fast}"], 2, "transforms[0].quantize.mode: 'fast' is not one of dynamic, static"),
        (["-t", "quantize: [unclosed"], 2, "not YAML"),
        (["-t", "prune: {}", "--gate", "{samples: {uri: missing.json}}"], 3, "gate.samples: No such file or directory"),
        (["-t", "prune: {}", "--gate", "{samples: {uri: 's3://b/k'}}"], 3, "modelyard-build reads local files"),
        (["-t", "tensorrtPlan: {}"], 3, "tensorrtPlan: building TensorRT plans needs TensorRT on a GPU node"),
        (["-t", "convert: onnx"], 3, "convert: the parent is ONNX already"),
    ],
)
def test_bad_input_is_refused_with_its_reason(mlp: Path, tmp_path: Path, args: list[str], code: int,
                                              message: str) -> None:  # fmt: skip
    got, report, err = build("--parent", mlp, "--out", tmp_path / "o.onnx", *args, cwd=tmp_path)
    assert (got, report) == (code, None), err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "o.onnx").exists()


def test_a_digest_mismatch_stops_the_build(mlp: Path, tmp_path: Path) -> None:
    gate = samples_file(tmp_path / "gate.json", [np.zeros((1, 256), np.float32)])
    pinned = "sha256:" + "0" * 64
    code, _, err = build("--parent", mlp, "--out", tmp_path / "o.onnx", "-t", "quantize: {}", "--gate",
                         f"{{samples: {{uri: {gate}, digest: '{pinned}'}}}}")  # fmt: skip
    assert code == 3
    assert f"has digest {digest(gate)}, the spec pins {pinned}" in err


def test_push_stores_a_model_the_loader_fetches_back_by_digest(mlp: Path, tmp_path: Path) -> None:
    """``--push`` to a real registry (Debian's docker-registry, basic auth): the loader's ``oci://`` fetch of the
    reported reference publishes exactly the derived model, and the termination summary carries the numbers."""
    from support.loader import run_loader
    from support.registry import registry

    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "username").write_text("builder")
    (creds / "password").write_text("s3cret")
    out, summary = tmp_path / "int8.onnx", tmp_path / "termination-log"
    net = ("--allow-hosts", "127.0.0.1", "--oci-plain-http")
    with registry(tmp_path / "registry", auth=("builder", "s3cret")) as reg:
        target = f"oci://{reg.host}/models/fraud:7"
        code, report, err = build("--parent", mlp.parent, "--format", "onnx", "--out", out, "-t", "quantize: {}",
                                  "--latency-runs", "3", "--push", target, "--credentials-dir", creds,
                                  "--termination-log", summary, *net)  # fmt: skip
        assert code == 0, err
        assert report is not None
        pushed = report["pushed"]
        assert pushed["uri"] == f"oci://{reg.host}/models/fraud@{pushed['digest']}"
        assert pushed["tag"] == "7"
        document = json.loads(summary.read_text())
        assert document["ok"] is True
        assert document["pushed"] == pushed
        assert document["derived"] == report["derived"]
        assert document["latency"]["ratio"] > 0
        fetched = tmp_path / "fetched"
        proc = run_loader("fetch", "--uri", pushed["uri"], "--dest", str(fetched), "--credentials-dir", str(creds),
                          *net)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert (fetched / "int8.onnx").read_bytes() == out.read_bytes()
        # without credentials the registry refuses the push, and the build says so (exit 4, PushFailed)
        code, _, err = build("--parent", mlp, "--out", tmp_path / "again.onnx", "-t", "quantize: {}",
                             "--latency-runs", "0", "--push", target, "--termination-log", summary, *net)  # fmt: skip
        assert code == 4
        assert json.loads(summary.read_text())["reason"] == "PushFailed"


def test_the_termination_summary_is_small_and_has_the_numbers(mlp: Path, tmp_path: Path) -> None:
    summary = tmp_path / "termination-log"
    code, _, err = build("--parent", mlp, "--out", tmp_path / "p.onnx", "-t", "prune: {sparsity: 0.95}",
                              "--gate", "{maxAbsDiff: 0.001}", "--latency-runs", "0",
                              "--termination-log", summary)  # fmt: skip
    assert code == 1, err
    text = summary.read_text()
    assert len(text.encode()) <= 4096
    document = json.loads(text)
    assert document["ok"] is False
    assert document["reason"] == "GateFailed"
    assert document["gate"]["passed"] is False
    assert document["gate"]["maxAbsDiff"] > 0.001
    assert document["achievedSparsity"] >= 0.9
    assert document["parent"]["digest"] == digest(mlp)
