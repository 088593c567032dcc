"""The conformance harness on a fast subset: fixed ONNX backend node cases (they ship inside the
``onnx`` package: no network) through raw ONNX Runtime, raw OpenVINO and edgekit -> onnx and
openvino, with the real runtimes, in the harness's own worker process. The whole zoo is
``benchmarks/conformance.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _conformance_nodes import collect, compare, write  # noqa: E402
from _conformance_pool import Worker  # noqa: E402

pytestmark = pytest.mark.integration

CASES = ["test_mul_bcast", "test_add_bcast", "test_conv_with_strides_padding", "test_gemm_transposeA",
         "test_softmax_axis_0", "test_relu", "test_transpose_all_permutations_0",
         "test_concat_3d_axis_negative_3", "test_reduce_mean_keepdims_example", "test_matmul_3d",
         "test_maxpool_2d_default", "test_averagepool_2d_default", "test_tanh", "test_gather_0",
         "test_where_example"]
TARGETS = ("onnx", "openvino")


@pytest.fixture(scope="module")
def cases():
    by_name = {c.name: c for c in collect()}
    return [by_name[n] for n in CASES]


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("conformance-worker"), tmp_path_factory.mktemp("log") / "worker.log")
    yield w
    w.close()


def _raw(worker: Worker, case, paths) -> dict:
    return worker.run({"kind": "raw", "rtol": case.rtol, "atol": case.atol,
                       **{k: str(v) for k, v in paths.items()}}, timeout=120)


def test_node_cases_edgekit_matches_raw_openvino(cases, worker, tmp_path):
    """Every case raw ONNX Runtime passes; where raw OpenVINO passes too, edgekit's OpenVINO (and
    ONNX) artifact passes its parity check."""
    problems = []
    for case in cases:
        paths = write(case, tmp_path / case.name)
        raw = _raw(worker, case, paths)
        if raw.get("ort", {}).get("status") != "pass":
            problems.append(f"{case.name}: raw ONNX Runtime {raw}")
            continue
        for target in TARGETS:
            if target == "openvino" and raw["ov"]["status"] != "pass":
                continue
            answer = worker.run({"kind": "edgekit", "model": str(paths["model"]), "inputs": str(paths["inputs"]),
                                 "target": target, "out": str(tmp_path / "out" / case.name / target)}, timeout=300)
            if answer["status"] != "pass":
                problems.append(f"{case.name} -> {target}: {answer['status']}: {answer.get('error')}")
    assert not problems, "\n".join(problems)


def test_harness_reports_a_wrong_expected_output(cases, worker, tmp_path):
    """The raw check is not vacuous: an expected output off by a little fails, for both runtimes."""
    case = cases[0]
    paths = write(case, tmp_path / case.name)
    wrong = [np.asarray(a) + np.asarray(0.01, dtype=np.asarray(a).dtype) for a in case.outputs]
    np.savez(paths["expected"], **{f"out_{i}": a for i, a in enumerate(wrong)})
    raw = _raw(worker, case, paths)
    assert raw["ort"]["status"] == "fail", raw
    assert raw["ov"]["status"] == "fail", raw
    assert "max abs err" in raw["ort"]["error"]


def test_compare_catches_shape_dtype_and_value():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert compare([a], [a.copy()], 1e-3, 1e-7) is None
    assert compare([a], [a.T], 1e-3, 1e-7).startswith("output 0: shape")
    assert "dtype" in compare([a], [a > 2], 1e-3, 1e-7)
    assert "max abs err" in compare([a], [a + 1], 1e-3, 1e-7)
    assert compare([np.array([np.nan])], [np.array([np.nan])], 1e-3, 1e-7) is None
    assert "outputs" in compare([a, a], [a], 1e-3, 1e-7)
