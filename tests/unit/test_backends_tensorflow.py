"""The tensorflow backend's pure parts: TensorFlow is imported only when a tensorflow version loads, dtypes map
to the protocol's datatypes, and TensorFlow's messages lose their graph node names. (The backend itself runs
against TensorFlow in tests/integration/test_tensorflow_backend.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelyard_runtime.backends import BackendUnavailableError, load_backend, parse_backend_options
from modelyard_runtime.backends.tensorflow import clean_message, datatype, saved_model_dir

REPO = Path(__file__).resolve().parents[2]


def test_the_server_and_the_loader_do_not_import_tensorflow() -> None:
    code = (
        "import sys\n"
        "import modelyard_runtime.server.app, modelyard_runtime.server.cli, modelyard_runtime.server.core\n"
        "import modelyard_runtime.loader.cli, modelyard_runtime.loader.validate, modelyard_runtime.backends\n"
        "import modelyard_runtime.backends.onnx, modelyard_runtime.backends.tensorflow\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_a_missing_tensorflow_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # what `import tensorflow` does where it is not installed
    pb = tmp_path / "m" / "1" / "model.savedmodel" / "saved_model.pb"
    with pytest.raises(BackendUnavailableError, match="needs the Python package tensorflow-cpu"):
        load_backend(pb, parse_backend_options(None, model_file=pb))


@pytest.mark.parametrize(
    ("name", "expected"),
    [("float32", "FP32"), ("float64", "FP64"), ("float16", "FP16"), ("int32", "INT32"), ("int64", "INT64"),
     ("uint8", "UINT8"), ("int8", "INT8"), ("bool", "BOOL"), ("string", "BYTES")],
)  # fmt: skip
def test_tensorflow_dtypes_map_to_protocol_datatypes(name: str, expected: str) -> None:
    assert datatype(name, "input x") == expected


def test_a_dtype_the_protocol_cannot_carry_is_named() -> None:
    with pytest.raises(ValueError, match="input x has TensorFlow dtype bfloat16"):
        datatype("bfloat16", "input x")


def test_tensorflow_messages_lose_node_and_op_names() -> None:
    raw = (
        "Graph execution error:\n\nDetected at node sequential_1/dense_1/MatMul defined at (most recent call last):\n"
        "<stack traces unavailable>\nMatrix size-incompatible: In[0]: [2,5], In[1]: [4,3]\n"
        "\t [[{{node sequential_1/dense_1/MatMul}}]] [Op:__inference_signature_wrapper_123]"
    )
    assert clean_message(raw) == "Matrix size-incompatible: In[0]: [2,5], In[1]: [4,3]"


def test_the_savedmodel_folder_is_the_one_holding_saved_model_pb() -> None:
    assert saved_model_dir(Path("/m/1/model.savedmodel/saved_model.pb")) == Path("/m/1/model.savedmodel")
    assert saved_model_dir(Path("/m/1")) == Path("/m/1")
