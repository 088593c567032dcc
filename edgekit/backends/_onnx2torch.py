"""ONNX -> torch with onnx2torch: how an ONNX source reaches the converters that read a torch graph
(coremltools for Core ML; litert-torch for LiteRT where onnx2tf's artifact fails).

onnx2torch imports torchvision in two of its converters only (NonMaxSuppression, RoiAlign).
torchvision's PyPI wheels are built for CUDA torch and do not load beside torch 2.13+cpu, so
onnx2torch is installed without its dependencies (converters/nodeps.txt) and, when torchvision is
absent, those two converter modules are left out: a model with either op stops with an error
naming it, and the other routes are tried."""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from dataclasses import replace
from typing import Any

from .._errors import ConversionError
from .._lazy import require
from .._types import Model

_FIX = "use another route (--route), or a target that reads ONNX (onnx, openvino)"
NEED_TORCHVISION = {"NonMaxSuppression": "nms", "RoiAlign": "roialign"}  # op -> onnx2torch module


# ops whose inputs from this index on set shapes, axes, sizes or counts: a trace reads them once
_PARAMETERS = {"Reshape": 1, "Unsqueeze": 1, "Squeeze": 1, "Expand": 1, "Tile": 1, "Slice": 1, "Pad": 1,
               "Resize": 1, "Upsample": 1, "Split": 1, "TopK": 1, "OneHot": 1, "ConstantOfShape": 0, "Range": 0,
               "CumSum": 1, "Trilu": 1, **{f"Reduce{r}": 1 for r in ("Sum", "Mean", "Max", "Min", "Prod", "L1", "L2",
                                                                     "LogSum", "LogSumExp", "SumSquare")}}


def load() -> Any:
    """onnx2torch, imported without the converters that need torchvision when it is not installed."""
    if "onnx2torch" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        for module in NEED_TORCHVISION.values():
            name = f"onnx2torch.node_converters.{module}"
            sys.modules.setdefault(name, types.ModuleType(name))  # an empty module: nothing registered
    return require("onnx2torch", "ONNX to a torch graph")


def _tupled(graph: Any) -> Any:
    """``graph`` (a torch.fx GraphModule) as edgekit's torch modules are: its forward returns a tuple
    in output order, also for one output."""
    out = next(n for n in graph.graph.nodes if n.op == "output")
    if not isinstance(out.args[0], tuple | list):
        out.args = ((out.args[0],),)
        graph.recompile()
    return graph.eval()


def _example(model: Model, feeds: dict | None) -> list:
    """Torch tensors for each input: the run's first sample, or generated ones at the run's sizes."""
    import numpy as np

    from .._inputs import generate_inputs

    torch = require("torch")
    feeds = feeds or generate_inputs(model.signature, model.dims, model.meta, seed=0)
    return [torch.from_numpy(np.array(feeds[s.name])) for s in model.signature.inputs]


def _convert(onnx2torch, proto, target: str) -> Any:
    """onnx2torch's graph of ``proto``; where it lacks a converter at the model's opset (it stops at
    opset 17 for some ops), the model down-converted by ONNX's version converter."""
    last = None
    for opset in (None, 17, 13):
        try:
            if opset is not None:
                from onnx import version_converter

                proto = version_converter.convert_version(proto, opset)
            return onnx2torch.convert(proto)
        except NotImplementedError as exc:
            last = exc  # the lowest opset tried: what stopped it in the end
        except Exception as exc:  # noqa: BLE001 - the version converter has no adapter down to this opset
            if opset is None:
                raise ConversionError(target, f"onnx2torch failed on this model: {type(exc).__name__}: {exc}",
                                      _FIX) from exc
            break
    from .._known import known

    raise known(target, last, route="onnx2torch") or ConversionError(target, f"onnx2torch cannot convert this model: {last}",
                                                  _FIX) from last


def _static(onnx, model: Model, onnx_path) -> Any:
    """The ONNX at the run's static shapes with its shape arithmetic folded (onnxsim), Constant nodes
    and initializers as onnx2torch reads them: torch.export then sees no value-dependent shapes."""
    from ._onnx_static import constants_to_initializers, fold_static_ifs, simplify, static_inputs
    from ._onnx_torchable import ifs_as_where, ops_as_torchable

    proto = onnx.load(str(onnx_path))
    static_inputs(proto, {s.name: s.concrete(model.dims) for s in model.signature.inputs})
    fold_static_ifs(onnx, proto)  # before onnxsim, which stops on nested graphs
    ifs_as_where(onnx, proto)  # an If on values: both branches, then Where (onnx2torch has no If)
    simplified, _ = simplify(proto)
    folded = {t.name for t in simplified.graph.initializer}
    if not any(o.name in folded for o in simplified.graph.output):  # an output folded away has no node
        proto = simplified
    constants_to_initializers(proto.graph)
    if ops_as_torchable(onnx, proto):
        constants_to_initializers(proto.graph)
    _size_as_shape_product(onnx, proto.graph)
    _no_needless_allowzero(onnx, proto.graph)
    weights = {t.name for t in proto.graph.initializer}
    kept = [v for v in proto.graph.input if v.name not in weights]  # old exporters list weights as inputs
    del proto.graph.input[:]
    proto.graph.input.extend(kept)
    return proto


def _size_as_shape_product(onnx, graph) -> None:
    """``Size`` (onnx2torch has none) as the product of ``Shape``: the same int64 scalar."""
    nodes = []
    for node in graph.node:
        if node.op_type != "Size" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        shape = f"{node.output[0]}__shape"
        nodes += [onnx.helper.make_node("Shape", [node.input[0]], [shape], name=f"{node.name}__shape"),
                  onnx.helper.make_node("ReduceProd", [shape], list(node.output), name=node.name, keepdims=0)]
    del graph.node[:]
    graph.node.extend(nodes)


def _no_needless_allowzero(onnx, graph) -> None:
    """``Reshape``'s ``allowzero=1`` (which onnx2torch refuses) dropped where the shape is a constant
    with no 0 in it: there it changes nothing."""
    consts = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in consts:
            continue
        if 0 in onnx.numpy_helper.to_array(consts[node.input[1]]).tolist():
            continue
        keep = [a for a in node.attribute if a.name != "allowzero"]
        del node.attribute[:]
        node.attribute.extend(keep)


def _values_as_parameters(proto, target: str) -> None:
    """Refuse a graph where a shape, axis or size is computed from input values at run time (left
    after folding at static shapes): the trace would fix it at the sample's value, silently."""
    fixed = {t.name for t in proto.graph.initializer}
    for node in proto.graph.node:
        start = _PARAMETERS.get(node.op_type)
        fed = [i for i in node.input[start:] if i and i not in fixed] if start is not None else []
        if fed:
            raise ConversionError(target, f"{node.op_type} {node.name or ''} takes {fed[0]!r} as its shape, axes or "
                                  "sizes, and that is computed from input values at run time; onnx2torch's graph is "
                                  "traced, which would fix it at the sample's value", _FIX)


def _exportable(module: Any, example: list) -> Any:
    """``module`` as torch.export takes it: traced at the example (onnx2torch's modules read shapes,
    scales and split sizes from tensors, which torch.export sees as data-dependent; the trace
    records them at the run's sizes), frozen, then brought to an ExportedProgram by torch's
    TorchScript converter. Where the trace fails, ``module`` as it is."""
    torch = require("torch")
    try:
        from torch._export.converter import TS2EPConverter

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            script = torch.jit.freeze(torch.jit.trace(module, tuple(example), check_trace=False).eval())
            return TS2EPConverter(script, tuple(example)).convert().module()
    except Exception:  # noqa: BLE001 - torch.export may still take the graph as onnx2torch wrote it
        return module


def to_torch(model: Model, onnx_path, target: str, feeds: dict | None = None, traced: bool = False) -> Model:
    """``model`` with ``module`` set to onnx2torch's graph of ``onnx_path`` (and ``meta["example"]``
    to the example inputs), for ``target``'s route that converts a torch graph. ``traced``: mark it
    for tracing rather than torch.export (onnx2torch's modules read shapes and scales from tensors,
    which torch.export sees as data-dependent; a trace records them at the run's sizes)."""
    onnx = require("onnx", "ONNX to a torch graph")
    onnx2torch = load()
    proto = _static(onnx, model, onnx_path)
    missing = sorted({n.op_type for n in proto.graph.node} & set(NEED_TORCHVISION))
    if missing and importlib.util.find_spec("torchvision") is None:
        raise ConversionError(target, f"onnx2torch needs torchvision for {', '.join(missing)}, and "
                              "torchvision's wheels do not load beside torch 2.13+cpu", _FIX)
    _values_as_parameters(proto, target)
    graph = _convert(onnx2torch, proto, target)
    meta = {**model.meta, "example": _example(model, feeds)}
    module = _tupled(graph)
    if traced:
        return replace(model, module=module, format="torchscript", meta=meta)
    return replace(model, module=_exportable(module, meta["example"]), format="torch", meta=meta)
