"""The op rewrites made before onnx2tf (backends/tflite/_rewrites*.py) keep ONNX's meaning: ONNX
Runtime gives the same outputs for the prepared graph as for the original, on ONNX's own node
cases and on small graphs built here (no onnx2tf: these are fast)."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit

from ._onnx_cases import node_cases, ort_run

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

# node case -> the note its rewrite leaves; exact: the rewrite must give the same bits
CASES = {
    "test_clip_example": ("Clip written as Max/Min", True),
    "test_clip_min_greater_than_max": ("Clip written as Max/Min", True),
    "test_clip_default_inbounds": ("Clip written as Max/Min", True),
    "test_clip_default_int8_min": ("Clip written as Max/Min", True),
    # onnxsim writes select_last_index as a reversing Slice, which then becomes a Gather
    "test_argmax_default_axis_random_select_last_index": ("Slice reversing or past an end", True),
    "test_argmin_no_keepdims_example_select_last_index": ("Slice reversing or past an end", True),
    "test_reduce_log_sum_default_expanded": ("Reduce* with empty axes given every axis", False),
    "test_reduce_sum_empty_axes_input_noop": ("Reduce* with empty axes given every axis", True),
    "test_layer_normalization_3d_axis0_epsilon": ("LayerNormalization over the first axis", False),
    "test_layer_normalization_4d_axis_negative_4": ("LayerNormalization over the first axis", False),
    "test_tril_out_neg": ("Trilu with k written as Where", True),
    "test_triu_square_neg": ("Trilu with k written as Where", True),
    "test_triu_one_row": ("Trilu with k written as Where", True),
    "test_spacetodepth_crd_mode_example": ("SpaceToDepth CRD written as Reshape/Transpose", True),
    "test_cosh": ("Cosh written as Exp", False),
    "test_atanh": ("Atanh written as Log", False),
    "test_asin_example": ("Asin written as Atan", False),
    "test_acos": ("Acos written as Atan", False),
    "test_isinf_positive": ("IsInf written as a comparison", True),
    "test_isinf_negative": ("IsInf written as a comparison", True),
    "test_isinf": ("IsInf written as a comparison", True),
    "test_bitshift_left_uint8": ("BitShift LEFT written as a Mul", True),
    "test_bitshift_left_int32_overflow": ("BitShift LEFT written as a Mul", True),
    "test_sce_mean_no_weight_ii_3d_log_prob": ("written as ONNX's function body", False),
    "test_nllloss_NCd1_ii": ("written as ONNX's function body", False),
    "test_attention_4d_with_past_and_present": ("Attention written as ONNX's function body", False),
    "test_attention_4d_attn_mask_3d": ("Attention written as ONNX's function body", False),
    "test_attention_bidirectional_window": ("Attention written as ONNX's function body", False),
    "test_qlinearmatmul_3D_uint8_float16": ("float16 values computed in float32", True),
    "test_mod_mixed_sign_float16": ("float16 values computed in float32", True),
    "test_range_float16_type_positive_delta": ("float16 values computed in float32", True),
    "test_mod_mixed_sign_float32": ("Mod with fmod=1 written as a Mod of magnitudes", True),
    "test_mod_int64_fmod": ("Mod with fmod=1 written as a Mod of magnitudes", True),
    "test_qlinearmatmul_2D_int8_float32": ("QLinearMatMul written as float32 integer arithmetic", True),
    "test_qlinearmatmul_3D_uint8_float32": ("QLinearMatMul written as float32 integer arithmetic", True),
    "test_averagepool_3d_dilations_small": ("3-D AveragePool/LpPool written as a Conv", False),
    "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True": (
        "3-D AveragePool/LpPool written as a Conv", False),
    "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True": (
        "3-D AveragePool/LpPool written as a Conv", False),
    "test_lppool_3d_default": ("3-D AveragePool/LpPool written as a Conv", False),
}


@pytest.fixture(scope="module")
def cases():
    return node_cases(CASES)


def _prepare_and_compare(tmp_path, proto, feeds, note: str, exact: bool) -> list[str]:
    from edgekit.backends.tflite._prepare import prepare_for_onnx2tf

    src = tmp_path / "m.onnx"
    onnx.save(proto, src)
    np.savez(tmp_path / "x.npz", **feeds)
    model = edgekit.load(str(src), sample=tmp_path / "x.npz")
    (tmp_path / "prep").mkdir()
    prepared, done = prepare_for_onnx2tf(model, src, tmp_path / "prep")
    assert any(note in d for d in done), done
    for want, got in zip(ort_run(src, feeds), ort_run(prepared, feeds), strict=True):
        assert want.dtype == got.dtype and want.shape == got.shape
        if exact:
            np.testing.assert_array_equal(want, got)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=3e-7)
    return done


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewritten_node_case_computes_the_same(tmp_path, cases, name):
    case = cases[name]
    inits = {i.name for i in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in inits]
    arrays = [np.asarray(onnx.numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else a)
              for a in case.data_sets[0][0]]
    _prepare_and_compare(tmp_path, case.model, dict(zip(names, arrays, strict=True)), *CASES[name])


def _unary(op: str, x: np.ndarray):
    node = helper.make_node(op, ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, x.shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])


@pytest.mark.parametrize("op", ["Asin", "Acos", "Atanh"])
def test_inverse_trig_is_exact_at_the_ends(tmp_path, op):
    """Over [-1, 1], the ends included: the formulas give +-pi/2, 0, pi or +-inf where ONNX
    Runtime does, never NaN, and stay within 3e-7 elsewhere."""
    x = np.concatenate([np.linspace(-1, 1, 2001), [1e-6, -1e-6, 0.99999, -0.99999]]).astype(np.float32)
    _prepare_and_compare(tmp_path, _unary(op, x), {"x": x}, f"{op} written as", exact=False)


def test_clip_with_constant_bounds_stays(tmp_path):
    """onnx2tf converts a Clip with constant bounds well (a ReLU6 fuses): it is left as it is."""
    lo, hi = (onnx.numpy_helper.from_array(np.array(v, np.float32), n) for v, n in ((0.0, "lo"), (6.0, "hi")))
    graph = helper.make_graph([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [lo, hi])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    from edgekit.backends._onnx_rewrites import each
    from edgekit.backends.tflite._rewrites import _clip

    assert each(onnx, proto, {"Clip"}, _clip) == 0
    assert [n.op_type for n in proto.graph.node] == ["Clip"]


def test_every_constant_form_becomes_an_initializer():
    """onnx2tf's Constant converter fails on value_float(s)/value_int(s): none reaches it."""
    from edgekit.backends._onnx_static import constants_to_initializers

    forms = {"a": {"value_float": 2.0}, "b": {"value_floats": [1.0, 2.0]}, "c": {"value_int": 3},
             "d": {"value_ints": [4, 5]}, "e": {"value": onnx.numpy_helper.from_array(np.array([6], np.int32))}}
    graph = helper.make_graph([helper.make_node("Constant", [], [n], **kw) for n, kw in forms.items()], "g", [], [])
    assert constants_to_initializers(graph) == 5 and not graph.node
    got = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    assert got["a"].dtype == np.float32 and got["a"].shape == () and got["a"] == 2.0
    assert got["b"].tolist() == [1.0, 2.0] and got["c"].dtype == np.int64 and got["d"].tolist() == [4, 5]
    assert got["e"].dtype == np.int32


def test_argmax_select_last_index_without_onnxsim():
    """Where onnxsim is missing, ArgMax's select_last_index is written out by edgekit itself."""
    from edgekit.backends._onnx_rewrites import each
    from edgekit.backends.tflite._rewrites import _arg_last

    node = helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0, select_last_index=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = {"x": np.array([[1, 3, 3, 0, 3], [2, 2, 1, 0, 0]], np.float32)}
    want = _run_proto(proto, x)
    assert each(onnx, proto, {"ArgMax"}, _arg_last) == 1
    np.testing.assert_array_equal(_run_proto(proto, x), want)
    assert want[0].tolist() == [4, 1]


def _run_proto(proto, feeds):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.mark.parametrize("starts,ends,steps", [([-1], [-(2**63)], [-1]), ([-100], [2**62], [2]),
                                               ([7], [1], [-2]), ([0], [3], [1])])
def test_constant_slice_reversing_or_past_an_end(starts, ends, steps):
    from edgekit.backends._onnx_rewrites import each
    from edgekit.backends.tflite._rewrites import _slice

    inits = [onnx.numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("s", starts), ("e", ends), ("a", [1]), ("st", steps))]
    node = helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    x = {"x": np.arange(12, dtype=np.float32).reshape(2, 6)}
    want = _run_proto(proto, x)
    changed = each(onnx, proto, {"Slice"}, _slice)
    assert changed == (0 if starts == [0] else 1)
    np.testing.assert_array_equal(_run_proto(proto, x)[0], want[0])


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_fmod_keeps_the_dividends_sign(dtype):
    """fmod=1: the remainder's sign is x's (C fmod), zeros and exact multiples included."""
    from edgekit.backends._onnx_rewrites import each
    from edgekit.backends.tflite._rewrites_math import _fmod

    kind = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node("Mod", ["x", "y"], ["z"], fmod=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, kind, [8]) for n in "xy"],
                              [helper.make_tensor_value_info("z", kind, [8])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    feeds = {"x": np.array([7, -7, 7, -7, 0, 6, -6, 5], dtype), "y": np.array([3, 3, -3, -3, 4, 3, -3, 7], dtype)}
    want = _run_proto(proto, feeds)
    assert each(onnx, proto, {"Mod"}, _fmod) == 1
    np.testing.assert_array_equal(_run_proto(proto, feeds)[0], want[0])
    assert want[0].tolist() == [1, -1, 1, -1, 0, 0, 0, 5]


def test_qlinear_matmul_per_row_and_column_scales():
    """b's scale and zero point per column (ONNX Runtime takes a's per tensor only): the rewrite
    gives ONNX Runtime's uint8."""
    from edgekit.backends._onnx_rewrites import each
    from edgekit.backends.tflite._rewrites_quant import _qlinear_matmul

    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array(v, n) for n, v in (
        ("sa", np.array(0.02, np.float32)), ("azp", np.array(120, np.uint8)),
        ("b", rng.integers(0, 256, (4, 5), dtype=np.uint8)), ("sb", rng.uniform(0.01, 0.05, 5).astype(np.float32)),
        ("bzp", rng.integers(100, 150, 5, dtype=np.uint8)), ("sy", np.array(0.2, np.float32)),
        ("yzp", np.array(127, np.uint8)))]
    node = helper.make_node("QLinearMatMul", ["a", "sa", "azp", "b", "sb", "bzp", "sy", "yzp"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.UINT8, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [3, 5])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    feeds = {"a": rng.integers(0, 256, (3, 4), dtype=np.uint8)}
    want = _run_proto(proto, feeds)
    assert each(onnx, proto, {"QLinearMatMul"}, _qlinear_matmul) == 1
    got = _run_proto(proto, feeds)[0]
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, want[0])


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("op", ["AveragePool", "LpPool"])
def test_3d_pool_with_pads_and_ceil_mode_as_a_conv(include_pad, op):
    """Uneven pads, strides, dilations and ceil mode: the Conv of ones, scaled per window, gives
    ONNX Runtime's pool (count_include_pad either way; LpPool's p-th root of |x|^p sums)."""
    from edgekit.backends._onnx_rewrites import each
    from edgekit.backends.tflite._rewrites_pool import _pool3d_as_conv

    attrs = {"kernel_shape": [3, 2, 3], "strides": [2, 1, 2], "dilations": [1, 2, 1], "pads": [1, 0, 1, 1, 1, 0],
             "ceil_mode": 1}
    attrs.update({"count_include_pad": include_pad} if op == "AveragePool" else {"p": 3})
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 6, 5, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    x = {"x": np.random.default_rng(1).normal(size=(2, 3, 6, 5, 7)).astype(np.float32)}
    want = _run_proto(proto, x)[0]
    assert each(onnx, proto, {op}, _pool3d_as_conv) == 1
    assert "Conv" in [n.op_type for n in proto.graph.node]
    np.testing.assert_allclose(_run_proto(proto, x)[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attrs", [dict(kernel_shape=[2, 2], strides=[2, 1], storage_order=1),
                                   dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                                   dict(kernel_shape=[2, 3], dilations=[2, 1], storage_order=0)])
def test_maxpool_indices_as_argmax_over_window_taps(attrs):
    from edgekit.backends.tflite import _rewrites_pool

    node = helper.make_node("MaxPool", ["x"], ["y", "i"], **attrs)
    graph = helper.make_graph([node], "mp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 7, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("i", TensorProto.INT64, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    x = np.random.default_rng(0).integers(-3, 3, (2, 3, 7, 6)).astype(np.float32)  # ties: the first max wins
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})
    rewrite, _ = _rewrites_pool.REWRITES[0]
    assert rewrite(onnx, proto) == 1
    assert "ArgMax" in [n.op_type for n in proto.graph.node]
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_constant_dequantize_folded_but_weights_kept():
    from edgekit.backends.tflite import _rewrites_quant

    rng = np.random.default_rng(0)
    bias = helper.make_tensor("bq", TensorProto.UINT8, [2, 3, 3], rng.integers(0, 255, 18).tolist())
    weight = helper.make_tensor("wq", TensorProto.INT8, [3, 3], rng.integers(-128, 127, 9).tolist())
    scales = [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.UINT8, [], [167]),
              helper.make_tensor("ws", TensorProto.FLOAT, [3], [0.5, 0.25, 0.125])]
    nodes = [helper.make_node("DequantizeLinear", ["bq", "s", "z"], ["b"]),
             helper.make_node("DequantizeLinear", ["wq", "ws"], ["w"], axis=1),
             helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])]
    graph = helper.make_graph(nodes, "dq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 3])],
                              [bias, weight, *scales])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((2, 3, 3)).astype(np.float32)
    want = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    assert _rewrites_quant.fold_constant_dequantize(onnx, proto) == 1  # the bias; the MatMul's weight stays
    assert [n.op_type for n in proto.graph.node] == ["DequantizeLinear", "MatMul", "Add"]
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    assert np.array_equal(got, want)
