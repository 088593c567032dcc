"""ONNX ops written with ops that onnx2torch converts (and that its torch graph hands on to
coremltools and litert-torch), each keeping the graph's values at the run's static sizes:

- :func:`ifs_as_where`: an ``If`` on input values (a data-dependent branch, which onnx2torch has no
  converter for) computes both branches and selects with ``Where``, where both give the same
  static shape and type;
- :func:`ops_as_torchable`: ``GreaterOrEqual``/``LessOrEqual`` (onnx2torch stops at opset 12) as
  ``Not`` of ``Less``/``Greater``; a two-input ``Max``/``Min`` (its ``broadcast_to``, which
  coremltools has no converter for) and a ``Clip`` whose bounds are computed (onnx2torch takes
  constant bounds only) as ``Where``; ``GlobalMaxPool`` (no converter) as ``ReduceMax``.
"""

from __future__ import annotations

_DEFAULT = ("", "ai.onnx")
_NOT_OF = {"GreaterOrEqual": "Less", "LessOrEqual": "Greater"}
_PICK = {"Max": "Less", "Min": "Greater"}  # Max(a, b) = Where(Less(a, b), b, a)
REWRITTEN = frozenset({*_NOT_OF, "GlobalMaxPool"})  # ops with no onnx2torch converter that reach it rewritten


def ifs_as_where(onnx, proto) -> int:
    """Every top-level ``If`` (with no nested graph) whose branches define names of their own only
    and give outputs of one static shape and type becomes both branches and a ``Where`` per
    output, in place; returns how many. Run it after the Ifs on shapes are folded."""
    from ._onnx_static import _defined

    try:
        typed = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # noqa: BLE001 - shape inference fails on some graphs: change nothing then
        return 0
    graph, done, nodes = proto.graph, 0, []
    outer = _defined(graph)
    for node, seen in zip(graph.node, typed.graph.node, strict=True):
        branches = _branches(node, seen)
        if branches is None or not _selectable(branches, outer):
            nodes.append(node)
            continue
        nodes.extend(_where(onnx, graph, node, branches))
        done += 1
    if done:
        del graph.node[:]
        graph.node.extend(nodes)
    return done


def _branches(node, seen) -> tuple | None:
    """(then, else, then typed, else typed) of an If of the default domain, None otherwise."""
    if node.op_type != "If" or node.domain not in _DEFAULT:
        return None
    own = {a.name: a.g for a in node.attribute}
    typed = {a.name: a.g for a in seen.attribute}
    return own["then_branch"], own["else_branch"], typed["then_branch"], typed["else_branch"]


def _static_type(value) -> tuple | None:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return None if None in dims else (tensor.elem_type, tuple(dims))


def _selectable(branches, outer: set[str]) -> bool:
    from ._onnx_static import _defined, _has_graph

    then, other, then_typed, other_typed = branches
    if any(_has_graph(n) for n in (*then.node, *other.node)) or len(then.output) != len(other.output):
        return False
    own_then, own_other = _defined(then), _defined(other)
    if own_then & outer or own_other & outer or own_then & own_other:
        return False
    kinds = [(_static_type(a), _static_type(b)) for a, b in zip(then_typed.output, other_typed.output, strict=True)]
    return all(a is not None and a == b for a, b in kinds)


def _where(onnx, graph, node, branches) -> list:
    """Both branches' nodes, then ``Where(condition, then, else)`` for each of the If's outputs."""
    helper = onnx.helper
    then, other = branches[0], branches[1]
    scalar, shape = f"{node.output[0]}__cond", f"{node.output[0]}__cond_shape"
    graph.initializer.extend([*then.initializer, *other.initializer,
                              onnx.numpy_helper.from_array(_empty_shape(), shape)])
    nodes = [*then.node, *other.node, helper.make_node("Reshape", [node.input[0], shape], [scalar], name=scalar)]
    for a, b, out in zip(then.output, other.output, node.output, strict=True):
        nodes.append(helper.make_node("Where", [scalar, a.name, b.name], [out], name=f"{out}__if_where"))
    return nodes


def _empty_shape():
    import numpy as np

    return np.zeros((0,), np.int64)


def ops_as_torchable(onnx, proto) -> int:
    """The ops of :data:`__doc__`'s list rewritten in ``proto``'s main graph, in place; returns how
    many nodes were replaced."""
    graph, helper = proto.graph, onnx.helper
    fixed = {t.name for t in graph.initializer}
    ranks = _ranks(onnx, proto) if any(n.op_type == "GlobalMaxPool" for n in graph.node) else {}
    opset = next((o.version for o in proto.opset_import if o.domain in _DEFAULT), 1)
    nodes, done = [], 0
    for node in graph.node:
        new = None
        if node.domain in _DEFAULT:
            new = _rewrite(helper, node, fixed, ranks.get(node.input[0] if node.input else "", 0), opset)
        nodes.extend(new if new is not None else [node])
        done += new is not None
    if done:
        del graph.node[:]
        graph.node.extend(nodes)
    return done


def _rewrite(helper, node, fixed: set[str], rank: int, opset: int) -> list | None:
    op, name, out = node.op_type, node.name or node.output[0], node.output[0]
    if op in _NOT_OF:
        return [helper.make_node(_NOT_OF[op], list(node.input), [f"{out}__not"], name=f"{name}__cmp"),
                helper.make_node("Not", [f"{out}__not"], [out], name=name)]
    if op in _PICK and len(node.input) == 2:
        return _select(helper, node.input[0], node.input[1], out, _PICK[op])
    if op == "Clip" and any(i and i not in fixed for i in node.input[1:]):
        low, high = (list(node.input[1:]) + ["", ""])[:2]
        now, nodes = node.input[0], []
        if low:
            nodes += _select(helper, now, low, f"{out}__low" if high else out, "Less")
            now = nodes[-1].output[0]
        if high:
            nodes += _select(helper, now, high, out, "Greater")
        return nodes
    if op == "GlobalMaxPool" and rank > 2:
        axes = list(range(2, rank))
        if opset >= 18:
            const = helper.make_node("Constant", [], [f"{out}__axes"], name=f"{name}__axes",
                                     value=helper.make_tensor(f"{out}__axes", 7, [len(axes)], axes))
            return [const, helper.make_node("ReduceMax", [node.input[0], f"{out}__axes"], [out], name=name, keepdims=1)]
        return [helper.make_node("ReduceMax", [node.input[0]], [out], name=name, axes=axes, keepdims=1)]
    return None


def _select(helper, a: str, b: str, out: str, compare: str) -> list:
    """``Where(compare(a, b), b, a)``: Max with Less, Min with Greater."""
    test = f"{out}__{compare.lower()}"
    return [helper.make_node(compare, [a, b], [test], name=test),
            helper.make_node("Where", [test, b, a], [out], name=f"{out}__where")]


def _ranks(onnx, proto) -> dict[str, int]:
    """The rank of every value shape inference knows, by name."""
    try:
        typed = onnx.shape_inference.infer_shapes(proto).graph
    except Exception:  # noqa: BLE001 - no ranks: GlobalMaxPool is left as it is
        return {}
    values = [*typed.input, *typed.value_info, *typed.output]
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}
