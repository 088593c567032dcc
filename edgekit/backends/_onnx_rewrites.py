"""Exact ONNX -> ONNX rewrites shared by the targets whose converter lacks an op or gets it wrong:
TFLite before onnx2tf (``tflite/_prepare.py``, with its own ``tflite/_rewrites*.py``) and
OpenVINO's rewritten-ONNX route (``openvino/_rewrite.py``). Each writes a node as ONNX defines
it, in ops the converters take; those that need static shapes leave a node whose shapes are not
known as it is. Each rewrite returns how many nodes it changed (the expansion: the ops)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._onnx_static import constants_to_initializers

_DEFAULT = ("", "ai.onnx")


class Graph:
    """The graph with what the rewrites need: static shapes, ranks and element types (ONNX's
    shape inference), initializers by name, the default opset, and names that stay unique."""

    def __init__(self, onnx, proto):
        self.onnx, self.proto, self.helper = onnx, proto, onnx.helper
        inferred = onnx.shape_inference.infer_shapes(proto).graph
        self.shapes, self.types, self.ranks = {}, {}, {}
        for v in [*inferred.value_info, *inferred.input, *inferred.output]:
            t = v.type.tensor_type
            self.types[v.name] = t.elem_type
            if t.HasField("shape"):
                self.ranks[v.name] = len(t.shape.dim)
            if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
                self.shapes[v.name] = tuple(int(d.dim_value) for d in t.shape.dim)
        self.inits = {i.name: i for i in proto.graph.initializer}
        for i in proto.graph.initializer:
            self.types[i.name], self.shapes[i.name], self.ranks[i.name] = i.data_type, tuple(i.dims), len(i.dims)
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


def _text(node, name: str, default: str) -> str:
    value = _attr(node, name, default) or default
    return value.decode() if isinstance(value, bytes) else value


def _rewrite(ops: set[str], build: Callable) -> Callable:
    return lambda onnx, proto: each(onnx, proto, ops, build)


# ---- ops written as ONNX's own function body ----

# (rewrite, note); TFLite runs it before onnxsim, which then folds the bodies' shape arithmetic
EXPAND = (lambda onnx, proto: expand_by_function(onnx, proto),
          lambda ops: f"{len(ops)} {'/'.join(sorted(set(ops)))} written as ONNX's function body for them")

# ops whose own converter drifts or fails where ONNX's function body for them converts well -> the
# attribute a node needs for that (None: every node). onnx2tf's Attention fails on past/present
# caches, 3D or rank-2 masks, qk_matmul_output, nonpad_kv_seqlen and windows (OpenVINO's gives other
# values with a sliding window); OpenVINO's frontend has no conversion for the losses with an
# ignore_index, onnx2tf's gets them wrong
_EXPANDED = {"SoftmaxCrossEntropyLoss": "ignore_index", "NegativeLogLikelihoodLoss": "ignore_index", "Attention": None}


def expand_by_function(onnx, proto) -> list[str]:
    """``Attention`` (opset 23+), and ``SoftmaxCrossEntropyLoss``/``NegativeLogLikelihoodLoss``
    with an ``ignore_index`` (which onnx2tf and OpenVINO get wrong or lack), replaced by the function body
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
    if done:  # the bodies' Constant nodes, as every other constant reaches the converter
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


# ---- ops written exactly at static shapes ----

def space_to_depth_crd(g: Graph, node):
    """``SpaceToDepth`` in CRD mode (onnx2tf and OpenVINO write DCR's order) as Reshape/Transpose/Reshape."""
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


def grid_sample_nearest(g: Graph, node):
    """``GridSample`` in nearest mode (zeros or border padding; 2 or 3 spatial axes) as ONNX
    defines it: each grid coordinate unnormalized (align_corners or not), rounded half to even,
    a flat index into the input's spatial plane, ``GatherElements``, and zeros where a
    coordinate falls outside (padding ``zeros``) or clamped to the edge (``border``)."""
    x, grid = node.input[0], node.input[1]
    shape, gshape = g.shapes.get(x), g.shapes.get(grid)
    pad = _text(node, "padding_mode", "zeros")
    if _text(node, "mode", "linear") != "nearest" or pad not in ("zeros", "border") or shape is None or \
            gshape is None or len(shape) not in (4, 5) or g.types.get(x) != g.onnx.TensorProto.FLOAT:
        return None
    n, c, *spatial = (int(v) for v in shape)
    out_sp, t, align = list(gshape[1:-1]), node.output[0] + "__gs", _attr(node, "align_corners", 0)
    f32 = lambda name, v: g.const(t + name, np.array(v, np.float32))  # noqa: E731
    nodes, flat, valid = [], None, None
    for k, size in enumerate(reversed(spatial)):  # grid's last axis: x (width), y, then z
        co = f"{t}_c{k}"
        nodes.append(g.node("Gather", [grid, g.const(f"{t}_k{k}", np.array(k, np.int64))], [co], axis=-1))
        nodes.append(g.node("Add", [co, f32("_one", 1.0)], [co + "_p"]))
        if align:  # (g + 1) / 2 * (size - 1)
            nodes.append(g.node("Mul", [co + "_p", f32(f"_h{k}", (size - 1) / 2)], [co + "_u"]))
        else:  # ((g + 1) * size - 1) / 2
            nodes += [g.node("Mul", [co + "_p", f32(f"_s{k}", float(size))], [co + "_m"]),
                      g.node("Sub", [co + "_m", f32("_one", 1.0)], [co + "_n"]),
                      g.node("Div", [co + "_n", f32("_two", 2.0)], [co + "_u"])]
        nodes += [g.node("Round", [co + "_u"], [co + "_r"]),
                  g.node("Clip", [co + "_r", f32("_zero", 0.0), f32(f"_max{k}", size - 1.0)], [co + "_cl"])]
        if pad == "zeros":
            nodes += [g.node("Equal", [co + "_r", co + "_cl"], [co + "_in"])]
            valid = co + "_in" if valid is None else _and(g, nodes, valid, co + "_in", f"{t}_v{k}")
        stride = int(np.prod(spatial[len(spatial) - k:])) if k else 1
        nodes.append(g.node("Mul", [co + "_cl", f32(f"_st{k}", float(stride))], [co + "_w"]))
        flat = co + "_w" if flat is None else _add(g, nodes, flat, co + "_w", f"{t}_f{k}")
    points = int(np.prod(out_sp))
    nodes += [g.node("Cast", [flat], [t + "_idx"], to=g.onnx.TensorProto.INT64),
              g.node("Reshape", [t + "_idx", g.const(t + "_ishape", np.array([n, 1, points], np.int64))], [t + "_i3"]),
              g.node("Expand", [t + "_i3", g.const(t + "_eshape", np.array([n, c, points], np.int64))], [t + "_ie"]),
              g.node("Reshape", [x, g.const(t + "_xshape", np.array([n, c, int(np.prod(spatial))], np.int64))], [t + "_x3"]),
              g.node("GatherElements", [t + "_x3", t + "_ie"], [t + "_g"], axis=2),
              g.node("Reshape", [t + "_g", g.const(t + "_oshape", np.array([n, c, *out_sp], np.int64))],
                     [t + "_o" if valid else node.output[0]])]
    if valid:  # (GridSample is opset 16 on: Unsqueeze takes its axes as an input)
        nodes += [g.node("Unsqueeze", [valid, g.const(t + "_ax1", np.array([1], np.int64))], [t + "_m"]),
                  g.node("Where", [t + "_m", t + "_o", f32("_zero", 0.0)], [node.output[0]])]
    return nodes


def _and(g: Graph, nodes: list, a: str, b: str, out: str) -> str:
    nodes.append(g.node("And", [a, b], [out]))
    return out


def _add(g: Graph, nodes: list, a: str, b: str, out: str) -> str:
    nodes.append(g.node("Add", [a, b], [out]))
    return out


# ---- ops written at any shape (a parameter fed at run time stays fed) ----

_FLOATS = {1, 10, 11, 16}  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


def float_floor_mod(g: Graph, node):
    """A float ``Mod`` with ``fmod=0`` (opset 28 on: Python's ``%``, the result takes the divisor's
    sign), which OpenVINO's frontend has no conversion for, as the float ``Mod`` with ``fmod=1``
    (C's ``fmod``: the dividend's sign) plus the divisor where that remainder is not zero and its
    sign is not the divisor's: numpy's and ONNX Runtime's definition of it."""
    x, y = node.input[0], node.input[1]
    if _attr(node, "fmod", 0) or g.types.get(x) not in _FLOATS:
        return None
    t = node.output[0] + "__floormod"
    zero = g.const(t + "_zero", np.zeros((), g.np_type(x)))
    return [g.node("Mod", [x, y], [t + "_r"], fmod=1),
            g.node("Less", [t + "_r", zero], [t + "_r_neg"]),
            g.node("Less", [y, zero], [t + "_y_neg"]),
            g.node("Xor", [t + "_r_neg", t + "_y_neg"], [t + "_signs"]),
            g.node("Equal", [t + "_r", zero], [t + "_r_zero"]),
            g.node("Not", [t + "_r_zero"], [t + "_r_nonzero"]),
            g.node("And", [t + "_signs", t + "_r_nonzero"], [t + "_fix"]),
            g.node("Add", [t + "_r", y], [t + "_r_y"]),
            g.node("Where", [t + "_fix", t + "_r_y", t + "_r"], [node.output[0]])]


def wrap_pad(g: Graph, node):
    """``Pad`` in ``wrap`` mode (OpenVINO's frontend has none) as one ``Gather`` per padded axis, as
    ONNX Runtime pads: negative pads crop first, then the indices ``range(-begin, size + end)`` wrap
    around what is left (pads past its size repeat it). Pads fed at run time and dynamic sizes stay
    so (the indices are computed then); a constant ``axes`` input is read, one fed at run time
    leaves the node as it is."""
    x, out = node.input[0], node.output[0]
    if _text(node, "mode", "constant") != "wrap" or x not in g.ranks or g.opset < 19:
        return None
    rank, axes_in = g.ranks[x], _input(node, 3)
    axes = g.value(axes_in) if axes_in else np.arange(rank)
    if axes is None:
        return None
    pads, t, nodes, cur = g.value(node.input[1]), out + "__wrap", [], x
    axes = [int(a) % rank for a in axes.reshape(-1)]
    for j, a in enumerate(axes):
        if pads is not None and not pads[j] and not pads[j + len(axes)]:
            continue  # not padded along this axis
        if pads is not None and x in g.shapes:
            idx = _wrap_index(g.shapes[x][a], int(pads[j]), int(pads[j + len(axes)]))
            if idx is None:
                return None
            idx = g.const(f"{t}_idx{a}", idx)
        else:
            idx = _wrap_indices(g, nodes, cur, node.input[1], (j, j + len(axes), a), f"{t}_{a}")
        nodes.append(g.node("Gather", [cur, idx], [f"{t}_{a}_out"], axis=a))
        cur = nodes[-1].output[0]
    if not nodes:
        return [g.node("Identity", [x], [out])]
    nodes[-1].output[0] = out
    return nodes


def _wrap_index(n: int, begin: int, end: int):
    """The indices a wrap pad of ``begin``/``end`` takes along an axis of ``n`` (None: cropped away)."""
    low, left = max(-begin, 0), n - max(-begin, 0) - max(-end, 0)
    return None if left <= 0 else low + np.arange(-max(begin, 0), left + max(end, 0), dtype=np.int64) % left


def _wrap_indices(g: Graph, nodes: list, x: str, pads: str, at: tuple[int, int, int], t: str) -> str:
    """:func:`_wrap_index` along axis ``at[2]`` of ``x``, of pads ``at[0]``/``at[1]``, computed at
    run time (int64 scalars, for ``Range``)."""
    begin, end, axis = at
    zero, scalar = g.const(t + "_zero", np.array(0, np.int64)), g.const(t + "_scalar", np.array([], np.int64))
    nodes += [g.node("Shape", [x], [t + "_n1"], start=axis, end=axis + 1),
              g.node("Reshape", [t + "_n1", scalar], [t + "_n"]),
              g.node("Gather", [pads, g.const(t + "_b_at", np.array(begin, np.int64))], [t + "_b"], axis=0),
              g.node("Gather", [pads, g.const(t + "_e_at", np.array(end, np.int64))], [t + "_e"], axis=0),
              g.node("Max", [t + "_b", zero], [t + "_b_pad"]),
              g.node("Max", [t + "_e", zero], [t + "_e_pad"]),
              g.node("Sub", [t + "_b_pad", t + "_b"], [t + "_low"]),  # cropped at the beginning
              g.node("Sub", [t + "_e_pad", t + "_e"], [t + "_e_crop"]),
              g.node("Sub", [t + "_n", t + "_low"], [t + "_n_low"]),
              g.node("Sub", [t + "_n_low", t + "_e_crop"], [t + "_left"]),
              g.node("Neg", [t + "_b_pad"], [t + "_start"]),
              g.node("Add", [t + "_left", t + "_e_pad"], [t + "_limit"]),
              g.node("Range", [t + "_start", t + "_limit", g.const(t + "_one", np.array(1, np.int64))], [t + "_r"]),
              g.node("Mod", [t + "_r", t + "_left"], [t + "_wrapped"]),
              g.node("Add", [t + "_wrapped", t + "_low"], [t + "_idx"])]
    return t + "_idx"
