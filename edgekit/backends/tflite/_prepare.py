"""The ONNX graph onnx2tf is given: static inputs, folded shape arithmetic (both shared with the
other targets in ``backends/_onnx_static.py``), and the ops it lacks written as ops it has. Each
step keeps the graph's meaning; parity checks the result anyway."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._lazy import require
from ..._types import Model
from .._onnx_rewrites import EXPAND
from .._onnx_static import constants_to_initializers, fold_static_ifs, simplify, static_inputs
from . import (
    _rewrites,
    _rewrites_float16,
    _rewrites_graph,
    _rewrites_math,
    _rewrites_more,
    _rewrites_pool,
    _rewrites_quant,
    _rewrites_rnn,
)


def output_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The outputs of a prepared graph whose shapes are fully known (name -> shape)."""
    onnx = require("onnx", "ONNX to TFLite")
    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {}
    for value in graph.output:
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def prepare_for_onnx2tf(model: Model, onnx_path: Path, folder: Path) -> tuple[Path, list[str]]:
    """Write the graph onnx2tf converts to ``folder/model.onnx``; return it and what was done."""
    onnx = require("onnx", "ONNX to TFLite")
    proto = onnx.load(str(onnx_path))
    static_inputs(proto, {s.name: s.concrete(model.dims) for s in model.signature.inputs})
    done = []
    ifs = fold_static_ifs(onnx, proto)  # before onnxsim, which stops on nested graphs
    if ifs:
        done.append(f"{ifs} If taken at the static shapes (its condition depends on shapes only)")
    _rewrites_graph.refuse_ifs_on_values(proto)
    expanded = EXPAND[0](onnx, proto)  # before onnxsim, which then folds the bodies' shapes
    if expanded:
        done.append(EXPAND[1](expanded))
    proto, folded = simplify(proto)
    if folded:
        done.append("shape arithmetic folded (onnxsim)")
    moved = constants_to_initializers(proto.graph)
    dequantized = _rewrites_quant.fold_constant_dequantize(onnx, proto)  # once onnxsim made them constants
    if dequantized:
        proto, _ = simplify(proto)  # what reads them (Unsqueeze, Slice) folded too
        constants_to_initializers(proto.graph)
        done.append(f"{dequantized} DequantizeLinear of constants (not weights) computed once as float constants")
    for rewrite, note in _REWRITES:
        changed = rewrite(onnx, proto)
        if changed:
            done.append(note(changed))
    if moved and not folded:
        done.append(f"{moved} Constant nodes stored as initializers")
    path = folder / "model.onnx"
    big = proto.ByteSize() > 1_800_000_000
    onnx.save(proto, str(path), save_as_external_data=big, location="model.onnx.data" if big else None)
    return path, done


# the graph rewrites, in order: each returns what it changed (a count or a list), and its note;
# the op rewrites come first, so the type widening also covers the ops they write
_REWRITES = (
    *_rewrites.REWRITES,
    *_rewrites_math.REWRITES,
    *_rewrites_quant.REWRITES,
    *_rewrites_more.REWRITES,  # before the pools: explicit pads let a 3-D SAME pool become a Conv
    *_rewrites_pool.REWRITES,
    *_rewrites_rnn.REWRITES,
    (lambda onnx, p: _castlike_to_cast(onnx, p), lambda n: f"{n} CastLike written as Cast (onnx2tf has no CastLike)"),
    *_rewrites_float16.REWRITES,
    (lambda onnx, p: _dynamic_quantize_as_math(onnx, p),
     lambda n: f"{n} DynamicQuantizeLinear written as elementary ops (onnx2tf's gives float, not uint8)"),
    (lambda onnx, p: _integer_matmuls_in_float(onnx, p),
     lambda n: f"{n} MatMulInteger computed as float MatMul (exact below 2^24; LiteRT has no int8 x int8 -> int32 "
               "matmul)"),
    (lambda onnx, p: _widen_types(onnx, p),
     lambda ops: f"{len(ops)} ops computed in a type LiteRT has ({', '.join(sorted(set(ops)))})"),
)
_REWRITES += _rewrites_graph.REWRITES  # multi-axis Slice split after the Slice clamping; node names


def _elem_types(onnx, proto) -> dict[str, int]:
    """Every tensor's element type (ONNX's shape inference on the graph as it is now)."""
    graph = onnx.shape_inference.infer_shapes(proto).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({i.name: i.data_type for i in proto.graph.initializer})
    return types


def _castlike_to_cast(onnx, proto) -> int:
    """``CastLike(x, like)`` is ``Cast(x, to=<like's type>)`` once that type is known."""
    types = _elem_types(onnx, proto)
    count = 0
    for node in proto.graph.node:
        if node.op_type != "CastLike" or not types.get(node.input[1]):
            continue
        to = types[node.input[1]]
        keep = [a for a in node.attribute if a.name == "saturate"]
        node.op_type = "Cast"
        del node.input[1:]
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute("to", to))
        node.attribute.extend(keep)
        count += 1
    return count


# element types LiteRT's builtins lack for arithmetic and comparisons -> the type they are computed in
_WIDER = {"INT8": "INT32", "UINT8": "INT32", "INT16": "INT32", "UINT16": "INT32", "UINT32": "INT64",
          "UINT64": "INT64", "DOUBLE": "FLOAT"}
_ARITH = {"Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Neg", "Abs", "Sum"}
# float64 only (integer matmuls stay as they are): matmuls, elementwise math, reductions
_FLOAT_MATH = {"MatMul", "Gemm", "Einsum", "Exp", "Log", "Sqrt", "Pow", "Tanh", "Sigmoid", "Reciprocal", "Softmax",
               "LogSoftmax", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceLogSumExp",
               "ReduceLogSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "Floor", "Ceil", "Round", "Sin", "Cos"}
_COMPARE = {"Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal"}


def _widen_types(onnx, proto) -> list[str]:
    """Arithmetic and comparisons on int8/16, unsigned or float64 tensors (a Select-TF op in LiteRT)
    are computed in int32/int64/float32: inputs cast up, the result cast back (not a comparison's
    bool). Returns the ops rewritten, as "Op:TYPE"."""
    types = _elem_types(onnx, proto)
    name_of = onnx.TensorProto.DataType.Name
    nodes, done = [], []
    for node in proto.graph.node:
        kind = name_of(types.get(node.input[0], 0)) if node.input else "UNDEFINED"
        float64_only = node.op_type in _FLOAT_MATH and kind == "DOUBLE"
        if node.domain not in ("", "ai.onnx") or kind not in _WIDER or not (
                node.op_type in _ARITH | _COMPARE or float64_only):
            nodes.append(node)
            continue
        wide = getattr(onnx.TensorProto, _WIDER[kind])
        first = types.get(node.input[0])
        for i, name in enumerate(node.input):
            if not name or types.get(name) != first:
                continue  # an axes or other operand of its own type stays as it is
            nodes.append(onnx.helper.make_node("Cast", [name], [f"{name}__wide{len(done)}_{i}"], to=wide))
            node.input[i] = f"{name}__wide{len(done)}_{i}"
        if node.op_type in _ARITH | _FLOAT_MATH:
            out = node.output[0]
            node.output[0] = f"{out}__wide{len(done)}"
            nodes.extend([node, onnx.helper.make_node("Cast", [node.output[0]], [out], to=getattr(onnx.TensorProto, kind))])
        else:
            nodes.append(node)
        done.append(f"{node.op_type}:{kind.lower()}")
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return done


def _integer_matmuls_in_float(onnx, proto) -> int:
    """``MatMulInteger(a, b, a_zp, b_zp)`` as ``Cast(MatMul(a - a_zp, b - b_zp), int32)`` in float32:
    the products of 8-bit integers and their sums stay exact while under 2^24, and the dynamic
    quantization around it (DynamicQuantizeLinear, the scales) is left as it is."""
    helper, f32 = onnx.helper, onnx.TensorProto.FLOAT
    nodes, count = [], 0
    for node in proto.graph.node:
        if node.op_type != "MatMulInteger" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        tag = f"__mmi{count}"
        sides = []
        for i, side in enumerate(("a", "b")):
            x = f"{node.input[i]}{tag}_{side}f"
            nodes.append(helper.make_node("Cast", [node.input[i]], [x], to=f32))
            zp = node.input[2 + i] if len(node.input) > 2 + i else ""
            if zp:
                zf = f"{zp}{tag}_{side}zpf"
                nodes.append(helper.make_node("Cast", [zp], [zf], to=f32))
                if side == "a":  # a per-row zero point [M] meets a's rows: make it [M, 1] (any opset)
                    shape = f"{tag}_col_shape"
                    proto.graph.initializer.append(onnx.numpy_helper.from_array(
                        np.array([-1, 1], dtype=np.int64), shape))
                    nodes.append(helper.make_node("Reshape", [zf, shape], [zf + "_col"]))
                    zf += "_col"
                nodes.append(helper.make_node("Sub", [x, zf], [x + "_c"]))
                x += "_c"
            sides.append(x)
        nodes.append(helper.make_node("MatMul", sides, [f"{node.output[0]}{tag}_f"]))
        nodes.append(helper.make_node("Cast", [f"{node.output[0]}{tag}_f"], [node.output[0]], to=onnx.TensorProto.INT32))
        count += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return count


def _dynamic_quantize_as_math(onnx, proto) -> int:
    """``DynamicQuantizeLinear(x) -> (y, scale, zero_point)`` as ONNX defines it, in elementary ops:
    onnx2tf hands back ``y`` dequantized (float), which the integer ops after it then misread."""
    helper, count, nodes = onnx.helper, 0, []
    for node in proto.graph.node:
        if node.op_type != "DynamicQuantizeLinear" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        t = f"__dql{count}"
        for name, value in (("zero", 0.0), ("qmax", 255.0)):
            proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array(value, np.float32), t + name))
        x, (y, scale, zp) = node.input[0], node.output
        nodes += [
            helper.make_node("ReduceMin", [x], [t + "min_x"], keepdims=0),
            helper.make_node("Min", [t + "min_x", t + "zero"], [t + "min"]),
            helper.make_node("ReduceMax", [x], [t + "max_x"], keepdims=0),
            helper.make_node("Max", [t + "max_x", t + "zero"], [t + "max"]),
            helper.make_node("Sub", [t + "max", t + "min"], [t + "range"]),
            helper.make_node("Div", [t + "range", t + "qmax"], [scale]),
            helper.make_node("Div", [t + "min", scale], [t + "min_q"]),
            helper.make_node("Sub", [t + "zero", t + "min_q"], [t + "zp_raw"]),
            helper.make_node("Clip", [t + "zp_raw", t + "zero", t + "qmax"], [t + "zp_clip"]),
            helper.make_node("Round", [t + "zp_clip"], [t + "zp_f"]),
            helper.make_node("Cast", [t + "zp_f"], [zp], to=onnx.TensorProto.UINT8),
            helper.make_node("Div", [x, scale], [t + "x_q"]),
            helper.make_node("Round", [t + "x_q"], [t + "x_r"]),
            helper.make_node("Add", [t + "x_r", t + "zp_f"], [t + "y_raw"]),
            helper.make_node("Clip", [t + "y_raw", t + "zero", t + "qmax"], [t + "y_f"]),
            helper.make_node("Cast", [t + "y_f"], [y], to=onnx.TensorProto.UINT8),
        ]
        count += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return count
