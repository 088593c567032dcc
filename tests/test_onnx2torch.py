"""The routes from an ONNX file through onnx2torch (TFLite by litert-torch, Core ML): real
onnx2torch, litert-torch and coremltools, on small graphs built here."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import edgekit
from edgekit import EdgekitError

onnx = pytest.importorskip("onnx")
if importlib.util.find_spec("onnx2torch") is None:
    pytest.skip("onnx2torch is not installed (make setup installs it)", allow_module_level=True)
from onnx import TensorProto, helper  # noqa: E402

F, I64 = TensorProto.FLOAT, TensorProto.INT64


def _save(path, nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(inits))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def test_onnx2torch_loads_without_torchvision_and_names_what_needs_it(tmp_path):
    from edgekit.backends._onnx2torch import load, to_torch

    assert hasattr(load(), "convert")
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here: onnx2torch has every converter")
    path = _save(tmp_path / "nms.onnx", [helper.make_node("NonMaxSuppression", ["b", "s"], ["i"])],
                 [helper.make_tensor_value_info("b", F, [1, 4, 4]), helper.make_tensor_value_info("s", F, [1, 1, 4])],
                 [helper.make_tensor_value_info("i", I64, [None, 3])])
    model = edgekit.load(path)
    with pytest.raises(EdgekitError, match="torchvision"):
        to_torch(model, model.onnx_path, "tflite")


def test_a_shape_read_from_input_values_is_refused_not_traced(tmp_path):
    from edgekit.backends._onnx2torch import to_torch

    path = _save(tmp_path / "reshape.onnx", [helper.make_node("Reshape", ["x", "shape"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [2, 6]), helper.make_tensor_value_info("shape", I64, [2])],
                 [helper.make_tensor_value_info("y", F, [3, 4])])
    model = edgekit.load(path)
    with pytest.raises(EdgekitError, match="fix it at the sample's value"):
        to_torch(model, model.onnx_path, "tflite", {"x": np.ones((2, 6), np.float32), "shape": np.array([3, 4])})


def test_check_reads_onnx2torch_converter_table():
    from edgekit.steps._check_onnx2torch import onnx2torch_ops

    ops = onnx2torch_ops()
    assert {("", "Conv"), ("", "Shape"), ("", "LayerNormalization")} <= ops
    assert ("", "ArrayFeatureExtractor") not in ops and ("", "Attention") not in ops


@pytest.mark.integration
def test_tflite_takes_onnx2torch_where_onnx2tf_drops_an_output(tmp_path):
    # onnx2tf folds a Shape output away (its artifact has no output); onnx2torch + litert-torch keep it
    path = _save(tmp_path / "shape.onnx", [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Shape", ["r"], ["s"])],
                 [helper.make_tensor_value_info("x", F, [2, 3, 4])],
                 [helper.make_tensor_value_info("r", F, [2, 3, 4]), helper.make_tensor_value_info("s", I64, [3])])
    result = edgekit.convert(edgekit.load(path), targets=["tflite"], out=tmp_path / "o")
    art = result.artifacts[0]
    kept = [a["route"] for a in art.attempts if a.get("kept")]
    assert kept == ["onnx-file -> onnx2torch + litert-torch"], art.attempts
    assert art.parity.status == "pass" and any("onnx2torch" in n for n in art.notes)
    assert [a["route"] for a in art.attempts][:2] == ["onnx -> onnx2tf", "onnx -> onnx2tf (ONNX layout)"]


def test_size_is_written_as_the_product_of_shape(tmp_path):
    import onnxruntime as ort

    from edgekit.backends._onnx2torch import _size_as_shape_product

    path = _save(tmp_path / "size.onnx", [helper.make_node("Size", ["x"], ["n"])],
                 [helper.make_tensor_value_info("x", F, [2, 3, 4])], [helper.make_tensor_value_info("n", I64, [])])
    proto = onnx.load(str(path))
    _size_as_shape_product(onnx, proto.graph)
    assert [n.op_type for n in proto.graph.node] == ["Shape", "ReduceProd"]
    x = np.zeros((2, 3, 4), np.float32)
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    assert got.shape == () and got.dtype == np.int64 and int(got) == 24


def _torch_vs_ort(path, feeds):
    import onnxruntime as ort
    import torch

    from edgekit.backends._onnx2torch import to_torch

    model = edgekit.load(path)
    got = to_torch(model, model.onnx_path, "coreml", feeds, traced=True).module(
        *[torch.from_numpy(feeds[s.name]) for s in model.signature.inputs])
    want = ort.InferenceSession(str(path)).run(None, feeds)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.detach().numpy(), w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("total", [5.0, -5.0])
def test_an_if_on_input_values_becomes_where(tmp_path, total):
    # a data-dependent If (condition [1, 1], as torch exports `if p >= 0.5`), branches reading the outer graph
    then = helper.make_graph([helper.make_node("Mul", ["x", "x"], ["sq"])], "then", [],
                             [helper.make_tensor_value_info("sq", F, [1, 4])])
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["neg"])], "else", [],
                              [helper.make_tensor_value_info("neg", F, [1, 4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=1),
             helper.make_node("GreaterOrEqual", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    path = _save(tmp_path / "if.onnx", nodes, [helper.make_tensor_value_info("x", F, [1, 4])],
                 [helper.make_tensor_value_info("y", F, [1, 4])], [helper.make_tensor("zero", F, [], [0.0])])
    _torch_vs_ort(path, {"x": np.full((1, 4), total / 4, np.float32)})


@pytest.mark.parametrize("opset", [17, 18])
def test_ops_onnx2torch_or_coremltools_lack_are_rewritten(tmp_path, opset):
    from edgekit.backends._onnx_torchable import ops_as_torchable

    nodes = [helper.make_node("GlobalMaxPool", ["x"], ["g"]),
             helper.make_node("Max", ["x", "g"], ["m"]),
             helper.make_node("ReduceMax", ["x"], ["top"], keepdims=0),
             helper.make_node("Sub", ["top", "eight"], ["floor"]),
             helper.make_node("Clip", ["x", "floor"], ["c"]),
             helper.make_node("Min", ["c", "m"], ["y"]),
             helper.make_node("LessOrEqual", ["x", "g"], ["le"])]
    path = _save(tmp_path / "ops.onnx", nodes, [helper.make_tensor_value_info("x", F, [1, 2, 3, 5])],
                 [helper.make_tensor_value_info("y", F, [1, 2, 3, 5]),
                  helper.make_tensor_value_info("le", TensorProto.BOOL, [1, 2, 3, 5])],
                 [helper.make_tensor("eight", F, [], [8.0])], opset=opset)
    proto = onnx.load(str(path))
    assert ops_as_torchable(onnx, proto) == 5
    assert {"GlobalMaxPool", "Max", "Min", "Clip", "LessOrEqual"}.isdisjoint(n.op_type for n in proto.graph.node)
    x = np.random.default_rng(0).uniform(-20, 20, (1, 2, 3, 5)).astype(np.float32)
    _torch_vs_ort(path, {"x": x})


def test_an_op_onnx2torch_lacks_is_named_as_onnx2torch_s_on_the_tflite_route(tmp_path):
    # onnx2tf's known failure "... is not implemented" matched onnx2torch's "Converter is not implemented" first
    from edgekit.backends._onnx2torch import to_torch

    path = _save(tmp_path / "unique.onnx", [helper.make_node("Unique", ["x"], ["y"], sorted=1)],
                 [helper.make_tensor_value_info("x", F, [6])], [helper.make_tensor_value_info("y", F, [None])])
    model = edgekit.load(path)
    with pytest.raises(EdgekitError, match="onnx2torch has no converter for Unique") as info:
        to_torch(model, model.onnx_path, "tflite", {"x": np.arange(6, dtype=np.float32)})
    assert "onnx2tf does not implement" not in str(info.value)


def test_an_onnx_comparison_converts_to_coreml(tmp_path):
    # onnx2torch writes Less as torch.less, which reaches coremltools as 'less' (it has 'lt' only)
    pytest.importorskip("coremltools")
    nodes = [helper.make_node("Less", ["x", "y"], ["c"]), helper.make_node("Where", ["c", "y", "x"], ["m"])]
    path = _save(tmp_path / "less.onnx", nodes, [helper.make_tensor_value_info(n, F, [2, 3]) for n in "xy"],
                 [helper.make_tensor_value_info("m", F, [2, 3])])
    result = edgekit.convert(edgekit.load(path), targets=["coreml"], out=tmp_path / "o")
    (art,) = result.artifacts
    assert art.path.exists() and art.parity.validation["loads"], art.attempts


def test_a_core_ml_package_of_an_input_named_with_a_dot_validates(tmp_path):
    # coremltools writes 'x.1' (torch's exported names) as 'x_1'; the package is the source's all the same
    pytest.importorskip("coremltools")
    path = _save(tmp_path / "dot.onnx", [helper.make_node("Relu", ["x.1"], ["y"])],
                 [helper.make_tensor_value_info("x.1", F, [2, 3])], [helper.make_tensor_value_info("y", F, [2, 3])])
    result = edgekit.convert(edgekit.load(path), targets=["coreml"], out=tmp_path / "o")
    (art,) = result.artifacts
    assert not art.parity.validation["problems"], art.parity.validation
    assert [i["name"] for i in art.parity.validation["inputs"]] == ["x_1"]
