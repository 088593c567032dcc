"""Sources that are already quantized: which kind of quantization, and which ops carry it.

An int8 source re-implemented by another runtime drifts by a few quantization steps (rounding
of scales, requantization order), which fp32 tolerances call a failure. Knowing the source is
quantized lets verification judge it at that precision (``[int8-source]`` in
``converters/tolerances.toml``) and lets the manifest say so.

``onnx_quantization(proto)`` and ``tflite_quantization(interpreter)`` return ``None`` for a
float model, else ``{"kind": "QDQ, integer ops", "kinds": [...], "ops": {op: count},
"bits": 8, "summary": "QDQ: 9 QuantizeLinear, 19 DequantizeLinear"}``.
"""

from __future__ import annotations

from collections import Counter

# ONNX (default domain and com.microsoft): op -> the kind of quantization it means
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_INTEGER = ("ConvInteger", "MatMulInteger", "MatMulIntegerToFloat")
_DYNAMIC = ("DynamicQuantizeLinear", "DynamicQuantizeLSTM", "DynamicQuantizeMatMul")
_QOPERATOR = ("QGemm", "QAttention", "QEmbedLayerNormalization", "QOrderedMatMul", "QOrderedGelu",
              "QOrderedLayerNormalization", "QOrderedAttention")
_NBITS = ("MatMulNBits", "MatMulBnb4", "GatherBlockQuantized")
_KIND_ORDER = ("QDQ", "QOperator", "integer ops", "dynamic quantization", "n-bit weights")

# element types of zero points (onnx.TensorProto): their width in bits
_BITS = {2: 8, 3: 8, 4: 16, 5: 16, 21: 4, 22: 4, 25: 2, 26: 2}


def _kind(op: str) -> str | None:
    if op in _QDQ:
        return "QDQ"
    if op.startswith("QLinear") or op in _QOPERATOR:
        return "QOperator"
    if op in _INTEGER:
        return "integer ops"
    if op in _DYNAMIC:
        return "dynamic quantization"
    if op in _NBITS:
        return "n-bit weights"
    return None


def _nodes(graph):
    """Every node, those of subgraphs (If, Loop, Scan) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _nodes(sub)


def _summary(kinds: list[str], ops: Counter, kind_of) -> str:
    parts = []
    for kind in kinds:
        named = ", ".join(f"{n} {op}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))
                          if kind_of(op) == kind)
        parts.append(f"{kind}: {named}")
    return "; ".join(parts)


def _onnx_bits(proto, nodes: list) -> int:
    """The narrowest integer width among the zero points (8 unless int4/int16 ones are used)."""
    types = {i.name: i.data_type for i in proto.graph.initializer}
    widths = {_BITS[types[n.input[2]]] for n in nodes
              if n.op_type in _QDQ and len(n.input) > 2 and types.get(n.input[2]) in _BITS}
    return min(widths, default=8)


def onnx_quantization(proto) -> dict | None:
    """What quantization an ONNX model carries (functions and subgraphs included), or None."""
    nodes = list(_nodes(proto.graph))
    for fn in proto.functions:
        nodes.extend(fn.node)
    ops = Counter(n.op_type for n in nodes if _kind(n.op_type))
    if not ops:
        return None
    qoperator = any(_kind(op) == "QOperator" for op in ops)

    def kind_of(op: str) -> str | None:  # a QOperator model's Q/DQ nodes are its entry and exit
        return "QOperator" if qoperator and op in _QDQ else _kind(op)

    kinds = [k for k in _KIND_ORDER if any(kind_of(op) == k for op in ops)]
    kind = ", ".join(kinds)
    if "QDQ" in kinds and not ops.get("QuantizeLinear"):
        kind = kind.replace("QDQ", "QDQ (weights only)")  # DequantizeLinear alone: activations stay float
    return {"kind": kind, "kinds": kinds, "ops": dict(ops), "bits": _onnx_bits(proto, nodes),
            "summary": _summary(kinds, ops, kind_of)}


def tflite_quantization(interpreter) -> dict | None:
    """What quantization a .tflite carries: tensors of integer type with scales, and the ops that
    read or write them (activations quantized: full integer; constants only: dynamic range)."""
    details = interpreter.get_tensor_details()
    quantized = {}
    for d in details:
        params = d.get("quantization_parameters") or {}
        scales = params.get("scales")
        if d["dtype"].__name__ in ("int8", "uint8", "int16", "int4") and scales is not None and len(scales):
            quantized[d["index"]] = d["dtype"].__name__
    if not quantized:
        return None
    ops: Counter = Counter()
    activations = False
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the interpreter's only op listing
        touched = [i for i in [*op["inputs"], *op["outputs"]] if i in quantized]
        if touched:
            ops[op["op_name"]] += 1
            activations = activations or any(i in quantized for i in op["outputs"])
    kind = "full integer (int8 activations and weights)" if activations else "dynamic range (int8 weights)"
    bits = 16 if "int16" in quantized.values() else 4 if set(quantized.values()) == {"int4"} else 8
    named = ", ".join(f"{n} {op}" for op, n in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
    return {"kind": f"TFLite {kind}", "kinds": ["tflite-int8"], "ops": dict(ops), "bits": bits,
            "quantized_tensors": len(quantized), "summary": f"{len(quantized)} quantized tensor(s); {named}"}
