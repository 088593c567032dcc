"""Elementwise ops LiteRT has no builtin for (onnx2tf writes them as Select-TF ops or ops that
give NaN at the domain's edges), written as ones it has: formulas that keep the ends exact."""

from __future__ import annotations

import numpy as np

from .._onnx_rewrites import Graph, _attr, _rewrite

_FLOATS = (np.float16, np.float32, np.float64)


def _float_input(g: Graph, node) -> bool:
    return g.types.get(node.input[0]) is not None and g.np_type(node.input[0]) in _FLOATS


def _consts(g: Graph, node, **values) -> dict[str, str]:
    """Scalar constants in the input's float type, named after the node's output."""
    dtype = g.np_type(node.input[0])
    return {k: g.const(f"{node.output[0]}__{k}", np.array(v, dtype)) for k, v in values.items()}


def _cosh(g: Graph, node):
    """``cosh(x) = (exp(x) + exp(-x)) / 2`` (onnx2tf writes Cosh as a Select-TF op)."""
    if not _float_input(g, node):
        return None
    x, t = node.input[0], node.output[0] + "__cosh"
    c = _consts(g, node, half=0.5)
    return [g.node("Exp", [x], [t + "_ep"]), g.node("Neg", [x], [t + "_neg"]),
            g.node("Exp", [t + "_neg"], [t + "_en"]), g.node("Add", [t + "_ep", t + "_en"], [t + "_sum"]),
            g.node("Mul", [t + "_sum", c["half"]], [node.output[0]])]


def _atanh(g: Graph, node):
    """``atanh(x) = log((1 + x) / (1 - x)) / 2``, +-inf at +-1 and NaN outside as ONNX (LiteRT has
    no Atanh); within 3e-7 of the exact value over [-1, 1] in float32."""
    if not _float_input(g, node):
        return None
    x, t = node.input[0], node.output[0] + "__atanh"
    c = _consts(g, node, one=1.0, half=0.5)
    return [g.node("Add", [c["one"], x], [t + "_p"]), g.node("Sub", [c["one"], x], [t + "_m"]),
            g.node("Div", [t + "_p", t + "_m"], [t + "_q"]), g.node("Log", [t + "_q"], [t + "_log"]),
            g.node("Mul", [t + "_log", c["half"]], [node.output[0]])]


def _asin_nodes(g: Graph, node, out: str) -> list:
    """``asin(x) = 2 atan(x / (1 + sqrt((1 - x)(1 + x))))``: the denominator is at least 1, so the
    ends give +-pi/2 (no 0/0), and (1 - x)(1 + x) keeps precision near +-1; NaN outside [-1, 1]."""
    x, t = node.input[0], node.output[0] + "__asin"
    c = _consts(g, node, one=1.0, two=2.0)
    return [g.node("Sub", [c["one"], x], [t + "_m"]), g.node("Add", [c["one"], x], [t + "_p"]),
            g.node("Mul", [t + "_m", t + "_p"], [t + "_1mx2"]), g.node("Sqrt", [t + "_1mx2"], [t + "_root"]),
            g.node("Add", [c["one"], t + "_root"], [t + "_den"]), g.node("Div", [x, t + "_den"], [t + "_half"]),
            g.node("Atan", [t + "_half"], [t + "_atan"]), g.node("Mul", [t + "_atan", c["two"]], [out])]


def _asin(g: Graph, node):
    return _asin_nodes(g, node, node.output[0]) if _float_input(g, node) else None


def _acos(g: Graph, node):
    """``acos(x) = pi/2 - asin(x)`` (onnx2tf's own Acos gives NaN at -1 and 1)."""
    if not _float_input(g, node):
        return None
    t = node.output[0] + "__acos"
    c = _consts(g, node, half_pi=np.pi / 2)
    return [*_asin_nodes(g, node, t + "_asin"), g.node("Sub", [c["half_pi"], t + "_asin"], [node.output[0]])]


def _isinf(g: Graph, node):
    """``IsInf`` as a comparison with the largest finite value: only an inf lies beyond it (NaN
    compares false). onnx2tf's IsInf fails when a sign is left out, and an inf constant does not
    survive its conversion."""
    pos, neg = _attr(node, "detect_positive", 1), _attr(node, "detect_negative", 1)
    if not _float_input(g, node) or not (pos or neg):
        return None
    x, out = node.input[0], node.output[0]
    top = np.finfo(g.np_type(x)).max
    if pos and neg:
        big = _consts(g, node, big=top)["big"]
        return [g.node("Abs", [x], [out + "__abs"]), g.node("Greater", [out + "__abs", big], [out])]
    big = _consts(g, node, big=top if pos else -top)["big"]
    return [g.node("Greater" if pos else "Less", [x, big], [out])]


_SHIFTABLE = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64)


def _shift_left(g: Graph, node):
    """``BitShift(x, y, direction=LEFT)`` as ``x * 2**y``, wrapping as the shift does: the powers
    of two (wrapped to x's type) are a constant gathered at y (LiteRT has no LeftShift)."""
    x, y, out = node.input[0], node.input[1], node.output[0]
    if _attr(node, "direction") not in (b"LEFT", "LEFT") or g.types.get(x) is None:
        return None
    dtype = np.dtype(g.np_type(x))
    if dtype not in _SHIFTABLE:
        return None
    bits = 8 * dtype.itemsize
    powers = (np.ones(bits, np.uint64) << np.arange(bits, dtype=np.uint64)).astype(dtype)
    table = g.const(out + "__pow2", powers)
    return [g.node("Cast", [y], [out + "__shift"], to=g.onnx.TensorProto.INT64),
            g.node("Gather", [table, out + "__shift"], [out + "__scale"], axis=0),
            g.node("Mul", [x, out + "__scale"], [out])]


_SIGNED = (*_FLOATS, np.int8, np.int16, np.int32, np.int64)


def _fmod(g: Graph, node):
    """``Mod`` with ``fmod=1`` (the remainder takes the dividend's sign; onnx2tf ignores fmod and
    writes a floor mod) as ``sign(x) * fmod(|x|, |y|)``: on non-negative operands fmod and the
    floor mod onnx2tf writes are the same exact value, and x's sign is put back with a Where."""
    x, y, out = node.input[0], node.input[1], node.output[0]
    if not _attr(node, "fmod", 0) or g.types.get(x) is None or np.dtype(g.np_type(x)) not in _SIGNED:
        return None
    t = out + "__fmod"
    zero = g.const(t + "_zero", np.zeros((), g.np_type(x)))
    nodes = []
    for side, v in (("x", x), ("y", y)):  # |v| as Max(v, -v): LiteRT's Abs has no int64 kernel
        nodes += [g.node("Neg", [v], [f"{t}_n{side}"]), g.node("Max", [v, f"{t}_n{side}"], [f"{t}_a{side}"])]
    return [*nodes,
            g.node("Mod", [t + "_ax", t + "_ay"], [t + "_m"], fmod=1), g.node("Neg", [t + "_m"], [t + "_neg"]),
            g.node("Less", [x, zero], [t + "_xneg"]), g.node("Where", [t + "_xneg", t + "_neg", t + "_m"], [out])]


REWRITES = (
    (_rewrite({"Cosh"}, _cosh), lambda n: f"{n} Cosh written as Exp (LiteRT has none)"),
    (_rewrite({"Atanh"}, _atanh), lambda n: f"{n} Atanh written as Log (LiteRT has none)"),
    (_rewrite({"Asin"}, _asin), lambda n: f"{n} Asin written as Atan (exact at +-1)"),
    (_rewrite({"Acos"}, _acos), lambda n: f"{n} Acos written as Atan (exact at +-1)"),
    (_rewrite({"IsInf"}, _isinf), lambda n: f"{n} IsInf written as a comparison with inf"),
    (_rewrite({"Mod"}, _fmod), lambda n: f"{n} Mod with fmod=1 written as a Mod of magnitudes (onnx2tf ignores fmod)"),
    (_rewrite({"BitShift"}, _shift_left), lambda n: f"{n} BitShift LEFT written as a Mul by 2**y (LiteRT has none)"),
)
