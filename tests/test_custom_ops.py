"""Custom (vendor) ops: named as custom, with where they come from and what to do; real runtimes."""

import numpy as np
import pytest

import edgekit
from edgekit._errors import ConversionError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


def _model(nodes, functions=(), domains=("com.acme.vision",)):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(nodes, "g", [x], [y])
    opsets = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=opsets, functions=list(functions))


def test_onnx_op_in_a_made_up_domain_is_named_as_custom(tmp_path):
    from onnx import helper

    path = tmp_path / "custom.onnx"
    onnx.save(_model([helper.make_node("Relu", ["x"], ["h"]),
                      helper.make_node("FancyGelu", ["h"], ["y"], domain="com.acme.vision", name="fancy_0")]),
              str(path))
    model = edgekit.load(path)
    assert model.meta["custom_ops"] == [{"op": "FancyGelu", "domain": "com.acme.vision", "nodes": ["fancy_0"],
                                         "library": None}]
    with pytest.raises(ConversionError) as err:
        edgekit.convert(model, targets=["openvino", "onnx"], out=tmp_path / "out")
    text = str(err.value)
    assert "com.acme.vision:FancyGelu is a custom (vendor) op" in text and "node fancy_0" in text
    assert "the source (ONNX Runtime)" in text and "seen with onnxruntime" in text
    assert "register_custom_ops_library" in err.value.fix and "export the model without it" in err.value.fix
    assert "not in converters/known_failures.toml" not in text
    assert not (tmp_path / "out").exists()


def test_a_custom_domain_op_the_model_defines_as_a_function_converts(tmp_path):
    """Not a vendor op: the model carries its definition. ORT inlines it; edgekit inlines it for OpenVINO."""
    from onnx import helper

    twice = helper.make_function("com.acme.vision", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                                 [helper.make_opsetid("", 17)])
    path = tmp_path / "fn.onnx"
    onnx.save(_model([helper.make_node("Twice", ["x"], ["y"], domain="com.acme.vision")], [twice]), str(path))
    model = edgekit.load(path)
    assert model.meta["custom_ops"] == []
    result = edgekit.convert(model, targets=["openvino", "onnx"], out=tmp_path / "out")
    assert all(a.parity.status == "pass" for a in result.artifacts)
    ov = next(a for a in result.artifacts if a.target == "openvino")
    assert any("inlined" in n for n in ov.notes)


def test_onnx_runtime_contrib_op_openvino_lacks_is_custom_with_the_way_on(tmp_path):
    """QGemm (com.microsoft), as ONNX Runtime's QOperator quantization writes it: ORT runs it, OpenVINO cannot."""
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime import quantization

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"])], "g", [x], [y], [w])
    fp32, q = tmp_path / "fp32.onnx", tmp_path / "qgemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": rng.standard_normal((1, 4)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.items, None)

    quantization.quantize_static(str(fp32), str(q), Calibration(), quant_format=quantization.QuantFormat.QOperator)
    model = edgekit.load(q)
    assert [o["op"] for o in model.meta["custom_ops"]] == ["QGemm"]
    assert model.meta["custom_ops"][0]["library"] == "ONNX Runtime's contrib ops"
    with pytest.raises(ConversionError) as err:
        edgekit.convert(model, targets=["openvino"], out=tmp_path / "out")
    assert "QGemm is a custom (vendor) op from ONNX Runtime's contrib ops (domain com.microsoft)" in str(err.value)
    assert "QuantFormat.QDQ" in err.value.fix


def test_known_failure_entries_name_route_and_versions():
    from edgekit._data import load_toml
    from edgekit._known import explain

    table = load_toml("converters", "known_failures.toml")
    custom = [e for e in table["failure"] if e.get("custom")]
    assert {e["target"] for e in custom} >= {"openvino", "onnx", "tflite"}
    assert all(e.get("route") and e.get("seen_with") for e in custom)
    err = explain("openvino", RuntimeError("FrontEnd API failed with OpConversionFailure:\n"
                                           "No translator found for Convolution2DTransposeBias node."))
    assert "custom (vendor) op from MediaPipe" in str(err) and "TRANSPOSE_CONV" in err.fix
    builtin = explain("openvino", RuntimeError("No translator found for CUMSUM node."))
    assert "builtin CUMSUM" in str(builtin) and "custom" not in str(builtin)
    # a standard op the inference runtime lacks is not a vendor op
    training = explain("onnx", RuntimeError("Fatal error: ai.onnx.preview.training:Adagrad(-1) is not a registered "
                                            "function/op"))
    assert "Adagrad is a training op" in str(training) and "custom" not in str(training)
    ml = explain("onnx", RuntimeError("Fatal error: ai.onnx.ml:Foo(-1) is not a registered function/op"))
    assert "custom" not in str(ml)


def test_tflite_with_a_custom_op_is_named_as_custom(tmp_path):
    """A real .tflite with a custom op: TensorFlow's converter with allow_custom_ops keeps BesselI0e as one."""
    tf = pytest.importorskip("tensorflow")

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def f(x):
        return tf.math.special.bessel_i0e(tf.nn.relu(x) + 1.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    converter.allow_custom_ops = True
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    path = tmp_path / "custom.tflite"
    path.write_bytes(converter.convert())
    with pytest.raises(ConversionError) as err:
        edgekit.load(path)
    assert "BesselI0e is a custom (vendor) op" in str(err.value) and "the source (LiteRT)" in str(err.value)
    assert "OpResolver" in err.value.fix
