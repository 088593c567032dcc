"""OpenVINO's last ONNX route: the ONNX with the ops OpenVINO's frontend lacks or converts wrongly
written as ONNX defines them (exact rewrites shared with TFLite, ``backends/_onnx_rewrites.py``),
then converted; a ``TopK`` is made stable in the converted model. Each rewrite was measured on
ONNX's node cases that ONNX Runtime passes and OpenVINO 2026.4 fails. The route keeps the axes
dynamic unless a node it would rewrite needs static shapes."""

from __future__ import annotations

from pathlib import Path

from .. import _onnx_rewrites as R
from .._onnx_static import fold_static_ifs, static_inputs

# (rewrite, note), in order: the expansion first, so the ops its bodies write are rewritten too
REWRITES = (
    (R.EXPAND[0], lambda ops: _expanded(ops)),
    (R._rewrite({"SpaceToDepth"}, R.space_to_depth_crd),
     lambda n: f"{n} SpaceToDepth CRD written as Reshape/Transpose (OpenVINO's gives DCR's order)"),
    (R._rewrite({"GridSample"}, R.grid_sample_nearest),
     lambda n: f"{n} GridSample nearest written as rounded indices and GatherElements (OpenVINO has no "
               "3-D GridSample)"),
    (R._rewrite({"Mod"}, R.float_floor_mod),
     lambda n: f"{n} float Mod with fmod=0 written as Mod with fmod=1 given the divisor's sign (OpenVINO's "
               "frontend has no float Mod with fmod=0)"),
    (R._rewrite({"Pad"}, R.wrap_pad),
     lambda n: f"{n} Pad in wrap mode written as Gathers of wrapped indices (OpenVINO's frontend has no wrap)"),
    (lambda onnx, proto: scalar_if_conditions(onnx, proto),
     lambda n: f"{n} If condition of rank 2 or more reshaped to a scalar (ONNX takes any one-element "
               "tensor; OpenVINO only rank 0 or 1)"),
)
# the ops of the rewrites that need static shapes: where one is left, the inputs are fixed
_STATIC_OPS = {"SpaceToDepth", "GridSample"}
_DEFAULT = ("", "ai.onnx")


def _expanded(ops: list[str]) -> str:
    why = (["OpenVINO's Attention gives other values with a sliding window"] if "Attention" in ops else []) + (
        ["OpenVINO has no NLL/SCE loss with ignore_index"] if set(ops) - {"Attention"} else [])
    return f"{R.EXPAND[1](ops)} ({'; '.join(why)})"


def scalar_if_conditions(onnx, proto) -> int:
    """Each ``If`` of the main graph whose condition has a known rank of 2 or more (a [1, 1] score
    compared with a threshold, say) given that condition reshaped to a scalar: the same one element,
    which is all ONNX allows there. Returns how many."""
    graph = onnx.shape_inference.infer_shapes(proto, strict_mode=False).graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in (*graph.value_info, *graph.input, *graph.output)
             if v.type.tensor_type.HasField("shape")}
    ranks.update({t.name: len(t.dims) for t in proto.graph.initializer})
    nodes, count = [], 0
    for node in list(proto.graph.node):
        if node.op_type == "If" and node.domain in _DEFAULT and ranks.get(node.input[0], 0) >= 2:
            name = f"{node.name or node.output[0]}__scalar_condition"
            proto.graph.initializer.append(onnx.helper.make_tensor(f"{name}_shape", onnx.TensorProto.INT64, [0], []))
            nodes.append(onnx.helper.make_node("Reshape", [node.input[0], f"{name}_shape"], [name], name=name))
            node.input[0] = name
            count += 1
        nodes.append(node)
    if count:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
    return count


def rewrite(onnx, proto) -> tuple[int, list[str]]:
    """Every rewrite on ``proto``, in place; returns how many nodes changed, and the notes."""
    count, notes = 0, []
    for fn, note in REWRITES:
        changed = fn(onnx, proto)
        if changed:
            count += changed if isinstance(changed, int) else len(changed)
            notes.append(note(changed))
    return count, notes


def rewritten(onnx, path: Path, sizes: dict[str, tuple[int, ...]] | None):
    """The ONNX at ``path`` rewritten with its axes as they are; where that leaves a node a rewrite
    needs static shapes for and ``sizes`` are given (every input at the run's size), the ONNX at
    those sizes (shape-only ``If``s taken) if that rewrites more. Returns ``(proto, notes, count,
    fixed)``: ``fixed`` when the inputs were fixed."""
    proto, notes = _load(onnx, path)
    count, done = rewrite(onnx, proto)
    left = any(n.op_type in _STATIC_OPS and n.domain in _DEFAULT for n in proto.graph.node)
    if sizes and left:
        fixed, fixed_notes = _load(onnx, path)
        static_inputs(fixed, sizes)
        taken = fold_static_ifs(onnx, fixed)
        more, more_done = rewrite(onnx, fixed)
        if more > count:
            ifs = [f"{taken} If taken at these sizes (shape-only conditions)"] if taken else []
            return fixed, [*fixed_notes, *ifs, *more_done], more, True
    return proto, [*notes, *done], count, False


def _load(onnx, path: Path):
    """The ONNX with its local functions inlined (OpenVINO's frontend does not expand them)."""
    proto = onnx.load(str(path))
    if not proto.functions:
        return proto, []
    from onnx.inliner import inline_local_functions

    return inline_local_functions(proto), ["the model's local ONNX functions inlined for OpenVINO's frontend"]


def topks(proto) -> int:
    """How many ``TopK`` the graph has (each is made stable once converted: :func:`stable_topks`)."""
    return sum(n.op_type == "TopK" and n.domain in _DEFAULT for n in proto.graph.node)


def stable_topks(ov_model) -> list[str]:
    """Each ``TopK`` sorted by value made stable, in the converted model: ONNX orders equal values
    by their index, and OpenVINO's frontend converts TopK unstable (equal values in any order)."""
    count = 0
    for op in ov_model.get_ordered_ops():
        attrs = op.get_attributes() if op.get_type_name() == "TopK" else {}
        if attrs.get("stable") is False and attrs.get("sort") == "value":
            op.set_attribute("stable", True)
            count += 1
    return [f"{count} TopK made stable (ONNX orders equal values by index)"] if count else []
