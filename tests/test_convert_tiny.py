"""The tiny CNN and tiny BERT, converted to all four targets and verified in real runtimes."""

import json

import pytest

import edgekit

ALL = ["onnx", "openvino", "tflite", "coreml"]


def _by_target(result):
    return {a.target: a for a in result.artifacts}


def test_tiny_cnn_all_targets(tmp_path):
    model = edgekit.load("tests.fixtures:tiny_cnn")
    assert [s.name for s in model.signature.inputs] == ["pixels"]
    result = edgekit.convert(model, targets=ALL, out=tmp_path / "cnn")
    arts = _by_target(result)
    assert set(arts) == set(ALL)
    for name in ("onnx", "openvino", "tflite"):
        p = arts[name].parity
        assert p.status == "pass", (name, p.reason)
        assert p.max_abs_err < 1e-4 and p.cosine > 0.9999
        assert p.top1_agreement == 1.0  # a 10-class output: top-1 applies
    core = arts["coreml"].parity
    assert core.status == "not_run" and "macOS" in core.reason
    assert core.validation["loads"] and core.validation["op_count"] > 5 and not core.validation["problems"]
    manifest = json.loads((tmp_path / "cnn" / "manifest.json").read_text())
    assert manifest["schema"] == 1
    from edgekit._cpu import host

    cpu = manifest["host"]["cpu"]  # the build machine's CPU and the features that change int8/bf16 kernels
    assert cpu["model"] and cpu["features"] == sorted(host().features) and cpu["int8_dot"] == host().int8_dot
    assert len(manifest["source"]["sha256"] or "") == 64 or manifest["source"]["sha256"] is None
    for a in manifest["artifacts"]:
        for key in ("target", "precision", "path", "sha256", "size_bytes", "signature", "convert_seconds",
                    "tool_versions", "parity"):
            assert key in a
        assert (tmp_path / "cnn" / a["path"]).exists()
        assert a["size_bytes"] > 10_000
    # nothing temporary left beside the output
    assert [p.name for p in tmp_path.iterdir()] == ["cnn"]


def test_tiny_bert_all_targets_keeps_tokenizer_and_dynamic_axes(tmp_path, tiny_bert):
    model = edgekit.load(tiny_bert, dims={"sequence": 32})
    assert model.task == "feature-extraction"
    assert model.signature.inputs[0].shape == ("batch", "sequence")
    result = edgekit.convert(model, targets=ALL, out=tmp_path / "bert")
    arts = _by_target(result)
    for name in ("onnx", "openvino", "tflite"):
        assert arts[name].parity.status == "pass", (name, arts[name].parity.reason)
        assert arts[name].parity.top1_agreement is None  # hidden states: top-1 does not apply
    # ONNX keeps the dynamic axes; LiteRT fixes them, and says so
    assert arts["onnx"].signature.inputs[0].shape == ("batch", "sequence")
    assert arts["tflite"].signature.inputs[0].shape == (1, 32)
    assert any("static shapes" in n for n in arts["tflite"].notes)
    assert arts["coreml"].parity.status == "not_run"
    assert (tmp_path / "bert" / "tokenizer" / "tokenizer.json").is_file()


def test_onnx_artifact_runs_at_other_shapes(tmp_path, tiny_bert):
    import numpy as np
    import onnxruntime as ort

    result = edgekit.convert(edgekit.load(tiny_bert, dims={"sequence": 16}), targets=["onnx"], out=tmp_path / "o")
    sess = ort.InferenceSession(str(result.artifacts[0].path))
    feeds = {i.name: np.ones((2, 40), np.int64) for i in sess.get_inputs()}
    assert sess.run(None, feeds)[0].shape == (2, 40, 64)


def test_classifier_top1_and_fp16(tmp_path, tiny_bert_classifier):
    model = edgekit.load(tiny_bert_classifier, dims={"sequence": 16})
    assert model.task == "text-classification"
    result = edgekit.convert(model, targets=["onnx", "openvino"], out=tmp_path / "cls", precision="fp16", samples=4)
    for a in result.artifacts:
        assert a.precision == "fp16"
        assert a.parity.status == "pass", a.parity.reason
        assert a.parity.top1_agreement is not None
        assert a.parity.tolerance["min_cosine"] == pytest.approx(0.999)
    assert result.artifacts[0].path.parent.name == "onnx-fp16"
