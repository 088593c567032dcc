"""The graph-level rewrites before onnx2tf (backends/tflite/_rewrites_graph.py, and the shape-only
``If`` fold shared in backends/_onnx_static.py) keep the graph's meaning: ONNX Runtime gives the
same outputs before and after, on small graphs built here (no onnx2tf: these are fast)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.backends._onnx_static import fold_static_ifs  # noqa: E402
from edgekit.backends.tflite import _rewrites_graph as G  # noqa: E402


def _run(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _model(nodes, inputs, outputs, inits=(), opset=16):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _const(name, value, dtype=np.int64):
    return numpy_helper.from_array(np.array(value, dtype), name)


def _branch(name, op, operand):
    """A branch that reads ``x`` from the outer graph: ``op(x, operand)``."""
    return helper.make_graph([helper.make_node(op, ["x", operand], [f"{name}_out"])], name, [],
                             [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)])


def _if(cond, out, then, other):
    return helper.make_node("If", [cond], [out], then_branch=then, else_branch=other)


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
INITS = [_const("zero", [0]), _const("two", 2), _const("one_f", 1.0, np.float32), _const("two_f", 2.0, np.float32)]
SHAPE_COND = [helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Gather", ["shape", "zero"], ["rows"]),
              helper.make_node("Equal", ["rows", "two"], ["cond"])]


def test_if_on_a_shape_takes_its_branch():
    """x has 2 rows, so ``If(rows == 2)`` is its then branch (x + 1): the If is gone, the result the same."""
    proto = _model([*SHAPE_COND, _if("cond", "y", _branch("then", "Add", "one_f"), _branch("else", "Mul", "two_f"))],
                   [X], [Y], INITS)
    x = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    want = _run(proto, x)
    assert fold_static_ifs(onnx, proto) == 1
    assert "If" not in [n.op_type for n in proto.graph.node]
    np.testing.assert_array_equal(_run(proto, x)[0], want[0])
    np.testing.assert_array_equal(want[0], x["x"] + 1)


def test_nested_if_is_taken_too():
    """An If inside the branch taken becomes top-level, and is folded in the next pass."""
    inner = _if("cond", "then_out", _branch("inner_then", "Sub", "one_f"), _branch("inner_else", "Mul", "two_f"))
    then = helper.make_graph([inner], "then", [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)])
    proto = _model([*SHAPE_COND, _if("cond", "y", then, _branch("else", "Mul", "two_f"))], [X], [Y], INITS)
    x = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    want = _run(proto, x)
    assert fold_static_ifs(onnx, proto) == 2
    assert "If" not in [n.op_type for n in proto.graph.node]
    np.testing.assert_array_equal(_run(proto, x)[0], want[0])


def test_if_on_an_input_value_is_kept():
    """A condition read from an input's values (silero-vad's sample rate) is the model's contract: kept."""
    sr = helper.make_tensor_value_info("sr", TensorProto.INT64, [])
    nodes = [helper.make_node("Equal", ["sr", "two"], ["cond"]),
             _if("cond", "y", _branch("then", "Add", "one_f"), _branch("else", "Mul", "two_f"))]
    proto = _model(nodes, [X, sr], [Y], INITS)
    assert fold_static_ifs(onnx, proto) == 0
    assert [n.op_type for n in proto.graph.node] == ["Equal", "If"]
    with pytest.raises(ValueError, match="If node '' branches on the value of input 'sr'"):
        G.refuse_ifs_on_values(proto)
    from edgekit._known import explain

    err = explain("tflite", ValueError("If node 'If_0' branches on the value of input 'sr', not on a shape"))
    assert "ONNX If, node If_0" in str(err) and "if 'sr' is a setting" in str(err)
    assert "fix it to the value you use" in str(err) and "onnx2torch route" in str(err)  # data: both branches


def test_if_fixed_by_an_initializer_is_taken():
    """The known failure's fix: the input made an initializer, the If on its value is taken."""
    nodes = [helper.make_node("Equal", ["sr", "two"], ["cond"]),
             _if("cond", "y", _branch("then", "Add", "one_f"), _branch("else", "Mul", "two_f"))]
    proto = _model(nodes, [X], [Y], [*INITS, _const("sr", 2)])
    assert fold_static_ifs(onnx, proto) == 1
    G.refuse_ifs_on_values(proto)


def test_if_whose_branch_reuses_an_outer_name_is_kept():
    """Inlining a branch that defines a name the outer graph has would clash: the If stays."""
    proto = _model([*SHAPE_COND, helper.make_node("Identity", ["x"], ["then_out"]),
                    _if("cond", "y", _branch("then", "Add", "one_f"), _branch("else", "Mul", "two_f"))],
                   [X], [Y], INITS)
    assert fold_static_ifs(onnx, proto) == 0


@pytest.mark.parametrize("starts,ends,axes", [([0, 1], [129, 2**63 - 1], [1, 2]), ([129, 1], [258, 5], [-2, 2]),
                                              ([1, 0, 2], [3, 100, 4], None)])
def test_slice_over_several_axes_becomes_one_per_axis(starts, ends, axes):
    """silero-vad's STFT slice, [4, 258, 5][:, 0:129, 1:] and its like: the same values, one Slice per axis."""
    shape = [4, 258, 5]
    names = ["s", "e", "a"] if axes is not None else ["s", "e"]
    inits = [_const("s", starts), _const("e", ends)] + ([_const("a", axes)] if axes is not None else [])
    proto = _model([helper.make_node("Slice", ["x", *names], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], [Y], inits)
    x = {"x": np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    want = _run(proto, x)
    assert G.split_multi_axis_slices(onnx, proto) == 1
    assert [n.op_type for n in proto.graph.node] == ["Slice"] * len(starts)
    got = _run(proto, x)
    assert got[0].shape == want[0].shape
    np.testing.assert_array_equal(got[0], want[0])


def test_single_axis_or_computed_slice_stays():
    inits = [_const("s", [1]), _const("e", [3])]
    nodes = [helper.make_node("Slice", ["x", "s", "e"], ["y"]), helper.make_node("Slice", ["x", "s", "ends"], ["z"])]
    ends = helper.make_tensor_value_info("ends", TensorProto.INT64, [1])
    proto = _model(nodes, [X, ends], [Y, helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    assert G.split_multi_axis_slices(onnx, proto) == 0


def test_node_names_become_valid_scope_names():
    """Paddle's ``Softmax@0`` (TensorFlow refuses '@' in a scope name) becomes ``Softmax_0``,
    without taking a name another node has; valid names (``/model/Conv``) are kept."""
    nodes = [helper.make_node("Softmax", ["x"], ["a"], name="Softmax@0"),
             helper.make_node("Relu", ["a"], ["b"], name="Softmax_0"),
             helper.make_node("Relu", ["b"], ["y"], name="/model/Relu-1")]
    proto = _model(nodes, [X], [Y])
    x = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    want = _run(proto, x)
    assert G.scope_safe_names(onnx, proto) == 1
    assert [n.name for n in proto.graph.node] == ["Softmax_0_1", "Softmax_0", "/model/Relu-1"]
    np.testing.assert_array_equal(_run(proto, x)[0], want[0])


@pytest.mark.parametrize("axis,rewritten", [(1, True), (2, True), (0, False), (-1, False)])
def test_inner_unsqueeze_becomes_reshape(axis, rewritten):
    """DeepCut's Keras Conv1D ([8, 21, 32] -> [8, 1, 21, 32]): an inner new axis into 4D becomes a
    Reshape to the static shape; a new first or last axis stays an Unsqueeze."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 21, 32])
    proto = _model([helper.make_node("Unsqueeze", ["x", "axes"], ["y"])], [x], [Y], [_const("axes", [axis])])
    feeds = {"x": np.random.default_rng(0).standard_normal((8, 21, 32)).astype(np.float32)}
    want = _run(proto, feeds)
    assert G.inner_unsqueeze_as_reshape(onnx, proto) == int(rewritten)
    assert proto.graph.node[0].op_type == ("Reshape" if rewritten else "Unsqueeze")
    got = _run(proto, feeds)
    assert got[0].shape == want[0].shape
    np.testing.assert_array_equal(got[0], want[0])
