"""schemathesis against the OpenAPI document the server serves (``GET /v2/openapi.json``), with every check: no 5xx,
every status code and body as documented, schema-violating requests refused, schema-valid ones accepted."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson

from ..serving import Server
from .conftest import rss_bytes

MAX_EXAMPLES = 60  # per operation and phase: about 1,750 requests, ~35 s on a 2-core machine
# Fixed path parameters, so that requests reach a loaded model (random names only ever meet the 404 path). An inference
# request valid against the document need not fit the model's signature (the document describes every model), so for
# those operations a 400 counts as accepting schema-valid data too (TF Serving's :predict likewise). TF Serving's
# :classify, :regress and version labels are documented as refused (400) for every request.
CONFIG = """
[parameters]
"path.model" = "calc"
"path.version" = "1"

[[operations]]
include-path-regex = "(/infer|:predict)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]

[[operations]]
include-path-regex = "(:classify|:regress|/labels/[{]label[}])$"
checks.positive_data_acceptance.expected-statuses = ["400"]
"""


def test_document_is_served_and_describes_the_protocol(fuzz_server: Server) -> None:
    with urllib.request.urlopen(f"http://{fuzz_server.http}/v2/openapi.json", timeout=10) as response:
        doc = orjson.loads(response.read())
    assert doc["openapi"].startswith("3.0")
    assert {"/v2/health/ready", "/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer",
            "/v2/repository/index", "/v2/models/{model}/config", "/v1/models/{model}", "/v1/models/{model}:predict",
            "/v1/models/{model}/versions/{version}/metadata"} <= set(doc["paths"])  # fmt: skip
    infer = doc["paths"]["/v2/models/{model}/infer"]["post"]
    assert {"200", "400", "404", "413", "429", "503"} <= set(infer["responses"])
    output = doc["components"]["schemas"]["RequestOutput"]["properties"]["parameters"]["properties"]
    assert output["classification"]["minimum"] == 0


def test_schemathesis_all_checks_pass(fuzz_server: Server, tmp_path: Path) -> None:
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    st = [sys.executable, "-m", "schemathesis.cli"]  # not the console script, whose shebang may name another venv
    before = rss_bytes(fuzz_server.proc.pid)
    out = subprocess.run(
        [*st, "run", f"http://{fuzz_server.http}/v2/openapi.json", "--checks", "all",
         "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--workers", "1", "--no-color", "--request-timeout", "10"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    after = rss_bytes(fuzz_server.proc.pid)
    cases = re.search(r"(\d+) generated, (\d+) passed", out.stdout)
    print(f"\nschemathesis: {cases.group(0) if cases else out.stdout[-300:]}; server RSS {before / 2**20:.1f} MiB -> "
          f"{after / 2**20:.1f} MiB")  # fmt: skip
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert cases is not None, out.stdout[-3000:]
    assert int(cases.group(1)) == int(cases.group(2)) >= 500
    assert after <= before * 1.10 + 8 * 2**20  # bounded: no growth with the number of requests
