"""Sources that are already quantized: detected, verified at int8 tolerances, said so in the manifest.

The fixture is a real model: the digits CNN (trained on scikit-learn's digits), exported to ONNX
and quantized by ONNX Runtime itself (quantize_dynamic: ConvInteger/MatMulInteger with
DynamicQuantizeLinear; quantize_static: QDQ and QOperator), then converted to OpenVINO and run
in both runtimes on 64 held-out digits. No mocks.
"""

import json

import numpy as np
import pytest

import edgekit

onnx = pytest.importorskip("onnx")
quantization = pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """{"fp32"|"dynamic"|"qdq"|"qoperator": path} and the .npz of 64 held-out digits."""
    import torch

    from edgekit.zoo import digits

    root = tmp_path_factory.mktemp("quantized")
    model, _ = digits.cnn()
    x_train, x_test, _, _ = digits._split()
    fp32 = root / "fp32.onnx"
    torch.onnx.export(model, (torch.from_numpy(x_test[:1]),), str(fp32), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": x_train[i:i + 8]} for i in range(0, 256, 8)])

        def get_next(self):
            return next(self.batches, None)

    paths = {"fp32": fp32, "dynamic": root / "dynamic.onnx", "qdq": root / "qdq.onnx",
             "qoperator": root / "qoperator.onnx"}
    quantization.quantize_dynamic(str(fp32), str(paths["dynamic"]), weight_type=quantization.QuantType.QInt8)
    quantization.quantize_static(str(fp32), str(paths["qdq"]), Calibration(),
                                 quant_format=quantization.QuantFormat.QDQ)
    # Conv only: QGemm (com.microsoft) has no OpenVINO conversion
    quantization.quantize_static(str(fp32), str(paths["qoperator"]), Calibration(), op_types_to_quantize=["Conv"],
                                 quant_format=quantization.QuantFormat.QOperator)
    np.savez(root / "digits.npz", image=x_test[:64])
    return paths, root / "digits.npz"


def test_each_kind_is_detected_with_its_ops(quantized):
    paths, _ = quantized
    assert edgekit.load(paths["fp32"]).meta["quantized"] is None
    dyn = edgekit.load(paths["dynamic"]).meta["quantized"]
    assert dyn["kinds"] == ["integer ops", "dynamic quantization"]
    assert dyn["ops"] == {"ConvInteger": 3, "MatMulInteger": 2, "DynamicQuantizeLinear": 5}
    qdq = edgekit.load(paths["qdq"]).meta["quantized"]
    assert qdq["kinds"] == ["QDQ"] and qdq["ops"]["QuantizeLinear"] > 0 and qdq["ops"]["DequantizeLinear"] > 0
    assert qdq["bits"] == 8 and qdq["summary"].startswith("QDQ: ")
    qop = edgekit.load(paths["qoperator"]).meta["quantized"]
    assert qop["kinds"] == ["QOperator"] and qop["ops"]["QLinearConv"] == 3


def test_com_microsoft_and_subgraph_ops_are_detected():
    from onnx import TensorProto, helper

    from edgekit.steps.ingest._quantized import onnx_quantization

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    inner = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "then", [],
                              [helper.make_tensor_value_info("q", TensorProto.UINT8, [2, 4])])
    nodes = [helper.make_node("DynamicQuantizeMatMul", ["x", "w", "ws"], ["y"], domain="com.microsoft"),
             helper.make_node("If", ["c"], ["q"], then_branch=inner, else_branch=inner)]
    graph = helper.make_graph(nodes, "g", [x], [y])
    found = onnx_quantization(helper.make_model(graph))
    assert found["ops"] == {"DynamicQuantizeMatMul": 1, "DynamicQuantizeLinear": 2}
    assert found["kinds"] == ["dynamic quantization"]


def _manifest(result):
    return json.loads(result.manifest_path.read_text())


@pytest.mark.parametrize("kind", ["dynamic", "qdq", "qoperator"])
def test_int8_source_to_openvino_passes_at_int8_tolerances(quantized, tmp_path, kind):
    paths, digits_npz = quantized
    model = edgekit.load(paths[kind])
    result = edgekit.convert(model, targets=["openvino", "onnx"], out=tmp_path / kind, inputs=digits_npz)
    arts = {a.target: a for a in result.artifacts}
    ov = arts["openvino"].parity
    assert ov.status == "pass", ov.reason
    assert ov.tolerance["min_cosine"] == 0.999 and ov.tolerance["min_top1"] == 0.9
    assert ov.cosine > 0.9999 and ov.top1_agreement >= 0.98  # logits of 64 real digits
    assert arts["onnx"].parity.max_abs_err == 0.0  # the ONNX target is the source itself
    manifest = _manifest(result)
    note = next(n for n in manifest["notes"] if n.startswith("the source is already int8 ("))
    assert "verified at int8 tolerances" in note and "[int8-source]" in note
    assert manifest["source"]["quantization"]["kinds"] == model.meta["quantized"]["kinds"]
    from edgekit.schema import Manifest

    assert Manifest.model_validate(manifest).source.quantization.bits == 8


def test_without_detection_the_same_artifact_fails_fp32_parity(quantized, tmp_path):
    """The int8 tolerances are what make it pass: an undetected int8 source fails at fp32 ones."""
    paths, digits_npz = quantized
    model = edgekit.load(paths["qdq"])
    model.meta["quantized"] = None  # as edgekit was before detection
    result = edgekit.convert(model, targets=["openvino"], out=tmp_path / "undetected", inputs=digits_npz)
    parity = result.artifacts[0].parity
    assert parity.status == "fail" and "max abs error" in parity.reason
    assert not any("already int8" in n for n in _manifest(result)["notes"])


def test_user_tolerance_still_wins(quantized, tmp_path):
    paths, digits_npz = quantized
    result = edgekit.convert(edgekit.load(paths["dynamic"]), targets=["openvino"], out=tmp_path / "strict",
                             inputs=digits_npz, tolerance={"min_cosine": 0.9999999})
    assert result.artifacts[0].parity.status == "fail"
    assert any("yours: min_cosine=0.9999999" in n for n in _manifest(result)["notes"])


def test_int8_tflite_source_is_detected_and_verified(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from edgekit.zoo import digits

    x_train, x_test, y_train, _ = digits._split()
    x_train, x_test = x_train.transpose(0, 2, 3, 1), x_test.transpose(0, 2, 3, 1)
    tf.keras.utils.set_random_seed(0)
    keras = tf.keras.Sequential([tf.keras.Input((8, 8, 1), batch_size=1), tf.keras.layers.Conv2D(16, 3, activation="relu"),
                                 tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
    keras.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keras.fit(x_train, y_train, epochs=2, verbose=0, batch_size=32)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x_train[i:i + 1]] for i in range(100))
    path = tmp_path / "digits_int8.tflite"
    path.write_bytes(converter.convert())

    model = edgekit.load(path)
    found = model.meta["quantized"]
    assert found["kinds"] == ["tflite-int8"] and "full integer" in found["kind"]
    assert found["ops"]["CONV_2D"] == 1 and found["ops"]["FULLY_CONNECTED"] == 1
    result = edgekit.convert(model, targets=["openvino"], out=tmp_path / "out")
    parity = result.artifacts[0].parity
    assert parity.status == "pass", parity.reason
    assert parity.tolerance["min_top1"] == 0.9
    assert any(n.startswith("the source is already int8 (") for n in _manifest(result)["notes"])
