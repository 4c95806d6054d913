"""Integer quantization with ONNX Runtime's own tools: dynamic (weights to int8 or uint8, activations quantized
at run time) or static (activations too, their ranges calibrated on real inputs, QDQ format).

The model first goes through ONNX Runtime's pre-processing (shape inference and graph optimization), as its
quantization guide asks. Dynamic quantization leaves convolutions in float: ONNX Runtime's ConvInteger kernel is
many times slower on a CPU than the float convolution it replaces (measured: benchmarks/RESULTS.md); static
quantization is the one for convolutional networks.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.registry import IntegerOpsRegistry

from modelyard_runtime.build.spec import Quantize
from modelyard_runtime.samples import Sample

log = logging.getLogger("modelyard.build")
TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
DYNAMIC_OPS = sorted(set(IntegerOpsRegistry) - {"Conv"})


class _Reader(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, samples: list[Sample]) -> None:
        self._left = iter(samples)

    def get_next(self) -> Sample | None:
        return next(self._left, None)


def quantize(model: onnx.ModelProto, how: Quantize, calibration: list[Sample] | None) -> onnx.ModelProto:
    """``model`` quantized as ``how`` says; ``calibration`` holds the inputs of static quantization."""
    with tempfile.TemporaryDirectory(prefix="modelyard-quantize-") as folder:
        source, target = Path(folder, "in.onnx"), Path(folder, "out.onnx")
        onnx.save(model, source)
        try:
            quant_pre_process(source, Path(folder, "prepared.onnx"))
            source = Path(folder, "prepared.onnx")
        except Exception as e:  # shape inference cannot follow every model; quantization works without it
            log.info("quantization pre-processing skipped: %s", str(e)[:200])
        if how.mode == "dynamic":
            quantize_dynamic(source, target, weight_type=TYPES[how.weight_type], per_channel=how.per_channel,
                             op_types_to_quantize=DYNAMIC_OPS)  # fmt: skip
        else:
            if not calibration:
                raise ValueError("static quantization needs calibration samples")
            quantize_static(source, target, _Reader(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=how.per_channel, weight_type=TYPES[how.weight_type],
                            activation_type=TYPES[how.weight_type])  # fmt: skip
        return onnx.load(target)
