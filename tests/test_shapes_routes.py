"""Third-party ONNX shapes: unnamed axes sized from --inputs or --shape, any file name to TFLite, --route."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgekit
from edgekit import EdgekitError

from ._onnx_cases import if_on_length


def _conv_model(path, name="detector.onnx"):
    """A conv net declaring [-1, 3, ?, ?] (a -1, two unnamed '?') as exporters of detectors write it,
    plus a second input [?] of its own size: no axis can be sized from its name."""
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], rng.standard_normal(108).astype(np.float32))
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [-1, 3, "?", "?"])
    s = helper.make_tensor_value_info("scale", TensorProto.FLOAT, ["?"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 4, "?", "?"])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["?"])
    nodes = [helper.make_node("Conv", ["images", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"]),
             helper.make_node("Mul", ["scale", "scale"], ["z"])]
    graph = helper.make_graph(nodes, "g", [x, s], [y, z], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.graph.input[0].type.tensor_type.shape.dim[0].ClearField("dim_param")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    p = path / name
    onnx.save(model, p)
    return p


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_unnamed_axes_get_their_own_sizes_from_inputs(tmp_path):
    src = _conv_model(tmp_path)
    x = _npz(tmp_path / "x.npz", images=np.random.rand(1, 3, 48, 64).astype(np.float32),
             scale=np.ones(5, np.float32))
    model = edgekit.load(str(src), sample=x)
    spec = {s.name: s for s in model.signature.inputs}
    assert spec["images"].concrete(model.dims) == (1, 3, 48, 64)
    assert spec["scale"].concrete(model.dims) == (5,)
    assert set(model.meta["dim_sources"].values()) == {"--inputs x.npz (images)", "--inputs x.npz (scale)"}
    unsized = edgekit.load(str(src))  # loads; its axes are sized where it is converted
    with pytest.raises(EdgekitError, match="(?s)no size to test it at.*--inputs"):
        edgekit.convert(unsized, targets=["onnx"], out=tmp_path / "none")
    assert not (tmp_path / "none").exists()
    res = edgekit.convert(unsized, targets=["onnx"], out=tmp_path / "later", inputs=x)
    assert res.artifacts[0].parity.status == "pass"
    assert res.manifest["source"]["dims"]["images.3"] == 64
    shaped = edgekit.load(str(src), shapes=["images=2x3x32x40", "scale=7"])
    assert spec["images"].concrete(model.dims) == (1, 3, 48, 64)  # the first load is untouched
    assert {s.name: s.concrete(shaped.dims) for s in shaped.signature.inputs} == {
        "images": (2, 3, 32, 40), "scale": (7,)}
    with pytest.raises(EdgekitError, match="the model declares"):
        edgekit.load(str(src), shapes=["images=1x4x32x32", "scale=7"])
    with pytest.raises(EdgekitError, match="by --shape images but"):
        edgekit.load(str(src), shapes=["images=1x3x32x32", "scale=7"], sample=x)


def test_input_flag_sizes_an_onnx_model_or_is_refused(tmp_path):
    src = _conv_model(tmp_path)
    model = edgekit.load(str(src), inputs=["images:1x3x16x16:float32", "scale:3:float32"])
    assert model.signature.inputs[0].concrete(model.dims) == (1, 3, 16, 16)
    with pytest.raises(EdgekitError, match="does not have"):
        edgekit.load(str(src), inputs=["pixels:1x3x16x16:float32"])


@pytest.mark.integration
def test_dynamic_detector_of_any_name_to_openvino_and_tflite(tmp_path):
    """Given only --inputs: OpenVINO keeps the axes dynamic, TFLite fixes them at the arrays' sizes."""
    pytest.importorskip("openvino")
    pytest.importorskip("onnx2tf")
    src = _conv_model(tmp_path, name="yolo_det-v2.onnx")
    x = _npz(tmp_path / "x.npz", images=np.random.rand(1, 3, 40, 56).astype(np.float32),
             scale=np.linspace(0, 1, 6, dtype=np.float32))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgekit", "convert", str(src), "--to", "onnx,openvino,tflite",
                           "--inputs", str(x), "--out", str(out), "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    status = {a["target"]: a["parity"]["status"] for a in manifest["artifacts"]}
    assert status == {"onnx": "pass", "openvino": "pass", "tflite": "pass"}
    ov = next(a for a in manifest["artifacts"] if a["target"] == "openvino")
    assert isinstance(ov["signature"]["inputs"][0]["shape"][2], str)  # still dynamic
    tfl = next(a for a in manifest["artifacts"] if a["target"] == "tflite")
    assert tfl["signature"]["inputs"][0]["shape"] == [1, 3, 40, 56]  # the ONNX layout, at the arrays' size
    assert tfl["attempts"][-1]["kept"] and tfl["attempts"][-1]["parity"] == "pass"
    assert manifest["source"]["dim_sources"]["images.2"] == "--inputs x.npz (images)"


@pytest.mark.integration
def test_route_flag_forces_one_route_and_unknown_is_refused(tmp_path):
    pytest.importorskip("onnx2tf")
    src = _conv_model(tmp_path)
    x = _npz(tmp_path / "x.npz", images=np.random.rand(1, 3, 16, 16).astype(np.float32),
             scale=np.ones(2, np.float32))
    res = edgekit.convert(str(src), targets=["tflite"], out=tmp_path / "o", inputs=x,
                          routes=("onnx2tf (ONNX layout)",))
    (art,) = res.artifacts
    assert [a["route"] for a in art.attempts] == ["onnx -> onnx2tf (ONNX layout)"] and art.parity.status == "pass"
    # onnx2tf hands this conv's output back channels-last: parity compares it transposed, a note says so
    assert art.signature.outputs[0].shape == (1, 16, 16, 4)
    assert any("another layout than the source's: y [1, 16, 16, 4] (ONNX: [1, 4, 16, 16])" in n for n in art.notes)
    with pytest.raises(EdgekitError, match="no target here has a route 'tvm'"):
        edgekit.convert(str(src), targets=["tflite"], out=tmp_path / "o2", inputs=x, routes=("tvm",))
    assert not (tmp_path / "o2").exists()


@pytest.mark.integration
def test_openvino_torch_frontend_route(tmp_path):
    """OpenVINO's second route, its PyTorch frontend, converts and passes parity when forced."""
    pytest.importorskip("openvino")
    res = edgekit.convert("tests.fixtures:tiny_cnn", targets=["openvino"], out=tmp_path / "o",
                          routes=("openvino.convert_model (PyTorch frontend)",))
    (art,) = res.artifacts
    assert [a["route"] for a in art.attempts] == ["torch -> openvino.convert_model (PyTorch frontend)"]
    assert art.parity.status == "pass" and art.parity.max_abs_err < 1e-4


@pytest.mark.integration
def test_float16_source_is_judged_at_fp16_tolerances(tmp_path):
    """An ONNX model computing in float16 (ONNX's own attention case) is verified at fp16 tolerances:
    held to fp32's, OpenVINO's correct fp16 result fails (max abs 4.9e-4)."""
    pytest.importorskip("openvino")
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        case = next(c for c in collect_testcases() if c.name == "test_attention_4d_gqa_causal_nonpad_decode_fp16")
    onnx.save(case.model, tmp_path / "attn.onnx")
    names = [i.name for i in case.model.graph.input]
    x = _npz(tmp_path / "x.npz", **dict(zip(names, case.data_sets[0][0], strict=True)))
    res = edgekit.convert(str(tmp_path / "attn.onnx"), targets=["openvino"], out=tmp_path / "o", inputs=x)
    assert res.artifacts[0].parity.status == "pass"
    assert any("computes in float16" in n for n in res.notes)
    from edgekit.steps.verify import default_tolerance

    fp32 = default_tolerance("fp32")  # the same artifact, held to fp32's tolerances, fails
    strict = edgekit.convert(str(tmp_path / "attn.onnx"), targets=["openvino"], out=tmp_path / "o2", inputs=x,
                             tolerance={k: fp32[k] for k in ("atol", "rtol")})
    assert not strict.ok


def test_recipe_from_python_and_cli_resolve_alike(tmp_path):
    """A recipe's [model] shapes and [verify] inputs size the axes; flags override its fields."""
    from edgekit._recipe import load_recipe, resolve_convert

    src = _conv_model(tmp_path)
    x = _npz(tmp_path / "x.npz", images=np.random.rand(1, 3, 24, 24).astype(np.float32),
             scale=np.ones(3, np.float32))
    (tmp_path / "r.toml").write_text(f'[model]\nsource = "{src}"\nshapes = {{ scale = [3] }}\n'
                                     f'[convert]\ntargets = ["onnx"]\n[verify]\ninputs = "{x}"\n')
    load_kw, convert_kw = resolve_convert(load_recipe(tmp_path / "r.toml"), None, {"precision": "fp16"})
    assert load_kw["shapes"] == ["scale=3"] and str(load_kw["sample"]) == str(x)
    assert convert_kw["targets"] == ["onnx"] and convert_kw["precision"] == "fp16"
    res = edgekit.convert(recipe=tmp_path / "r.toml", out=tmp_path / "o")
    assert [a.target for a in res.artifacts] == ["onnx"] and res.ok
    assert res.manifest["source"]["dims"]["images.2"] == 24


def test_parity_reads_a_channels_last_output_of_any_rank_transposed_back():
    """onnx2tf hands 3D to 5D outputs back channels-last (NWC, NHWC, NDHWC): parity compares them moved
    back to channels-first; the same values in any other arrangement are not taken for them."""
    from edgekit.steps.verify import _align

    rng = np.random.default_rng(0)
    for shape in [(1, 3, 31), (2, 4, 5, 6), (1, 2, 3, 4, 5)]:
        ref = rng.standard_normal(shape).astype(np.float32)
        n = ref.ndim
        last = np.moveaxis(ref, 1, n - 1)  # channels-last
        np.testing.assert_array_equal(_align(ref, last), ref)
        assert not np.array_equal(_align(ref, last.reshape(last.shape[::-1])), ref)


def test_openvino_static_route_takes_an_if_on_shapes(tmp_path):
    result = edgekit.convert(edgekit.load(if_on_length(tmp_path / "if.onnx"), dims={"L": 16}), targets=["openvino"],
                             out=tmp_path / "o")
    art = result.artifacts[0]
    assert [a["route"] for a in art.attempts] == ["onnx -> openvino.convert_model",
                                                  "onnx-file -> openvino.convert_model (static shapes)"]
    assert art.attempts[0]["error"] and art.attempts[1].get("kept") and art.parity.status == "pass"
    assert any("L=16" in n for n in art.notes) and any("1 If taken" in n for n in art.notes)
