"""`edgekit check` / `edgekit.check()`: predictions from the real converters' and runtimes' op
tables (no mocks), and a few of them held against an actual `edgekit.convert`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgekit
from edgekit import EdgekitError

from .conftest import run_cli

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

F = TensorProto.FLOAT


def _save(path, nodes, inputs, outputs, inits=(), opsets=(("", 17),)):
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    onnx.save(model, str(path))
    return path


def _conv(tmp_path, dims=(1, 3, 16, 16)):
    w = helper.make_tensor("w", F, [4, 3, 3, 3], np.random.default_rng(0).random(108).astype(np.float32))
    return _save(tmp_path / "conv.onnx",
                 [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
                 [helper.make_tensor_value_info("x", F, list(dims))],
                 [helper.make_tensor_value_info("y", F, [dims[0], 4, *dims[2:]])], [w])


def test_plain_conv_net_converts_everywhere(tmp_path):
    result = edgekit.check(_conv(tmp_path), targets=["onnx", "openvino", "tflite"])
    assert [t.verdict for t in result.targets] == ["will convert"] * 3, result.to_dict()
    assert result.exit_code == 0 and result.ok
    assert result.source["ops"] == ["Conv", "Relu"] and result.source["quantized"] is None
    assert result.seconds < 10


def test_op_onnx2tf_has_no_converter_for_is_named(tmp_path):
    path = _save(tmp_path / "afe.onnx",
                 [helper.make_node("ArrayFeatureExtractor", ["x", "i"], ["y"], domain="ai.onnx.ml")],
                 [helper.make_tensor_value_info("x", F, [2, 5]), helper.make_tensor_value_info("i", TensorProto.INT64, [2])],
                 [helper.make_tensor_value_info("y", F, [2, 2])], opsets=(("", 17), ("ai.onnx.ml", 3)))
    result = edgekit.check(path, targets=["onnx", "tflite"])
    tfl = result.target("tflite")
    assert tfl.status == "fail" and "ArrayFeatureExtractor" in tfl.verdict, tfl
    finding = tfl.routes[0].findings[0]
    assert "onnx2tf has no converter" in finding.cause and finding.fix  # from converters/known_failures.toml
    assert result.target("onnx").verdict == "will convert"  # ONNX Runtime has the ai.onnx.ml kernel
    assert result.exit_code == 3


def test_what_prep_rewrites_is_not_a_failure_and_fed_axes_are(tmp_path):
    i8 = TensorProto.INT8
    path = _save(tmp_path / "prep.onnx", [helper.make_node("CastLike", ["x", "like"], ["c"]),
                                          helper.make_node("Add", ["c", "c"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [2, 3]), helper.make_tensor_value_info("like", i8, [1])],
                 [helper.make_tensor_value_info("y", i8, [2, 3])])
    assert edgekit.check(path, targets=["tflite"]).target("tflite").status == "ok"  # CastLike -> Cast, int8 widened
    path = _save(tmp_path / "trilu.onnx", [helper.make_node("Trilu", ["x", "k"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [4, 4]), helper.make_tensor_value_info("k", TensorProto.INT64, [])],
                 [helper.make_tensor_value_info("y", F, [4, 4])])
    assert edgekit.check(path, targets=["tflite"]).target("tflite").status == "ok"  # Trilu -> Where with a mask
    path = _save(tmp_path / "unsq.onnx", [helper.make_node("Unsqueeze", ["x", "axes"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [4, 4]),
                  helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
                 [helper.make_tensor_value_info("y", F, [4, 4, 1])])
    tfl = edgekit.check(path, targets=["tflite"]).target("tflite")
    assert tfl.verdict == "will fail at Unsqueeze" and "constant" in tfl.routes[0].findings[0].cause


def test_custom_domain_op_fails_onnx_runtime_and_openvino(tmp_path):
    path = _save(tmp_path / "custom.onnx", [helper.make_node("FancyGelu", ["x"], ["y"], domain="com.acme.vision")],
                 [helper.make_tensor_value_info("x", F, [1, 8])], [helper.make_tensor_value_info("y", F, [1, 8])],
                 opsets=(("", 17), ("com.acme.vision", 1)))
    result = edgekit.check(path, targets=["onnx", "openvino", "tflite"])
    for target in ("onnx", "openvino", "tflite"):
        t = result.target(target)
        assert t.status == "fail" and "FancyGelu" in t.verdict, (target, t)
    assert "custom" in result.target("onnx").routes[0].findings[0].cause
    assert "register" in result.target("onnx").fix
    assert result.source["custom_ops"][0]["op"] == "FancyGelu"


def test_unsized_axis_is_reported_not_raised(tmp_path):
    path = _conv(tmp_path, dims=(1, 3, "h", "w"))
    result = edgekit.check(path, targets=["onnx"])
    assert {u["axis"] for u in result.unsized} == {"h", "w"} and result.exit_code == 3
    assert "--dim h=N" in result.unsized[0]["fix"]
    assert edgekit.check(path, targets=["onnx"], dims={"h": 16, "w": 16}).exit_code == 0


def test_quantized_source_is_reported(tmp_path):
    inits = [helper.make_tensor("s", F, [], [0.1]), helper.make_tensor("z", TensorProto.UINT8, [], [128])]
    path = _save(tmp_path / "qdq.onnx", [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                                         helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [1, 8])], [helper.make_tensor_value_info("y", F, [1, 8])], inits)
    result = edgekit.check(path, targets=["onnx", "openvino"])
    assert result.source["quantized"]["kind"].startswith("QDQ")
    assert result.exit_code == 0


def test_torch_source_is_exported_once_and_checked_against_coremltools():
    result = edgekit.check("tests.fixtures:tiny_cnn", targets=["onnx", "tflite", "coreml", "executorch"])
    assert {t.target: t.status for t in result.targets} == dict.fromkeys(("onnx", "tflite", "coreml", "executorch"), "ok")
    assert any(op.startswith("aten.conv") for op in result.source["ops"])


def test_torch_op_coremltools_lacks_is_named_as_convert_names_it():
    """tests/test_bad_input.py converts the same model: coremltools fails at special_i0."""
    coreml = edgekit.check("tests.fixtures:unconvertible", targets=["coreml"]).target("coreml")
    assert coreml.verdict == "will fail at special_i0" and "register_torch_op" in coreml.fix


def test_verdicts_from_route_findings():
    from edgekit.steps._check_types import Finding, RouteCheck
    from edgekit.steps.check import _verdict

    fail, risk = Finding("Op", "fail", "no converter", "rewrite it"), Finding("T", "risk", "few kernels", "widen it")
    assert _verdict("t", [RouteCheck("a"), RouteCheck("b", [fail])]).verdict == "will convert"
    later = _verdict("t", [RouteCheck("a", [fail]), RouteCheck("b")])
    assert (later.status, later.route, later.fix) == ("route", "b", "rewrite it") and "may need route b" in later.verdict
    risky = _verdict("t", [RouteCheck("a", [fail]), RouteCheck("b", [risk])])
    assert (risky.status, risky.verdict) == ("risk", "may fail at T")
    dead = _verdict("t", [RouteCheck("a", [fail]), RouteCheck("b", [fail])])
    assert (dead.status, dead.verdict, dead.route) == ("fail", "will fail at Op", None)
    unchecked = _verdict("t", [RouteCheck("a", checked=False, note="not checked: no table")])
    assert unchecked.verdict == "will convert" and unchecked.notes == ["a: not checked: no table"]


def test_openvino_static_route_is_asked_where_the_dynamic_read_fails(tmp_path):
    """An If on the length whose branches differ in rank: OpenVINO cannot read the graph dynamic,
    and its static-shape route (the length fixed, the If taken) converts; convert agrees."""
    from ._onnx_cases import if_on_length

    path = if_on_length(tmp_path / "if.onnx")
    ov = edgekit.check(path, targets=["openvino"], dims={"L": 16}).targets[0]
    dynamic, static, rewritten = ov.routes  # the rewritten-ONNX route: no op here it rewrites
    assert dynamic.status == "fail" and static.status == "ok" and rewritten.status == "fail", ov
    assert ov.route == static.route and "may need route" in ov.verdict and "static shapes" in ov.route
    result = edgekit.convert(edgekit.load(path, dims={"L": 16}), targets=["openvino"], out=tmp_path / "o")
    assert [a["route"] for a in result.artifacts[0].attempts] == [dynamic.route, static.route]
    conv = edgekit.check(_conv(tmp_path), targets=["openvino"]).targets[0]  # no dynamic axis: nothing to fix
    assert conv.verdict == "will convert" and conv.routes[1].status == "ok"


def test_cli_json_and_exit_codes(tmp_path):
    rc, out, err = run_cli("check", str(_conv(tmp_path)), "--to", "onnx,openvino", "--json")
    assert rc == 0, err
    doc = json.loads(out[out.index("{"):])
    assert [t["verdict"] for t in doc["targets"]] == ["will convert", "will convert"] and doc["exit_code"] == 0
    path = _save(tmp_path / "sinh.onnx", [helper.make_node("Sinh", ["x"], ["y"])],
                 [helper.make_tensor_value_info("x", F, [2, 3])], [helper.make_tensor_value_info("y", F, [2, 3])])
    rc, out, err = run_cli("check", str(path), "--to", "tflite")
    assert rc == 3 and "will fail at Sinh" in out, out + err
    rc, _, err = run_cli("check", str(tmp_path / "missing.onnx"), "--to", "onnx")
    assert rc == 2 and "does not exist" in err
    rc, _, err = run_cli("check", str(path), "--to", "nosuchtarget")
    assert rc == 2


def test_sizing_options_need_a_path():
    model = edgekit.load("tests.fixtures:tiny_cnn")
    with pytest.raises(EdgekitError):
        edgekit.check(model, targets=["onnx"], dims={"batch": 1})


# ---- predictions held against an actual conversion ----

def _node_case(name: str, tmp_path):
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():  # the cases' own numpy (overflow, log 0) as they are built
        warnings.simplefilter("ignore")
        case = next(c for c in collect_testcases(None) if c.name == name)
    path = tmp_path / f"{name}.onnx"
    onnx.save(case.model, str(path))
    return path


@pytest.mark.parametrize(("case", "target", "fails"), [("test_sinh_example", "tflite", True),
                                                       ("test_relu", "tflite", False)])
def test_prediction_agrees_with_convert(case, target, fails, tmp_path):
    pytest.importorskip("onnx2tf")
    path = _node_case(case, tmp_path)
    predicted = edgekit.check(path, targets=[target]).target(target)
    assert (predicted.status == "fail") == fails, predicted
    try:
        result = edgekit.convert(path, targets=[target], out=tmp_path / "out")
        converted = all(a.parity and a.parity.status != "error" for a in result.artifacts)
    except EdgekitError:
        converted = False
    assert converted != fails
