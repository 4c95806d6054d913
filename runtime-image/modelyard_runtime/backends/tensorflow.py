"""TensorFlow backend: one signature of a SavedModel, loaded with ``tf.saved_model.load`` (tensorflow-cpu).

TensorFlow is imported only when a version of kind ``tensorflow`` loads (the import alone takes seconds and the
package is hundreds of megabytes: it is in the ``runtime-tf`` image only). The model file is the SavedModel's
``saved_model.pb``; its folder is what loads. Inputs and outputs, with their datatypes and shapes (-1 where a
dimension is unknown), come from the chosen signature (``serving_default`` unless the config names another).

Errors while running: TensorFlow's InvalidArgumentError (a shape or value the graph refuses) and a failure to bind
the inputs to the signature are the client's (BadRequestError, 400); anything else propagates and the data plane
answers 500 with the reason, scrubbed of TensorFlow's node and op names.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard_runtime.backends import BackendUnavailableError, TensorMeta
from modelyard_runtime.backends.options import BackendOptions
from modelyard_runtime.errors import BadRequestError, UnavailableError, public_message

log = logging.getLogger(__name__)

SAVED_MODEL_PB = "saved_model.pb"
# tf.DType.name → Open Inference Protocol datatype (bfloat16, complex, resource and variant tensors have none)
DATATYPES = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64", "string": "BYTES",
}  # fmt: skip
# what TensorFlow adds to its messages that names graph internals: {{node dense/MatMul}}, [Op:MatMul], name: ...
_TF_INTERNALS = [
    re.compile(r"\{\{[^{}]*\}\}"),
    re.compile(r"\[Op:[^\]]*\]"),
    re.compile(r"\bname: \S*"),
    re.compile(r"Graph execution error:\s*"),
    re.compile(r"Detected at node [^\n]*"),
    re.compile(r"<stack traces unavailable>"),
    re.compile(r"\[\[\s*\]\]"),
]


def saved_model_dir(path: Path) -> Path:
    """The SavedModel folder of ``path`` (its ``saved_model.pb``, or the folder itself)."""
    return path.parent if path.name == SAVED_MODEL_PB else path


def import_tensorflow() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines would flood the server log
    try:
        return importlib.import_module("tensorflow")
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the tensorflow backend needs the Python package tensorflow-cpu (the runtime-tf image has it): {exc}"
        ) from None


def datatype(dtype_name: str, where: str) -> str:
    """The protocol datatype of a TensorFlow dtype name; ValueError naming the tensor for one it cannot carry."""
    try:
        return DATATYPES[dtype_name]
    except KeyError:
        raise ValueError(
            f"{where} has TensorFlow dtype {dtype_name}, which the inference protocol cannot carry "
            f"(supported: {', '.join(sorted(DATATYPES))})"
        ) from None


def dims(shape: Any) -> list[int]:
    """A TensorShape as a list, -1 where a dimension is unknown; [-1] for an unknown rank is not representable, so
    a tensor of unknown rank is refused by the caller."""
    return [-1 if d is None else int(d) for d in shape.as_list()]


def clean_message(message: str) -> str:
    """A TensorFlow error message without graph node and op names (then the data plane's own scrubbing)."""
    for pattern in _TF_INTERNALS:
        message = pattern.sub("", message)
    return public_message(" ".join(message.split()))


class TensorFlowBackend:
    platform = "tensorflow_savedmodel"

    def __init__(self, path: Path, options: BackendOptions) -> None:
        if options.kind != "tensorflow":
            raise ValueError(f"TensorFlowBackend got options for kind {options.kind!r}")
        tf = import_tensorflow()
        self._tf = tf
        folder = saved_model_dir(path)
        self._loaded: Any = tf.saved_model.load(str(folder))
        signatures = dict(self._loaded.signatures)
        if options.signature not in signatures:
            known = ", ".join(sorted(signatures)) or "none"
            raise ValueError(f"{folder.name}: the SavedModel has no signature {options.signature!r} (it has: {known})")
        self.signature = options.signature
        self._function: Any = signatures[options.signature]
        _, specs = self._function.structured_input_signature
        self.inputs = [self._meta(name, spec, "input") for name, spec in sorted(specs.items())]
        outputs = self._function.structured_outputs
        if not isinstance(outputs, dict):
            raise ValueError(f"signature {options.signature!r} does not return a mapping of named outputs")
        self.outputs = [self._meta(name, tensor, "output") for name, tensor in sorted(outputs.items())]
        self._input_dtypes = {name: spec.dtype for name, spec in specs.items()}
        # the graph's own tensor names where they differ from the signature's keys (TensorFlow lower-cases
        # placeholder names: Keras's Input "INPUT0" is the key of a tensor named "input0")
        self.tensor_names = {name: spec.name for name, spec in [*specs.items(), *outputs.items()] if spec.name}
        self.memory_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        log.info("TensorFlow %s SavedModel %s, signature %s", tf.__version__, folder, options.signature)

    def _meta(self, name: str, tensor: Any, what: str) -> TensorMeta:
        where = f"signature {self.signature!r} {what} {name!r}"
        if tensor.shape.rank is None:
            raise ValueError(f"{where} has an unknown rank; the inference protocol needs one")
        return TensorMeta(name, datatype(tensor.dtype.name, where), dims(tensor.shape))

    def run(self, inputs: dict[str, npt.NDArray[Any]], output_names: list[str]) -> dict[str, npt.NDArray[Any]]:
        function = self._function
        if function is None:
            raise UnavailableError("the model was unloaded")
        tf = self._tf
        try:
            feed = {name: tf.convert_to_tensor(arr, dtype=self._input_dtypes[name]) for name, arr in inputs.items()}
        except (TypeError, ValueError, KeyError) as exc:
            raise BadRequestError(
                f"inputs do not fit signature {self.signature!r}: {clean_message(str(exc))}"
            ) from None
        try:
            results = function(**feed)
        except tf.errors.InvalidArgumentError as exc:
            raise BadRequestError(f"the model refused the inputs: {clean_message(exc.message)}") from None
        except (TypeError, ValueError) as exc:  # the inputs cannot be bound to the signature's specs
            raise BadRequestError(
                f"inputs do not fit signature {self.signature!r}: {clean_message(str(exc))}"
            ) from None
        except tf.errors.OpError as exc:
            raise RuntimeError(clean_message(exc.message)) from None
        return {name: _to_numpy(results[name]) for name in output_names}

    def close(self) -> None:
        """Drop the loaded SavedModel; TensorFlow frees its variables once nothing references them."""
        self._function = None
        self._loaded = None


def _to_numpy(tensor: Any) -> npt.NDArray[Any]:
    value = tensor.numpy()
    if isinstance(value, bytes):  # a scalar tf.string
        return np.array(value, dtype=np.object_)
    return np.asarray(value)  # tf.string tensors are object arrays of bytes already, as the BYTES codec wants
