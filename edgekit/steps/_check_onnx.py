"""`edgekit check` on an ONNX graph: what ONNX Runtime and OpenVINO cannot take (onnx2tf: ``_check_onnx2tf``).

Each function takes the graph's :class:`OnnxFacts` and returns a list of
``steps.check.Finding``; nothing is converted. ONNX Runtime and OpenVINO are asked (their kernel
table, ``Core.query_model``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._known import known
from ._check_types import Finding

# ONNX element types (onnx.TensorProto) by number, as ONNX Runtime's kernel tables name them
_TYPE_NAMES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
               9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 16: "bfloat16"}


# ops ONNX defines as functions that ONNX Runtime 1.32 neither has a kernel for nor inlines
# (seen in the node cases; CastLike, CenterCropPad, the losses... are inlined)
_NOT_INLINED = {"Swish", "SwiGLU"}


@dataclass
class OnnxFacts:
    """What the checks read from one ONNX file: its nodes (subgraphs too), op sets and types."""

    path: Path
    proto: object
    opsets: dict[str, int]
    nodes: list = field(default_factory=list)
    types: dict[str, int] = field(default_factory=dict)  # tensor name -> onnx element type
    constants: set[str] = field(default_factory=set)  # initializers and Constant outputs
    ranks: dict[str, int] = field(default_factory=dict)  # tensor name -> rank, where known

    def ops(self) -> dict[tuple[str, str], list[str]]:
        """(domain, op) -> node names, in graph order."""
        out: dict[tuple[str, str], list[str]] = {}
        for n in self.nodes:
            out.setdefault((n.domain or "", n.op_type), []).append(n.name or f"{n.op_type}_{len(out)}")
        return out


def onnx_facts(path: Path) -> OnnxFacts:
    import onnx

    from .ingest._quantized import _nodes

    proto = onnx.load(str(path), load_external_data=False)
    opsets = {(o.domain if o.domain != "ai.onnx" else ""): o.version for o in proto.opset_import}
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # noqa: BLE001 - a graph onnx cannot infer: fewer types known, same checks
        inferred = proto.graph
    g = inferred
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]}
    types.update({i.name: i.data_type for i in proto.graph.initializer})
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*g.value_info, *g.input, *g.output]
             if v.type.tensor_type.HasField("shape")}
    nodes = list(_nodes(proto.graph))
    constants = {i.name for i in proto.graph.initializer}
    constants |= {n.output[0] for n in nodes if n.op_type == "Constant" and n.output}
    return OnnxFacts(path, proto, opsets, nodes, types, constants, ranks)


def _named(domain: str, op: str) -> str:
    return f"{domain}:{op}" if domain else op


def _explained(target: str, message: str, op: str, nodes: list[str], severity: str = "fail") -> Finding:
    """A finding whose cause and fix come from converters/known_failures.toml, matched against the
    message the converter or runtime raises for it."""
    found = known(target, RuntimeError(message))
    cause = found.cause.split(": ", 1)[-1] if found else message
    return Finding(op, severity, cause, found.fix if found else None, nodes[:5])


# ---- ONNX Runtime ----

def ort_findings(facts: OnnxFacts) -> list[Finding]:
    """Ops ONNX Runtime's CPU build has no kernel (nor function body) for, at the model's op set."""
    import onnx
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_c

    kernels: dict[tuple[str, str], list] = {}
    for k in ort_c.get_all_opkernel_def():
        if k.provider == "CPUExecutionProvider":
            kernels.setdefault((k.domain if k.domain != "ai.onnx" else "", k.op_name), []).append(k)
    findings = []
    newest = max((k.version_range[0] for ks in kernels.values() for k in ks if k.domain in ("", "ai.onnx")),
                 default=0)
    if facts.opsets.get("", 0) > newest + 1:
        findings.append(Finding(f"opset {facts.opsets['']}", "risk",
                                f"the model is stamped opset {facts.opsets['']}; ONNX Runtime's newest kernels are "
                                f"opset {newest}", "export at a lower opset if ONNX Runtime refuses it"))
    for (domain, op), nodes in facts.ops().items():
        version = facts.opsets.get(domain, 1)
        if (domain, op) not in kernels:
            findings.extend(_ort_missing(onnx, domain, op, version, nodes))
            continue
        bad = _ort_types(onnx, facts, kernels[(domain, op)], domain, op, version)
        if bad:
            findings.append(_explained("onnx", f"Could not find an implementation for {op}({bad[0]}) node with "
                                               f"name '{nodes[0]}'", op, nodes))
            findings[-1].cause += f" for {bad[1]}"
    return findings


def _ort_missing(onnx, domain: str, op: str, version: int, nodes: list[str]) -> list[Finding]:
    """An op ONNX Runtime has no kernel for: fine when ONNX defines it as a function (inlined)."""
    if domain in ("", "ai.onnx.ml") and op != "Constant":
        try:
            schema = onnx.defs.get_schema(op, version, domain)
        except Exception:  # noqa: BLE001 - onnx does not know it at this op set
            schema = None
        inlined = schema is not None and (schema.has_function or schema.has_context_dependent_function)
        if inlined and op not in _NOT_INLINED:
            return []
        if schema is not None and schema.deprecated:
            return [Finding(op, "fail", f"{op} is deprecated at opset {version}", "re-export the model", nodes[:5])]
        since = schema.since_version if schema is not None else version
        return [_explained("onnx", f"Could not find an implementation for {op}({since}) node with name "
                                   f"'{nodes[0]}'", op, nodes)]
    if op == "Constant":
        return []
    return [_explained("onnx", f"{domain}:{op}({version}) is not a registered function/op", _named(domain, op),
                       nodes)]


def _version_matches(span: tuple[int, int], since: int) -> bool:
    """ONNX Runtime's rule (kernel_registry.cc): an open-ended kernel (end INT_MAX) takes only the
    op version it starts at; a closed one, any version in its span."""
    start, end = span
    return start == since or (start < since and end != 2**31 - 1 and end >= since)


def _ort_types(onnx, facts: OnnxFacts, defs: list, domain: str, op: str, version: int):
    """(since_version, 'T=tensor(x)') when no kernel of ``op`` takes its input types; else None."""
    try:
        schema = onnx.defs.get_schema(op, version, domain)
    except Exception:  # noqa: BLE001 - a contrib op: its version is the domain's
        schema = None
    since = schema.since_version if schema is not None else version
    defs = [k for k in defs if _version_matches(k.version_range, since)]
    if not defs:  # no kernel for this version: ORT inlines the op's function body where ONNX has one
        inlined = schema is not None and (schema.has_function or schema.has_context_dependent_function)
        return (since, "this op set") if schema is not None and (not inlined or op in _NOT_INLINED) else None
    if schema is None:
        return None
    for node in (n for n in facts.nodes if (n.domain or "") == domain and n.op_type == op):
        typed = _typed(facts, schema, node)
        if typed and not any(all(t not in k.type_constraints or f"tensor({e})" in k.type_constraints[t]
                                 for t, e in typed) for k in defs):
            return since, ", ".join(f"{t}=tensor({e})" for t, e in dict(typed).items())
    return None


def _typed(facts: OnnxFacts, schema, node) -> list[tuple[str, str]]:
    """(type parameter, element type) of a node's inputs and outputs, where inference knows it
    (float16 left out: ONNX Runtime casts it to float where it has no float16 kernel)."""
    pairs = [*zip(schema.inputs, node.input, strict=False), *zip(schema.outputs, node.output, strict=False)]
    typed = [(formal.type_str, _TYPE_NAMES.get(facts.types.get(name, 0))) for formal, name in pairs if name]
    return [(t, e) for t, e in typed if e and e != "float16"]


# ---- OpenVINO ----

def openvino_findings(path: Path) -> list[Finding]:
    """OpenVINO's own answer: the frontend's unconverted ops (read_model), then the CPU plugin's
    unsupported ones (query_model)."""
    import openvino as ov

    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except Exception as exc:  # noqa: BLE001 - the frontend's report names the ops it cannot convert
        return _openvino_read_error(exc)
    supported = core.query_model(model, "CPU")
    missing: dict[str, list[str]] = {}
    for node in model.get_ops():
        if node.get_friendly_name() not in supported and node.get_type_name() not in ("Parameter", "Result",
                                                                                     "Constant"):
            missing.setdefault(node.get_type_name(), []).append(node.get_friendly_name())
    return [Finding(op, "fail", f"OpenVINO's CPU plugin cannot run {op}", "update openvino, or rewrite that part "
                    "of the model with other ops", nodes[:5]) for op, nodes in missing.items()]


def openvino_static_findings(path: Path, sizes: dict[str, tuple[int, ...]]) -> list[Finding]:
    """:func:`openvino_findings` of the ONNX at ``sizes`` with its shape-only ``If``s taken, as
    OpenVINO's static-shape route converts it."""
    import tempfile

    import onnx

    from ..backends._onnx_static import fold_static_ifs, static_inputs

    proto = onnx.load(str(path))
    static_inputs(proto, sizes)
    fold_static_ifs(onnx, proto)
    with tempfile.TemporaryDirectory(prefix="edgekit-check-") as tmp:
        fixed = Path(tmp) / "model.onnx"
        onnx.save(proto, str(fixed), save_as_external_data=True, location="model.onnx.data")
        return openvino_findings(fixed)


def openvino_rewritten_findings(path: Path, sizes: dict[str, tuple[int, ...]] | None) -> list[Finding] | None:
    """:func:`openvino_findings` of the ONNX as OpenVINO's rewritten-ONNX route writes it (``sizes``:
    the run's, where that route may fix the inputs); None where the route has nothing to rewrite."""
    import tempfile

    import onnx

    from ..backends.openvino._rewrite import rewritten, topks

    proto, _, count, _ = rewritten(onnx, path, sizes)
    if not count and not topks(proto):
        return None
    with tempfile.TemporaryDirectory(prefix="edgekit-check-") as tmp:
        fixed = Path(tmp) / "model.onnx"
        onnx.save(proto, str(fixed), save_as_external_data=True, location="model.onnx.data")
        return openvino_findings(fixed)


def _openvino_read_error(exc: BaseException) -> list[Finding]:
    import re

    text = str(exc)
    m = re.search(r"No conversion rule found for operations: ([^\n]+)", text)
    ops = [o.strip() for o in m.group(1).split(",")] if m else []
    found = known("openvino", exc)
    first = next((ln.strip() for ln in text.splitlines() if "rror" in ln or "failed" in ln), text[:200])
    translator = re.findall(r"No translator found for (\w+) node", text)  # OpenVINO's TFLite frontend
    if not ops:
        return [Finding(", ".join(dict.fromkeys(translator)) or "(read)", "fail", found.cause.split(": ", 1)[-1] if found else
                        f"OpenVINO cannot read the model: {first[:300]}", found.fix if found else None)]
    out = []
    for op in ops:
        one = known("openvino", RuntimeError(f"No conversion rule found for operations: {op}"))
        out.append(Finding(op, "fail", one.cause.split(": ", 1)[-1] if one else f"OpenVINO cannot convert {op}",
                           one.fix if one else None))
    return out
