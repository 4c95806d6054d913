"""The server's view of its model repository: which file serves each ``<model>/<version>`` folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelyard_runtime.loader.errors import ValidationError
from modelyard_runtime.loader.validate import find_onnx
from modelyard_runtime.modelfile import ModelFileError, choose_onnx
from modelyard_runtime.server.repository import scan_repository


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


@pytest.mark.parametrize(
    ("files", "chosen"),
    [
        (["model.onnx"], "model.onnx"),
        (["Model.ONNX"], "Model.ONNX"),  # the suffix in any case
        (["README", "net.Onnx", "weights.bin"], "net.Onnx"),
        (["a/b/model.onnx", "a/model.onnx", "other.onnx"], "a/model.onnx"),  # model.onnx nearest the top wins
        (["b/model.onnx", "a/model.onnx"], "a/model.onnx"),  # same depth: by path
        (["x.onnx", ".cache/model.onnx", "d/.old/y.onnx"], "x.onnx"),  # hidden folders never count
        (["x.onnx", ".y.onnx"], "x.onnx"),  # nor hidden files
    ],
)
def test_the_model_file_rule(files: list[str], chosen: str) -> None:
    assert choose_onnx(files) == chosen


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([], "holds no .onnx model"),
        (["README", "model.onnx.bak"], "holds no .onnx model"),
        ([".cache/model.onnx"], "holds no .onnx model"),
        (["a/x.onnx", "b/Y.ONNX"], "several .onnx files and none named model.onnx: a/x.onnx, b/Y.ONNX"),
    ],
)
def test_no_model_file_says_why(files: list[str], message: str) -> None:
    with pytest.raises(ModelFileError, match=re.escape(message)):
        choose_onnx(files)


def test_validator_and_server_agree_on_an_upper_case_suffix(tmp_path: Path) -> None:
    """A ``Model.ONNX``-only artifact is validated and served from the same file."""
    version = tmp_path / "m" / "1"
    onnx = touch(version / "Model.ONNX")
    touch(version / ".cache" / "model.onnx")
    assert find_onnx(version, ["Model.ONNX", ".cache/model.onnx"]) == onnx
    assert scan_repository(tmp_path) == {"m": {"1": onnx}}


def test_validator_and_server_both_refuse_several_candidates(tmp_path: Path) -> None:
    version = tmp_path / "m" / "1"
    touch(version / "a.ONNX")
    touch(version / "b.onnx")
    with pytest.raises(ValidationError, match=r"several \.onnx files"):
        find_onnx(version, ["a.ONNX", "b.onnx"])
    assert scan_repository(tmp_path) == {}
