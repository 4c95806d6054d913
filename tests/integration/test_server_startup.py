"""Static mode's start-up order, on real ONNX Runtime sessions: the preload thread imports the engine and starts the
first session before the main thread imports the web stack, signals that even when nothing opens, and the web stack's
aiohttp is imported without reading the CA bundle for a client the server never uses, failing closed."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from modelyard_runtime.server.preload import Preload
from modelyard_runtime.server.webstack import no_ca_bundle

from ..models import binary_op, failing_model
from ..serving import run_server


def test_the_engine_is_imported_and_the_first_session_opening_before_the_signal(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "add" / "1" / "model.onnx")
    binary_op(repo / "add" / "2" / "model.onnx")
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from modelyard_runtime.server.preload import Preload\n"
        f"p = Preload(Path({str(repo)!r}), None).start()\n"
        "assert p.opening.wait(60)\n"
        "print('onnxruntime' in sys.modules, 'aiohttp' in sys.modules)\n"
        "backend, seconds, grown = p.take('add', '1').result(60)\n"
        "print(sorted(t.name for t in backend.inputs), p.take('add', '2').result(60)[0] is not backend)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["True", "False", "['A',", "'B']", "True"]


def test_nothing_to_open_and_a_failing_version_still_signal(tmp_path: Path) -> None:
    empty = Preload(tmp_path / "none", None).start()
    assert empty.opening.wait(30)
    assert empty.take("add", "1") is None

    repo = tmp_path / "repo"
    failing_model(repo / "bad" / "1" / "model.onnx")
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "1" / "model.onnx").write_bytes(b"not an onnx file")
    failing = Preload(repo, None).start()
    assert failing.opening.wait(30)
    future = failing.take("broken", "1")
    assert future is not None
    with pytest.raises(Exception, match=r"(?i)protobuf|parse|load|invalid"):
        future.result(30)


def test_aiohttp_imported_for_the_server_reads_no_ca_bundle_and_fails_closed() -> None:
    code = (
        "import ssl, time\n"
        "from modelyard_runtime.server.webstack import import_aiohttp\n"
        "import_aiohttp()\n"
        "import aiohttp.connector as c\n"
        "v, u = c._SSL_CONTEXT_VERIFIED, c._SSL_CONTEXT_UNVERIFIED\n"
        "print(v.verify_mode == ssl.CERT_REQUIRED, v.check_hostname, v.cert_store_stats()['x509_ca'])\n"
        "print(ssl.create_default_context().cert_store_stats()['x509_ca'] > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    # aiohttp's verifying context trusts no CA (a client connection through it fails verification); the standard
    # library's is untouched afterwards
    assert out.split() == ["True", "True", "0", "True"]


def test_the_ca_bundle_is_skipped_only_inside_and_restored_after_an_error() -> None:
    original = ssl.SSLContext.set_default_verify_paths
    seen: list[ssl.SSLContext] = []

    def fail_inside() -> None:
        with no_ca_bundle():
            seen.append(ssl.create_default_context())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside()
    assert seen[0].cert_store_stats()["x509_ca"] == 0
    assert seen[0].verify_mode == ssl.CERT_REQUIRED
    assert ssl.SSLContext.set_default_verify_paths is original
    assert ssl.create_default_context().cert_store_stats()["x509_ca"] > 0


def test_the_server_starts_and_answers_with_the_reordered_start_up(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    binary_op(repo / "add" / "1" / "model.onnx")
    started = time.monotonic()
    with run_server(repo) as server:
        client = httpclient.InferenceServerClient(server.http)
        a = np.ones((1, 4), np.float32)
        inputs = []
        for name in ("A", "B"):
            i = httpclient.InferInput(name, [1, 4], "FP32")
            i.set_data_from_numpy(a)
            inputs.append(i)
        result = client.infer("add", inputs).as_numpy("OUT0")
        assert client.get_server_metadata()["version"]  # read on first use, not at import
    assert result.tolist() == [[2.0, 2.0, 2.0, 2.0]]
    assert time.monotonic() - started < 60
