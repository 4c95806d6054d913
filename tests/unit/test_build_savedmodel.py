"""The pure parts of a SavedModel's conversion: which folder is the SavedModel, and tf2onnx's failures in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard_runtime.build.savedmodel import failure_reason, savedmodel_folder


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_the_savedmodel_folder_follows_the_loaders_rule(tmp_path: Path) -> None:
    own = tmp_path / "own"
    touch(own / "saved_model.pb")
    assert savedmodel_folder(own) == own
    assert savedmodel_folder(own / "saved_model.pb") == own
    published = tmp_path / "published"
    touch(published / "export" / "model.savedmodel" / "saved_model.pb")
    touch(published / "other" / "saved_model.pb")
    assert savedmodel_folder(published) == published / "export" / "model.savedmodel"
    with pytest.raises(ValueError, match="holds no SavedModel"):
        savedmodel_folder(touch(tmp_path / "empty" / "model.onnx").parent)
    with pytest.raises(ValueError, match="a SavedModel is a folder"):
        savedmodel_folder(touch(tmp_path / "model.onnx"))


def test_tf2onnx_failures_are_said_in_its_own_words() -> None:
    stderr = (
        "2026-12-06 12:00:00,000 - INFO - Using opset <onnx, 17>\n"
        "2026-12-06 12:00:00,001 - ERROR - Tensorflow op [a/B: B] is not supported\n"
        'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        "ValueError: StridedSlice: only strides of 1 are supported\n"
    )
    reason = failure_reason(stderr, 1)
    assert reason.startswith("tf2onnx could not convert the SavedModel: ")
    assert "Tensorflow op [a/B: B] is not supported" in reason
    assert "ValueError: StridedSlice: only strides of 1 are supported" in reason
    assert "Traceback" not in reason
    assert failure_reason("something odd\nthe last line\n", 2).endswith(": the last line")
    assert failure_reason("", 9).endswith(": exit status 9")
    assert "pip install tf2onnx" in failure_reason("/usr/bin/python3: No module named tf2onnx\n", 1)
    assert len(failure_reason("E: " + "x" * 5000, 1)) <= 600
