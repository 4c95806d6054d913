"""A version's own backend and warm-up (``--version-config``), warm-up samples and the choice of a TensorRT plan
(pure parts of the runtime)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from modelyard_runtime.backends import TensorMeta
from modelyard_runtime.config import parse_server_args
from modelyard_runtime.modelconfig import (
    ModelConfig,
    ModelConfigError,
    overlay_version_config,
    parse_model_config,
    parse_version_config,
)
from modelyard_runtime.modelfile import ModelFileError, choose_model, choose_plan
from modelyard_runtime.server.cli import failure_reason
from modelyard_runtime.server.opening import load_samples
from modelyard_runtime.server.versions import LoadError


def test_warmup_samples_parse_and_the_version_overlays_the_model() -> None:
    model = parse_model_config({"warmup": {"runs": 2}, "max_batch_size": 8, "backend": {"providers": ["cuda", "cpu"]}})
    own = parse_version_config({"backend": {"providers": ["cpu"]}, "warmup": {"runs": 0, "samples": "/s"}})
    merged = overlay_version_config(model, own)
    assert merged.backend == {"providers": ["cpu"]}
    assert (merged.warmup_runs, merged.warmup_samples) == (0, "/s")
    assert merged.max_batch_size == 8  # what the version does not set stays the model's
    only_warmup = overlay_version_config(model, {"warmup": {"runs": 5}})
    assert only_warmup.backend == {"providers": ["cuda", "cpu"]}
    assert only_warmup.warmup_samples is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"version_weights": {"1": 1}}, r"unknown key\(s\) in version config: version_weights"),
        ({"warmup": {"samples": 3}}, "warmup.samples must be a path"),
        ({"warmup": {"runs": -1}}, "warmup.runs must be an integer >= 0"),
        ([], "version config must be a mapping"),
    ],
)
def test_version_config_errors_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        parse_version_config(raw)


def test_the_server_flag_is_per_version_and_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.dumps({"backend": {"kind": "onnxruntime", "providers": ["CPUExecutionProvider"]}})
    config = parse_server_args(["--model-repository", str(tmp_path), "--version-config", f"calc:2={document}",
                                "--termination-log", "/dev/termination-log"])  # fmt: skip
    assert config.version_configs == {("calc", "2"): json.loads(document)}
    assert config.termination_log == Path("/dev/termination-log")
    for bad in ("calc={}", "calc:2=not json", 'calc:2={"version_weights": {"2": 100}}'):
        with pytest.raises(SystemExit):
            parse_server_args(["--model-repository", str(tmp_path), "--version-config", bad])
    assert "--version-config" in capsys.readouterr().err


class Adder:
    inputs: ClassVar[list[TensorMeta]] = [TensorMeta("A", "FP32", [-1, 4]), TensorMeta("B", "FP32", [-1, 4])]


def sample(a: list[list[float]], names: tuple[str, str] = ("A", "B")) -> dict[str, object]:
    shape = [len(a), 4]
    return {"inputs": [{"name": n, "datatype": "FP32", "shape": shape, "data": a} for n in names]}


def test_samples_are_request_bodies_or_lists_of_them_in_a_file_or_a_folder(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps(sample([[1, 2, 3, 4]])))
    (loaded,) = load_samples(one, Adder())  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded["A"], np.array([[1, 2, 3, 4]], dtype=np.float32))
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "warmup.json").write_text(json.dumps({"requests": [sample([[1, 2, 3, 4]]), sample([[0] * 4] * 3)]}))
    assert [s["B"].shape for s in load_samples(folder, Adder())] == [(1, 4), (3, 4)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (sample([[1, 2, 3, 4]], ("A", "C")), r"has inputs \['A', 'C'\], the model takes \['A', 'B'\]"),
        ({"inputs": [{"name": "A", "datatype": "FP32", "shape": [1, 4], "data": [1, 2]}]}, "input 'A'"),
        ([], "holds no request"),
        ({"outputs": []}, "expected an object with an inputs list"),
    ],
)
def test_bad_samples_are_errors_naming_the_sample(tmp_path: Path, document: object, message: str) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message):
        load_samples(path, Adder())  # type: ignore[arg-type]


def test_tensorrt_plans_are_chosen_like_onnx_models() -> None:
    assert choose_plan(["resnet.plan", "README.md"]) == "resnet.plan"
    assert choose_plan(["a.engine", "sub/model.plan"]) == "sub/model.plan"
    with pytest.raises(ModelFileError, match="holds no TensorRT plan"):
        choose_plan(["model.onnx"])
    with pytest.raises(ModelFileError, match=r"holds no \.onnx model"):
        choose_model(["model.plan"], "onnx")
    with pytest.raises(ModelFileError, match="format caffe cannot be served yet"):
        choose_model(["model.caffemodel"], "caffe")


def test_savedmodels_are_chosen_by_their_saved_model_pb() -> None:
    assert choose_model(["saved_model.pb", "variables/variables.index"], "savedmodel") == "saved_model.pb"
    files = ["a/saved_model.pb", "model.savedmodel/saved_model.pb", "model.savedmodel/variables/variables.index"]
    assert choose_model(files, "savedmodel") == "model.savedmodel/saved_model.pb"
    assert choose_model(["x/export/saved_model.pb"], "savedmodel") == "x/export/saved_model.pb"
    with pytest.raises(ModelFileError, match=r"several SavedModels and none in a folder named model\.savedmodel"):
        choose_model(["a/saved_model.pb", "b/saved_model.pb"], "savedmodel")
    with pytest.raises(ModelFileError, match="holds no SavedModel"):
        choose_model(["model.onnx", "graph.pb", ".hidden/saved_model.pb"], "savedmodel")


def test_failure_reasons_of_a_server_that_cannot_start() -> None:
    from modelyard_runtime.backends import BackendUnavailableError

    load_error = LoadError("cannot load calc version 1: ...")
    load_error.__cause__ = BackendUnavailableError("execution provider not available: CUDAExecutionProvider")
    assert failure_reason(load_error) == "ExecutionProviderUnavailable"
    assert failure_reason(LoadError("cannot load calc version 1: bad model")) == "ModelLoadFailed"
    assert failure_reason(RuntimeError("cannot listen")) == "ServerFailed"
    assert ModelConfig().warmup_samples is None


def test_a_versions_preferred_batch_sizes_overlay_the_models() -> None:
    from modelyard_runtime.modelconfig import overlay_version_config, parse_model_config, parse_version_config

    model = parse_model_config({"max_batch_size": 16, "dynamic_batching": {"max_queue_delay_ms": 1}})
    own = parse_version_config({"dynamic_batching": {"preferred_batch_size": [8, 4, 8]}})
    merged = overlay_version_config(model, own)
    assert merged.preferred_batch_sizes == (4, 8)
    assert merged.max_queue_delay_ms == 1.0  # not set by the version: the model's stays
    assert overlay_version_config(model, {"warmup": {"runs": 0}}).preferred_batch_sizes == ()
