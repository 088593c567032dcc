"""ONNX backend node cases: collect, sample, write to disk, and compare outputs.

The cases ship inside the ``onnx`` package (``onnx.backend.test.case.node.collect_testcases()``),
so nothing here needs the network. Each case's first data set is used: its inputs go to an .npz
keyed by the graph's input names (what ``edgekit convert --inputs`` takes), its expected outputs
to another .npz (``out_0``, ``out_1``, ...).
"""

from __future__ import annotations

import fnmatch
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class NodeCase:
    name: str
    model: object  # onnx.ModelProto
    inputs: list
    outputs: list
    rtol: float
    atol: float


def collect(match: str | None = None) -> list[NodeCase]:
    """Every node case with one data set, sorted by name; ``match`` filters names (a substring,
    case-insensitive, or an fnmatch pattern when it has * or ?)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    picked = []
    for c in sorted(cases, key=lambda c: c.name):
        if c.kind != "node" or not c.data_sets or c.model is None:
            continue
        if match and not _matches(c.name, match):
            continue
        ins, outs = c.data_sets[0]
        ins, outs = ([np.asarray(a) if isinstance(a, np.generic) else a for a in arrays] for arrays in (ins, outs))
        picked.append(NodeCase(c.name, c.model, ins, outs, c.rtol, c.atol))
    return picked


def _matches(name: str, pattern: str) -> bool:
    """A substring or glob; several separated by commas (any of them)."""
    if "," in pattern:
        return any(_matches(name, part) for part in pattern.split(",") if part)
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatch(name, pattern)
    return pattern.lower() in name.lower()


def sample(cases: list[NodeCase], limit: int | None, seed: int) -> list[NodeCase]:
    """A fixed-seed sample of ``limit`` cases (all of them when limit is None or larger)."""
    if limit is None or limit >= len(cases):
        return list(cases)
    picked = random.Random(seed).sample(range(len(cases)), limit)
    return [cases[i] for i in sorted(picked)]


def why_unsupported(case: NodeCase) -> str | None:
    """Why the harness cannot feed this case (non-tensor inputs/outputs), or None."""
    graph = case.model.graph
    inits = {i.name for i in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in inits]
    if len(graph_inputs) != len(case.inputs):
        return f"{len(case.inputs)} input arrays for {len(graph_inputs)} graph inputs"
    for vi in [*graph_inputs, *graph.output]:
        if not vi.type.HasField("tensor_type"):
            return f"{vi.name} is a {vi.type.WhichOneof('value')}, not a tensor"
    for arr in [*case.inputs, *case.outputs]:
        if not isinstance(arr, np.ndarray):
            return f"a {type(arr).__name__} in the data set, not an array"
    return None


def write(case: NodeCase, folder: Path) -> dict[str, Path]:
    """model.onnx, inputs.npz (keyed by input name) and expected.npz under ``folder``."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"model": folder / "model.onnx", "inputs": folder / "inputs.npz",
             "expected": folder / "expected.npz"}
    onnx.save(case.model, str(paths["model"]))
    graph = case.model.graph
    inits = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in inits]
    np.savez(paths["inputs"], **dict(zip(names, case.inputs, strict=True)))
    np.savez(paths["expected"], **{f"out_{i}": a for i, a in enumerate(case.outputs)})
    return paths


def compare(expected: list, actual: list, rtol: float, atol: float) -> str | None:
    """None when ``actual`` matches ``expected`` as ONNX's backend test checks it
    (assert_allclose with the case's rtol/atol, NaNs equal; exact for strings and objects);
    else the first mismatch, in words."""
    if len(expected) != len(actual):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        e, a = np.asarray(e), np.asarray(a)
        if e.shape != a.shape:
            return f"output {i}: shape {list(a.shape)}, expected {list(e.shape)}"
        if e.dtype.kind in "OSU" or a.dtype.kind in "OSU":
            if not np.array_equal(e.astype(str), a.astype(str)):
                return f"output {i}: strings differ"
            continue
        if e.dtype.kind != a.dtype.kind and not {e.dtype.kind, a.dtype.kind} <= {"i", "u"}:
            return f"output {i}: dtype {a.dtype}, expected {e.dtype}"
        try:
            np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol,
                                       atol=atol, equal_nan=True)
        except AssertionError:
            diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
            worst = float(np.nanmax(diff)) if diff.size else 0.0
            return f"output {i}: max abs err {worst:.3g} (rtol {rtol:g}, atol {atol:g})"
        except (TypeError, ValueError) as exc:
            return f"output {i}: cannot compare ({exc})"
    return None
