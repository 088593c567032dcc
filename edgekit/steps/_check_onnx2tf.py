"""`edgekit check` for TFLite from ONNX: what onnx2tf has no converter for, and what it writes as
TensorFlow ops LiteRT cannot run.

onnx2tf is asked by its op modules (``onnx2tf/ops/<Op>.py``, listed: importing onnx2tf imports
TensorFlow); the rest are rules, each from a failure seen in ONNX's node test cases
(``benchmarks/conformance.py nodes``): a ``fail`` where every case with that trait failed, a
``risk`` where the evidence is one case or mixed. What edgekit's prep rewrites before onnx2tf
(``backends/tflite/_prepare.py``: CastLike, int8/16, unsigned, float16 and float64 arithmetic,
Attention as its function body) is not predicted to fail.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from ._check_onnx import OnnxFacts, _explained, _named
from ._check_types import FAIL, RISK, Finding

# ops edgekit's prep rewrites before onnx2tf (backends/tflite/_prepare.py, _rewrites*.py)
_PREPARED = {"CastLike", "Constant"}
# ONNX ops onnx2tf writes as TensorFlow ops LiteRT has no builtin for (seen in the node cases;
# Cosh and Atanh are written as Exp/Log before onnx2tf)
_NO_BUILTIN = {"Sinh": "Sinh", "Asinh": "Asinh", "Acosh": "Acosh", "Unique": "UniqueWithCountsV2"}
# bitwise ops LiteRT lacks -> the element types prep writes them as arithmetic for (int8/16, uint8/16;
# BitwiseNot int32/int64 too): other types stay Select-TF ops
_BITWISE = {"BitwiseOr": ("BitwiseOr", {2, 3, 4, 5}), "BitwiseAnd": ("BitwiseAnd", {2, 3, 4, 5}),
            "BitwiseNot": ("Invert", {2, 3, 4, 5, 6, 7})}
# element types LiteRT lacks that prep does not widen for every op
_RISKY_TYPES = {13: "uint64", 16: "bfloat16", 8: "string"}
_POOLS = {"AveragePool": "AvgPool3D", "MaxPool": "MaxPool3D", "LpPool": "AvgPool3D"}


def _attr(node, name: str, default=None):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def onnx2tf_findings(facts: OnnxFacts) -> list[Finding]:
    """What onnx2tf has no converter for, and what it writes as ops LiteRT cannot run."""
    findings = []
    for (domain, op), nodes in facts.ops().items():
        if op in _PREPARED and domain == "":
            continue
        if domain not in ("", "ai.onnx") or op not in onnx2tf_ops():
            findings.append(_explained("tflite", f"No module named 'onnx2tf.ops.{op}'", _named(domain, op), nodes))
        elif op in _NO_BUILTIN:
            findings.append(_flex(_NO_BUILTIN[op], op, nodes))
    for node in facts.nodes:
        found = _node_rule(facts, node)
        if found is not None and not any(f.op == found.op and f.cause == found.cause for f in findings):
            findings.append(found)
        elif found is not None:
            next(f for f in findings if f.op == found.op and f.cause == found.cause).nodes.append(node.name)
    findings.extend(_type_risks(facts))
    return findings


@functools.lru_cache(maxsize=1)
def onnx2tf_ops() -> frozenset[str]:
    """The ONNX ops onnx2tf converts: one module each in ``onnx2tf/ops/`` (listed, not imported:
    importing onnx2tf imports TensorFlow)."""
    spec = importlib.util.find_spec("onnx2tf")
    folder = Path(spec.origin).parent / "ops"
    return frozenset(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def _flex(tf_op: str, op: str, nodes: list[str]) -> Finding:
    return _explained("tflite", f"'tf.{tf_op}' op is neither a custom op nor a flex op", op, nodes)


def _node_rule(facts: OnnxFacts, node) -> Finding | None:
    """Rules on one node's attributes and inputs (3-D pooling, cubic Resize, a fed axis...)."""
    op, name = node.op_type, node.name or node.op_type
    if node.domain not in ("", "ai.onnx"):
        return None
    if op in _POOLS and len(_attr(node, "kernel_shape", []) or []) == 3 and (op == "MaxPool" or _attr(
            node, "auto_pad", b"NOTSET") in (b"VALID", "VALID")):  # the others become a Conv of ones
        return _flex(_POOLS[op], op, [name])
    if op in _BITWISE and facts.types.get(node.input[0]) not in _BITWISE[op][1]:
        return _flex(_BITWISE[op][0], op, [name])
    if op == "MaxPool" and len(node.output) > 1 and node.output[1] and (len(_attr(
            node, "kernel_shape", []) or []) != 2 or _attr(node, "ceil_mode", 0)):  # 2-D: an ArgMax over taps
        return _flex("MaxPoolWithArgmax", op, [name])
    if op == "Resize" and _attr(node, "mode", b"nearest") in (b"cubic", "cubic"):
        return _flex("ResizeBicubic", op, [name])
    if op == "BitShift" and _attr(node, "direction", b"") in (b"LEFT", "LEFT") and facts.types.get(
            node.input[0]) in (12, 13):  # uint32/uint64: the others are written as a Mul before onnx2tf
        return _flex("LeftShift", op, [name])
    if op in ("CumSum", "CumProd") and len(node.input) > 1 and node.input[1] not in facts.constants:
        tf = "Cumsum" if op == "CumSum" else "Cumprod"
        return _explained("tflite", f"'tf.{tf}' op requires scalar axis operand", op, [name])
    return _gap_rule(facts, node, op, name)


_GAP_FIX = ("rewrite that node (see its cause), or convert from the torch model with litert-torch; "
            "report it to onnx2tf with the converters' log if the model needs it as it is")


def _gap(op: str, severity: str, cause: str, name: str) -> Finding:
    return Finding(op, severity, f"onnx2tf fails on {cause}", _GAP_FIX, [name])


def _gap_rule(facts: OnnxFacts, node, op: str, name: str) -> Finding | None:
    """Gaps inside converters onnx2tf has, each seen failing in the node cases."""
    first = node.input[0] if node.input else ""
    # over axis 0, float32 LayerNormalization is written as elementary ops before onnx2tf
    if op == "LayerNormalization" and _attr(node, "axis", -1) in (0, -facts.ranks.get(first, -1)) \
            and facts.types.get(first) != 1:
        return _gap(op, FAIL, "LayerNormalization over every axis (axis 0): normalize from axis 1, or write it "
                              "with ReduceMean", name)
    # (Attention is written as ONNX's function body before onnx2tf, its 2-D masks unsqueezed to the
    # scores' rank: the nonpad_kv_seqlen prefill cases that failed on an Add now convert)
    if op == "NonMaxSuppression":
        return _gap(op, FAIL, "NonMaxSuppression (a != on Keras tensors): run it outside the model", name)
    if op == "Range" and facts.types.get(first) == 10:
        return _gap(op, FAIL, "a float16 Range (computed in float32 by edgekit, still failing): give Range "
                              "constant bounds", name)
    if op == "ConvTranspose" and facts.ranks.get(first) == 5:
        return _gap(op, RISK, "3-D ConvTranspose", name)
    if op in ("RNN", "GRU", "LSTM") and not _rnn_unrolled(node):  # the others are unrolled before onnx2tf
        return _gap(op, RISK, f"{op} with clip, input_forget or activations other than Tanh/Sigmoid/Relu "
                              "(not unrolled by edgekit; onnx2tf's own converter failed on every node case)", name)
    return _fed_rule(facts, node, op, name)


def _rnn_unrolled(node) -> bool:
    from ..backends.tflite._rewrites_rnn import unrolled

    return unrolled(node)


def _fed_rule(facts: OnnxFacts, node, op: str, name: str) -> Finding | None:
    """Inputs onnx2tf needs as constants or in types it handles (more gaps seen in the node cases)."""
    fed = [i for i in node.input[1:] if i and i not in facts.constants]
    if op == "Unsqueeze" and fed:  # (a Trilu's k fed at run time is written as a Where before onnx2tf)
        return _gap(op, FAIL, "Unsqueeze whose axes is fed at run time: make it a constant (an initializer)", name)
    if op == "Pad" and _attr(node, "mode", b"constant") == b"wrap":
        return _gap(op, FAIL, "Pad in wrap mode: write it as a Concat of slices", name)
    if op == "Split" and fed:
        return _gap(op, RISK, "a Split whose sizes are fed at run time (a Select-TF SplitV)", name)
    if op in ("Loop", "If", "Scan"):
        return _gap(op, RISK, f"{op} (control flow: a subgraph) in the node cases and zoo models tried", name)
    if op == "Resize" and _attr(node, "coordinate_transformation_mode", b"") == b"tf_crop_and_resize":
        return _gap(op, RISK, "Resize in tf_crop_and_resize mode", name)
    return None


def _type_risks(facts: OnnxFacts) -> list[Finding]:
    """Tensors of element types LiteRT has few kernels for (prep widens int8/16, unsigned and
    float64 arithmetic; these stay): may become Select-TF ops."""
    seen: dict[str, list[str]] = {}
    for node in facts.nodes:
        for name in [*node.input, *node.output]:
            kind = _RISKY_TYPES.get(facts.types.get(name, 0))
            if kind and node.op_type not in ("Constant",):
                seen.setdefault(kind, []).append(node.name or node.op_type)
                break
    return [Finding(f"{kind} tensors", "risk", f"LiteRT has few kernels for {kind}: the ops on them may "
                    "become Select-TF ops, which LiteRT cannot run on a device",
                    "compute in a type LiteRT has (int64/int32/float32) in the model", nodes[:5])
            for kind, nodes in seen.items()]
