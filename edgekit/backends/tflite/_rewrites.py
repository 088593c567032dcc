"""Graph rewrites for ops onnx2tf converts wrongly or into Select-TF ops: each node is written as
ops onnx2tf converts well, at the static shapes the prepared graph has, keeping ONNX's meaning
exactly (parity against ONNX Runtime checks the result anyway). Each rewrite returns how many
nodes it changed. What OpenVINO's rewritten-ONNX route needs too (the graph helpers, the
expansion by function body, SpaceToDepth CRD, GridSample nearest) is in ``backends/_onnx_rewrites.py``."""

from __future__ import annotations

import numpy as np

from .._onnx_rewrites import Graph, _attr, _input, _rewrite, space_to_depth_crd


def _clip(g: Graph, node):
    """``Clip(x, min, max)`` as ``Min(Max(x, min), max)`` (a missing bound left out), which is
    ONNX's definition, min > max included. A Clip with constant bounds stays (onnx2tf fuses it,
    e.g. as ReLU6); one with a bound fed at run time or missing is what onnx2tf gets wrong."""
    if g.opset < 11:
        lo, hi = _attr(node, "min"), _attr(node, "max")
        lo = g.const(node.output[0] + "__clip_min", np.float32(lo)) if lo is not None else ""
        hi = g.const(node.output[0] + "__clip_max", np.float32(hi)) if hi is not None else ""
    else:
        lo, hi = _input(node, 1), _input(node, 2)
    lo_v, hi_v = (g.value(b) if b else None for b in (lo, hi))
    if lo and hi and lo_v is not None and hi_v is not None and (lo_v <= hi_v).all():
        return None
    x, out, nodes = node.input[0], node.output[0], []
    for op, bound in (("Max", lo), ("Min", hi)):
        if bound:
            nodes.append(g.node(op, [x, bound], [f"{out}__clip_{op.lower()}"]))
            x = nodes[-1].output[0]
    if not nodes:
        return [g.node("Identity", [x], [out])]
    nodes[-1].output[0] = out
    return nodes


def _arg_last(g: Graph, node):
    """``ArgMax/ArgMin`` with ``select_last_index=1`` (onnx2tf ignores it): the first index of the
    input reversed along the axis (a constant Gather), counted back from the end: ``n - 1 - i``."""
    if not _attr(node, "select_last_index", 0) or node.input[0] not in g.shapes:
        return None
    shape = g.shapes[node.input[0]]
    axis = _attr(node, "axis", 0) % len(shape)
    n, out = shape[axis], node.output[0]
    rev = g.const(out + "__rev_idx", np.arange(n - 1, -1, -1, dtype=np.int64))
    last = g.const(out + "__n_1", np.array(n - 1, np.int64))
    return [g.node("Gather", [node.input[0], rev], [out + "__rev"], axis=axis),
            g.node(node.op_type, [out + "__rev"], [out + "__first"], axis=axis,
                   keepdims=_attr(node, "keepdims", 1)),
            g.node("Sub", [last, out + "__first"], [out])]


_REDUCE = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


def _reduce_empty_axes(g: Graph, node):
    """A ``Reduce*`` given an empty axes tensor reduces every axis (or none with
    ``noop_with_empty_axes=1``); onnx2tf reduces none. The axes are written out."""
    axes = _input(node, 1)
    if not axes or g.shapes.get(axes) != (0,) or node.input[0] not in g.shapes:
        return None
    if _attr(node, "noop_with_empty_axes", 0):
        return [g.node("Identity", [node.input[0]], [node.output[0]])]
    rank = len(g.shapes[node.input[0]])
    every = g.const(node.output[0] + "__all_axes", np.arange(rank, dtype=np.int64))
    new = g.node(node.op_type, [node.input[0], every], list(node.output))
    new.attribute.extend(a for a in node.attribute if a.name != "noop_with_empty_axes")
    return [new]


def _layer_norm(g: Graph, node):
    """``LayerNormalization`` over axes that include the first (axis 0, or -rank), which onnx2tf
    fails on, as ReduceMean/Sub/Mul/Sqrt/Div over those axes in float32."""
    x = node.input[0]
    if x not in g.shapes or g.types.get(x) != g.onnx.TensorProto.FLOAT:
        return None
    rank = len(g.shapes[x])
    axis = _attr(node, "axis", -1) % rank
    if axis != 0:
        return None
    axes, t = list(range(axis, rank)), node.output[0] + "__ln"
    eps = g.const(t + "_eps", np.float32(_attr(node, "epsilon", 1e-5)))
    one = g.const(t + "_one", np.float32(1.0))
    nodes = [g.reduce("ReduceMean", x, t + "_mean", axes),
             g.node("Sub", [x, t + "_mean"], [t + "_d"]),
             g.node("Mul", [t + "_d", t + "_d"], [t + "_d2"]),
             g.reduce("ReduceMean", t + "_d2", t + "_var", axes),
             g.node("Add", [t + "_var", eps], [t + "_var_eps"]),
             g.node("Sqrt", [t + "_var_eps"], [t + "_std"]),
             g.node("Div", [one, t + "_std"], [t + "_inv"]),
             g.node("Mul", [t + "_d", t + "_inv"], [t + "_norm"])]
    bias = _input(node, 2)
    nodes.append(g.node("Mul", [t + "_norm", node.input[1]], [t + "_scaled" if bias else node.output[0]]))
    if bias:
        nodes.append(g.node("Add", [t + "_scaled", bias], [node.output[0]]))
    for i, name in ((1, t + "_mean"), (2, t + "_inv")):
        if len(node.output) > i and node.output[i]:
            nodes.append(g.node("Identity", [name], [node.output[i]]))
    return nodes


def _trilu(g: Graph, node):
    """``Trilu`` with a ``k`` (negative k, or one fed at run time, fails in onnx2tf) as
    ``Where(mask, x, 0)``: mask is ``j - i >= k`` (upper) or ``<= k`` (lower) over the last two
    axes, a constant when k is, else a comparison of a constant with k."""
    x, k, out = node.input[0], _input(node, 1), node.output[0]
    if not k or x not in g.shapes or len(g.shapes[x]) < 2:
        return None
    rows, cols = g.shapes[x][-2:]
    diag = np.arange(cols, dtype=np.int64)[None, :] - np.arange(rows, dtype=np.int64)[:, None]
    upper = _attr(node, "upper", 1)
    zero = g.const(out + "__zero", np.zeros((), g.np_type(x)))
    k_v, nodes = g.value(k), []
    if k_v is not None:
        mask = g.const(out + "__mask", diag >= int(k_v) if upper else diag <= int(k_v))
    else:
        mask = out + "__mask"
        nodes.append(g.node("GreaterOrEqual" if upper else "LessOrEqual", [g.const(out + "__diag", diag), k], [mask]))
    return [*nodes, g.node("Where", [mask, x, zero], [out])]


def _slice(g: Graph, node):
    """A ``Slice`` with constant starts/ends/axes/steps that reverses (a negative step) or runs past
    an end, which onnx2tf gets wrong: the reversed axes become Gathers of the indices ONNX picks,
    the others one Slice with the bounds clamped to the static size."""
    x, out = node.input[0], node.output[0]
    params = [_input(node, i) for i in range(1, 5)]
    values = [g.value(p) if p else None for p in params]
    if g.opset < 10 or x not in g.shapes or any(p and v is None for p, v in zip(params, values, strict=True)):
        return None
    shape, (starts, ends, axes, steps) = g.shapes[x], values
    axes = [int(a) % len(shape) for a in (range(len(starts)) if axes is None else axes)]
    steps = [1] * len(axes) if steps is None else [int(s) for s in steps]
    picks = [range(shape[a])[slice(int(s), int(e), st)] for a, s, e, st in zip(axes, starts, ends, steps, strict=True)]
    if not any(st < 0 or not -n <= int(s) <= n or not -n <= int(e) <= n for st, s, e, n in zip(
            steps, starts, ends, (shape[a] for a in axes), strict=True)) or not all(picks):
        return None
    forward = [(a, p) for a, p in zip(axes, picks, strict=True) if p.step > 0]
    nodes, cur = [], x
    if forward:
        bounds = np.array([[p.start for _, p in forward], [p[-1] + 1 for _, p in forward],
                           [a for a, _ in forward], [p.step for _, p in forward]], np.int64)
        names = [g.const(f"{out}__slice_{k}", v) for k, v in zip(("starts", "ends", "axes", "steps"), bounds, strict=True)]
        nodes.append(g.node("Slice", [cur, *names], [out + "__slice"]))
        cur = out + "__slice"
    for a, p in ((a, p) for a, p in zip(axes, picks, strict=True) if p.step < 0):
        nodes.append(g.node("Gather", [cur, g.const(f"{out}__rev{a}", np.array(p, np.int64))], [f"{out}__rev{a}_out"],
                            axis=a))
        cur = nodes[-1].output[0]
    nodes[-1].output[0] = out
    return nodes


# (rewrite, note) pairs, registered in _prepare._REWRITES
REWRITES = (
    (_rewrite({"Clip"}, _clip), lambda n: f"{n} Clip written as Max/Min (bounds fed at run time or missing)"),
    (_rewrite({"ArgMax", "ArgMin"}, _arg_last),
     lambda n: f"{n} ArgMax/ArgMin with select_last_index written on the reversed axis"),
    (_rewrite({"Slice"}, _slice),
     lambda n: f"{n} Slice reversing or past an end written as Gather/Slice in range"),
    (_rewrite(_REDUCE, _reduce_empty_axes), lambda n: f"{n} Reduce* with empty axes given every axis"),
    (_rewrite({"LayerNormalization"}, _layer_norm),
     lambda n: f"{n} LayerNormalization over the first axis written as elementary ops"),
    (_rewrite({"Trilu"}, _trilu), lambda n: f"{n} Trilu with k written as Where with a mask"),
    (_rewrite({"SpaceToDepth"}, space_to_depth_crd), lambda n: f"{n} SpaceToDepth CRD written as Reshape/Transpose"),
)

