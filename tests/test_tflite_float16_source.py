"""A float16-weight ONNX source converted to TFLite at the default precision keeps its weights in
float16 (a DEQUANTIZE to float32 when the model loads), so the .tflite is about the source's size,
not twice it; the values are the source's exactly. Real onnx2tf and LiteRT, no mocks."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit

pytest.importorskip("onnx2tf")
pytest.importorskip("ai_edge_litert")

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT
# name -> shape: Conv 3->32, Conv 32->64, Gemm 64->512 (transB), MatMul 512x512, Gemm 512->10 (~0.32 M weights)
_WEIGHTS = {"w1": (32, 3, 3, 3), "b1": (32,), "w2": (64, 32, 3, 3), "b2": (64,), "g1": (512, 64), "c1": (512,),
            "m": (512, 512), "g2": (512, 10), "c2": (10,)}


def _model(path, form: str):
    """Conv-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm-Relu-MatMul-Gemm, every initializer float16.
    ``form="half"``: float16 inputs, compute and outputs, as ``model.half()`` exports it;
    ``"weights"``: float32 inputs and compute, each weight a float16 initializer cast up where it is read;
    ``"float32"``: the same weights (float16 values) as float32 initializers: a float32 source."""
    import onnx

    rng = np.random.default_rng(0)
    stored = np.float32 if form == "float32" else np.float16
    inits = [numpy_helper.from_array((rng.standard_normal(s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 4))
                                     .astype(np.float16).astype(stored), n) for n, s in _WEIGHTS.items()]
    use = {n: n for n in _WEIGHTS}
    nodes = []
    if form == "weights":
        use = {n: f"{n}_f32" for n in _WEIGHTS}
        nodes = [helper.make_node("Cast", [n], [use[n]], to=F32) for n in _WEIGHTS]
    nodes += [helper.make_node("Conv", ["x", use["w1"], use["b1"]], ["c1o"], pads=[1, 1, 1, 1]),
              helper.make_node("Relu", ["c1o"], ["r1"]),
              helper.make_node("Conv", ["r1", use["w2"], use["b2"]], ["c2o"], pads=[1, 1, 1, 1], strides=[2, 2]),
              helper.make_node("Relu", ["c2o"], ["r2"]),
              helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
              helper.make_node("Flatten", ["p"], ["f"]),
              helper.make_node("Gemm", ["f", use["g1"], use["c1"]], ["h"], transB=1),
              helper.make_node("Relu", ["h"], ["hr"]),
              helper.make_node("MatMul", ["hr", use["m"]], ["mm"]),
              helper.make_node("Gemm", ["mm", use["g2"], use["c2"]], ["y"])]
    io = F16 if form == "half" else F32
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", io, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", io, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


FP32_BYTES = sum(4 * int(np.prod(s)) for s in _WEIGHTS.values())  # the weights in float32: 1.28 MB


@pytest.fixture(scope="module", params=["half", "weights"])
def converted(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(f"f16-{request.param}")
    src = _model(tmp / f"{request.param}.onnx", request.param)
    return request.param, edgekit.convert(str(src), targets=["tflite"], out=tmp / "o").artifacts[0]


@pytest.mark.integration
def test_float16_weights_stay_float16_in_the_tflite(converted):
    form, art = converted
    assert art.precision == "fp32" and art.parity.status == "pass", art.parity.reason
    size = art.path.stat().st_size
    assert size <= 0.6 * FP32_BYTES, (size, FP32_BYTES)  # float32 weights: >= 1.0x (1.28 MB before)
    assert any("float16 weights kept as in the source" in n for n in art.notes), art.notes
    # a source computing in float16 is judged at fp16 tolerances; one computing in float32, at fp32's
    assert art.parity.tolerance["atol"] == (1e-2 if form == "half" else 1e-4)


@pytest.mark.integration
@pytest.mark.parametrize("converted", ["weights"], indirect=True)
def test_its_int8_variant_quantizes_the_weights(converted, tmp_path):
    """ai-edge-quantizer leaves a DEQUANTIZE's output float: the float16 weights are read as float32
    to quantize, so dynamic int8 makes int8 weights as from a float32 file (~0.33 MB, not 0.65)."""
    pytest.importorskip("ai_edge_quantizer")
    from edgekit.backends._quant import QuantOptions
    from edgekit.backends.tflite.quantize import quantize

    result = quantize(converted[1].path, tmp_path, "dynamic-int8", None, QuantOptions())
    assert result.path.stat().st_size <= 0.3 * FP32_BYTES


def test_only_float16_sources_are_told_apart(tmp_path):
    from edgekit.backends.tflite.convert import _float16_weights

    assert [_float16_weights(_model(tmp_path / f"{f}.onnx", f)) for f in ("half", "weights", "float32")] == [
        True, True, False]
