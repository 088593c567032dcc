"""Quantized ops onnx2tf hands back dequantized (a float where ONNX has uint8/int8, which the ops
after it then misread), written as the integer arithmetic ONNX defines, computed in float32."""

from __future__ import annotations

import numpy as np

from .._onnx_rewrites import Graph, _rewrite

_RANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def _centered(g: Graph, x: str, zp: str, t: str, per_row: bool) -> tuple[list, str]:
    """``float(x) - float(zp)``; a per-row zero point ([M]) is made [M, 1] to meet x's rows."""
    f32 = g.onnx.TensorProto.FLOAT
    nodes = [g.node("Cast", [x], [t + "_f"], to=f32), g.node("Cast", [zp], [t + "_zp"], to=f32)]
    zp_f = t + "_zp"
    if per_row:
        nodes.append(g.node("Reshape", [zp_f, g.const(t + "_col", np.array([-1, 1], np.int64))], [t + "_zp_col"]))
        zp_f = t + "_zp_col"
    nodes.append(g.node("Sub", [t + "_f", zp_f], [t + "_c"]))
    return nodes, t + "_c"


def _qlinear_matmul(g: Graph, node):
    """``QLinearMatMul`` as ``y = saturate(round((a - a_zp) @ (b - b_zp) * a_scale * b_scale /
    y_scale) + y_zp)``: the integer products and sums stay exact in float32 below 2^24, Round is
    ONNX's and LiteRT's half-to-even, and the result is cast to y's own type (onnx2tf's converter
    returns it dequantized). a's scale and zero point may be per row, b's per column."""
    if len(node.input) != 8 or any(len(g.shapes.get(x, ())) < 2 for x in node.input[0:4:3]):
        return None  # a 1-D operand (its scales would broadcast to a new axis)
    a, sa, azp, b, sb, bzp, sy, yzp = node.input
    if g.types.get(yzp) is None or np.dtype(g.np_type(yzp)) not in _RANGES:
        return None
    t, f32 = node.output[0] + "__qlmm", g.onnx.TensorProto.FLOAT
    a_nodes, a_c = _centered(g, a, azp, t + "_a", per_row=True)
    b_nodes, b_c = _centered(g, b, bzp, t + "_b", per_row=False)
    lo, hi = _RANGES[np.dtype(g.np_type(yzp))]
    nodes = [*a_nodes, *b_nodes, g.node("MatMul", [a_c, b_c], [t + "_acc"])]
    for name, scale in (("sa", sa), ("sb", sb), ("sy", sy)):
        nodes.append(g.node("Cast", [scale], [f"{t}_{name}"], to=f32))
    nodes += [g.node("Reshape", [t + "_sa", g.const(t + "_sa_shape", np.array([-1, 1], np.int64))], [t + "_sa_col"]),
              g.node("Mul", [t + "_sa_col", t + "_sb"], [t + "_sab"]),
              g.node("Div", [t + "_sab", t + "_sy"], [t + "_scale"]),
              g.node("Mul", [t + "_acc", t + "_scale"], [t + "_scaled"]),
              g.node("Round", [t + "_scaled"], [t + "_round"]),
              g.node("Cast", [yzp], [t + "_yzp"], to=f32),
              g.node("Add", [t + "_round", t + "_yzp"], [t + "_shifted"]),
              g.node("Max", [t + "_shifted", g.const(t + "_lo", np.array(lo, np.float32))], [t + "_lo_cut"]),
              g.node("Min", [t + "_lo_cut", g.const(t + "_hi", np.array(hi, np.float32))], [t + "_sat"]),
              g.node("Cast", [t + "_sat"], [node.output[0]], to=g.types[yzp])]
    return nodes


REWRITES = (
    (_rewrite({"QLinearMatMul"}, _qlinear_matmul),
     lambda n: f"{n} QLinearMatMul written as float32 integer arithmetic (onnx2tf's returns it dequantized)"),
)


# a constant DequantizeLinear read by these stays: int8 weights onnx2tf takes as they are
_WEIGHT_READERS = {"MatMul", "Conv", "ConvTranspose", "Gemm", "Gather", "MatMulInteger", "ConvInteger"}


def fold_constant_dequantize(onnx, proto) -> int:
    """A ``DequantizeLinear`` of constants (an int8 relative-position bias, a table) that is not a
    weight of a MatMul/Conv/Gemm/Gather computed once, exactly as ONNX defines it
    (``(x - zero_point) * scale``, per tensor or per axis), and stored as a float initializer.
    onnx2tf lays such a constant out by guessing which axis is which, and gets a square one (a
    [heads, 32, 32] bias) transposed. Run after onnxsim (which makes a gathered table such a
    constant), then onnxsim again for what reads it."""
    graph = proto.graph
    inits = {i.name: i for i in graph.initializer}
    readers: dict[str, set] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    keep, folded = [], 0
    for node in graph.node:
        value = _dequantized(onnx, node, inits) if node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx") \
            and not readers.get(node.output[0], set()) & _WEIGHT_READERS else None
        if value is None:
            keep.append(node)
            continue
        graph.initializer.append(onnx.numpy_helper.from_array(value, node.output[0]))
        folded += 1
    if folded:
        del graph.node[:]
        graph.node.extend(keep)
    return folded


def _dequantized(onnx, node, inits: dict):
    """``(x - zero_point) * scale`` of a DequantizeLinear whose inputs are all initializers (float32
    scale; per axis when the scale is 1-D); None for anything else (blocked quantization, fp8...)."""
    names = [n for n in node.input if n]
    if not all(n in inits for n in names) or any(a.name == "block_size" and a.i for a in node.attribute):
        return None
    x = onnx.numpy_helper.to_array(inits[node.input[0]])
    scale = onnx.numpy_helper.to_array(inits[node.input[1]])
    zp = onnx.numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
    if x.dtype.kind not in "iu" or scale.dtype != np.float32 or scale.ndim > 1:
        return None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    shape = [1] * x.ndim
    if scale.ndim == 1 and x.ndim:
        shape[axis % x.ndim] = -1
    centered = x.astype(np.int32) - (zp.astype(np.int32).reshape(shape) if zp is not None else 0)
    return (centered.astype(np.float32) * scale.reshape(shape)).astype(np.float32)
