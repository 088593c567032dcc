"""Helpers the ONNX graph-rewrite tests share: ONNX's own node cases by name, and a run in ONNX
Runtime."""

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
