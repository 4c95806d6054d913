"""The server's view of its model repository: which file serves each ``<model>/<version>`` folder."""

from __future__ import annotations

from pathlib import Path

from modelyard_runtime.server.core import scan_repository


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_model_onnx_and_model_plan_are_found(tmp_path: Path) -> None:
    onnx = touch(tmp_path / "a" / "1" / "model.onnx")
    plan = touch(tmp_path / "b" / "7" / "model.plan")
    assert scan_repository(tmp_path) == {"a": {"1": onnx}, "b": {"7": plan}}


def test_a_single_onnx_file_under_another_name_is_served(tmp_path: Path) -> None:
    """What the loader publishes for ``http://host/adder-v1.onnx``; the validator accepted it too."""
    onnx = touch(tmp_path / "adder" / "1" / "adder-v1.onnx")
    touch(tmp_path / "adder" / "1" / "README")
    assert scan_repository(tmp_path) == {"adder": {"1": onnx}}


def test_model_onnx_wins_over_other_onnx_files(tmp_path: Path) -> None:
    named = touch(tmp_path / "m" / "1" / "model.onnx")
    touch(tmp_path / "m" / "1" / "other.onnx")
    assert scan_repository(tmp_path) == {"m": {"1": named}}


def test_several_onnx_files_none_named_model_onnx_is_no_model(tmp_path: Path) -> None:
    touch(tmp_path / "m" / "1" / "first.onnx")
    touch(tmp_path / "m" / "1" / "second.onnx")
    touch(tmp_path / "m" / "2" / ".hidden.onnx")
    assert scan_repository(tmp_path) == {}


def test_an_archive_layout_is_served_as_the_validator_loads_it(tmp_path: Path) -> None:
    """An archive extracted as it was packed: ``model.onnx`` nearest the top, or the only ``.onnx`` below."""
    nested = touch(tmp_path / "m" / "1" / "export" / "model.onnx")
    touch(tmp_path / "m" / "1" / "export" / "deeper" / "model.onnx")
    lone = touch(tmp_path / "n" / "1" / "bundle" / "net.onnx")
    touch(tmp_path / "n" / "1" / "bundle" / "weights.bin")
    touch(tmp_path / "o" / "1" / "a" / "x.onnx")
    touch(tmp_path / "o" / "1" / "b" / "y.onnx")  # two candidates, none named model.onnx: the validator refuses too
    touch(tmp_path / "p" / "1" / ".cache" / "model.onnx")  # hidden folders never count
    assert scan_repository(tmp_path) == {"m": {"1": nested}, "n": {"1": lone}}
