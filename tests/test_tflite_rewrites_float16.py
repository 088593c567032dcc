"""float16 graphs are computed in float32 before onnx2tf (backends/tflite/_rewrites_float16.py):
inputs cast up, every float16 constant, Cast target and subgraph type widened, outputs cast back;
ONNX Runtime gives the same outputs (float16 still) before and after. No onnx2tf: fast."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F16 = TensorProto.FLOAT16


def _run(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _graph():
    """y = Where(x > c, x * w, Cast(x_as_f32 * 0.5, to=float16)) + ConstantOfShape(1.0 as f16)."""
    w = numpy_helper.from_array(np.array([1.5, -2.0, 0.25, 3.0], np.float16), "w")
    c = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(0.5, np.float16)))
    shape = numpy_helper.from_array(np.array([4], np.int64), "shape")
    nodes = [c, helper.make_node("Greater", ["x", "c"], ["gt"]), helper.make_node("Mul", ["x", "w"], ["xw"]),
             helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x32", "half"], ["h32"]),
             helper.make_node("Cast", ["h32"], ["h16"], to=F16),
             helper.make_node("Where", ["gt", "xw", "h16"], ["sel"]),
             helper.make_node("ConstantOfShape", ["shape"], ["ones"],
                              value=numpy_helper.from_array(np.array([1.0], np.float16))),
             helper.make_node("Add", ["sel", "ones"], ["y"])]
    half = numpy_helper.from_array(np.array(0.5, np.float32), "half")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F16, [4])],
                              [helper.make_tensor_value_info("y", F16, [4]),
                               helper.make_tensor_value_info("xw", F16, [4])], [w, shape, half])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _float16_left(proto) -> list[str]:
    """Where float16 remains: anything but the graph's own inputs/outputs and the casts at them."""
    graph, left = proto.graph, []
    left += [i.name for i in graph.initializer if i.data_type == F16]
    left += [v.name for v in graph.value_info if v.type.tensor_type.elem_type == F16]
    for node in graph.node:
        for a in node.attribute:
            if (a.type == onnx.AttributeProto.TENSOR and a.t.data_type == F16) or (
                    a.name == "to" and a.i == F16 and not node.name.endswith("__to_f16")):
                left.append(node.output[0])
    return left


def test_float16_graph_is_computed_in_float32():
    from edgekit.backends.tflite._rewrites_float16 import float16_in_float32

    proto = _graph()
    x = {"x": np.array([1.0, -3.0, 0.75, 0.25], np.float16)}
    want = _run(proto, x)
    assert float16_in_float32(onnx, proto) > 0
    assert not _float16_left(proto)
    got = _run(proto, x)
    for a, b in zip(want, got, strict=True):
        assert b.dtype == np.float16 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def test_float16_in_a_loop_body_is_widened():
    """A Loop body's float16 state and constants become float32 with the graph around it."""
    from edgekit.backends.tflite._rewrites_float16 import float16_in_float32

    step = numpy_helper.from_array(np.array(0.5, np.float16), "step")
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]), helper.make_node("Add", ["acc", "step"], ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc", F16, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", F16, [])], [step])
    n = numpy_helper.from_array(np.array(3, np.int64), "n")
    graph = helper.make_graph([helper.make_node("Loop", ["n", "", "x"], ["y"], body=body)], "g",
                              [helper.make_tensor_value_info("x", F16, [])],
                              [helper.make_tensor_value_info("y", F16, [])], [n])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": np.array(1.25, np.float16)}
    want = _run(proto, x)
    assert float16_in_float32(onnx, proto) > 0
    loop_body = proto.graph.node[1].attribute[0].g
    assert loop_body.initializer[0].data_type == TensorProto.FLOAT
    assert loop_body.input[2].type.tensor_type.elem_type == TensorProto.FLOAT
    got = _run(proto, x)
    assert got[0].dtype == np.float16 and got[0] == want[0] == np.float16(2.75)


def test_a_float32_graph_is_left_as_it_is():
    from edgekit.backends.tflite._rewrites_float16 import float16_in_float32

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    before = proto.SerializeToString()
    assert float16_in_float32(onnx, proto) == 0
    assert proto.SerializeToString() == before
