"""``hack/lock.py check``: the image locks against pyproject.toml, offline (the resolution itself is ``make lock``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import lock


def test_the_committed_locks_satisfy_pyproject() -> None:
    assert lock.check() == 0
    pins = lock.read(lock.LOCKS / "runtime.txt")
    assert "onnxruntime" in pins
    assert "onnxruntime-gpu" not in pins  # the CPU image's set
    assert "onnxruntime-gpu" in lock.read(lock.LOCKS / "runtime-gpu.txt")
    assert "kopf" in lock.read(lock.LOCKS / "operator.txt")


def test_a_pin_outside_the_range_or_a_missing_package_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in lock.SETS:
        text = (lock.LOCKS / f"{name}.txt").read_text()
        if name == "operator":
            text = "\n".join(line for line in text.splitlines() if not line.startswith("kopf=="))
            text = text.replace("pyyaml==", "pyyaml==5.4.1 --hash=sha256:" + "0" * 64 + "\n# was pyyaml==")
        (tmp_path / f"{name}.txt").write_text(text)
    monkeypatch.setattr(lock, "LOCKS", tmp_path)
    assert lock.check() == 1
    err = capsys.readouterr().err
    assert "operator: kopf (kopf>=1.38) is not in the lock" in err
    assert "operator: pyyaml==5.4.1 is outside pyyaml>=6" in err


def test_a_line_without_a_hash_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("# a comment\nnumpy==2.1.0\n")
    with pytest.raises(SystemExit, match="not 'name==version --hash=sha256:<hex>'"):
        lock.read(path)
