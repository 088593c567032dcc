"""Helpers the ONNX tests share: ONNX's own node cases by name, a run in ONNX Runtime, and small
models several tests convert."""

from __future__ import annotations

import warnings


def node_cases(names) -> dict:
    """ONNX's backend node test cases whose names are in ``names``, by name."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases() if c.name in names}


def ort_run(path, feeds) -> list:
    """The outputs of the ONNX file at ``path`` on ``feeds``, by ONNX Runtime on the CPU."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def if_on_length(path):
    """An If on the input's length whose branches give ranks 3 and 4, then a Conv: OpenVINO's
    frontend cannot read it with the length dynamic (the Conv's input has no rank)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT
    then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", f, None)])
    else_g = helper.make_graph([helper.make_node("Unsqueeze", ["x", "ax"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", f, None)])
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "i2"], ["n"], axis=0),
             helper.make_node("Greater", ["n", "eight"], ["c"]),
             helper.make_node("If", ["c"], ["b"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Conv", ["b", "w"], ["y"])]
    inits = [helper.make_tensor("i2", TensorProto.INT64, [], [2]), helper.make_tensor("eight", TensorProto.INT64, [], [8]),
             helper.make_tensor("ax", TensorProto.INT64, [1], [3]),
             helper.make_tensor("w", f, [4, 2, 3], np.random.default_rng(0).random(24).astype(np.float32))]
    graph = helper.make_graph(nodes, "if_on_length", [helper.make_tensor_value_info("x", f, [1, 2, "L"])],
                              [helper.make_tensor_value_info("y", f, [1, 4, "Lo"])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path
