"""torch (torch.export + decompositions) to a Core ML .mlpackage (ML program).

Shape buckets (``ctx.buckets``): the torch graph is exported with a ``torch.export.Dim`` on
each bucketed axis, and every input carrying one gets ``ct.EnumeratedShapes`` (one shape per
bucket; the largest is the default). Core ML accepts enumerated shapes on several inputs from
iOS 18 / macOS 15 only, so such a package targets iOS 18 (one input: iOS 16 as usual). Where
the enumerated conversion fails, a ``ct.RangeDim`` (smallest..largest bucket) is used instead;
range dims run on the CPU and GPU, not the Neural Engine. The buckets are kept in the package's
metadata (``edgekit.buckets``) so that validation can check them.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..._errors import ConversionError
from ..._lazy import require
from ..._types import Model
from .._common import ConvertContext, static_example

BUCKETS_KEY = "edgekit.buckets"


def from_torch(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: torch.export (with decompositions), or tracing for TorchScript, then coremltools."""
    ct = require("coremltools", "Core ML")
    from . import shims

    shims.register()
    buckets = getattr(ctx, "buckets", None)
    dest = dest_dir / "model.mlpackage"
    if buckets:
        mlmodel, notes = _convert_buckets(model, buckets, precision)
        mlmodel.user_defined_metadata[BUCKETS_KEY] = json.dumps(buckets)
        mlmodel.save(str(dest))
        return dest, notes
    example = list(static_example(model))
    notes = []
    if any(s.dynamic_axes for s in model.signature.inputs):
        axes = dict.fromkeys(a for s in model.signature.inputs for a in s.dynamic_axes.values())
        fixed = ", ".join(f"{a}={model.dims[a]}" for a in axes)
        notes.append(f"dynamic axes fixed ({fixed}) in the Core ML package")
    graph = _graph(model, tuple(example), None)
    inputs = [ct.TensorType(name=s.name, shape=tuple(t.shape), dtype=_dtype(t))
              for s, t in zip(model.signature.inputs, example, strict=True)]
    mlmodel = _ct_convert(model, graph, inputs if model.format == "torchscript" else None, precision,
                          ct.target.iOS16)
    mlmodel.save(str(dest))
    return dest, notes


def from_onnx(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: onnx2torch's torch graph of the ONNX source, then as from torch."""
    from .._onnx2torch import to_torch

    if ctx.buckets:
        raise ConversionError("coreml", "shape buckets need a torch source: the graph onnx2torch makes of an ONNX "
                              "file is traced at one shape", "convert without --shape-buckets, or from the PyTorch model")
    dest, notes = from_torch(to_torch(model, model.onnx_path, "coreml", ctx.example, traced=True), dest_dir, precision, ctx)
    return dest, ["torch graph from the ONNX by onnx2torch", *notes]


def _dtype(t):
    torch = require("torch")
    return np.int32 if t.dtype == torch.int64 else t.numpy().dtype.type


def _graph(model: Model, example: tuple, dynamic_shapes):
    """The torch graph coremltools reads: traced (TorchScript) or exported with decompositions."""
    torch = require("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model.format == "torchscript":
            return torch.jit.trace(model.module, example)
        return torch.export.export(model.module, example, dynamic_shapes=dynamic_shapes).run_decompositions({})


def _ct_convert(model: Model, graph, inputs, precision: str, target):
    ct = require("coremltools", "Core ML")
    outputs = [ct.TensorType(name=s.name) for s in model.signature.outputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.convert(
            graph, inputs=inputs, outputs=outputs, convert_to="mlprogram", minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        )


def bucket_shapes(model: Model, buckets: dict[str, list[int]]) -> dict[str, list[tuple[int, ...]]]:
    """Input name -> its shape at every bucket (smallest first), for the inputs with a bucketed axis."""
    from ... import _buckets

    out = {}
    for spec in model.signature.inputs:
        if any(isinstance(d, str) and d in buckets for d in spec.shape):
            shapes = [spec.concrete({**model.dims, **dims}) for dims in _buckets.combos(buckets)]
            out[spec.name] = list(dict.fromkeys(shapes))
    return out


def _convert_buckets(model: Model, buckets: dict[str, list[int]], precision: str):
    """(MLModel, notes): enumerated shapes on the bucketed inputs, else a range dim."""
    ct = require("coremltools", "Core ML")
    torch = require("torch")
    if model.format == "torchscript":  # tracing bakes the traced sizes into reshapes: other shapes would be wrong
        raise ConversionError("coreml", "shape buckets need torch.export's dynamic dims; a TorchScript module is "
                              "traced at one shape", "give the eager module (module:factory) or a .pt2, or convert "
                              "without --shape-buckets")
    largest = {**model.dims, **{a: max(s) for a, s in buckets.items()}}
    example = tuple(t if tuple(t.shape) == s.concrete(largest) else torch.zeros(s.concrete(largest), dtype=t.dtype)
                    for s, t in zip(model.signature.inputs, model.meta["example"], strict=True))
    dims = {a: torch.export.Dim(a, min=min(s), max=max(s)) for a, s in buckets.items()}
    dynamic = tuple({i: dims[d] for i, d in enumerate(s.shape) if isinstance(d, str) and d in dims} or None
                    for s in model.signature.inputs)
    try:
        graph = _graph(model, example, dynamic)
    except Exception as exc:
        raise ConversionError("coreml", f"torch.export with the bucketed axes dynamic failed: {exc}",
                              "convert without --shape-buckets (one static shape) for Core ML") from exc
    shapes = bucket_shapes(model, buckets)
    enumerated = [ct.TensorType(name=s.name, dtype=_dtype(t), shape=ct.EnumeratedShapes(
        shapes=shapes[s.name], default=t.shape) if s.name in shapes else tuple(t.shape))
        for s, t in zip(model.signature.inputs, example, strict=True)]
    target = ct.target.iOS18 if len(shapes) > 1 else ct.target.iOS16
    sizes = "; ".join(f"{a} {', '.join(map(str, s))}" for a, s in buckets.items())
    try:
        mlmodel = _ct_convert(model, graph, enumerated, precision, target)
        os_note = (f"; enumerated shapes on {len(shapes)} inputs need iOS 18 / macOS 15, the package's minimum"
                   if len(shapes) > 1 else "")
        return mlmodel, [f"shape buckets: enumerated shapes ({sizes}) on {', '.join(shapes)}{os_note}"]
    except Exception as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:200]
    ranged = [ct.TensorType(name=s.name, dtype=_dtype(t), shape=tuple(
        ct.RangeDim(min(buckets[d]), max(buckets[d]), default=max(buckets[d])) if isinstance(d, str) and d in buckets
        else t.shape[i] for i, d in enumerate(s.shape)))
        for s, t in zip(model.signature.inputs, example, strict=True)]
    mlmodel = _ct_convert(model, graph, ranged, precision, ct.target.iOS16)
    return mlmodel, [f"shape buckets: a range dim ({', '.join(f'{a} {min(s)}..{max(s)}' for a, s in buckets.items())}); "
                     f"enumerated shapes failed ({first}); range dims run on the CPU and GPU, not the Neural Engine"]
