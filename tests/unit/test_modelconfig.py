"""config.yaml parsing and the weighted version picker."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from modelyard_runtime.modelconfig import (
    ModelConfig,
    ModelConfigError,
    WeightedPicker,
    parse_model_config,
    read_model_config,
)


def test_empty_config_gives_defaults() -> None:
    assert parse_model_config(None) == ModelConfig()
    assert parse_model_config({}) == ModelConfig()
    assert ModelConfig().warmup_runs == 1


def test_full_config() -> None:
    config = parse_model_config(
        {
            "max_batch_size": 32,
            "dynamic_batching": {"max_queue_delay_ms": 2, "preferred_batch_size": [16, 4, 16]},
            "warmup": {"runs": 3},
            "version_weights": {1: 90, "2": 10},
            "backend": {"providers": ["cpu"]},
        }
    )
    assert config == ModelConfig(
        max_batch_size=32,
        max_queue_delay_ms=2.0,
        preferred_batch_sizes=(4, 16),
        warmup_runs=3,
        version_weights={"1": 90, "2": 10},
        backend={"providers": ["cpu"]},
    )
    assert parse_model_config({"warmup": False}).warmup_runs == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"max_batch_sise": 4}, "unknown key(s) in config.yaml: max_batch_sise"),
        ({"max_batch_size": -1}, "max_batch_size must be an integer >= 0"),
        ({"max_batch_size": True}, "max_batch_size must be an integer"),
        ({"dynamic_batching": {"max_queue_delay_ms": -1}}, "max_queue_delay_ms must be a number >= 0"),
        ({"dynamic_batching": {"delay": 1}}, "unknown key(s) in dynamic_batching: delay"),
        ({"dynamic_batching": {"preferred_batch_size": 4}}, "preferred_batch_size must be a list of integers"),
        ({"dynamic_batching": {"preferred_batch_size": [4, 0]}}, "preferred_batch_size must be an integer >= 1"),
        (
            {"max_batch_size": 8, "dynamic_batching": {"preferred_batch_size": [4, 16]}},
            "preferred_batch_size [4, 16]: every size must be at most max_batch_size (8)",
        ),
        ({"warmup": {"runs": "many"}}, "warmup.runs must be an integer"),
        ({"version_weights": ["1", "2"]}, "version_weights must be a mapping"),
        ({"version_weights": {"1": -5}}, "version_weights[1] must be an integer >= 0"),
        ({"version_weights": {"1": 0, "2": 0}}, "at least one version needs a weight above 0"),
        ({"backend": "onnx"}, "backend must be a mapping"),
        (["max_batch_size"], "config.yaml must be a mapping"),
    ],
)
def test_errors_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ModelConfigError) as exc:
        parse_model_config(raw)
    assert message in str(exc.value)


def test_read_names_the_file(tmp_path: Path) -> None:
    assert read_model_config(tmp_path) == ModelConfig()
    (tmp_path / "config.yaml").write_text("max_batch_size: [\n")
    with pytest.raises(ModelConfigError, match=r"config\.yaml: not valid YAML"):
        read_model_config(tmp_path)
    (tmp_path / "config.yaml").write_text("max_batch_size: 8\n")
    assert read_model_config(tmp_path).max_batch_size == 8


YAML_PROBE = """
import sys
from pathlib import Path
from modelyard_runtime.modelconfig import read_model_config
folder = Path(sys.argv[1])
read_model_config(folder)
print("yaml" in sys.modules)
(folder / "config.yaml").write_text("max_batch_size: 4\\n")
size = read_model_config(folder).max_batch_size
print("yaml" in sys.modules, size)
"""


def test_yaml_is_imported_only_when_a_config_file_is_there(tmp_path: Path) -> None:
    """A model without config.yaml opens without importing PyYAML (~15 ms of static mode's start, before its
    session; benchmarks/RESULTS.md, time to ready)."""
    out = subprocess.run([sys.executable, "-c", YAML_PROBE, str(tmp_path)], capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    assert out.stdout.split() == ["False", "True", "4"]


@pytest.mark.parametrize(
    "weights",
    [{"1": 90, "2": 10}, {"1": 1, "2": 1}, {"1": 0, "2": 100}, {"a": 3, "b": 2, "c": 5}],
)
def test_picker_follows_the_weights_exactly_over_a_cycle(weights: dict[str, int]) -> None:
    picker = WeightedPicker(weights)
    total = sum(weights.values())
    counts = Counter(picker.pick() for _ in range(total * 3))
    assert counts == Counter({v: 3 * w for v, w in weights.items() if w})


def test_picker_interleaves_instead_of_bursting() -> None:
    picker = WeightedPicker({"1": 50, "2": 50})
    assert [picker.pick() for _ in range(6)] in (["1", "2"] * 3, ["2", "1"] * 3)


def test_a_later_folder_overrides_top_level_keys(tmp_path: Path) -> None:
    repo, overlay = tmp_path / "repo", tmp_path / "overlay"
    repo.mkdir()
    overlay.mkdir()
    (repo / "config.yaml").write_text('max_batch_size: 8\nversion_weights: {"1": 100}\n')
    (overlay / "config.yaml").write_text('version_weights: {"1": 50, "2": 50}\n')
    config = read_model_config(repo, overlay)
    assert config.max_batch_size == 8
    assert config.version_weights == {"1": 50, "2": 50}
    assert read_model_config(repo, tmp_path / "missing").version_weights == {"1": 100}
    (overlay / "config.yaml").write_text("max_batch_sise: 1\n")
    with pytest.raises(ModelConfigError, match=r"overlay/config\.yaml: unknown key"):
        read_model_config(repo, overlay)


def test_input_formats_and_label_files() -> None:
    config = parse_model_config(
        {"inputs": {"image": {"format": "FORMAT_NHWC"}}, "outputs": {"probs": {"label_filename": "labels.txt"}}}
    )
    assert config.input_formats == {"image": "FORMAT_NHWC"}
    assert config.label_files == {"probs": "labels.txt"}


@pytest.mark.parametrize(
    ("raw", "match"),
    [({"inputs": {"image": {"format": "NHWC"}}}, "format must be one of FORMAT_NONE, FORMAT_NHWC, FORMAT_NCHW"),
     ({"inputs": {"image": {"layout": "x"}}}, r"unknown key\(s\) in inputs.image: layout"),
     ({"inputs": ["image"]}, "inputs must be a mapping of tensor name"),
     ({"outputs": {"probs": {"label_filename": "../labels.txt"}}}, "must be a file name"),
     ({"outputs": {"probs": {"label_filename": 3}}}, "must be a file name")],
)  # fmt: skip
def test_tensor_settings_errors(raw: dict[str, object], match: str) -> None:
    with pytest.raises(ModelConfigError, match=match):
        parse_model_config(raw)


def test_shadow_settings_and_their_refusals() -> None:
    from modelyard_runtime.modelconfig import ShadowConfig

    config = parse_model_config({"version_weights": {"1": 100, "2": 0}, "shadow": {"version": 2, "percent": 25}})
    assert config.shadow == ShadowConfig(version="2", percent=25.0, compare="values", max_abs_diff=1e-3)
    top1 = parse_model_config({"shadow": {"version": "7", "compare": "top1", "max_abs_diff": 0}}).shadow
    assert top1 == ShadowConfig("7", 100.0, "top1", 0.0)
    for raw, message in [
        ({"shadow": {"percent": 5}}, "shadow.version must name a version"),
        ({"shadow": {"version": True}}, "shadow.version must name a version"),
        ({"shadow": {"version": "2", "percent": 101}}, "shadow.percent must be a number from 0 to 100"),
        ({"shadow": {"version": "2", "compare": "top5"}}, "shadow.compare must be values or top1"),
        ({"shadow": {"version": "2", "max_abs_diff": -1}}, "shadow.max_abs_diff must be a number"),
        ({"shadow": {"version": "2", "copies": 1}}, "unknown key(s) in shadow: copies"),
        ({"shadow": {"version": "2"}, "version_weights": {"1": 50, "2": 50}}, "a shadowed version takes no user"),
    ]:
        with pytest.raises(ModelConfigError, match=re.escape(message)):
            parse_model_config(raw)


def test_shadow_judgement() -> None:
    import numpy as np

    from modelyard_runtime.build.compare import Agreement
    from modelyard_runtime.modelconfig import ShadowConfig
    from modelyard_runtime.server.shadow import judge

    scores = np.array([[0.1, 0.9], [0.6, 0.4]], np.float32)
    close = Agreement()
    close.add({"p": scores}, {"p": scores + 0.05})  # same classes, values 0.05 apart
    assert judge(close, ShadowConfig("2", compare="top1")) == "agree"
    assert judge(close, ShadowConfig("2", compare="values", max_abs_diff=0.01)) == "disagree"
    assert judge(close, ShadowConfig("2", compare="values", max_abs_diff=0.1)) == "agree"
    flipped = Agreement()
    flipped.add({"p": scores}, {"p": scores[:, ::-1]})
    assert judge(flipped, ShadowConfig("2", compare="top1")) == "disagree"
