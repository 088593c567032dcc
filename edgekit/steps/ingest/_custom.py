"""Custom (vendor) ops in a source: ops outside the standard op sets, which a runtime runs only
with the library that defines them (and which a converter can translate only if it knows them).

``onnx_traits(proto)`` and ``tflite_traits(interpreter)`` are what the loaders record in
``model.meta``: ``quantized`` (``_quantized.py``) and ``custom_ops``, a list of
``{"op", "domain", "nodes", "library"}`` (domain "" for a .tflite custom op).
"""

from __future__ import annotations

from ..._known import custom_op_library
from ._quantized import _nodes, onnx_quantization, tflite_quantization

# op sets every ONNX runtime implements
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"})


def onnx_custom_ops(proto) -> list[dict]:
    """Nodes of non-standard domains that no function in the model defines."""
    local = {(f.domain, f.name) for f in proto.functions}
    nodes = list(_nodes(proto.graph))
    for fn in proto.functions:
        nodes.extend(fn.node)
    found: dict[tuple[str, str], dict] = {}
    for node in nodes:
        key = (node.domain, node.op_type)
        if node.domain in STANDARD_DOMAINS or key in local:
            continue
        if key not in found:
            found[key] = {"op": node.op_type, "domain": node.domain, "nodes": [],
                          "library": custom_op_library(node.op_type, node.domain).get("library")}
        found[key]["nodes"].append(node.name)
    return list(found.values())


def tflite_custom_ops(interpreter) -> list[dict]:
    """Ops of a .tflite that are not TFLite builtins (their op code is CUSTOM, named by custom_code).
    ``interpreter``: a LiteRT Interpreter, or the file's path (read without preparing its ops)."""
    from ai_edge_litert import schema_py_generated as schema

    if not hasattr(interpreter, "_get_ops_details"):
        from ai_edge_litert.interpreter import Interpreter

        try:
            interpreter = Interpreter(model_path=str(interpreter))
        except Exception:  # noqa: BLE001 - not readable at all: no ops to name
            return []

    builtins = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}
    found: dict[str, dict] = {}
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the interpreter's only op listing
        name = op["op_name"]
        if name in builtins:
            continue
        entry = found.setdefault(name, {"op": name, "domain": "", "nodes": [],
                                        "library": custom_op_library(name, "").get("library")})
        entry["nodes"].append(str(op["index"]))
    return list(found.values())


def onnx_traits(proto) -> dict:
    return {"quantized": onnx_quantization(proto), "custom_ops": onnx_custom_ops(proto)}


def tflite_traits(interpreter) -> dict:
    return {"quantized": tflite_quantization(interpreter), "custom_ops": tflite_custom_ops(interpreter)}


def describe(ops: list[dict], limit: int = 4) -> str:
    """'com.acme.vision:FancyGelu (node fancy_0; library: ...)' for the first few custom ops."""
    parts = []
    for o in ops[:limit]:
        name = f"{o['domain']}:{o['op']}" if o["domain"] else o["op"]
        where = f"node {o['nodes'][0]}" + (f" and {len(o['nodes']) - 1} more" if len(o["nodes"]) > 1 else "")
        lib = f"; from {o['library']}" if o.get("library") else ""
        parts.append(f"{name} ({where}{lib})")
    more = f" and {len(ops) - limit} more" if len(ops) > limit else ""
    return ", ".join(parts) + more


def source_error(runtime: str, exc: BaseException, ops: list[dict]):
    """The error for a source its own runtime cannot load: a custom op named as one, with the fix.

    ``runtime`` is the known_failures.toml target of that runtime ("onnx": ONNX Runtime, "tflite":
    LiteRT); ``ops`` the custom ops found in the file. Returns the exception to raise."""
    from ..._errors import ConversionError, EdgekitError
    from ..._known import GENERIC_CUSTOM_FIX, known

    where = {"onnx": "the source (ONNX Runtime)", "tflite": "the source (LiteRT)"}.get(runtime, "the source")
    found = known(runtime, exc, where)
    if found is not None:
        if ops:  # the nodes, and any other custom op the file has
            found.cause += f"; custom op(s) in the model: {describe(ops)}"
            found.args = (found.cause,)
        return found
    if ops:
        fixes = {custom_op_library(o["op"], o["domain"]).get("fix") for o in ops} - {None}
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        return ConversionError(runtime, f"{where} cannot run the model, which uses custom (vendor) op(s) "
                                        f"{describe(ops)} ({first[:200]})",
                               "; ".join(sorted(fixes)) or GENERIC_CUSTOM_FIX)
    return exc if isinstance(exc, EdgekitError) else None
