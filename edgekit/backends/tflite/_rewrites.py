"""Graph rewrites for ops onnx2tf converts wrongly or into Select-TF ops: each node is written as
ops onnx2tf converts well, at the static shapes the prepared graph has, keeping ONNX's meaning
exactly (parity against ONNX Runtime checks the result anyway). Each rewrite returns how many
nodes it changed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_DEFAULT = ("", "ai.onnx")


class Graph:
    """The prepared graph with what the rewrites need: static shapes and element types (ONNX's
    shape inference), initializers by name, the default opset, and names that stay unique."""

    def __init__(self, onnx, proto):
        self.onnx, self.proto, self.helper = onnx, proto, onnx.helper
        inferred = onnx.shape_inference.infer_shapes(proto).graph
        self.shapes, self.types = {}, {}
        for v in [*inferred.value_info, *inferred.input, *inferred.output]:
            t = v.type.tensor_type
            self.types[v.name] = t.elem_type
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                self.shapes[v.name] = tuple(int(d.dim_value) for d in t.shape.dim)
        self.inits = {i.name: i for i in proto.graph.initializer}
        for i in proto.graph.initializer:
            self.types[i.name], self.shapes[i.name] = i.data_type, tuple(i.dims)
        self.opset = next((o.version for o in proto.opset_import if o.domain in _DEFAULT), 1)

    def const(self, name: str, value) -> str:
        """``value`` (a numpy array) as an initializer called ``name``; returns the name."""
        self.proto.graph.initializer.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
        return name

    def value(self, name: str):
        """An initializer's value, or None for a tensor computed or fed at run time."""
        init = self.inits.get(name)
        return None if init is None else self.onnx.numpy_helper.to_array(init)

    def np_type(self, name: str):
        return self.helper.tensor_dtype_to_np_dtype(self.types[name])

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs):
        return self.helper.make_node(op, inputs, outputs, **attrs)

    def reduce(self, op: str, x: str, out: str, axes: list[int], keepdims: int = 1):
        """``op`` over ``axes``, as an attribute or an input as the graph's opset wants."""
        as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if as_input:
            return self.node(op, [x, self.const(out + "_axes", np.array(axes, np.int64))], [out], keepdims=keepdims)
        return self.node(op, [x], [out], axes=axes, keepdims=keepdims)


def each(onnx, proto, ops: set[str], build: Callable) -> int:
    """Every default-domain node of ``ops`` for which ``build(graph, node)`` returns nodes is
    replaced by them (None keeps it); returns how many were replaced."""
    if not any(n.op_type in ops and n.domain in _DEFAULT for n in proto.graph.node):
        return 0
    graph = Graph(onnx, proto)
    nodes, count = [], 0
    for node in proto.graph.node:
        new = build(graph, node) if node.op_type in ops and node.domain in _DEFAULT else None
        if new is None:
            nodes.append(node)
        else:
            nodes.extend(new)
            count += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return count


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def _input(node, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


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


def _space_to_depth_crd(g: Graph, node):
    """``SpaceToDepth`` in CRD mode (onnx2tf writes DCR's order) as Reshape/Transpose/Reshape."""
    x, out = node.input[0], node.output[0]
    if _attr(node, "mode", b"DCR") not in (b"CRD", "CRD") or g.shapes.get(x) is None or len(g.shapes[x]) != 4:
        return None
    n, c, h, w = g.shapes[x]
    b = _attr(node, "blocksize")
    six = g.const(out + "__s2d_6d", np.array([n, c, h // b, b, w // b, b], np.int64))
    four = g.const(out + "__s2d_4d", np.array([n, c * b * b, h // b, w // b], np.int64))
    return [g.node("Reshape", [x, six], [out + "__s2d_a"]),
            g.node("Transpose", [out + "__s2d_a"], [out + "__s2d_b"], perm=[0, 1, 3, 5, 2, 4]),
            g.node("Reshape", [out + "__s2d_b", four], [out])]


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


def _rewrite(ops: set[str], build: Callable) -> Callable:
    return lambda onnx, proto: each(onnx, proto, ops, build)


# run by _prepare before onnxsim, so the shape arithmetic of the bodies it inlines is folded too
EXPAND = (lambda onnx, proto: expand_by_function(onnx, proto),
          lambda ops: f"{len(ops)} {'/'.join(sorted(set(ops)))} written as ONNX's function body for them")
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
    (_rewrite({"SpaceToDepth"}, _space_to_depth_crd), lambda n: f"{n} SpaceToDepth CRD written as Reshape/Transpose"),
)


# ops whose own onnx2tf converter drifts or fails where ONNX's function body for them converts
# well -> the attribute a node needs for that (None: every node). onnx2tf's Attention fails on
# past/present caches, 3D or rank-2 masks, qk_matmul_output, nonpad_kv_seqlen and windows
_EXPANDED = {"SoftmaxCrossEntropyLoss": "ignore_index", "NegativeLogLikelihoodLoss": "ignore_index", "Attention": None}


def expand_by_function(onnx, proto) -> list[str]:
    """``Attention`` (opset 23+), and ``SoftmaxCrossEntropyLoss``/``NegativeLogLikelihoodLoss``
    with an ``ignore_index`` (which onnx2tf's converters get wrong), replaced by the function body
    ONNX defines them by, inlined; SCE's body calls NLL, so this runs until none is left (ONNX's
    own expansion, not a copy). Returns the ops expanded."""
    import onnx.inliner

    done = []
    for _ in range(3):
        called = _call_function_bodies(onnx, proto)
        if not called:
            break
        proto.CopyFrom(onnx.inliner.inline_local_functions(proto))
        done += called
    if done:  # the bodies' Constant nodes, as every other constant reaches onnx2tf
        from .._onnx_static import constants_to_initializers

        constants_to_initializers(proto.graph)
    return done


def _call_function_bodies(onnx, proto) -> list[str]:
    """Each node of ``_EXPANDED`` (with the attribute it needs) becomes a call to a local function
    holding its body at the graph's opset and input types; returns their ops."""
    nodes = [n for n in proto.graph.node if n.op_type in _EXPANDED and n.domain in _DEFAULT
             and (_EXPANDED[n.op_type] is None or any(a.name == _EXPANDED[n.op_type] for a in n.attribute))]
    if not nodes:
        return []
    g = Graph(onnx, proto)
    inferred = onnx.shape_inference.infer_shapes(proto).graph
    types = {v.name: v.type for v in [*inferred.input, *inferred.value_info, *inferred.output]}
    called = []
    for i, node in enumerate(nodes):
        schema = onnx.defs.get_schema(node.op_type, g.opset, "")
        if not schema.has_context_dependent_function:
            continue
        called.append(node.op_type)
        body = onnx.FunctionProto()
        body.ParseFromString(schema.get_context_dependent_function(
            node.SerializeToString(), [(types[n] if n in types else onnx.TypeProto()).SerializeToString()
                                       for n in node.input]))
        body.name, body.domain = f"{node.op_type}__{node.output[0]}_{i}", "edgekit.expanded"
        proto.functions.append(body)
        node.op_type, node.domain = body.name, body.domain
    if called and not any(o.domain == "edgekit.expanded" for o in proto.opset_import):
        proto.opset_import.append(onnx.helper.make_opsetid("edgekit.expanded", 1))
    return called
