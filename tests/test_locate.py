"""Locating a drift (edgekit/steps/locate.py): seeded faults, one op changed in the artifact.

Each case is a small real graph; the artifact is made by converting a copy of it with one op's
attribute, layout or constant changed (ONNX Runtime: that .onnx; OpenVINO: ov.convert_model of it,
saved as IR; TFLite: edgekit's onnx2tf route on it), and the locator, given the unchanged graph and
the artifact, must name the changed node. Real runtimes throughout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.steps import verify
from edgekit.steps.locate import locate

TOL = verify.default_tolerance("fp32")
F = TensorProto.FLOAT


def _const(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def _model(nodes, x_shape, y_shape, inits):
    graph = helper.make_graph(nodes, "seeded", [helper.make_tensor_value_info("x", F, x_shape)],
                              [helper.make_tensor_value_info("y", F, y_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _rng():
    return np.random.default_rng(7)


def _around(mid_nodes, x_shape, y_shape, inits, mid_out):
    """x -> Mul(a) -> Add(b) -> Sigmoid -> [the op under test] -> Sigmoid -> Mul(c) -> y: ops before
    and after it (Sigmoid: no converter folds it into the op under test, as Add+Add or Add+Relu)."""
    rng = _rng()
    c = x_shape[1]
    bshape = [1, c] + [1] * (len(x_shape) - 2)
    pre = [helper.make_node("Mul", ["x", "a"], ["xa"], name="pre_mul"),
           helper.make_node("Add", ["xa", "b"], ["xc"], name="pre_add"),
           helper.make_node("Sigmoid", ["xc"], ["xb"], name="pre_sigmoid")]
    post = [helper.make_node("Sigmoid", [mid_out], ["r"], name="post_sigmoid"),
            helper.make_node("Mul", ["r", "c"], ["y"], name="post_mul")]
    consts = [_const("a", rng.uniform(0.5, 1.5, bshape)), _const("b", rng.uniform(-0.5, 0.5, bshape)),
              _const("c", np.full([1] * len(y_shape), 1.5))]
    return _model(pre + mid_nodes + post, x_shape, y_shape, consts + inits)


def transpose(bad):
    node = helper.make_node("Transpose", ["xb"], ["t"], perm=[0, 1, 2, 3] if bad else [0, 1, 3, 2], name="the_transpose")
    return _around([node], [1, 4, 6, 6], [1, 4, 6, 6], [], "t")


def layernorm_eps(bad):
    rng = _rng()
    node = helper.make_node("LayerNormalization", ["xb", "g", "h"], ["n"], axis=-1, epsilon=0.5 if bad else 1e-5,
                            name="the_layernorm")
    return _around([node], [1, 3, 8, 16], [1, 3, 8, 16],
                   [_const("g", rng.uniform(0.5, 1.5, [16])), _const("h", rng.uniform(-0.2, 0.2, [16]))], "n")


def instancenorm_eps(bad):
    rng = _rng()
    node = helper.make_node("InstanceNormalization", ["xb", "g", "h"], ["n"], epsilon=0.5 if bad else 1e-5,
                            name="the_instancenorm")
    return _around([node], [1, 4, 8, 8], [1, 4, 8, 8],
                   [_const("g", rng.uniform(0.5, 1.5, [4])), _const("h", rng.uniform(-0.2, 0.2, [4]))], "n")


def batchnorm_eps(bad):
    rng = _rng()
    node = helper.make_node("BatchNormalization", ["xb", "g", "h", "m", "v"], ["n"], epsilon=0.5 if bad else 1e-5,
                            name="the_batchnorm")
    inits = [_const("g", rng.uniform(0.5, 1.5, [4])), _const("h", rng.uniform(-0.2, 0.2, [4])),
             _const("m", rng.uniform(-0.1, 0.1, [4])), _const("v", rng.uniform(0.05, 0.2, [4]))]
    return _around([node], [1, 4, 8, 8], [1, 4, 8, 8], inits, "n")


def resize_mode(bad):
    node = helper.make_node("Resize", ["xb", "", "scales"], ["z"], mode="linear" if bad else "nearest",
                            name="the_resize")
    return _around([node], [1, 4, 6, 6], [1, 4, 12, 12], [_const("scales", [1, 1, 2, 2])], "z")


def softmax_axis(bad):
    node = helper.make_node("Softmax", ["xb"], ["s"], axis=2 if bad else 3, name="the_softmax")
    return _around([node], [1, 4, 8, 8], [1, 4, 8, 8], [], "s")


def perturbed_constant(bad):
    k = _rng().uniform(-1, 1, [1, 4, 1, 1]).astype(np.float32)
    if bad:
        k[0, 2, 0, 0] += 0.75
    node = helper.make_node("Add", ["xb", "k"], ["p"], name="the_bias")
    return _around([node], [1, 4, 8, 8], [1, 4, 8, 8], [_const("k", k)], "p")


def gemm_transb(bad):
    rng = _rng()
    node = helper.make_node("Gemm", ["f", "w", "wb"], ["gm"], transB=0 if bad else 1, name="the_gemm")
    flat = helper.make_node("Flatten", ["xb"], ["f"], axis=1, name="flatten")
    return _around([flat, node], [2, 16], [2, 16],
                   [_const("w", rng.standard_normal([16, 16]) * 0.3), _const("wb", rng.uniform(-0.1, 0.1, [16]))], "gm")


def conv_pads(bad):
    w = _rng().standard_normal([4, 4, 3, 3]) * 0.3
    node = helper.make_node("Conv", ["xb", "w"], ["cv"], pads=[0, 0, 2, 2] if bad else [1, 1, 1, 1], name="the_conv")
    return _around([node], [1, 4, 8, 8], [1, 4, 8, 8], [_const("w", w)], "cv")


def reducemean_axis(bad):
    node = helper.make_node("ReduceMean", ["xb"], ["rm"], axes=[3] if bad else [2], keepdims=1, name="the_mean")
    return _around([node], [1, 4, 8, 8], [1, 4, 1, 8] if not bad else [1, 4, 8, 1], [], "rm")


FAULTS = {  # case -> (builder, the node changed, its op)
    "transpose": (transpose, "the_transpose", "Transpose"),
    "layernorm-eps": (layernorm_eps, "the_layernorm", "LayerNormalization"),
    "instancenorm-eps": (instancenorm_eps, "the_instancenorm", "InstanceNormalization"),
    "batchnorm-eps": (batchnorm_eps, "the_batchnorm", "BatchNormalization"),
    "resize-mode": (resize_mode, "the_resize", "Resize"),
    "softmax-axis": (softmax_axis, "the_softmax", "Softmax"),
    "perturbed-constant": (perturbed_constant, "the_bias", "Add"),
    "gemm-transb": (gemm_transb, "the_gemm", "Gemm"),
    "conv-pads": (conv_pads, "the_conv", "Conv"),
    "reducemean-axis": (reducemean_axis, "the_mean", "ReduceMean"),
}


def _case(tmp_path: Path, case: str):
    build, node, op = FAULTS[case]
    src, bad = tmp_path / "source.onnx", tmp_path / "changed.onnx"
    onnx.save(build(False), src)
    changed = build(True)
    if case == "reducemean-axis":  # keep the declared output shape of the source: the artifact's shape differs
        changed.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 8
        changed.graph.output[0].type.tensor_type.shape.dim[3].dim_value = 1
    onnx.save(changed, bad)
    shape = [d.dim_value for d in build(False).graph.input[0].type.tensor_type.shape.dim]
    samples = [{"x": np.random.default_rng(i).standard_normal(shape).astype(np.float32)} for i in range(2)]
    return src, bad, samples, node, op


def _check(found: dict, node: str, op: str):
    assert found["node"] == node and found["op_type"] == op, json.dumps(found, indent=1, default=str)
    measured = [i for i in found["inputs"] if i["kind"] == "tensor"]
    # its inputs within tolerance (OpenVINO's f32 kernels differ from ONNX Runtime's by up to ~3e-4 of a
    # tensor's scale, e.g. 1e-3 here), its output far out
    assert all(i["max_abs_err"] is not None and i["max_abs_err"] < 5e-3 for i in measured), found["inputs"]
    assert found.get("max_abs_err") is None or found["max_abs_err"] > 5e-2


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_onnxruntime_artifact(tmp_path, case):
    src, bad, samples, node, op = _case(tmp_path, case)
    _check(locate(src, "onnx", bad, samples, TOL), node, op)


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_openvino_artifact(tmp_path, case):
    ov = pytest.importorskip("openvino")
    src, bad, samples, node, op = _case(tmp_path, case)
    ov.save_model(ov.convert_model(str(bad)), str(tmp_path / "model.xml"))
    _check(locate(src, "openvino", tmp_path / "model.xml", samples, TOL), node, op)


def _tflite(tmp_path: Path, bad: Path, layout: str = "tf") -> Path:
    import edgekit
    from edgekit.backends._common import ConvertContext
    from edgekit.backends.tflite.convert import from_onnx

    out = tmp_path / f"tflite-{layout}"
    out.mkdir()
    path, _ = from_onnx(edgekit.load(bad), out, "fp32", ConvertContext(workdir=out), layout=layout)
    return path


@pytest.mark.parametrize("case", ["softmax-axis", "layernorm-eps", "conv-pads", "perturbed-constant", "transpose"])
def test_tflite_artifact(tmp_path, case):
    """onnx2tf's route on the changed graph (NHWC); LiteRT's tensors mapped back by name or value."""
    pytest.importorskip("onnx2tf")
    src, bad, samples, node, op = _case(tmp_path, case)
    _check(locate(src, "tflite", _tflite(tmp_path, bad), samples, TOL, prefix=None), node, op)


def test_bisection_finds_an_op_the_artifact_does_not_expose(tmp_path):
    """An OpenVINO IR that names none of its intermediate tensors: only the output tells, so the graph
    is cut and each prefix converted (here from the changed graph: a converter fault that a prefix
    reproduces) until the first cut that diverges."""
    ov = pytest.importorskip("openvino")
    from edgekit.steps._bisect import openvino_prefix

    src, bad, samples, node, op = _case(tmp_path, "conv-pads")
    model = ov.convert_model(str(bad))
    for o in model.get_ops():
        if o.get_type_name() not in ("Parameter", "Result"):
            for port in o.outputs():
                if "y" not in port.get_names():
                    port.get_tensor().set_names(set())
    ov.save_model(model, str(tmp_path / "model.xml"))
    found = locate(src, "openvino", tmp_path / "model.xml", samples, TOL, prefix=openvino_prefix(bad, ["x"], samples))
    _check(found, node, op)
    assert found["method"].startswith("bisection") and found["exposed"] is False
    without = locate(src, "openvino", tmp_path / "model.xml", samples, TOL, prefix=None)
    assert without["method"].startswith("inferred") and without["evidence"]["tensor"] == "y"


def test_convert_explain_and_failing_parity_write_first_divergence(tmp_path):
    """--explain records a first_divergence on a passing artifact; a failing one gets it unasked. The
    manifest loads through the schema, and the parity output prints it."""
    pytest.importorskip("openvino")
    import edgekit
    from edgekit import schema
    from edgekit.present.tables import parity_table

    src, _, _, _, _ = _case(tmp_path, "softmax-axis")
    passing = edgekit.convert(str(src), targets=["openvino"], out=tmp_path / "explained", explain=True)
    fd = passing.manifest["artifacts"][0]["parity"]["first_divergence"]
    assert passing.ok and fd["node"] is None and fd["compared"].startswith("6 of 6")
    failing = edgekit.convert(str(src), targets=["openvino"], out=tmp_path / "failing",
                              tolerance={"atol": 0.0, "rtol": 0.0, "min_cosine": 1.0 + 1e-9})
    parity = failing.manifest["artifacts"][0]["parity"]
    assert parity["status"] == "fail" and parity["first_divergence"] is not None
    schema.load("manifest", failing.manifest_path)
    plain = edgekit.convert(str(src), targets=["openvino"], out=tmp_path / "plain")
    assert plain.manifest["artifacts"][0]["parity"]["first_divergence"] is None
    _, lines = parity_table(passing.manifest)
    assert any(line.startswith("openvino: no op out of tolerance") for line in lines)
    assert any(line.startswith("  most error added at") for line in lines)


def test_divergence_lines_name_the_node_its_inputs_and_the_known_entry():
    from edgekit.present.tables import divergence_lines

    fd = {"node": "the_softmax", "op_type": "Softmax", "tensor": "s", "target_tensor": "model/tf.nn.softmax/s",
          "max_abs_err": 0.6, "cosine": 0.85, "method": "exposed tensors", "seconds": 0.3,
          "inputs": [{"name": "xb", "kind": "tensor", "max_abs_err": 1e-6, "cosine": 1.0}],
          "known": {"cause": "a known drift", "fix": "do this"}}
    lines = divergence_lines("tflite", fd)
    assert "Softmax node 'the_softmax'" in lines[0] and "xb: 1e-06" in lines[1] and "fix: do this" in lines[2]


@pytest.mark.parametrize("case", ["conv-pads", "gemm-transb", "layernorm-eps"])
@pytest.mark.parametrize("variant", ["fp16", "qdq"])
def test_onnxruntime_fp16_and_quantized_artifacts(tmp_path, case, variant):
    """The changed graph as fp16 (edgekit's fp16 route) or QDQ int8 (ONNX Runtime's quantizer): its
    tensors keep their ONNX names; judged at fp16 or int8-source tolerances. The ranking puts the
    changed node first."""
    from edgekit.backends.onnxruntime.convert import to_fp16

    src, bad, samples, node, op = _case(tmp_path, case)
    art = tmp_path / f"{variant}.onnx"
    if variant == "fp16":
        to_fp16(bad, art)
        tol = verify.default_tolerance("fp16")
    else:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(samples)

            def get_next(self):
                return next(self.it, None)

        quantize_static(str(bad), str(art), Reader(), quant_format=QuantFormat.QDQ)
        tol = {"atol": float("inf"), "rtol": 0.0, "min_cosine": 0.999}
    found = locate(src, "onnx", art, samples, tol)
    assert found["node"] == node and found["op_type"] == op and found["ranking"][0]["node"] == node


def test_tflite_onnx_layout_and_the_export_hook(tmp_path):
    """onnx2tf keeping ONNX's layout (-kat); then for_artifact, as export calls it: bisection converts
    cuts of the source graph by the same route, none diverges (the change is only in the artifact),
    so the node inferred from LiteRT's tensors stands, with a note saying so."""
    pytest.importorskip("onnx2tf")
    import edgekit
    from edgekit.backends._common import ConvertContext
    from edgekit.steps.locate import for_artifact

    src, bad, samples, node, op = _case(tmp_path, "conv-pads")
    art = _tflite(tmp_path, bad, layout="onnx")
    _check(locate(src, "tflite", art, samples, TOL, prefix=None), node, op)
    found = for_artifact(edgekit.load(src), ConvertContext(workdir=tmp_path), "tflite", art, samples, TOL,
                         route="onnx -> onnx2tf (ONNX layout)")
    _check(found, node, op)
    assert "none diverges" in found["bisection"] and found["known"] is None


def test_intermediates_past_the_memory_budget_are_sampled(tmp_path, monkeypatch):
    """Past BUDGET bytes of intermediates, an evenly spaced share of them is compared (the outputs
    always); the node is still named, from the tensors compared and bisection."""
    ov = pytest.importorskip("openvino")
    from edgekit.steps import _intermediates
    from edgekit.steps._bisect import openvino_prefix

    src, bad, samples, node, op = _case(tmp_path, "conv-pads")
    graph = _intermediates.read_graph(src, {"x": (1, 4, 8, 8)})
    assert graph.sizes["cv"] == 4 * 8 * 8 * 4 and len(_intermediates.within_budget(graph, 2)) == len(graph.floats)
    monkeypatch.setattr(_intermediates, "BUDGET", 2 * 4 * 8 * 8 * 4 * 3)  # half of the six tensors
    assert _intermediates.within_budget(graph, 2) == ["xa", "xb", "r", "y"]
    ov.save_model(ov.convert_model(str(bad)), str(tmp_path / "model.xml"))
    found = locate(src, "openvino", tmp_path / "model.xml", samples, TOL, prefix=openvino_prefix(bad, ["x"], samples))
    _check(found, node, op)
    assert found["compared"].startswith("4 of 6")


def test_bisection_stops_past_its_time_limit(tmp_path, monkeypatch):
    """A bisection past BISECT_SECONDS stops; the inferred node and why it stopped are kept."""
    ov = pytest.importorskip("openvino")
    from edgekit.steps import locate as locate_mod
    from edgekit.steps._bisect import openvino_prefix

    src, bad, samples, node, op = _case(tmp_path, "conv-pads")
    model = ov.convert_model(str(bad))
    for o in model.get_ops():
        for port in o.outputs():
            if o.get_type_name() not in ("Parameter", "Result") and "y" not in port.get_names():
                port.get_tensor().set_names(set())
    ov.save_model(model, str(tmp_path / "model.xml"))
    monkeypatch.setattr(locate_mod, "BISECT_SECONDS", 0)
    found = locate(src, "openvino", tmp_path / "model.xml", samples, TOL, prefix=openvino_prefix(bad, ["x"], samples))
    assert found["method"].startswith("inferred") and "TimeoutError: past 0 s" in found["bisection"]


def test_a_located_drift_is_matched_against_known_failures(monkeypatch):
    """An entry of known_failures.toml whose match finds 'parity drift at <op> (node <node>)' is the
    drift's known entry, with its fix (an entry written for the test: the shipped table has none)."""
    from edgekit import _known
    from edgekit.steps.locate import _known_entry

    table = {"failure": [{"target": "openvino", "match": r"parity drift at (?P<op>Resize) \(node (?P<node>[^)]+)\)",
                          "cause": "OpenVINO resizes {node} ({op}) differently", "fix": "use nearest mode"}]}
    monkeypatch.setattr(_known, "load_toml", lambda *parts: table)
    found = _known_entry("openvino", {"op_type": "Resize", "node": "up_1"})
    assert found == {"cause": "openvino: OpenVINO resizes up_1 (Resize) differently", "fix": "use nearest mode"}
    assert _known_entry("tflite", {"op_type": "Resize", "node": "up_1"}) is None
    assert _known_entry("openvino", {"op_type": "Softmax", "node": "s"}) is None


def _argmax(last: bool):
    """x -> Mul(a) -> ArgMax(axis 1, keepdims 0) -> y (int64): an integer output whose value is the fault."""
    a = np.round(_rng().standard_normal((1, 6)), 0).astype(np.float32)  # rounded: ties for select_last_index
    nodes = [helper.make_node("Mul", ["x", "a"], ["xa"], name="scale"),
             helper.make_node("ArgMax", ["xa"], ["y"], name="the_argmax", axis=1, keepdims=0,
                              select_last_index=int(last))]
    graph = helper.make_graph(nodes, "argmax", [helper.make_tensor_value_info("x", F, [4, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [4])], [_const("a", a)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_integer_output_is_compared_and_located(tmp_path):
    """ArgMax's select_last_index flipped in the artifact: only the int64 output differs, and the
    locator names the ArgMax (integer graph outputs are compared; integer intermediates are not)."""
    onnx.save(_argmax(False), tmp_path / "source.onnx")
    onnx.save(_argmax(True), tmp_path / "changed.onnx")
    samples = [{"x": np.ones((4, 6), np.float32)}]  # every row ties where a has equal entries
    found = locate(tmp_path / "source.onnx", "onnx", tmp_path / "changed.onnx", samples, TOL)
    assert found["node"] == "the_argmax" and found["op_type"] == "ArgMax", found
    assert found["max_abs_err"] >= 1 and [i["kind"] for i in found["inputs"]] == ["tensor"]
    assert found["inputs"][0]["max_abs_err"] == 0.0  # its float input is exact: ArgMax itself is at fault



def test_openvino_intermediates_are_fed_by_port_not_by_merged_names(tmp_path):
    """OpenVINO merges the names of tensors a no-op joins, so an input port may be named after a tensor
    deep in the graph (ONNX's expanded Attention: input K is also 'KAttentionInput'); fed by that name
    once intermediates are outputs, an input was left unfed. Fed by port, every intermediate of an
    ONNX backend case equals ONNX Runtime's."""
    ov = pytest.importorskip("openvino")
    from onnx.backend.test.case.node import collect_testcases

    from edgekit.backends.onnxruntime.runtime import OrtRunner
    from edgekit.backends.openvino.runtime import OpenVINORunner
    from edgekit.steps import _intermediates as inter
    from edgekit.steps.locate import _feeds

    name = "test_attention_23_boolmask_fullymasked_row_nan_robustness_expanded"
    case = next(c for c in collect_testcases() if c.name == name)
    onnx.save(case.model, tmp_path / "m.onnx")
    ov.save_model(ov.convert_model(str(tmp_path / "m.onnx")), str(tmp_path / "m.xml"))
    feeds = [{i.name: np.asarray(a) for i, a in zip(case.model.graph.input, case.data_sets[0][0], strict=True)}]
    graph = inter.read_graph(tmp_path / "m.onnx")
    named = OpenVINORunner(tmp_path / "m.xml").signature  # names as OpenVINO gives them
    assert any(s.name not in feeds[0] for s in named.inputs)  # the merged names this is about
    adapted = _feeds("openvino", tmp_path / "m.xml", feeds, OrtRunner(tmp_path / "m.onnx").signature)
    got = inter.openvino_artifact(tmp_path / "m.xml", list(graph.floats), adapted)[0]
    ref = inter.reference(graph, feeds)[0]
    k_side = [n for n in graph.floats if n.endswith(("KUnsqueezed", "KExpanded", "KTranspose")) and n in got]
    assert k_side
    for n in k_side:
        np.testing.assert_allclose(got[n], ref[n], rtol=1e-5, atol=1e-6, err_msg=n)


@pytest.mark.integration
def test_explain_on_a_tflite_with_a_signature_per_bucket(tmp_path, tiny_bert):
    """A .tflite with one signature per shape bucket: the locator runs the signature that takes the
    run's shape (it ran the first, at another length, and stopped on a reshape)."""
    pytest.importorskip("litert_torch")
    import edgekit

    model = edgekit.load(str(tiny_bert), dims={"sequence": 16})
    res = edgekit.convert(model, targets=["tflite"], out=tmp_path / "o", explain=True,
                          shape_buckets={"sequence": [8, 16]})
    (art,) = res.artifacts
    assert art.buckets and len(art.buckets["signatures"]) == 2
    fd = art.parity.first_divergence
    assert fd is not None and not fd.get("error"), fd
    assert int(fd["compared"].split(" of ")[0]) > 10  # the signature's own tensors were read


def _reshaper(cols: int):
    """x [n] -> Mul(a) -> Reshape([2, cols]) -> Relu -> y: the artifact asks for a shape x cannot take."""
    nodes = [helper.make_node("Mul", ["x", "a"], ["xa"], name="scale"),
             helper.make_node("Reshape", ["xa", "shape"], ["r"], name="the_reshape"),
             helper.make_node("Relu", ["r"], ["y"], name="act")]
    inits = [_const("a", [2.0]), numpy_helper.from_array(np.array([2, cols], np.int64), "shape")]
    graph = helper.make_graph(nodes, "reshaper", [helper.make_tensor_value_info("x", F, ["n"])],
                              [helper.make_tensor_value_info("y", F, [2, None])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_artifact_that_does_not_run_is_located_by_its_cuts(tmp_path):
    """The artifact fails on the samples (a Reshape to a size the input cannot take): every output
    is divergent, and cutting the graph before each op finds the Reshape (the cut after it does
    not run), not the Mul before it."""
    onnx.save(_reshaper(3), tmp_path / "source.onnx")
    onnx.save(_reshaper(4), tmp_path / "changed.onnx")
    samples = [{"x": np.arange(6, dtype=np.float32)}]

    def prefix(tensor):  # the changed graph cut at ``tensor``, run in ONNX Runtime
        from edgekit.steps._bisect import Cutter
        from edgekit.steps._intermediates import _ort_run

        cut = onnx.load(Cutter(tmp_path / "changed.onnx", ["x"], samples[0])(tensor, tmp_path / f"cut-{tensor}.onnx"))
        return [r[0] for r in _ort_run(cut, samples, True)[1]]

    found = locate(tmp_path / "source.onnx", "onnx", tmp_path / "changed.onnx", samples, TOL, prefix=prefix)
    assert found["node"] == "the_reshape" and found["op_type"] == "Reshape", found
