"""ONNX files, with external data."""

from __future__ import annotations

import math
import re
from pathlib import Path

from ..._errors import EdgekitError
from ..._lazy import require
from ..._types import Model, Signature, TensorSpec
from ._toposort import GraphCycle, _subgraphs, sort_nodes

_NAMED = re.compile(r"[A-Za-z_][\w.]*")


def _specs(values, np_dtype) -> list[TensorSpec]:
    specs = []
    for v in values:
        t = v.type.tensor_type
        shape = []
        for i, d in enumerate(t.shape.dim):
            # ONNX: a set dim_value is a size (0 is a real empty axis); an unset dim, or a
            # negative value some exporters write, is dynamic
            if d.HasField("dim_value") and d.dim_value >= 0:
                shape.append(int(d.dim_value))
            elif d.dim_param and _NAMED.fullmatch(d.dim_param):
                shape.append(d.dim_param)  # a named axis: shared by every input that names it
            else:  # unnamed ('?', '-1', unset): an axis of its own, sized by --inputs or --shape
                shape.append("batch" if i == 0 and not d.dim_param else f"{v.name}.{i}")
        specs.append(TensorSpec(v.name, tuple(shape), np_dtype(t.elem_type).name))
    return specs


def _vocab_sizes(graph) -> dict[str, int]:
    """Rows of the embedding table each integer input indexes (Gather on an initializer)."""
    inits = {i.name: list(i.dims) for i in graph.initializer}
    sizes = {}
    for node in graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[0] in inits:
            sizes.setdefault(node.input[1], inits[node.input[0]][0])
    return sizes


def _all_tensors(graph):
    """Initializers and attribute tensors, subgraphs (If, Loop, Scan) included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
        for sub in _subgraphs(node):
            yield from _all_tensors(sub)


def check_external_data(path: Path, proto=None) -> None:
    """Every tensor stored outside the .onnx file must be in a file inside the model's folder.

    The runtimes refuse a location that leaves the folder (``../secrets``, ``/etc/passwd``),
    with a message that does not say why; this names the file and the tensor instead.
    """
    onnx = require("onnx", "ONNX models")
    if proto is None:
        proto = onnx.load(str(path), load_external_data=False)
    folder = Path(path).resolve().parent
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise EdgekitError(f"{path}: tensor {tensor.name!r} keeps its data in {location!r}, outside the "
                               f"model's folder ({target}); edgekit and the runtimes read external data only "
                               "from files beside the model",
                               "export the model again with its external data in its own folder (a relative "
                               "file name, no '..'), or re-save it with onnx.save(..., save_as_external_data=True)")
        if not target.is_file():
            raise EdgekitError(f"{path}: tensor {tensor.name!r} keeps its data in {location!r}, which is missing "
                               f"({target})", "copy the .onnx together with its external data file(s)")


def load_onnx(path: Path) -> Model:
    onnx = require("onnx", "ONNX models")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EdgekitError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            "the file may be truncated or corrupt: export it again",
        ) from exc
    check_external_data(path, proto)
    read, notes = _sorted(path, proto)
    try:
        onnx.checker.check_model(str(read))
    except Exception as exc:
        raise EdgekitError(
            f"{path} is not a valid ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
            "the file may be truncated or corrupt: export it again (its .data file, if any, must sit beside it)",
        ) from exc
    from onnx.helper import tensor_dtype_to_np_dtype

    graph = proto.graph
    inits = {i.name for i in graph.initializer}
    inputs = _specs([v for v in graph.input if v.name not in inits], tensor_dtype_to_np_dtype)
    outputs = _specs(graph.output, tensor_dtype_to_np_dtype)
    vocab = _vocab_sizes(graph)
    meta = {"vocab_size": next((vocab[i.name] for i in inputs if i.name in vocab), None)}
    from ._custom import onnx_traits

    meta.update(onnx_traits(proto))  # quantized (verified at int8 tolerances), custom_ops (vendor ops)
    meta["float16_compute"] = float16_compute(graph)
    return Model(spec=str(path), format="onnx", signature=Signature(inputs, outputs), path=path,
                 onnx_path=read, meta=meta, notes=notes)


def _sorted(path: Path, proto) -> tuple[Path, list[str]]:
    """The file every conversion reads: ``path`` itself, or, where its nodes are out of
    topological order (ONNX Runtime runs such a graph, the converters and onnx.checker refuse it),
    a sorted copy in a folder of this run, with a note saying so. A cycle is refused."""
    try:
        moved = sort_nodes(proto)
    except GraphCycle as exc:
        raise EdgekitError(f"{path} is not a valid ONNX model: {exc}; no runtime can run it",
                           "export the model again; if a tool edited the graph afterwards, that edit fed a "
                           "node's output back into its own inputs") from exc
    if not moved:
        return path, []
    folder = _scratch()
    copy = folder / path.name
    onnx = require("onnx", "ONNX models")
    onnx.save(proto, str(copy))
    _copy_external_data(path, proto, folder)
    return copy, [f"nodes sorted topologically (the file had {moved} out of order, as ONNX Runtime's float16 "
                  "converter writes them; ONNX requires the order): every target converts, and verification "
                  "runs, the sorted copy"]


def _scratch() -> Path:
    """A folder removed when the process ends."""
    import atexit
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="edgekit-sorted-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _copy_external_data(path: Path, proto, folder: Path) -> None:
    """The external data files the model names, copied beside its sorted copy: runtimes read them
    only from the model's folder, and onnx.checker refuses a hard link (a "hardlink attack")."""
    import shutil

    onnx = require("onnx", "ONNX models")
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        dest = folder / location
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path.parent / location, dest)


def _weights(graph):
    """(the name it is read by, tensor) for each initializer and Constant value, subgraphs included."""
    yield from ((t.name, t) for t in graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.HasField("t"):
                yield node.output[0], attr.t
        for sub in _subgraphs(node):
            yield from _weights(sub)


def _computing_reads(graph, into: set[str]) -> set[str]:
    """Names read by a node that computes on them, not only converts them (Cast, CastLike), in
    ``graph`` and its subgraphs."""
    for node in graph.node:
        if node.op_type not in ("Cast", "CastLike"):
            into.update(node.input)
        for sub in _subgraphs(node):
            _computing_reads(sub, into)
    return into


def float16_compute(graph) -> dict | None:
    """Where the source computes in float16 though its inputs and outputs may be float32 (a float16
    converter's ``keep_io_types`` output). The rule: most of its floating-point weights (initializers
    and Constant values, subgraphs included, counted by element) are float16 weights that a node
    computes on directly; float16 weights only cast up to float32 are storage, and the model computes
    in float32. ``{"float16": n, "float": total}`` then, else None."""
    onnx = require("onnx", "ONNX models")
    floats = (onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)
    computed = _computing_reads(graph, set())
    half = total = 0
    for name, tensor in _weights(graph):
        if tensor.data_type in floats:
            size = math.prod(tensor.dims)
            total += size
            half += size if tensor.data_type == onnx.TensorProto.FLOAT16 and name in computed else 0
    return {"float16": half, "float": total} if total and half * 2 > total else None
