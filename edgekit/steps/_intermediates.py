"""Intermediate tensors of an ONNX graph and of its artifacts, for locating a drift (locate.py).

The reference is the ONNX graph run in ONNX Runtime with chosen tensors added as graph outputs.
An artifact exposes what its runtime can: ONNX Runtime and OpenVINO keep ONNX's tensor names
(outputs are added for those names); LiteRT keeps every tensor when asked
(``experimental_preserve_all_tensors``), under TensorFlow's names, which locate.py maps back.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._lazy import require

FLOATS = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}  # ONNX elem types compared
# integer graph outputs are compared too (indices of TopK, ArgMax, NonMaxSuppression): a wrong index
# is a divergence; integer intermediates are not (shape arithmetic, laid out differently by converters)
INTS = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 12: "uint32",
        13: "uint64"}


@dataclass
class OnnxGraph:
    """The facts of the graph locate.py walks: nodes in order, who makes each tensor, float tensors."""

    proto: object
    nodes: list  # NodeProto, in the graph's (topological) order
    producer: dict[str, int] = field(default_factory=dict)  # tensor -> index of the node making it
    floats: dict[str, int] = field(default_factory=dict)  # compared: float node outputs, integer graph outputs
    constants: set[str] = field(default_factory=set)  # initializers and Constant outputs
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # float tensors of a known shape -> bytes


BUDGET = 1_500_000_000  # bytes of intermediates kept for the comparison (all samples): past it, some are left out


def read_graph(path: Path, shapes: dict[str, tuple] | None = None) -> OnnxGraph:
    """The graph with shape-inferred types (inputs at ``shapes`` where given, so the sizes of its
    tensors are known); a node's outputs that are not float are left out."""
    onnx = require("onnx", "ONNX models")
    proto = onnx.load(str(path))
    for value in proto.graph.input:
        if value.name in (shapes or {}) and len(value.type.tensor_type.shape.dim) == len(shapes[value.name]):
            for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name], strict=True):
                dim.Clear()
                dim.dim_value = int(size)
    try:
        proto = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - a graph inference cannot take: the types declared are used
        pass
    g = proto.graph
    values = [*g.value_info, *g.output, *g.input]
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    dims = {v.name: [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
            for v in values if v.type.tensor_type.HasField("shape")}
    consts = {t.name for t in g.initializer}
    graph = OnnxGraph(proto, list(g.node), constants=consts, outputs=[o.name for o in g.output],
                      inputs=[i.name for i in g.input if i.name not in consts])
    for i, node in enumerate(graph.nodes):
        for out in node.output:
            if not out:
                continue
            graph.producer[out] = i
            if node.op_type == "Constant" or (node.input and all(x in graph.constants for x in node.input if x)):
                graph.constants.add(out)
            elif types.get(out) in FLOATS or (types.get(out) in INTS and out in graph.outputs):
                graph.floats[out] = types[out]
                if out in dims and all(d >= 0 for d in dims[out]):
                    dtype = FLOATS.get(types[out], "").replace("b", "") or INTS[types[out]]
                    graph.sizes[out] = int(np.prod(dims[out])) * np.dtype(dtype).itemsize
    return graph


def within_budget(graph: OnnxGraph, samples: int) -> list[str]:
    """The float tensors to compare: all of them, or, where their bytes over the samples pass BUDGET,
    an evenly spaced share (in graph order, the outputs always); the rest are left to inference
    and bisection. A tensor of unknown size counts as the largest known."""
    names = list(graph.floats)
    largest = max(graph.sizes.values(), default=0)
    total = samples * sum(graph.sizes.get(n, largest) for n in names)
    if total <= BUDGET:
        return names
    stride = -(-total // BUDGET)
    return [n for i, n in enumerate(names) if i % stride == 0 or n in graph.outputs]


def _with_outputs(proto, names: list[str], types: dict[str, int]):
    """A copy of ``proto`` with ``names`` added as graph outputs (type from ``types``)."""
    onnx = require("onnx", "ONNX models")
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    have = {o.name for o in copy.graph.output}
    for name in names:
        if name not in have:
            copy.graph.output.append(onnx.helper.make_tensor_value_info(name, types[name], None))
    return copy


def _ort_run(proto, feeds_list: list[dict], optimize: bool) -> tuple[list[str], list[list[np.ndarray]]]:
    ort = require("onnxruntime", "ONNX Runtime")
    onnx = require("onnx", "ONNX models")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    with tempfile.TemporaryDirectory(prefix="edgekit-locate-") as tmp:
        big = proto.ByteSize() > 1_800_000_000
        path = Path(tmp) / "model.onnx"
        onnx.save(proto, str(path), save_as_external_data=big, location="model.onnx.data" if big else None)
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    return names, [session.run(None, {k: v for k, v in f.items() if k in wanted}) for f in feeds_list]


def reference(graph: OnnxGraph, feeds_list: list[dict], wanted: list[str] | None = None) -> list[dict[str, np.ndarray]]:
    """The float intermediates of the source graph (``wanted``, else all), per sample (ONNX Runtime,
    no graph fusions)."""
    wanted = list(graph.floats) if wanted is None else wanted
    names, runs = _ort_run(_with_outputs(graph.proto, wanted, graph.floats), feeds_list, False)
    return [dict(zip(names, r, strict=True)) for r in runs]


def onnx_artifact(path: Path, wanted: list[str], feeds_list: list[dict]) -> list[dict[str, np.ndarray]]:
    """An ONNX artifact (fp16, quantized, rewritten) run with the tensors it shares with the source
    exposed as outputs (by name, at the artifact's own type)."""
    art = read_graph(path)
    names = [n for n in wanted if n in art.floats]
    out_names, runs = _ort_run(_with_outputs(art.proto, names, art.floats), feeds_list, True)
    return [dict(zip(out_names, r, strict=True)) for r in runs]


def openvino_artifact(path: Path, wanted: list[str], feeds_list: list[dict]) -> list[dict[str, np.ndarray]]:
    """An OpenVINO IR with the ONNX tensors it still names added as outputs, at f32 inference."""
    ov = require("openvino", "OpenVINO")
    core = ov.Core()
    model = core.read_model(str(path))
    want = set(wanted)
    ports = {}
    for op in model.get_ops():
        if op.get_type_name() in ("Constant", "Parameter", "Result"):
            continue
        for port in op.outputs():
            for name in port.get_names() & want:
                ports.setdefault(name, port)
    if ports:
        model.add_outputs(list(ports.values()))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    results = []
    for feeds in feeds_list:
        res = request.infer(_by_port(compiled.inputs, feeds))
        got: dict[str, np.ndarray] = {}
        for port in compiled.outputs:
            value = np.array(res[port])
            for name in port.get_names():
                got[name] = value
        results.append(got)
    return results


def _by_port(ports, feeds: dict) -> list:
    """Feeds in input-port order. By name OpenVINO may resolve a name elsewhere once intermediates are
    outputs too: it merges the names of tensors a no-op (Identity, Reshape) joins, so an input port can
    be named after a tensor deep in the graph, which an added output then names as well."""
    ordered = []
    for i, port in enumerate(ports):
        names = port.get_names()
        key = next((k for k in feeds if k in names), None)
        ordered.append(feeds[key] if key is not None else list(feeds.values())[i])
    return ordered


def _signature_for(interp, feeds: dict) -> str:
    """The signature whose inputs take the feeds' shapes (a .tflite with one signature per shape
    bucket); the first where none does exactly."""
    keys = list(interp.get_signature_list())
    for key in keys:
        details = interp.get_signature_runner(key).get_input_details()
        if all(name in feeds and tuple(d["shape"]) == tuple(np.shape(feeds[name])) for name, d in details.items()):
            return key
    return keys[0]


def tflite_artifact(path: Path, feeds_list: list[dict]) -> list[dict[str, np.ndarray]]:
    """Every tensor LiteRT computes (no delegate, so none is fused away), keyed by its TFLite name;
    the signature's outputs also under their own (ONNX) names."""
    from ai_edge_litert import interpreter as lite

    interp = lite.Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    key = _signature_for(interp, feeds_list[0])
    runner = interp.get_signature_runner(key)
    sub = int(getattr(runner, "_subgraph_index", 0))  # a signature per bucket: each its own subgraph
    results = []
    for feeds in feeds_list:
        outs = runner(**feeds)
        got, kept = {}, 0
        for d in interp.get_tensor_details(sub):
            size = int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
            if np.dtype(d["dtype"]).kind != "f" or kept + size > BUDGET // len(feeds_list):
                continue  # past the budget, the rest are left to inference
            try:
                got[d["name"]] = np.array(interp.get_tensor(d["index"], sub))
            except ValueError:  # a tensor with no data (an unused buffer)
                continue
            kept += size
        got.update({f"output:{n}": np.array(v) for n, v in outs.items()})
        results.append(got)
    return results
