"""The rewrites edgekit makes before onnx2tf keep the graph's meaning: ONNX Runtime gives the same
outputs for the prepared graph as for the original, on ONNX's own node cases."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit

from ._onnx_cases import node_cases, ort_run

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

CASES = {
    "test_castlike_FLOAT16_to_FLOAT": "CastLike written as Cast",
    "test_less_uint16": "ops computed in a type LiteRT has (Less:uint16)",
    "test_max_float64": "ops computed in a type LiteRT has (Max:double)",
    "test_dynamicquantizelinear": "DynamicQuantizeLinear written as elementary ops",
    "test_dynamicquantizelinear_min_adjusted": "DynamicQuantizeLinear written as elementary ops",
    "test_matmulinteger": "MatMulInteger computed as float MatMul",
}


@pytest.fixture(scope="module")
def cases():
    return node_cases(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_prepared_graph_computes_the_same(tmp_path, cases, name):
    from edgekit.backends.tflite._prepare import prepare_for_onnx2tf

    case = cases[name]
    src = tmp_path / "m.onnx"
    onnx.save(case.model, src)
    inits = {i.name for i in case.model.graph.initializer}
    names = [i.name for i in case.model.graph.input if i.name not in inits]
    arrays = [onnx.numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else a for a in case.data_sets[0][0]]
    feeds = dict(zip(names, arrays, strict=True))
    np.savez(tmp_path / "x.npz", **feeds)
    model = edgekit.load(str(src), sample=tmp_path / "x.npz")
    (tmp_path / "prep").mkdir()
    prepared, done = prepare_for_onnx2tf(model, src, tmp_path / "prep")
    assert any(CASES[name] in d for d in done), done
    for want, got in zip(ort_run(src, feeds), ort_run(prepared, feeds), strict=True):
        assert want.dtype == got.dtype and want.shape == got.shape
        np.testing.assert_array_equal(want, got)
