"""A compiled PMML model with string inputs, served by modelyard-server: tritonclient sends each string field as
BYTES (the empty string for a missing value) over HTTP and gRPC, and the answers equal jpmml_evaluator's on the same
rows, unseen categories and invalid rows included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from sklearn2pmml import sklearn2pmml
from sklearn2pmml.pipeline import PMMLPipeline

from modelyard_runtime.pmml import compile_pmml

from ..serving import run_server
from .test_pmml_reference import reference_scores
from .test_pmml_reference_inputs import CASES, NUMBERS, frame

pytestmark = pytest.mark.timeout(300)


def infer(module: Any, url: str, rows: pd.DataFrame, strings: dict[str, bool], outputs: list[str]) -> dict[str, Any]:
    client = module.InferenceServerClient(url)
    inputs = []
    for name, string in strings.items():
        if string:
            data = np.array([("" if pd.isna(v) else str(v)).encode() for v in rows[name]], dtype=np.object_)
            tensor = module.InferInput(name, [len(rows)], "BYTES")
        else:
            data = rows[name].to_numpy(np.float64)
            tensor = module.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    result = client.infer("scorer", inputs, outputs=[module.InferRequestedOutput(o) for o in outputs])
    return {o: result.as_numpy(o) for o in outputs}


def test_string_inputs_are_served_as_bytes_and_answer_like_the_reference(tmp_path: Path) -> None:
    steps, target = CASES["domains-as-missing-return-invalid-forest"]
    train = frame(0, 400, unseen=False)
    pipeline = PMMLPipeline(steps())
    pipeline.fit(train[["color", "shape", "grade", *NUMBERS]], target(train))
    pmml = tmp_path / "model.pmml"
    sklearn2pmml(pipeline, str(pmml))
    model = compile_pmml(pmml.read_bytes())
    repo = tmp_path / "repo"
    (repo / "scorer" / "1").mkdir(parents=True)
    (repo / "scorer" / "1" / "model.onnx").write_bytes(model.SerializeToString())
    strings = {i.name: i.type.tensor_type.elem_type == 8 for i in model.graph.input}  # 8: STRING
    assert strings["color"]
    assert strings["shape"]
    assert not strings["x1"]
    names = list(strings)
    outputs = [o.name for o in model.graph.output]
    rows = frame(1, 64, unseen=True)
    reference = reference_scores(pmml, rows[names])
    assert reference["errors"].notna().any()
    assert rows.color.isna().any()
    with run_server(repo) as server:
        for module, url in ((httpclient, server.http), (grpcclient, server.grpc)):
            got = infer(module, url, rows, strings, outputs)
            label = np.array([v.decode() for v in got["y"]])
            want = np.array(["" if not isinstance(w, str) else w for w in reference["y"]])
            assert (label == want).all(), f"{module.__name__}: {label[label != want][:5]}"
            for o in outputs[1:]:
                ref = reference[o].to_numpy(np.float64)
                assert (np.isnan(got[o]) == np.isnan(ref)).all()
                assert np.nanmax(np.abs(got[o] - ref)) <= 1e-5
