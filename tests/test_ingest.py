"""Each source format edgekit reads, loaded for real and converted where a path exists."""

import pickle

import pytest
import torch

import edgekit
from edgekit import EdgekitError
from tests.fixtures import tiny_cnn


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    result = edgekit.convert(edgekit.load("tests.fixtures:tiny_cnn"), targets=["onnx"], out=out / "o")
    return result.artifacts[0].path


def test_onnx_file_to_openvino_and_tflite(tmp_path, cnn_onnx):
    model = edgekit.load(cnn_onnx)
    assert model.format == "onnx" and model.signature.inputs[0].shape == (1, 3, 32, 32)
    result = edgekit.convert(model, targets=["openvino", "tflite"], out=tmp_path / "o")
    for a in result.artifacts:
        assert a.parity.status == "pass", (a.target, a.parity.reason)
    tfl = next(a for a in result.artifacts if a.target == "tflite")
    assert any("onnx2tf" in n for n in tfl.notes)
    assert "onnx:opset18" in tfl.lineage


def test_onnx_with_external_data(tmp_path, cnn_onnx):
    import onnx

    proto = onnx.load(str(cnn_onnx))
    onnx.save(proto, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=1024)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 1000
    result = edgekit.convert(edgekit.load(tmp_path / "ext.onnx"), targets=["onnx"], out=tmp_path / "o")
    assert result.artifacts[0].parity.status == "pass"
    assert (tmp_path / "o" / "onnx" / "ext.onnx.data").is_file()


def test_onnx_source_to_coreml_goes_through_onnx2torch(tmp_path, cnn_onnx):
    result = edgekit.convert(edgekit.load(cnn_onnx), targets=["coreml"], out=tmp_path / "o")
    art = result.artifacts[0]
    assert [a["route"] for a in art.attempts if a.get("kept")] == ["onnx-file -> onnx2torch + coremltools"]
    assert art.parity.validation["loads"]
    assert any("onnx2torch" in n for n in art.notes)


def test_exported_program(tmp_path):
    module, example = tiny_cnn()
    torch.export.save(torch.export.export(module, example), str(tmp_path / "m.pt2"))
    model = edgekit.load(tmp_path / "m.pt2")
    assert model.format == "exported-program"
    result = edgekit.convert(model, targets=["onnx", "coreml"], out=tmp_path / "o")
    assert result.artifacts[0].parity.status == "pass"
    assert result.artifacts[1].parity.validation["loads"]


def test_torchscript_needs_input_specs(tmp_path):
    module, example = tiny_cnn()
    torch.jit.trace(module, example).save(str(tmp_path / "m.ts"))
    with pytest.raises(EdgekitError, match="--input"):
        edgekit.load(tmp_path / "m.ts")
    model = edgekit.load(tmp_path / "m.ts", inputs=["pixels:1x3x32x32:float32"])
    assert model.format == "torchscript"
    result = edgekit.convert(model, targets=["onnx", "openvino"], out=tmp_path / "o")
    assert all(a.parity.status == "pass" for a in result.artifacts)


def test_module_factory_with_dynamic_batch_from_input_spec(tmp_path):
    model = edgekit.load("tests.fixtures:tiny_cnn_module", inputs=["pixels:batchx3x32x32:float32"], dims={"batch": 2})
    assert model.signature.inputs[0].shape == ("batch", 3, 32, 32)
    result = edgekit.convert(model, targets=["onnx"], out=tmp_path / "o")
    art = result.artifacts[0]
    assert art.parity.status == "pass" and art.signature.inputs[0].shape[0] == "batch"


def test_pickles_are_not_executed_without_trust(tmp_path):
    module, _ = tiny_cnn()
    torch.save(module, tmp_path / "m.pt")
    with pytest.raises(EdgekitError, match="--trust-pickle"):
        edgekit.load(tmp_path / "m.pt", inputs=["pixels:1x3x32x32:float32"])
    model = edgekit.load(tmp_path / "m.pt", inputs=["pixels:1x3x32x32:float32"], trust_pickle=True)
    assert model.signature.outputs[0].shape == (1, 10)


def test_state_dict_is_explained(tmp_path):
    module, _ = tiny_cnn()
    torch.save(module.state_dict(), tmp_path / "w.pt")
    with pytest.raises(EdgekitError, match="state_dict"):
        edgekit.load(tmp_path / "w.pt")


def test_plain_pickle_file_is_not_a_model(tmp_path):
    (tmp_path / "x.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(EdgekitError, match="not a model file"):
        edgekit.load(tmp_path / "x.pkl")


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10)(x)
    path = tmp_path_factory.mktemp("keras") / "m.keras"
    keras.Model(inp, out).save(path)
    return path


def test_keras_to_tflite_and_openvino(tmp_path, keras_file):
    model = edgekit.load(keras_file)
    assert model.format == "keras" and model.signature.inputs[0].shape == ("batch", 8, 8, 1)
    result = edgekit.convert(model, targets=["tflite", "openvino"], out=tmp_path / "o")
    for a in result.artifacts:
        assert a.parity.status == "pass", (a.target, a.parity.reason)
    with pytest.raises(EdgekitError, match="tf2onnx"):
        edgekit.convert(model, targets=["onnx"], out=tmp_path / "o2")


def test_tflite_source_retargets_to_openvino(tmp_path, keras_file):
    first = edgekit.convert(edgekit.load(keras_file), targets=["tflite"], out=tmp_path / "a")
    model = edgekit.load(first.artifacts[0].path)
    assert model.format == "tflite"
    result = edgekit.convert(model, targets=["openvino"], out=tmp_path / "b")
    assert result.artifacts[0].parity.status == "pass", result.artifacts[0].parity.reason
