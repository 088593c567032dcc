"""`edgekit check` on a torch model: ``torch.export`` it once, list its aten ops, and look each up
in the op tables of the converters that start from the torch graph.

- torch.onnx (ONNX, and OpenVINO/onnx2tf after it): its ONNX registry (``is_registered``);
- coremltools: its torch op registry, read from its source (importing coremltools takes seconds:
  it imports TensorFlow), plus edgekit's shims (``backends/coreml/shims.py``);
- litert-torch: the aten ops its lowerings and decompositions name (read from its source; an op
  they do not name may still decompose: a risk, not a failure);
- ExecuTorch: ops XNNPACK does not take run in portable kernels, so only export failures count.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

from ._check_types import FAIL, RISK, Finding


@dataclass
class TorchFacts:
    """The exported graph's ops (``OpOverload`` -> node names), or why torch.export failed."""

    ops: dict = field(default_factory=dict)
    error: str | None = None
    program: object = None
    _decomposed: dict | None = None

    def decomposed(self) -> dict:
        """The ops after ``run_decompositions({})``, the graph Core ML's route gives coremltools."""
        if self._decomposed is None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._decomposed = _ops_of(self.program.run_decompositions({}))
        return self._decomposed


def torch_facts(model) -> TorchFacts:
    """torch.export at the run's static shapes (once: every torch route starts from it)."""
    import warnings

    import torch

    from ..backends._common import static_example

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(model.module, tuple(static_example(model)))
    except Exception as exc:  # noqa: BLE001 - any export failure is the finding
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        return TorchFacts(error=f"{type(exc).__name__}: {first[:300]}")
    return TorchFacts(_ops_of(program), program=program)


def _ops_of(program) -> dict:
    import torch

    ops: dict = {}
    for node in program.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            ops.setdefault(node.target, []).append(node.name)
    return ops


def export_failure(facts: TorchFacts) -> list[Finding]:
    if facts.error is None:
        return []
    return [Finding("torch.export", FAIL, f"torch.export cannot capture the model: {facts.error}",
                    "make the model exportable (torch.export.export(model, example) must succeed: no data-dependent "
                    "Python control flow), or give edgekit its ONNX export")]


def onnx_export_findings(facts: TorchFacts) -> list[Finding]:
    """aten ops torch.onnx (dynamo) has no translation for."""
    if facts.error:
        return export_failure(facts)
    named = torchlib_ops()
    out = []
    for op, nodes in facts.ops.items():
        registered = op.name() in named or f"{op.namespace}::{op._opname}" in named  # any overload: lenient
        if op.namespace == "aten" and not registered and not _decomposes(op):
            out.append(Finding(f"aten.{op._opname}", FAIL, f"torch.onnx has no conversion for aten.{op._opname}",
                               "rewrite that op with supported ones, or register a custom translation "
                               "(torch.onnx.export(custom_translation_table=...))", nodes[:5]))
    return out


def _decomposes(op) -> bool:
    """An op the exporters rewrite into others before looking it up: a decomposition in torch's
    table, a composite (implicit autograd) kernel, or an assertion (dropped)."""
    import torch
    from torch._decomp import decomposition_table

    return (op in decomposition_table or op._opname.startswith("_assert")
            or op.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd))


@functools.lru_cache(maxsize=1)
def torchlib_ops() -> frozenset[str]:
    """The aten ops torch.onnx translates: those onnxscript's torchlib and torch.onnx's own
    torchlib register (``aten::name.overload``), read from their source (importing onnxscript's
    torchlib takes seconds)."""
    pattern = re.compile(r"aten::[A-Za-z0-9_.]+|aten\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)")
    names: set[str] = set()
    for package, sub in (("onnxscript", "function_libs/torch_lib/ops"), ("torch", "onnx/_internal/exporter/_torchlib")):
        spec = importlib.util.find_spec(package)
        for path in (Path(spec.origin).parent / sub).rglob("*.py"):
            for m in pattern.finditer(path.read_text(errors="ignore")):
                name = m.group(0) if m.group(1) is None else f"aten::{m.group(1)}.{m.group(2)}"
                names.add(name.removesuffix(".default"))
    return frozenset(names)


def coreml_kind(op) -> str:
    """The name coremltools looks an exported op up by (its ``sanitize_op_kind``)."""
    kind = op.name().lower()  # aten::where.ScalarOther
    if kind.startswith("__") and kind.endswith("__"):
        kind = kind[2:-2]
    for sep in ("::", "."):
        parts = kind.split(sep)
        start = 1 if parts[0] in ("aten", "prim") and len(parts) > 1 else 0
        suffixes = {"default", "int", "tensor", "tensor_mode", "scalar", "tensor_scalar"}
        stop = -1 if parts[-1] in suffixes and len(parts) - start > 1 else len(parts)
        kind = sep.join(parts[start:stop])
    return kind[:-1] if kind.endswith("_") and not kind.endswith("__") else kind


def coreml_findings(facts: TorchFacts) -> list[Finding]:
    """aten ops neither coremltools' registry nor edgekit's shims convert."""
    if facts.error:
        return export_failure(facts)
    from ..backends.coreml import shims

    registry = coreml_registry()
    aliases = {name for name, existing in getattr(shims, "ALIASES", {}).items() if existing in registry}
    known = registry | set(shims.SHIMS) | aliases
    out = []
    for op, nodes in facts.decomposed().items():
        kind = coreml_kind(op)
        if kind not in known:
            out.append(Finding(kind, FAIL, f"coremltools has no converter for torch op '{kind}' (node {nodes[0]})",
                               f"add a shim for '{kind}' to edgekit/backends/coreml/shims.py (coremltools' "
                               "@register_torch_op), or replace the op in the model", nodes[:5]))
    return out


@functools.lru_cache(maxsize=1)
def coreml_registry() -> frozenset[str]:
    """Every name coremltools' torch frontend registers (@register_torch_op and its torch_alias),
    read from its source: the same names as its registry, without importing it."""
    spec = importlib.util.find_spec("coremltools")
    folder = Path(spec.origin).parent / "converters" / "mil" / "frontend" / "torch"
    decorated = re.compile(r"@register_torch_op(?:\((.*?)\))?\s*\n(?:\s*@[^\n]*\n)*\s*def\s+(\w+)", re.S)
    names: set[str] = set()
    for path in folder.glob("*.py"):
        for args, name in decorated.findall(path.read_text()):
            names |= {name, *re.findall(r"[\"']([^\"']+)[\"']", args or "")}
    return frozenset(names)


def litert_findings(facts: TorchFacts) -> list[Finding]:
    """aten ops litert-torch's lowerings and decompositions do not name (a risk: core aten
    decompositions may still reduce them to ops it lowers)."""
    if facts.error:
        return export_failure(facts)
    named = litert_ops()
    missing: dict[str, list[str]] = {}
    for op, nodes in facts.ops.items():
        if op.namespace == "aten" and op._opname not in named and not _decomposes(op):
            missing.setdefault(op._opname, []).extend(nodes)
    return [Finding(f"aten.{name}", RISK, f"litert-torch has no lowering that names aten.{name}",
                    "if litert-torch fails on it, edgekit tries onnx2tf from the ONNX export", nodes[:5])
            for name, nodes in missing.items()]


@functools.lru_cache(maxsize=1)
def litert_ops() -> frozenset[str]:
    spec = importlib.util.find_spec("litert_torch")
    root = Path(spec.origin).parent
    pattern = re.compile(r"aten\.(\w+)")
    names: set[str] = set()
    for sub in ("backend", "fx_infra", "_convert"):
        for path in (root / sub).rglob("*.py"):
            if "test" not in path.name:
                names |= set(pattern.findall(path.read_text(errors="ignore")))
    return frozenset(names)
