"""Target-neutral preparation of an ONNX graph at the run's static sizes, shared by the converters
that want one (onnx2tf for TFLite, OpenVINO's static route, onnx2torch for Core ML/ExecuTorch):

- :func:`static_inputs` fixes every input at the run's sizes;
- :func:`fold_static_ifs` replaces each ``If`` whose condition depends only on shapes (never on an
  input's values) by the branch that condition takes at these sizes;
- :func:`simplify` runs onnxsim, which then folds the shape arithmetic into constants;
- :func:`constants_to_initializers` stores ``Constant`` nodes as initializers.

Each step keeps the graph's meaning at these sizes; :func:`value_reads` tells which inputs a
tensor reads by value (what a target that cannot branch on values refuses).
"""

from __future__ import annotations

import numpy as np

_DEFAULT = ("", "ai.onnx")
# values that depend only on the shape of their input, never on its values
_SHAPE_ONLY = {"Shape", "Size"}
_LARGE = 1_800_000_000  # bytes past which a proto cannot be serialized in one piece (onnxsim's limit)


def static_inputs(proto, sizes: dict[str, tuple[int, ...]]) -> None:
    """Every input named in ``sizes`` at that size, in place (a ``-1`` or named axis becomes the
    run's value); an output's negative or missing size becomes a name (``<output>.<axis>``), which
    converters that need every axis named (onnx2tf) infer."""
    for value in proto.graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, sizes.get(value.name, ()), strict=False):
            dim.Clear()
            dim.dim_value = size
    for value in proto.graph.output:
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if not dim.dim_param and (not dim.HasField("dim_value") or dim.dim_value < 0):
                dim.Clear()
                dim.dim_param = f"{value.name}.{i}"


def simplify(proto):
    """onnxsim on the graph (at the static shapes :func:`static_inputs` set): Shape/Gather/Concat
    chains become constants, so axes and shapes reach the converter as constants. Returns
    ``(proto, changed)``: the original and False where onnxsim is missing, fails or cannot
    validate its result, or the graph is past protobuf's 2 GB cap."""
    import importlib.util

    if importlib.util.find_spec("onnxsim") is None or proto.ByteSize() > _LARGE:
        return proto, False
    import onnxsim

    try:
        simplified, ok = onnxsim.simplify(proto)
    except Exception:  # noqa: BLE001 - onnxsim fails on graphs it cannot run; keep the original then
        return proto, False
    return (simplified, True) if ok else (proto, False)


def constants_to_initializers(graph) -> int:
    """``Constant`` nodes of the default domain become initializers of the same name, in place
    (every attribute form: ``value`` and ``value_float(s)``/``value_int(s)``, which some converters
    fail on, e.g. onnx2tf's Constant converter); returns how many were moved."""
    from onnx import helper, numpy_helper

    keep, moved = [], 0
    for node in graph.node:
        attr = node.attribute[0] if len(node.attribute) == 1 else None
        form = attr.name if attr is not None else None
        if node.op_type != "Constant" or node.domain not in _DEFAULT or form not in _CONSTANT_FORMS:
            keep.append(node)
            continue
        value = helper.get_attribute_value(attr)
        tensor = graph.initializer.add()
        tensor.CopyFrom(value if form == "value" else numpy_helper.from_array(np.array(value, _CONSTANT_FORMS[form])))
        tensor.name = node.output[0]
        moved += 1
    del graph.node[:]
    graph.node.extend(keep)
    return moved


# a Constant's attribute -> the numpy type its value is stored in (None: a TensorProto already)
_CONSTANT_FORMS = {"value": None, "value_float": np.float32, "value_floats": np.float32,
                   "value_int": np.int64, "value_ints": np.int64}


def value_reads(graph, name: str) -> tuple[list[str], bool]:
    """The graph inputs whose values ``name`` is computed from (paths through a Shape or Size read
    shapes only, and stop there), and whether a node holding a subgraph is on the way (what a
    subgraph reads from the outer graph is not followed)."""
    producers, fed = _producers(graph), {i.name for i in graph.input} - {i.name for i in graph.initializer}
    todo, seen, found, nested = [name], set(), [], False
    while todo:
        cur = todo.pop()
        if cur in seen or not cur:
            continue
        seen.add(cur)
        node = producers.get(cur)
        if node is None:
            found += [cur] if cur in fed else []  # else an initializer
        elif not (node.op_type in _SHAPE_ONLY and node.domain in _DEFAULT):
            nested = nested or _has_graph(node)
            todo.extend(node.input)
    return sorted(found), nested


def fold_static_ifs(onnx, proto) -> int:
    """Every top-level ``If`` whose condition is fixed by the inputs' static shapes becomes the
    branch it takes, in place (repeated for Ifs nested in the branches); returns how many were
    folded. Run it before :func:`simplify`: onnxsim stops on nested graphs. The conditions are
    computed by ONNX Runtime on zeros of the inputs' shapes; without it nothing is folded."""
    folded = 0
    for _ in range(16):  # each pass folds one level of nesting
        graph = proto.graph
        ifs = [n for n in graph.node if n.op_type == "If" and n.domain in _DEFAULT
               and _shape_only(graph, n.input[0]) and _needed(graph, [n.input[0]]) is not None]
        values = _evaluate(onnx, proto, [n.input[0] for n in ifs]) if ifs else None
        if not values:
            return folded
        taken = {id(n): v for n, v in zip(ifs, values, strict=True)}
        outer, nodes, done = _defined(graph), [], 0
        for node in graph.node:
            branch = next((a.g for a in node.attribute if a.name == ("then_branch" if taken.get(id(node)) else "else_branch")),
                          None) if id(node) in taken else None
            own = _defined(branch) - {i.name for i in branch.input} if branch is not None else set()
            if branch is None or own & outer:  # a name the branch defines already exists outside: keep it
                nodes.append(node)
                continue
            nodes.extend(_inline(onnx, graph, node, branch))
            done += 1
        del graph.node[:]
        graph.node.extend(nodes)
        folded += done
        if not done:
            return folded
    return folded


def _producers(graph) -> dict[str, object]:
    return {out: node for node in graph.node for out in node.output if out}


def _shape_only(graph, name: str) -> bool:
    """Whether ``name`` depends on the graph's inputs through their shapes only (a Shape or Size
    on every path from an input), so that it is a constant once the inputs' shapes are."""
    read, nested = value_reads(graph, name)
    return not read and not nested


def _has_graph(node) -> bool:
    return any(a.type in (5, 10) for a in node.attribute)  # GRAPH, GRAPHS


def _needed(graph, names: list[str]) -> list | None:
    """The nodes ``names`` are computed from, in the graph's order; None where one of them holds
    a subgraph (an If not folded yet: its outer reads are not followed)."""
    producers, todo, keep = _producers(graph), list(names), set()
    while todo:
        node = producers.get(todo.pop())
        if node is not None and id(node) not in keep:
            if _has_graph(node):
                return None
            keep.add(id(node))
            todo.extend(node.input)
    return [n for n in graph.node if id(n) in keep]


def _evaluate(onnx, proto, names: list[str]) -> list[bool] | None:
    """The boolean conditions ``names``, computed by ONNX Runtime on zeros of the inputs' static
    shapes (they depend on shapes only); None where that cannot be run."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime as ort

    helper, graph = onnx.helper, proto.graph
    feeds, inputs = {}, []
    inits = {i.name for i in graph.initializer}
    for value in graph.input:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        if not all(d.HasField("dim_value") for d in dims):
            return None
        np_type = helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        feeds[value.name] = np.zeros([d.dim_value for d in dims], np_type)
        inputs.append(value)
    outputs = [helper.make_tensor_value_info(n, onnx.TensorProto.BOOL, None) for n in names]
    nodes = _needed(graph, names)
    read = {x for n in nodes for x in n.input}
    small = helper.make_graph(nodes, "conditions", inputs, outputs, [i for i in graph.initializer if i.name in read])
    model = helper.make_model(small, opset_imports=proto.opset_import, ir_version=proto.ir_version)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        used = {i.name for i in sess.get_inputs()}
        return [bool(np.asarray(v).reshape(-1)[0]) for v in sess.run(None, {k: v for k, v in feeds.items() if k in used})]
    except Exception:  # noqa: BLE001 - a graph ONNX Runtime cannot run here: leave the If as it is
        return None


def _defined(graph) -> set[str]:
    names = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    return names | {out for node in graph.node for out in node.output}


def _inline(onnx, graph, node, branch) -> list:
    """The nodes replacing ``node`` (an If): the branch's own, then its outputs as the If's."""
    graph.initializer.extend(branch.initializer)
    nodes = list(branch.node)
    for inner, outer in zip(branch.output, node.output, strict=True):
        nodes.append(onnx.helper.make_node("Identity", [inner.name], [outer], name=f"{outer}__if_taken"))
    return nodes
