"""`edgekit check` for the routes through onnx2torch (TFLite and Core ML from an ONNX file): the ops
it has a converter for, read from its op modules' ``add_converter`` lines without importing it
(importing it imports torch, seconds a check should not spend)."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

from ._check_onnx import OnnxFacts, _named
from ._check_types import FAIL, Finding

_REGISTERED = re.compile(r"add_converter\(\s*operation_type='(\w+)',\s*version=(\d+)(?:,\s*domain='([\w.]*)')?")


@functools.lru_cache(maxsize=1)
def onnx2torch_ops() -> frozenset[tuple[str, str]]:
    """(domain, op) onnx2torch registers a converter for, at some op set version."""
    spec = importlib.util.find_spec("onnx2torch")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    folder = Path(next(iter(spec.submodule_search_locations))) / "node_converters"
    found = set()
    for path in folder.glob("*.py"):
        for op, _, domain in _REGISTERED.findall(path.read_text(encoding="utf-8")):
            found.add((domain if domain not in ("", "ai.onnx") else "", op))
    return frozenset(found)


def onnx2torch_findings(facts: OnnxFacts) -> list[Finding]:
    """The ops onnx2torch cannot convert (no converter; or one that needs torchvision, which is absent)."""
    from ..backends._onnx2torch import _PARAMETERS, NEED_TORCHVISION
    from ..backends._onnx_torchable import REWRITTEN

    known = onnx2torch_ops()
    no_vision = importlib.util.find_spec("torchvision") is None
    findings = []
    for (domain, op), nodes in facts.ops().items():
        if (domain, op) not in known and not (op in REWRITTEN and not domain):
            findings.append(Finding(_named(domain, op), FAIL, f"onnx2torch has no converter for {_named(domain, op)}",
                                    "use another route, or a target that reads ONNX (onnx, openvino)", nodes[:5]))
        elif no_vision and op in NEED_TORCHVISION and not domain:
            findings.append(Finding(op, FAIL, f"onnx2torch converts {op} with torchvision, which does not load "
                                    "beside torch 2.13+cpu", "use another route, or a target that reads ONNX "
                                    "(onnx, openvino)", nodes[:5]))
    fed = {v.name for v in facts.proto.graph.input} - facts.constants
    for node in facts.nodes:
        start = _PARAMETERS.get(node.op_type)
        if start is not None and any(i in fed for i in node.input[start:]):
            findings.append(Finding(node.op_type, FAIL, f"{node.op_type} whose shape, axes or sizes are a model input: "
                                    "onnx2torch's graph is traced, which would fix them at one value",
                                    "make them a constant (an initializer)", [node.name]))
    return findings
