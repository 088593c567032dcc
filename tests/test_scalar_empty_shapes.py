"""Scalar inputs (shape []) and axes of size 0 are fed exactly as the model declares them.

The cases are ONNX's own backend node cases (built in memory by onnx), converted with their
own inputs to ONNX and OpenVINO and checked against ONNX Runtime.
"""

import numpy as np
import pytest

import edgekit

onnx = pytest.importorskip("onnx")
pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def node_cases(tmp_path_factory):
    import warnings

    names = ["test_hannwindow", "test_clip_default_min", "test_reduce_sum_empty_set",
             "test_reduce_log_sum_empty_set"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases

        cases = {c.name: c for c in collect_testcases() if c.name in names}
    root = tmp_path_factory.mktemp("node")
    out = {}
    for name in names:
        case = cases[name]
        folder = root / name
        folder.mkdir()
        onnx.save(case.model, str(folder / "model.onnx"))
        inits = {i.name for i in case.model.graph.initializer}
        keys = [v.name for v in case.model.graph.input if v.name not in inits]
        np.savez(folder / "x.npz", **dict(zip(keys, case.data_sets[0][0], strict=True)))
        out[name] = (folder, case.data_sets[0][1])
    return out


@pytest.mark.parametrize("name, shapes", [
    ("test_hannwindow", [()]),  # a window op's size: a scalar
    ("test_clip_default_min", [(3, 4, 5), ()]),  # a scalar bound beside a tensor
    ("test_reduce_sum_empty_set", [(2, 0, 4), (1,)]),  # an axis of size 0
    ("test_reduce_log_sum_empty_set", [(2, 0, 4), (1,)]),  # its output is -inf, in source and artifact
])
def test_node_case_to_openvino_and_onnx(node_cases, tmp_path, name, shapes):
    folder, expected = node_cases[name]
    model = edgekit.load(folder / "model.onnx")
    assert [s.shape for s in model.signature.inputs] == shapes  # [] stays [], 0 stays 0
    result = edgekit.convert(model, targets=["openvino", "onnx"], out=tmp_path / "out",
                             inputs=folder / "x.npz")
    for art in result.artifacts:
        assert art.parity.status == "pass", (art.target, art.parity.reason)
        assert [s.shape for s in art.signature.inputs] == shapes, art.target
    from edgekit.backends.openvino.runtime import OpenVINORunner

    runner = OpenVINORunner(result.out / "openvino" / "model.xml")
    got = runner.run(dict(np.load(folder / "x.npz")))
    assert [g.shape for g in got] == [e.shape for e in expected]
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-5)


def _graph_with_dims(dims):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    for d in dims:
        dim = x.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        elif d is not None:
            dim.dim_value = d  # set explicitly, 0 included
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_onnx_dims_explicit_zero_is_empty_unset_and_negative_are_dynamic(tmp_path):
    """ONNX semantics: a dim with dim_value set (0 too) is that size; an unset dim is unknown.
    A negative dim_value (written by some exporters for 'any') is read as dynamic."""
    from onnx.helper import tensor_dtype_to_np_dtype

    from edgekit.steps.ingest._onnx import _specs

    model = _graph_with_dims([None, 0, "seq", -1, 3])
    spec = _specs(model.graph.input, tensor_dtype_to_np_dtype)[0]
    assert spec.shape[1] == 0 and spec.shape[2] == "seq" and spec.shape[4] == 3
    assert isinstance(spec.shape[0], str) and isinstance(spec.shape[3], str)
    scalar = _specs(_graph_with_dims([]).graph.input, tensor_dtype_to_np_dtype)[0]
    assert scalar.shape == ()


def test_generated_and_adapted_scalars_keep_their_shape():
    from edgekit._inputs import generate_inputs
    from edgekit._types import Signature, TensorSpec
    from edgekit.steps.verify import adapt_feeds

    sig = Signature([TensorSpec("n", (), "int64"), TensorSpec("x", (2, 0), "float32")], [])
    feeds = generate_inputs(sig, {}, {})
    assert feeds["n"].shape == () and feeds["x"].shape == (2, 0)
    adapted = adapt_feeds({"n": np.array(7), "x": np.zeros((2, 0), np.float64)}, sig, sig)
    assert adapted["n"].shape == () and adapted["x"].shape == (2, 0) and adapted["x"].dtype == np.float32
