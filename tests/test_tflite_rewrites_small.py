"""The rewrites of backends/tflite/_rewrites_more.py keep ONNX's meaning: ONNX Runtime gives the
same outputs, bit for bit, before and after each, on tiny graphs built here (no onnx2tf: fast)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.backends._onnx_rewrites import each, grid_sample_nearest  # noqa: E402
from edgekit.backends.tflite import _rewrites_more as M  # noqa: E402


def _model(node, inputs: dict, out_type=TensorProto.FLOAT, inits=(), opset=21):
    """One node; ``inputs``: name -> array fed at run time (its type and shape from the array)."""
    values = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for k, v in inputs.items()]
    graph = helper.make_graph([node], "g", values, [helper.make_tensor_value_info(node.output[0], out_type, None)],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _same_after(proto, feeds, ops, build, changed=1):
    want = _run(proto, feeds)
    assert each(onnx, proto, ops, build) == changed
    got = _run(proto, feeds)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    return [n.op_type for n in proto.graph.node]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool", "LpPool"])
@pytest.mark.parametrize("mode,strides,size", [("SAME_LOWER", [1, 1], 7), ("SAME_LOWER", [2, 3], 8),
                                               ("SAME_UPPER", [2, 2], 7)])
def test_same_padding_written_as_pads(op, mode, strides, size):
    node = helper.make_node(op, ["x"], ["y"], auto_pad=mode, kernel_shape=[2, 3], strides=strides)
    x = np.random.default_rng(0).standard_normal([1, 2, size, size + 1]).astype(np.float32)
    proto = _model(node, {"x": x})
    rewritten = mode == "SAME_LOWER" or op == "LpPool"  # onnx2tf takes SAME_UPPER max/average pools right
    _same_after(proto, {"x": x}, M._POOL_OPS, M._explicit_pads, int(rewritten))
    assert not rewritten or M._text(proto.graph.node[0], "auto_pad", "NOTSET") == "NOTSET"


def test_same_lower_conv_written_as_pads():
    rng = np.random.default_rng(1)
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 1])
    x = rng.standard_normal([1, 2, 7, 6]).astype(np.float32)
    w = rng.standard_normal([3, 2, 2, 3]).astype(np.float32)
    _same_after(_model(node, {"x": x}, inits={"w": w}), {"x": x}, M._POOL_OPS, M._explicit_pads)


@pytest.mark.parametrize("axis", [1, -1, 0])
@pytest.mark.parametrize("depth_fed", [True, False])
def test_onehot_out_of_range_and_negative_indices(axis, depth_fed):
    """Indices past the depth give a row of off values; negative ones count from the end."""
    indices = np.array([[5, -6, -1], [0, 4, -5]], np.int64)
    depth, values = np.array(5, np.float32), np.array([1, 3], np.float32)
    node = helper.make_node("OneHot", ["indices", "depth", "values"], ["y"], axis=axis)
    feeds = {"indices": indices, "values": values, **({"depth": depth} if depth_fed else {})}
    proto = _model(node, feeds, inits={} if depth_fed else {"depth": depth})
    ops = _same_after(proto, feeds, {"OneHot"}, M._onehot)
    assert "OneHot" not in ops and ("Range" in ops) == depth_fed


@pytest.mark.parametrize("policy,sizes", [("not_larger", [7, 8]), ("not_smaller", [7, 8]),
                                          ("not_larger", [1, 3]), ("not_smaller", [2, 2])])
def test_resize_keeping_the_aspect_ratio(policy, sizes):
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest", axes=[2, 3],
                            keep_aspect_ratio_policy=policy)
    proto = _model(node, {"x": x}, inits={"sizes": np.array(sizes, np.int64)})
    _same_after(proto, {"x": x}, {"Resize"}, M._resize_aspect)


def test_resize_with_sizes_fed_at_run_time_stays():
    x = np.ones([1, 1, 2, 2], np.float32)
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], keep_aspect_ratio_policy="not_larger")
    proto = _model(node, {"x": x, "sizes": np.array([1, 1, 7, 8], np.int64)})
    assert each(onnx, proto, {"Resize"}, M._resize_aspect) == 0


@pytest.mark.parametrize("zp_type", [np.uint8, np.int8])
@pytest.mark.parametrize("per_axis", [False, True])
def test_quantize_linear_outside_a_qdq_pair(zp_type, per_axis):
    """Halves round to even, values past the type's range saturate."""
    x = np.array([[0, 0.5, 1.5, 2.5, -2.5, 1000], [-1000, 3.49, -0.5, 7, 128, -129]], np.float32).T
    scale = np.array([0.5, 1.0], np.float32) if per_axis else np.array(1.0, np.float32)
    zp = np.array([3, 1] if per_axis else 2, zp_type)
    node = helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["y"], axis=1)
    proto = _model(node, {"x": x}, helper.np_dtype_to_tensor_dtype(np.dtype(zp_type)), {"scale": scale, "zp": zp})
    assert "QuantizeLinear" not in _same_after(proto, {"x": x}, {"QuantizeLinear"}, M._quantize)


def test_quantize_linear_of_a_qdq_pair_stays():
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              [numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
                               numpy_helper.from_array(np.array(0, np.uint8), "zp")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    assert each(onnx, proto, {"QuantizeLinear"}, M._quantize) == 0


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
@pytest.mark.parametrize("op", ["BitwiseOr", "BitwiseAnd", "BitwiseNot"])
def test_bitwise_on_every_value(dtype, op):
    """Every value of 8-bit types against every other; 16-bit ones over the extremes and a spread."""
    info = np.iinfo(dtype)
    if info.bits == 8:
        grid = np.arange(info.min, info.max + 1)
        a, b = (v.astype(dtype) for v in np.meshgrid(grid, grid))
    else:
        picks = np.concatenate([[info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max],
                                np.random.default_rng(2).integers(info.min, info.max + 1, 250)])
        picks = picks[(picks >= info.min) & (picks <= info.max)]
        a, b = (v.astype(dtype) for v in np.meshgrid(picks, picks[::-1]))
    kind = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node(op, ["a"] if op == "BitwiseNot" else ["a", "b"], ["y"])
    feeds = {"a": a} if op == "BitwiseNot" else {"a": a, "b": b[0]}  # b broadcast along a's rows
    ops = _same_after(_model(node, feeds, kind, opset=18), feeds, {op}, M._bitwise)
    assert op not in ops


@pytest.mark.parametrize("reduction", ["min", "max", "add", "mul"])
def test_scatternd_reduction_with_repeated_indices(reduction):
    rng = np.random.default_rng(3)
    data = rng.integers(-5, 5, [4, 3, 2]).astype(np.float32)
    indices = np.array([[0], [2], [0], [0]], np.int64)
    updates = rng.integers(-5, 5, [4, 3, 2]).astype(np.float32)
    node = helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"], reduction=reduction)
    feeds = {"data": data, "indices": indices, "updates": updates}
    assert "GatherND" in _same_after(_model(node, feeds, opset=18), feeds, {"ScatterND"}, M._scatternd_reduction)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_bitwise_not_of_wide_signed_types(dtype):
    info = np.iinfo(dtype)
    a = np.array([info.min, info.min + 1, -2, -1, 0, 1, info.max], dtype)
    node = helper.make_node("BitwiseNot", ["a"], ["y"])
    kind = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    assert _same_after(_model(node, {"a": a}, kind, opset=18), {"a": a}, {"BitwiseNot"}, M._bitwise) == ["Sub"]


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_3d_same_upper_pool_written_as_pads(op):
    """A 3-D pool needs explicit pads to become a Conv of ones (average) before onnx2tf."""
    node = helper.make_node(op, ["x"], ["y"], auto_pad="SAME_UPPER", kernel_shape=[2, 2, 3], strides=[2, 1, 2])
    x = np.random.default_rng(4).standard_normal([1, 2, 5, 4, 7]).astype(np.float32)
    _same_after(_model(node, {"x": x}), {"x": x}, M._POOL_OPS, M._explicit_pads)


@pytest.mark.parametrize("spatial,align,pad", [((3, 2, 2), 0, "zeros"), ((5, 4), 1, "zeros"), ((4, 6), 0, "border"),
                                               ((2, 3, 4), 1, "border")])
def test_grid_sample_nearest_as_gather(spatial, align, pad):
    rank = len(spatial)
    out = (2, 4, 3)[:rank]
    node = helper.make_node("GridSample", ["x", "g"], ["y"], mode="nearest", align_corners=align, padding_mode=pad)
    graph = helper.make_graph([node], "gs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, *spatial]),
                                             helper.make_tensor_value_info("g", TensorProto.FLOAT, [2, *out, rank])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    grid = (rng.integers(-6, 7, (2, *out, rank)) / 4).astype(np.float32)  # ties at .5 and points outside
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x, "g": grid})[0]
    assert each(onnx, proto, {"GridSample"}, grid_sample_nearest) == 1
    assert "GatherElements" in [n.op_type for n in proto.graph.node]
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x, "g": grid})[0]
    assert np.array_equal(got, want)


def test_two_d_mask_given_the_scores_rank_but_a_bias_left_alone():
    mask = helper.make_tensor("m", TensorProto.FLOAT, [2, 6], np.triu(np.full((2, 6), -1e4), 1).ravel().tolist())
    bias = helper.make_tensor("b", TensorProto.FLOAT, [6], np.arange(6, dtype=np.float32).tolist())
    nodes = [helper.make_node("Add", ["s", "m"], ["y"]), helper.make_node("Add", ["y", "b"], ["z"])]
    graph = helper.make_graph(nodes, "mask", [helper.make_tensor_value_info("s", TensorProto.FLOAT, [3, 1, 2, 6])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 1, 2, 6])], [mask, bias])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    s = np.random.default_rng(0).standard_normal((3, 1, 2, 6)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"s": s})[0]
    assert each(onnx, proto, {"Add", "Sub", "Mul", "Div"}, M._broadcast_rank) == 1  # the mask, not the bias
    assert [n.op_type for n in proto.graph.node] == ["Unsqueeze", "Add", "Add"]
    assert np.array_equal(ort.InferenceSession(proto.SerializeToString()).run(None, {"s": s})[0], want)
