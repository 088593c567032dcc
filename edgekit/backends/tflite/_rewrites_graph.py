"""Graph-level rewrites before onnx2tf, each keeping the graph's meaning at the static shapes the
prepared graph has (the shape-only ``If``s are taken before, by ``backends/_onnx_static.py``):

- an ``If`` left that branches on an input's values is refused with its name: onnx2tf cannot
  convert an ``If`` whose branches read the outer graph;
- a ``Slice`` over several axes becomes one ``Slice`` per axis: onnx2tf maps the axes of a
  channels-last tensor but not their starts/ends (silero-vad's STFT slice came out empty);
- an ``Unsqueeze`` at an inner axis into 4D/5D becomes a ``Reshape`` (onnx2tf can put the new
  axis first when it takes the input for channels-last);
- node names TensorFlow refuses as a scope (``Softmax@0``, Paddle's) are made valid.
"""

from __future__ import annotations

import re

import numpy as np

from .._onnx_static import value_reads

_DEFAULT = ("", "ai.onnx")


def refuse_ifs_on_values(proto) -> None:
    """An ``If`` left after folding branches on an input's values (silero-vad's sample rate):
    onnx2tf cannot convert an If whose branches read the outer graph, so stop with its name."""
    for node in proto.graph.node:
        read = value_reads(proto.graph, node.input[0])[0] if node.op_type == "If" and node.domain in _DEFAULT else []
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
