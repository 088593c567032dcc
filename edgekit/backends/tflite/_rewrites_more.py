"""More ops onnx2tf converts to the wrong shape or numbers, or to Select-TF ops: SAME_LOWER
padding, OneHot past its depth, Resize keeping the aspect ratio, a QuantizeLinear it hands back
dequantized, 8/16-bit BitwiseOr/And/Not and ScatterND reductions, each written exactly as ONNX
defines it at the prepared graph's static shapes. Parameters fed at run time stay fed."""

from __future__ import annotations

import numpy as np

from .._onnx_rewrites import Graph, _attr, _input, _rewrite, _text, grid_sample_nearest

_POOL_OPS = {"MaxPool", "AveragePool", "LpPool", "Conv"}


def _explicit_pads(g: Graph, node):
    """``auto_pad`` SAME_LOWER (any pool or Conv) and SAME_UPPER (LpPool, Conv, 3-D pools, which
    then become a Conv of ones: onnx2tf's 1/2-D max and average pools take it right) as ``pads``: ``ceil(in / stride)`` outputs, the total
    padding that needs, its odd extra at the beginning for SAME_LOWER, at the end for SAME_UPPER."""
    mode = _text(node, "auto_pad", "NOTSET")
    shape = g.shapes.get(node.input[0])
    kernel = _attr(node, "kernel_shape") or (g.shapes.get(node.input[1], ())[2:] if node.op_type == "Conv" else None)
    if mode not in ("SAME_LOWER", "SAME_UPPER") or (
            mode == "SAME_UPPER" and node.op_type in ("MaxPool", "AveragePool") and len(kernel or ()) != 3):
        return None
    if shape is None or not kernel or len(shape) != len(kernel) + 2 or _attr(node, "ceil_mode", 0):
        return None
    n = len(kernel)
    strides, dilations = _attr(node, "strides", [1] * n), _attr(node, "dilations", [1] * n)
    begin, end = [], []
    for size, k, s, d in zip(shape[2:], kernel, strides, dilations, strict=True):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        low = total - total // 2 if mode == "SAME_LOWER" else total // 2
        begin.append(low)
        end.append(total - low)
    new = g.node(node.op_type, list(node.input), list(node.output), name=node.name)
    new.attribute.extend(a for a in node.attribute if a.name not in ("auto_pad", "pads"))
    new.attribute.append(g.helper.make_attribute("pads", begin + end))
    return [new]


def _onehot(g: Graph, node):
    """``OneHot`` as ``Where(Equal(indices', range(depth)), on, off)``: a negative index counts
    from the end (``indices + depth``), one still outside [0, depth) gives a row of ``off``
    (onnx2tf's OneHot wraps every index modulo depth). A depth fed at run time stays fed."""
    indices, depth, values = node.input
    kind = g.types.get(indices)
    if kind not in (g.onnx.TensorProto.INT32, g.onnx.TensorProto.INT64) or indices not in g.shapes:
        return None
    rank = len(g.shapes[indices]) + 1
    axis = _attr(node, "axis", -1) % rank
    t, itype = node.output[0] + "__onehot", g.np_type(indices)
    const = g.value(depth)
    nodes = []
    if const is not None:
        d = g.const(t + "_depth", np.array(int(const.reshape(-1)[0]), itype))
        classes = g.const(t + "_classes", np.arange(int(const.reshape(-1)[0]), dtype=itype))
    else:
        d, classes = t + "_depth", t + "_classes"
        nodes += [g.node("Cast", [depth], [t + "_depth_cast"], to=kind),
                  g.node("Reshape", [t + "_depth_cast", g.const(t + "_scalar", np.array([], np.int64))], [d]),
                  g.node("Range", [g.const(t + "_zero_i", np.array(0, itype)), d,
                                   g.const(t + "_one_i", np.array(1, itype))], [classes])]
    zero = g.const(t + "_zero", np.array(0, itype))
    column = g.const(t + "_col_shape", np.array([-1] + [1] * (rank - 1 - axis), np.int64))
    nodes += [g.node("Less", [indices, zero], [t + "_neg"]),
              g.node("Add", [indices, d], [t + "_wrapped"]),
              g.node("Where", [t + "_neg", t + "_wrapped", indices], [t + "_idx"]),
              g.node("Unsqueeze", [t + "_idx", g.const(t + "_axis", np.array([axis], np.int64))], [t + "_idx_u"]),
              g.node("Reshape", [classes, column], [t + "_classes_col"]),
              g.node("Equal", [t + "_idx_u", t + "_classes_col"], [t + "_hit"]),
              g.node("Gather", [values, g.const(t + "_off_at", np.array(0, np.int64))], [t + "_off"], axis=0),
              g.node("Gather", [values, g.const(t + "_on_at", np.array(1, np.int64))], [t + "_on"], axis=0),
              g.node("Where", [t + "_hit", t + "_on", t + "_off"], [node.output[0]])]
    return nodes


def _resize_aspect(g: Graph, node):
    """``Resize`` with ``keep_aspect_ratio_policy`` not_larger/not_smaller and constant ``sizes``:
    one scale for every resized axis (the min or max of ``sizes / in``), ``round(scale * in)``
    outputs; written as that scale (stretch) where ``floor(scale * in)`` gives the same sizes,
    as ONNX Runtime's coordinate transform uses the scale, not ``out / in``."""
    policy = _text(node, "keep_aspect_ratio_policy", "stretch")
    sizes = g.value(_input(node, 3)) if _input(node, 3) else None
    shape = g.shapes.get(node.input[0])
    if policy not in ("not_larger", "not_smaller") or sizes is None or shape is None or (
            _attr(node, "axes") and _input(node, 1)):  # a roi over the axes only: left as it is
        return None
    axes = [a % len(shape) for a in (_attr(node, "axes") or range(len(shape)))]
    ratios = [int(s) / shape[a] for s, a in zip(sizes.reshape(-1), axes, strict=True)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    scales = np.ones(len(shape), np.float32)
    for a in axes:
        if np.floor(np.float32(scale) * shape[a]) != np.floor(scale * shape[a] + 0.5):
            return None  # floor and round disagree: not exact as a scale
        scales[a] = scale
    t = node.output[0] + "__aspect"
    roi = _input(node, 1)
    new = g.node("Resize", [node.input[0], roi, g.const(t + "_scales", scales)], list(node.output), name=node.name)
    new.attribute.extend(a for a in node.attribute if a.name not in ("keep_aspect_ratio_policy", "axes"))
    return [new]


_QRANGES = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def _feeds_dequantize(g: Graph, name: str) -> bool:
    return any(n.op_type == "DequantizeLinear" and n.input and n.input[0] == name for n in g.proto.graph.node)


def _quantize(g: Graph, node):
    """A float32 ``QuantizeLinear`` whose output no DequantizeLinear reads (onnx2tf hands it back
    dequantized; a QDQ pair it handles) as ONNX defines it: ``saturate(round_half_even(x /
    scale) + zero_point)`` cast to the zero point's type, per tensor or per axis."""
    x, scale, zp = node.input[0], node.input[1], _input(node, 2)
    shape = g.shapes.get(x)
    if g.types.get(x) != g.onnx.TensorProto.FLOAT or shape is None or _attr(node, "block_size", 0):
        return None
    kind = g.types.get(zp) if zp else (_attr(node, "output_dtype", 0) or g.onnx.TensorProto.UINT8)
    if not kind or np.dtype(g.helper.tensor_dtype_to_np_dtype(kind)) not in _QRANGES or \
            _feeds_dequantize(g, node.output[0]) or len(g.shapes.get(scale, (0,))) > 1:
        return None
    lo, hi = _QRANGES[np.dtype(g.helper.tensor_dtype_to_np_dtype(kind))]
    t, f32 = node.output[0] + "__quant", g.onnx.TensorProto.FLOAT
    along = [1] * len(shape)
    if shape:
        along[_attr(node, "axis", 1) % len(shape)] = -1
    nodes = [g.node("Cast", [scale], [t + "_scale_f"], to=f32)]
    operands = {"scale": t + "_scale_f"}
    if zp:
        nodes.append(g.node("Cast", [zp], [t + "_zp_f"], to=f32))
        operands["zp"] = t + "_zp_f"
    for key, name in list(operands.items()):  # a per-axis [C] meets x's axis
        if len(g.shapes.get(scale, ())) == 1 and shape:
            nodes.append(g.node("Reshape", [name, g.const(f"{t}_{key}_shape", np.array(along, np.int64))],
                                [name + "_axis"]))
            operands[key] = name + "_axis"
    nodes += [g.node("Div", [x, operands["scale"]], [t + "_scaled"]), g.node("Round", [t + "_scaled"], [t + "_round"])]
    shifted = t + "_round"
    if zp:
        nodes.append(g.node("Add", [t + "_round", operands["zp"]], [t + "_shifted"]))
        shifted = t + "_shifted"
    return [*nodes, g.node("Max", [shifted, g.const(t + "_lo", np.array(lo, np.float32))], [t + "_lo_cut"]),
            g.node("Min", [t + "_lo_cut", g.const(t + "_hi", np.array(hi, np.float32))], [t + "_sat"]),
            g.node("Cast", [t + "_sat"], [node.output[0]], to=kind)]


_BITS = {np.dtype(np.uint8): 8, np.dtype(np.int8): 8, np.dtype(np.uint16): 16, np.dtype(np.int16): 16}


def _bits(g: Graph, x: str, n: int, signed: bool, t: str) -> tuple[list, str]:
    """x's n bits (two's complement) on a new last axis, as float32 0/1: ``u = x (+ 2^n where
    negative)``, bit k ``= floor(u / 2^k) - 2 floor(u / 2^(k+1))`` (exact: u < 2^16)."""
    nodes = [g.node("Cast", [x], [t + "_f"], to=g.onnx.TensorProto.FLOAT)]
    u = t + "_f"
    if signed:
        nodes += [g.node("Less", [u, g.const(t + "_zero", np.array(0, np.float32))], [t + "_neg"]),
                  g.node("Add", [u, g.const(t + "_wrap", np.array(2.0 ** n, np.float32))], [t + "_wrapped"]),
                  g.node("Where", [t + "_neg", t + "_wrapped", u], [t + "_u"])]
        u = t + "_u"
    inv = g.const(t + "_inv", (0.5 ** np.arange(n)).astype(np.float32))
    nodes += [g.node("Unsqueeze", [u, g.const(t + "_last", np.array([-1], np.int64))], [t + "_col"]),
              g.node("Mul", [t + "_col", inv], [t + "_shift"]), g.node("Floor", [t + "_shift"], [t + "_q"]),
              g.node("Mul", [t + "_q", g.const(t + "_half", np.array(0.5, np.float32))], [t + "_q2"]),
              g.node("Floor", [t + "_q2"], [t + "_q2f"]),
              g.node("Mul", [t + "_q2f", g.const(t + "_two", np.array(2.0, np.float32))], [t + "_even"]),
              g.node("Sub", [t + "_q", t + "_even"], [t + "_bits"])]
    return nodes, t + "_bits"


def _bitwise(g: Graph, node):
    """8/16-bit ``BitwiseOr``/``BitwiseAnd`` bit by bit in float32 (LiteRT has neither builtin):
    the bits' max or min, summed back with their weights, negative again past 2^(n-1) for a signed
    type; ``BitwiseNot`` as ``-1 - x`` (signed, int32/int64 too) or ``2^n - 1 - x`` (unsigned)."""
    x = node.input[0]
    dtype = np.dtype(g.np_type(x)) if g.types.get(x) else None
    if node.op_type == "BitwiseNot" and dtype in (np.dtype(np.int32), np.dtype(np.int64)):
        return [g.node("Sub", [g.const(node.output[0] + "__minus_one", np.array(-1, dtype)), x], list(node.output))]
    if dtype not in _BITS:
        return None
    n, signed, t, out = _BITS[dtype], dtype.kind == "i", node.output[0] + "__bitwise", node.output[0]
    i32 = g.onnx.TensorProto.INT32
    if node.op_type == "BitwiseNot":
        top = g.const(t + "_top", np.array(-1 if signed else 2 ** n - 1, np.int32))
        return [g.node("Cast", [x], [t + "_i"], to=i32), g.node("Sub", [top, t + "_i"], [t + "_not"]),
                g.node("Cast", [t + "_not"], [out], to=g.types[x])]
    a_nodes, a = _bits(g, x, n, signed, t + "_a")
    b_nodes, b = _bits(g, node.input[1], n, signed, t + "_b")
    weights = g.const(t + "_weights", (2.0 ** np.arange(n)).astype(np.float32))
    nodes = [*a_nodes, *b_nodes, g.node("Max" if node.op_type == "BitwiseOr" else "Min", [a, b], [t + "_both"]),
             g.node("Mul", [t + "_both", weights], [t + "_weighted"]),
             g.reduce("ReduceSum", t + "_weighted", t + "_sum", [-1], keepdims=0)]
    value = t + "_sum"
    if signed:
        nodes += [g.node("GreaterOrEqual", [value, g.const(t + "_sign", np.array(2.0 ** (n - 1), np.float32))],
                         [t + "_high"]),
                  g.node("Sub", [value, g.const(t + "_span", np.array(2.0 ** n, np.float32))], [t + "_low"]),
                  g.node("Where", [t + "_high", t + "_low", value], [t + "_signed"])]
        value = t + "_signed"
    return [*nodes, g.node("Cast", [value], [out], to=g.types[x])]


_REDUCTIONS = {"add": "Add", "mul": "Mul", "max": "Max", "min": "Min"}


def _scatternd_reduction(g: Graph, node):
    """``ScatterND`` with a reduction (onnx2tf ignores it) as one plain ScatterND per update row,
    in order: ``data[i] = op(data[i], update)``, read back each time, so repeated indices combine
    as ONNX's reference does. Indices fed at run time stay fed; at most 64 rows."""
    op = _REDUCTIONS.get(_text(node, "reduction", "none"))
    data, indices, updates = node.input
    ishape, ushape = g.shapes.get(indices), g.shapes.get(updates)
    if op is None or ishape is None or ushape is None or not ishape:
        return None
    rows = int(np.prod(ishape[:-1]))
    if rows > 64:
        return None
    t, rest = node.output[0] + "__scatter", ushape[len(ishape) - 1:]
    nodes = [g.node("Reshape", [indices, g.const(t + "_ishape", np.array([rows, ishape[-1]], np.int64))], [t + "_idx"]),
             g.node("Reshape", [updates, g.const(t + "_ushape", np.array([rows, *rest], np.int64))], [t + "_upd"])]
    cur = data
    for j in range(rows):
        r, at = f"{t}{j}", g.const(f"{t}{j}_at", np.array([j], np.int64))
        nodes += [g.node("Gather", [t + "_idx", at], [r + "_i"], axis=0),
                  g.node("Gather", [t + "_upd", at], [r + "_u"], axis=0),
                  g.node("GatherND", [cur, r + "_i"], [r + "_old"]),
                  g.node(op, [r + "_old", r + "_u"], [r + "_new"]),
                  g.node("ScatterND", [cur, r + "_i", r + "_new"], [node.output[0] if j == rows - 1 else r + "_data"])]
        cur = r + "_data"
    return nodes


def _broadcast_rank(g: Graph, node):
    """A 2-D tensor broadcast against one of rank >= 4 (an attention mask added to the scores) given
    the full rank first with ``Unsqueeze`` (numpy broadcasting prepends the ones): onnx2tf lays the
    two out differently and fails to build the op. A 1-D constant (a bias) stays: onnx2tf places
    it along the channels itself."""
    ranks = [len(g.shapes[i]) if i in g.shapes else None for i in node.input[:2]]
    if None in ranks or len(node.input) != 2 or max(ranks) < 4 or min(ranks) > 2 or min(ranks) == 0:
        return None
    low = node.input[ranks.index(min(ranks))]
    if low in g.inits and min(ranks) < 2:  # a bias: onnx2tf places it along the channels itself
        return None
    t = f"{node.output[0]}__rank{max(ranks)}"
    axes = g.const(t + "_axes", np.arange(max(ranks) - min(ranks), dtype=np.int64))
    inputs = [t if i == low else i for i in node.input]
    return [g.node("Unsqueeze", [low, axes], [t]), g.node(node.op_type, inputs, list(node.output), name=node.name)]


REWRITES = (
    (_rewrite(_POOL_OPS, _explicit_pads),
     lambda n: f"{n} auto_pad SAME_LOWER/SAME_UPPER written as explicit pads (onnx2tf pads SAME_LOWER at the end)"),
    (_rewrite({"OneHot"}, _onehot),
     lambda n: f"{n} OneHot written as Where/Equal (onnx2tf wraps indices past the depth)"),
    (_rewrite({"Resize"}, _resize_aspect),
     lambda n: f"{n} Resize keeping the aspect ratio written with its one scale (stretch)"),
    (_rewrite({"QuantizeLinear"}, _quantize),
     lambda n: f"{n} QuantizeLinear outside a QDQ pair written as its arithmetic (onnx2tf returns it dequantized)"),
    (_rewrite({"BitwiseOr", "BitwiseAnd", "BitwiseNot"}, _bitwise),
     lambda n: f"{n} 8/16-bit BitwiseOr/And/Not written as float32 bit arithmetic (LiteRT has no builtin)"),
    (_rewrite({"GridSample"}, grid_sample_nearest),
     lambda n: f"{n} GridSample nearest written as rounded indices and GatherElements (onnx2tf rounds ties away)"),
    (_rewrite({"Add", "Sub", "Mul", "Div"}, _broadcast_rank),
     lambda n: f"{n} 2-D operands given the rank they broadcast to (Unsqueeze) before Add/Sub/Mul/Div"),
    (_rewrite({"ScatterND"}, _scatternd_reduction),
     lambda n: f"{n} ScatterND with a reduction written as one ScatterND per update row"),
)
