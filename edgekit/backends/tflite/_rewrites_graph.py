"""Graph-level rewrites before onnx2tf, each keeping the graph's meaning at the static shapes the
prepared graph has:

- ``If`` nodes whose condition depends only on shapes (never on an input's values) are replaced by
  the branch that condition takes at these shapes: onnx2tf cannot convert an ``If`` whose branches
  read the outer graph, and onnxsim stops on such nested graphs, so nothing after it is folded;
- a ``Slice`` over several axes becomes one ``Slice`` per axis: onnx2tf maps the axes of a
  channels-last tensor but not their starts/ends (silero-vad's STFT slice came out empty);
- an ``Unsqueeze`` at an inner axis into 4D/5D becomes a ``Reshape`` (onnx2tf can put the new
  axis first when it takes the input for channels-last);
- node names TensorFlow refuses as a scope (``Softmax@0``, Paddle's) are made valid.
"""

from __future__ import annotations

import re

import numpy as np

_DEFAULT = ("", "ai.onnx")
# values that depend only on the shape of their input, never on its values
_SHAPE_ONLY = {"Shape", "Size"}


def _producers(graph) -> dict[str, object]:
    return {out: node for node in graph.node for out in node.output if out}


def _value_reads(graph, name: str) -> tuple[list[str], bool]:
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


def _shape_only(graph, name: str) -> bool:
    """Whether ``name`` depends on the graph's inputs through their shapes only (a Shape or Size
    on every path from an input), so that it is a constant once the inputs' shapes are."""
    read, nested = _value_reads(graph, name)
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


def fold_static_ifs(onnx, proto) -> int:
    """Every top-level ``If`` whose condition is fixed by the inputs' static shapes becomes the
    branch it takes (repeated for Ifs nested in the branches); returns how many were folded."""
    folded = 0
    for _ in range(16):  # each pass folds one level of nesting
        graph = proto.graph
        ifs = [n for n in graph.node if n.op_type == "If" and n.domain in _DEFAULT and _shape_only(graph, n.input[0])
               and _needed(graph, [n.input[0]]) is not None]
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


def refuse_ifs_on_values(proto) -> None:
    """An ``If`` left after folding branches on an input's values (silero-vad's sample rate):
    onnx2tf cannot convert an If whose branches read the outer graph, so stop with its name."""
    for node in proto.graph.node:
        read = _value_reads(proto.graph, node.input[0])[0] if node.op_type == "If" and node.domain in _DEFAULT else []
        if read:
            raise ValueError(f"If node '{node.name}' branches on the value of input '{read[0]}', not on a shape "
                             f"(inputs read: {', '.join(read)})")


def split_multi_axis_slices(onnx, proto) -> int:
    """A ``Slice`` over several axes with constant parameters becomes one ``Slice`` per axis
    (same starts, ends and steps), which onnx2tf places right on channels-last tensors."""
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    inits = {i.name: i for i in proto.graph.initializer}
    nodes, count = [], 0
    for node in proto.graph.node:
        params = [node.input[i] if len(node.input) > i else "" for i in range(1, 5)]
        if node.op_type != "Slice" or node.domain not in _DEFAULT or len(node.input) < 3 or any(
                p and p not in inits for p in params):
            nodes.append(node)
            continue
        starts, ends, axes, steps = (numpy_helper.to_array(inits[p]).reshape(-1) if p else None for p in params)
        if starts.size < 2:
            nodes.append(node)
            continue
        axes = np.arange(starts.size) if axes is None else axes
        steps = np.ones(starts.size, np.int64) if steps is None else steps
        cur, out = node.input[0], node.output[0]
        for i in range(starts.size):
            names = []
            for part, value in (("starts", starts[i]), ("ends", ends[i]), ("axes", axes[i]), ("steps", steps[i])):
                names.append(f"{out}__axis{i}_{part}")
                proto.graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), names[-1]))
            step_out = out if i == starts.size - 1 else f"{out}__axis{i}"
            nodes.append(helper.make_node("Slice", [cur, *names], [step_out], name=f"{node.name}__axis{i}"))
            cur = step_out
        count += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return count


def inner_unsqueeze_as_reshape(onnx, proto) -> int:
    """An ``Unsqueeze`` that makes a 4D or 5D tensor with a new axis inside (neither first nor
    last) becomes a ``Reshape`` to its static shape: onnx2tf converts such an axis for a
    channels-last tensor and can misplace it (a Keras Conv1D exported by tf2onnx, at batch > 1:
    [8, 21, 32] became [1, 8, 21, 32], not [8, 1, 21, 32])."""
    graph = onnx.shape_inference.infer_shapes(proto).graph
    shapes = {}
    for v in [*graph.value_info, *graph.input, *graph.output]:
        dims = v.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = [int(d.dim_value) for d in dims]
    count = 0
    for node in proto.graph.node:
        out = shapes.get(node.output[0]) if node.op_type == "Unsqueeze" and node.domain in _DEFAULT else None
        src = shapes.get(node.input[0]) if out else None
        if not out or src is None or len(out) not in (4, 5) or len(out) != len(src) + 1:
            continue
        at = [i for i in range(len(out)) if out[i] == 1 and out[:i] + out[i + 1:] == src]
        if not at or 0 in at or len(out) - 1 in at:  # not one new axis, or one at an end: kept
            continue
        name = f"{node.output[0]}__unsqueezed_shape"
        proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(out, np.int64), name))
        node.op_type = "Reshape"
        del node.input[1:], node.attribute[:]
        node.input.append(name)
        count += 1
    return count


# what TensorFlow refuses in a (nested) scope name, which onnx2tf makes of each ONNX node's name
_NOT_IN_SCOPE = re.compile(r"[^A-Za-z0-9_.\\/>-]")


def scope_safe_names(onnx, proto) -> int:
    """Node names TensorFlow refuses as a scope name (e.g. Paddle's ``Softmax@0``) made valid: the
    characters a scope name cannot hold become ``_``; names stay unique."""
    graphs, taken, count = [proto.graph], set(), 0
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            taken.add(node.name)
            graphs.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            graphs.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
            if not _NOT_IN_SCOPE.search(node.name):
                continue
            base = _NOT_IN_SCOPE.sub("_", node.name)
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            taken.add(name)
            node.name = name
            count += 1
    return count


# (rewrite, note) pairs, registered in _prepare._REWRITES after the op rewrites
REWRITES = (
    (split_multi_axis_slices, lambda n: f"{n} Slice over several axes written as one Slice per axis"),
    (inner_unsqueeze_as_reshape, lambda n: f"{n} Unsqueeze at an inner axis written as Reshape"),
    (scope_safe_names, lambda n: f"{n} node names made valid TensorFlow scope names"),
)
