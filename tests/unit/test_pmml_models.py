"""NeuralNetwork, SupportVectorMachineModel, NaiveBayesModel and GeneralRegressionModel: what the compiler cannot
compute exactly is refused with the element and its line (pure code; the values are checked against the reference
evaluator in tests/integration/test_pmml_reference.py)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from modelyard_runtime.pmml import PMMLError, compile_pmml

HEAD = '<?xml version="1.0"?>\n<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">\n<Header/>\n'
DD = ('<DataDictionary><DataField name="x" optype="continuous" dataType="double"/>'
      '<DataField name="y" optype="continuous" dataType="double"/></DataDictionary>\n')  # fmt: skip
SCHEMA = '<MiningSchema><MiningField name="x"/><MiningField name="y" usageType="target"/></MiningSchema>\n'
NN_INPUT = ('<NeuralInputs><NeuralInput id="i"><DerivedField optype="continuous" dataType="double">'
            '<FieldRef field="x"/></DerivedField></NeuralInput></NeuralInputs>\n')  # fmt: skip
NN_OUTPUT = ('<NeuralOutputs><NeuralOutput outputNeuron="n"><DerivedField optype="continuous" dataType="double">'
             '<FieldRef field="y"/></DerivedField></NeuralOutput></NeuralOutputs>')  # fmt: skip


def network(activation: str) -> bytes:
    layer = f'<NeuralLayer activationFunction="{activation}"><Neuron id="n" bias="0.5"><Con from="i" weight="2"/>'
    return (HEAD + DD + '<NeuralNetwork functionName="regression">' + SCHEMA + NN_INPUT + layer
            + "</Neuron></NeuralLayer>\n" + NN_OUTPUT + "</NeuralNetwork></PMML>").encode()  # fmt: skip


def run(model: bytes, x: list[float]) -> np.ndarray:
    session = ort.InferenceSession(compile_pmml(model).SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": np.array(x)})[0])


def test_a_neural_network_computes_its_layer_and_a_missing_input_is_missing() -> None:
    assert run(network("tanh"), [0.25, np.nan]) == pytest.approx([np.tanh(1.0), np.nan], nan_ok=True)


def test_a_radial_basis_activation_is_refused_with_its_line() -> None:
    with pytest.raises(PMMLError, match=r"<NeuralLayer> at line 7 .*activationFunction=radialBasis"):
        compile_pmml(network("radialBasis"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<SupportVectorMachineModel functionName="regression" representation="Coefficients">'
         + SCHEMA + "</SupportVectorMachineModel>", r"<SupportVectorMachineModel> at line 5 .*representation"),
        ('<NaiveBayesModel functionName="regression" threshold="0">' + SCHEMA + "</NaiveBayesModel>",
         r"NaiveBayesModel> at line 5 .*classification"),
        ('<GeneralRegressionModel functionName="regression" modelType="CoxRegression">' + SCHEMA
         + "<ParameterList/><PPMatrix/><ParamMatrix/></GeneralRegressionModel>",
         r"<GeneralRegressionModel> at line 5 .*CoxRegression"),
        ('<GeneralRegressionModel functionName="regression" modelType="regression">' + SCHEMA
         + '<FactorList><Predictor name="x"/></FactorList></GeneralRegressionModel>',
         r"<FactorList> at line 6 .*factors"),
    ],
)  # fmt: skip
def test_what_cannot_be_compiled_exactly_is_refused(body: str, message: str) -> None:
    with pytest.raises(PMMLError, match=message):
        compile_pmml((HEAD + DD + body + "</PMML>").encode())
