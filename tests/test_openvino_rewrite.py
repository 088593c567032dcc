"""OpenVINO's rewritten-ONNX route (backends/openvino/_rewrite.py): ONNX's node cases OpenVINO
2026.4 cannot convert, or converts to other values, pass once the ops it lacks or gets wrong are
written as ONNX defines them; a model OpenVINO converts as it is never reaches the route. The
shared rewrites it adds (backends/_onnx_rewrites.py) give ONNX Runtime's values exactly."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit

from ._onnx_cases import node_cases, ort_run

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
from onnx import TensorProto, helper  # noqa: E402

FIRST = "onnx -> openvino.convert_model"
REWRITTEN = "onnx -> openvino.convert_model (ONNX rewritten)"
# node case -> what the route's notes name; the first route errors (a missing conversion) or
# fails parity (other values)
CASES = {
    "test_spacetodepth_crd_mode_example": "SpaceToDepth CRD written as Reshape/Transpose",  # DCR's order
    "test_nllloss_NCd1d2_with_weight_reduction_sum_ii": "NegativeLogLikelihoodLoss written as ONNX's function body",
    "test_gridsample_volumetric_nearest_align_corners_0": "GridSample nearest written as rounded indices",
    "test_top_k_same_values_2d": "TopK made stable",  # equal values in another order
    "test_wrap_pad": "Pad in wrap mode written as Gathers",
}


@pytest.fixture(scope="module")
def cases():
    return node_cases([*CASES, "test_relu"])


def _case_files(tmp_path, case):
    src = tmp_path / "m.onnx"
    onnx.save(case.model, src)
    inits = {i.name for i in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in inits]
    arrays = [onnx.numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else a for a in case.data_sets[0][0]]
    np.savez(tmp_path / "x.npz", **dict(zip(names, arrays, strict=True)))
    return src, tmp_path / "x.npz"


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(CASES))
def test_node_case_passes_by_the_rewritten_route(tmp_path, cases, name):
    src, x = _case_files(tmp_path, cases[name])
    (art,) = edgekit.convert(str(src), targets=["openvino"], inputs=x, out=tmp_path / "o").artifacts
    first, last = art.attempts[0], art.attempts[-1]
    assert first["route"] == FIRST and (first["error"] or first["parity"] == "fail"), first
    assert last["route"] == REWRITTEN and last.get("kept") and last["parity"] == "pass", art.attempts
    assert art.parity.status == "pass" and any(CASES[name] in n for n in art.notes), art.notes


@pytest.mark.integration
def test_a_model_openvino_converts_takes_the_first_route(tmp_path, cases):
    src, x = _case_files(tmp_path, cases["test_relu"])
    (art,) = edgekit.convert(str(src), targets=["openvino"], inputs=x, out=tmp_path / "o").artifacts
    assert [a["route"] for a in art.attempts] == [FIRST] and art.parity.status == "pass"


def _space_to_depth_crd(path, batch="N"):
    graph = helper.make_graph([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=2, mode="CRD")], "s2d",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8, 2, 2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28)]), str(path))
    return path


@pytest.mark.integration
def test_a_rewrite_needing_static_shapes_fixes_the_axes_and_says_so(tmp_path):
    import openvino as ov

    src = _space_to_depth_crd(tmp_path / "s2d.onnx")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((3, 2, 4, 4), np.float32))
    (art,) = edgekit.convert(str(src), targets=["openvino"], inputs=tmp_path / "x.npz", out=tmp_path / "o").artifacts
    assert art.attempts[-1]["route"] == REWRITTEN and art.parity.status == "pass"
    assert any("dynamic axes fixed (N=3)" in n for n in art.notes), art.notes
    assert list(ov.Core().read_model(str(art.path)).inputs[0].get_partial_shape().to_shape()) == [3, 2, 4, 4]


@pytest.mark.integration
def test_a_rewrite_at_any_shape_keeps_the_axes_dynamic(tmp_path):
    import openvino as ov

    inits = [helper.make_tensor("pads", TensorProto.INT64, [6], [0, 1, -1, 0, 5, 2])]
    graph = helper.make_graph([helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")], "pad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 9, 5])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(tmp_path / "p.onnx"))
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((2, 3, 4), np.float32))
    (art,) = edgekit.convert(str(tmp_path / "p.onnx"), targets=["openvino"], inputs=tmp_path / "x.npz",
                             out=tmp_path / "o").artifacts
    assert art.attempts[-1]["route"] == REWRITTEN and art.parity.status == "pass"
    assert not any("dynamic axes fixed" in n for n in art.notes), art.notes
    assert ov.Core().read_model(str(art.path)).inputs[0].get_partial_shape()[0].is_dynamic


@pytest.mark.integration
def test_the_check_predicts_the_rewritten_route(tmp_path, cases):
    src, _ = _case_files(tmp_path, cases["test_nllloss_NCd1d2_with_weight_reduction_sum_ii"])
    (ov,) = edgekit.check(edgekit.load(str(src)), targets=["openvino"]).targets
    assert ov.status == "route" and ov.route == REWRITTEN, ov


# ---- the rewrites the route adds to the shared ones, against ONNX Runtime ----

def _rewritten_agrees(tmp_path, proto, build, op: str, feeds: dict) -> None:
    from edgekit.backends._onnx_rewrites import each

    onnx.save(proto, tmp_path / "a.onnx")
    assert each(onnx, proto, {op}, build) == 1
    onnx.save(proto, tmp_path / "b.onnx")
    for want, got in zip(ort_run(tmp_path / "a.onnx", feeds), ort_run(tmp_path / "b.onnx", feeds), strict=True):
        assert want.shape == got.shape
        np.testing.assert_array_equal(want, got)


def test_float_mod_fmod_0_takes_the_divisors_sign(tmp_path):
    """Python's %: zeros, exact multiples, both signs, broadcast divisors; bit for bit."""
    from edgekit.backends._onnx_rewrites import float_floor_mod

    graph = helper.make_graph([helper.make_node("Mod", ["x", "y"], ["z"], fmod=0)], "mod",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n", 4])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 28)])
    x = np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32) * 20
    x[:4] = [[0, -0.0, 6, -6], [3, -3, 7.5, -7.5], [1e-8, -1e-8, 5, -5], [2, 2, 2, 2]]
    _rewritten_agrees(tmp_path, proto, float_floor_mod, "Mod", {"x": x, "y": np.array([3, -3, 2.5, -2.5], np.float32)})


@pytest.mark.parametrize("pads", [[0, 1, 2, 0, 0, 3, 1, 0], [0, 7, -1, 0, 0, -2, 9, 0], [0, 0, 1, -3, 0, 0, -2, 8],
                                  [0, 0, 0, 0, 0, 0, 0, 0]])
def test_wrap_pad_with_pads_fed_at_run_time(tmp_path, pads):
    """Pads past the size repeat, negative ones crop first (as ONNX Runtime does); the sizes and
    pads stay dynamic."""
    from edgekit.backends._onnx_rewrites import wrap_pad

    graph = helper.make_graph([helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")], "pad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b", "c", "d"]),
                               helper.make_tensor_value_info("pads", TensorProto.INT64, [8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    _rewritten_agrees(tmp_path, proto, wrap_pad, "Pad", {"x": x, "pads": np.array(pads, np.int64)})


def test_wrap_pad_with_constant_pads_and_axes(tmp_path):
    from edgekit.backends._onnx_rewrites import wrap_pad

    inits = [helper.make_tensor("pads", TensorProto.INT64, [4], [2, -1, 7, 1]),
             helper.make_tensor("axes", TensorProto.INT64, [2], [-1, 1])]
    graph = helper.make_graph([helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="wrap")], "pad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    _rewritten_agrees(tmp_path, proto, wrap_pad, "Pad", {"x": np.arange(30, dtype=np.float32).reshape(2, 3, 5)})


@pytest.mark.integration
def test_if_on_a_rank_2_condition_converts_with_it_as_a_scalar(tmp_path):
    """A wake-word head's shape: an If on a [1, 1] score against a threshold (ONNX allows any
    one-element condition; OpenVINO's frontend only rank 0 or 1), each branch reading the input."""
    f = TensorProto.FLOAT
    then_g = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", f, [1, 4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", f, [1, 4])])
    nodes = [helper.make_node("ReduceMean", ["x", "ax"], ["m"], keepdims=1),
             helper.make_node("Greater", ["m", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g, name="gate")]
    inits = [helper.make_tensor("ax", TensorProto.INT64, [1], [1]), helper.make_tensor("zero", f, [1, 1], [0.0]),
             helper.make_tensor("two", f, [], [2.0])]
    graph = helper.make_graph(nodes, "gate", [helper.make_tensor_value_info("x", f, [1, 4])],
                              [helper.make_tensor_value_info("y", f, [1, 4])], inits)
    src = tmp_path / "gate.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), src)
    for sign in (1.0, -1.0):  # both branches taken, by the sign of the input's mean
        x = tmp_path / f"x{sign}.npz"
        np.savez(x, x=sign * np.array([[0.5, 1.0, 1.5, 2.0]], np.float32))
        (art,) = edgekit.convert(str(src), targets=["openvino"], inputs=x, out=tmp_path / f"o{sign}").artifacts
        assert art.attempts[0]["error"] and art.attempts[-1]["route"] == REWRITTEN, art.attempts
        assert art.parity.status == "pass" and any("If condition of rank 2" in n for n in art.notes), art.notes
