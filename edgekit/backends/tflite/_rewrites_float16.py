"""float16 graphs computed in float32 before onnx2tf: its converters build TensorFlow ops from
float16 and float32 operands side by side (a Where, a MatMul, a Range, an Equal fails), and
LiteRT computes float16 tensors in float32 anyway. Every float16 input is cast up once, every
float16 constant (initializers, Constant values, Cast targets, dtype attributes, subgraphs too)
becomes float32, and every float16 output is cast back: the outputs keep their type, the values
are float16's computed in float32 (the float16 roundings between ops are left out)."""

from __future__ import annotations

import numpy as np

# integer attributes that name an element type (Cast's to, EyeLike/Random*'s dtype, ...)
_TYPE_ATTRS = {"to", "dtype", "output_dtype"}


def float16_in_float32(onnx, proto) -> int:
    """Rewrite a graph with float16 tensors to compute them in float32; returns how many float16
    values (inputs, outputs, constants, type attributes, declared types) were changed."""
    f16 = onnx.TensorProto.FLOAT16
    graph = proto.graph
    fed = [v for v in graph.input if v.type.tensor_type.elem_type == f16
           and v.name not in {i.name for i in graph.initializer}]
    outs = [v for v in graph.output if v.type.tensor_type.elem_type == f16
            and v.name not in {i.name for i in graph.input}]  # an input handed back as it is stays
    count = _widen_constants(onnx, graph)
    if not (fed or outs or count):
        return 0
    rename = {v.name: f"{v.name}__f32" for v in [*fed, *outs]}
    _rename(graph, rename)
    helper, f32 = onnx.helper, onnx.TensorProto.FLOAT
    head = [helper.make_node("Cast", [v.name], [rename[v.name]], to=f32, name=f"{v.name}__to_f32") for v in fed]
    tail = [helper.make_node("Cast", [rename[v.name]], [v.name], to=f16, name=f"{v.name}__to_f16") for v in outs]
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    return count + len(fed) + len(outs)


def _rename(graph, rename: dict[str, str]) -> None:
    """Every node's reference to a name in ``rename`` (inputs and outputs, subgraphs included),
    and an initializer or declared type of that name."""
    for value in [*graph.initializer, *graph.value_info]:
        value.name = rename.get(value.name, value.name)
    for node in graph.node:
        for field in (node.input, node.output):
            for i, name in enumerate(field):
                field[i] = rename.get(name, name)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                _rename(sub, rename)


def _widen_constants(onnx, graph, top: bool = True) -> int:
    """float16 initializers, tensor attributes, type attributes and declared types (the top
    graph's own inputs and outputs excepted) as float32, subgraphs included; returns how many."""
    f16, f32, count = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT, 0
    for init in graph.initializer:
        if init.data_type == f16:
            init.CopyFrom(_as_float32(onnx, init))
            count += 1
    declared = [*graph.value_info] + ([] if top else [*graph.input, *graph.output])
    for value in declared:
        if value.type.tensor_type.elem_type == f16:
            value.type.tensor_type.elem_type = f32
            count += 1
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == f16:
                attr.t.CopyFrom(_as_float32(onnx, attr.t))
                count += 1
            elif attr.type == onnx.AttributeProto.INT and attr.name in _TYPE_ATTRS and attr.i == f16:
                attr.i = f32
                count += 1
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                count += _widen_constants(onnx, sub, top=False)
    return count


def _as_float32(onnx, tensor):
    wide = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(tensor).astype(np.float32), tensor.name)
    return wide


REWRITES = (
    (float16_in_float32,
     lambda n: f"{n} float16 values computed in float32 (inputs cast up, outputs cast back to float16)"),
)
