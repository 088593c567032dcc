"""A float16 ONNX made the commonest way, ONNX Runtime's own converter with ``keep_io_types=True``:
its nodes come out of topological order (the Cast nodes it inserts are appended), which ONNX Runtime
runs and edgekit sorts at load; and it computes in float16 between float32 inputs and outputs, so
it is judged at fp16 tolerances. A float32 model keeps fp32's; a graph with a cycle is refused.
Real converters and runtimes, no mocks."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgekit
from edgekit import EdgekitError
from edgekit._data import load_toml
from tests.conftest import run_cli

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT
TOL = load_toml("converters", "tolerances.toml")
_WEIGHTS = {"w1": (16, 3, 3, 3), "b1": (16,), "w2": (32, 16, 3, 3), "b2": (32,), "g": (10, 32), "c": (10,)}


def _float32_cnn(path):
    """Conv-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm, float32 throughout."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) / np.sqrt(np.prod(s[1:]) if len(s) > 1 else 4))
                                     .astype(np.float32), n) for n, s in _WEIGHTS.items()]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("GlobalAveragePool", ["r2"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "g", "c"], ["logits"], transB=1, name="fc")]
    graph = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", F32, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", F32, [1, 10])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, path)
    return path


def _by_hand(proto):
    """What the converter writes, built here: float16 weights, the float32 input cast down before
    the first node and the output cast up, those two Casts appended at the end (out of order)."""
    for t in proto.graph.initializer:
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for node in proto.graph.node:
        node.input[:] = ["x_f16" if i == "x" else i for i in node.input]
        node.output[:] = ["logits_f16" if o == "logits" else o for o in node.output]
    proto.graph.node.extend([helper.make_node("Cast", ["x"], ["x_f16"], to=F16, name="cast_in"),
                             helper.make_node("Cast", ["logits_f16"], ["logits"], to=F32, name="cast_out")])
    return proto


def _float16_keep_io(src, dest):
    """``src`` made float16 with float32 inputs and outputs, by ONNX Runtime's converter where it is
    installed (else the same graph built by hand)."""
    proto = onnx.load(str(src))
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError:
        proto = _by_hand(proto)
    else:
        proto = convert_float_to_float16(proto, keep_io_types=True)
    onnx.save(proto, dest)
    return dest


def _unsorted(path) -> bool:
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        return "topologically sorted" in str(exc)
    return False


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("f16io")
    return _float16_keep_io(_float32_cnn(tmp / "f32.onnx"), tmp / "f16.onnx")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("x") / "x.npz"
    np.savez(path, x=np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32))
    return path


def test_the_converter_writes_nodes_out_of_order(half):
    """The premise: onnx.checker refuses the file, ONNX Runtime runs it."""
    import onnxruntime as ort

    assert _unsorted(half)
    sess = ort.InferenceSession(str(half), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": np.zeros((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


def test_unsorted_float16_model_loads_converts_and_passes(tmp_path, half, sample):
    pytest.importorskip("openvino")
    before = half.read_bytes()
    model = edgekit.load(half)
    assert any(n.startswith("nodes sorted topologically (the file had 1 out of order") for n in model.notes)
    assert model.onnx_path != half and not _unsorted(model.onnx_path)  # what every target converts
    targets = ["onnx", "openvino"]
    try:
        import ai_edge_litert  # noqa: F401
        import onnx2tf  # noqa: F401
        targets.append("tflite")  # ~10 s on this CNN
    except ImportError:
        pass
    res = edgekit.convert(model, targets=targets, out=tmp_path / "o", inputs=sample)
    assert [a.target for a in res.artifacts] == targets
    for a in res.artifacts:
        assert a.parity.status == "pass", (a.target, a.parity.reason)
        assert a.parity.tolerance["atol"] == TOL["fp16"]["atol"], a.target
    onnx.checker.check_model(str(next(a.path for a in res.artifacts if a.target == "onnx")), full_check=True)
    assert any("nodes sorted topologically" in n for n in res.notes)
    assert half.read_bytes() == before  # the user's file is left as it was


def test_keep_io_types_model_is_judged_at_fp16_tolerances(tmp_path, half, sample):
    """Float32 in and out but float16 inside: the source's own results carry float16 rounding.
    (Sorted here by hand, so that only the tolerance is at stake.)"""
    proto = onnx.load(str(half))
    casts = [n for n in proto.graph.node if n.op_type == "Cast" and n.input[0] == "x"]
    rest = [n for n in proto.graph.node if n not in casts]
    del proto.graph.node[:]
    proto.graph.node.extend(casts + rest)
    onnx.save(proto, tmp_path / "sorted.onnx")
    assert not _unsorted(tmp_path / "sorted.onnx")
    model = edgekit.load(tmp_path / "sorted.onnx")
    assert {s.dtype for s in model.signature.inputs + model.signature.outputs} == {"float32"}
    res = edgekit.convert(model, targets=["onnx"], out=tmp_path / "o", inputs=sample)
    parity = res.artifacts[0].parity
    assert parity.status == "pass", parity.reason
    assert {k: parity.tolerance[k] for k in TOL["fp16"]} == TOL["fp16"]
    assert "the source computes in float16 (100% of its float weights are float16): verified at fp16 " \
           "tolerances" in res.notes
    assert not any("sorted" in n for n in res.notes)
    manifest = res.manifest["artifacts"][0]["parity"]["tolerance"]
    assert manifest["atol"] == TOL["fp16"]["atol"]


def test_float32_model_keeps_fp32_tolerances(tmp_path, sample):
    src = _float32_cnn(tmp_path / "f32.onnx")
    model = edgekit.load(src)
    assert model.onnx_path == src and not model.notes  # sorted already: read as given
    res = edgekit.convert(model, targets=["onnx"], out=tmp_path / "o", inputs=sample)
    parity = res.artifacts[0].parity
    assert parity.status == "pass" and {k: parity.tolerance[k] for k in TOL["fp32"]} == TOL["fp32"]
    assert not any("float16" in n for n in res.notes)


def _cyclic(path):
    """add reads relu's output, relu reads add's: a loop; 'out' only hangs below it."""
    nodes = [helper.make_node("Add", ["x", "y2"], ["y1"], name="add"),
             helper.make_node("Relu", ["y1"], ["y2"], name="relu"),
             helper.make_node("Identity", ["y1"], ["out"], name="tail")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [1, 4])],
                              [helper.make_tensor_value_info("out", F32, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_cyclic_graph_is_refused_clearly(tmp_path):
    src = _cyclic(tmp_path / "loop.onnx")
    with pytest.raises(EdgekitError) as err:
        edgekit.load(src)
    assert "has a cycle" in err.value.cause and "Add 'add', Relu 'relu'" in err.value.cause
    assert "'tail'" not in err.value.cause and err.value.fix
    rc, out, stderr = run_cli("convert", str(src), "--to", "onnx", "--out", str(tmp_path / "o"))
    assert rc == 2 and "has a cycle" in stderr and "fix:" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "o").exists()


def test_subgraphs_are_sorted_with_what_they_read_from_outside(tmp_path):
    """An If whose branch reads a value of the main graph made after it, and whose branch is itself
    out of order: both are put in order (ONNX Runtime refuses such a subgraph), and it computes right."""
    import onnxruntime as ort

    then = helper.make_graph([helper.make_node("Neg", ["t1"], ["t_out"]),
                              helper.make_node("Add", ["outer", "outer"], ["t1"])], "then", [],
                             [helper.make_tensor_value_info("t_out", F32, [2])])
    other = helper.make_graph([helper.make_node("Identity", ["outer"], ["e_out"])], "else", [],
                              [helper.make_tensor_value_info("e_out", F32, [2])])
    nodes = [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other, name="branch"),
             helper.make_node("Relu", ["x"], ["outer"], name="made_later")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F32, [2]),
                                           helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", F32, [2])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, tmp_path / "if.onnx")
    assert _unsorted(tmp_path / "if.onnx")
    model = edgekit.load(tmp_path / "if.onnx")
    assert any("the file had 2 out of order" in n for n in model.notes)
    sorted_ = onnx.load(str(model.onnx_path))
    assert [n.name for n in sorted_.graph.node] == ["made_later", "branch"]
    branch = next(a.g for a in sorted_.graph.node[1].attribute if a.name == "then_branch")
    assert [n.op_type for n in branch.node] == ["Add", "Neg"]
    feeds = {"x": np.array([1.0, -2.0], np.float32), "cond": np.array(True)}
    ours = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_array_equal(ours[0], [-2.0, 0.0])  # -(relu(x) + relu(x))
    with pytest.raises(Exception, match="topologically sorted"):  # ONNX Runtime sorts the main graph only
        ort.InferenceSession(str(tmp_path / "if.onnx"), providers=["CPUExecutionProvider"])


def test_unsorted_model_with_external_data(tmp_path, half, sample):
    """The sorted copy reads the same external data (beside it), and converts."""
    proto = onnx.load(str(half))
    (tmp_path / "m").mkdir()
    onnx.save(proto, tmp_path / "m" / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.onnx.data", size_threshold=256)
    assert (tmp_path / "m" / "ext.onnx.data").stat().st_size > 1000
    model = edgekit.load(tmp_path / "m" / "ext.onnx")
    assert model.onnx_path.parent != tmp_path / "m" and (model.onnx_path.parent / "ext.onnx.data").is_file()
    res = edgekit.convert(model, targets=["onnx"], out=tmp_path / "o", inputs=sample)
    assert res.artifacts[0].parity.status == "pass", res.artifacts[0].parity.reason
