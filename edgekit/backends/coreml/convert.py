"""torch (torch.export + decompositions) to a Core ML .mlpackage (ML program)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..._lazy import require
from ..._types import Model
from .._common import ConvertContext, static_example


def from_torch(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: torch.export (with decompositions), or tracing for TorchScript, then coremltools."""
    torch = require("torch")
    ct = require("coremltools", "Core ML")
    from . import shims

    shims.register()
    example = list(static_example(model))
    notes = []
    if any(s.dynamic_axes for s in model.signature.inputs):
        axes = dict.fromkeys(a for s in model.signature.inputs for a in s.dynamic_axes.values())
        fixed = ", ".join(f"{a}={model.dims[a]}" for a in axes)
        notes.append(f"dynamic axes fixed ({fixed}) in the Core ML package")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model.format == "torchscript":
            graph = torch.jit.trace(model.module, tuple(example))
        else:
            graph = torch.export.export(model.module, tuple(example)).run_decompositions({})
        inputs = [ct.TensorType(name=s.name, shape=tuple(t.shape),
                                dtype=np.int32 if t.dtype == torch.int64 else t.numpy().dtype.type)
                  for s, t in zip(model.signature.inputs, example, strict=True)]
        outputs = [ct.TensorType(name=s.name) for s in model.signature.outputs]
        mlmodel = ct.convert(
            graph,
            inputs=inputs if model.format == "torchscript" else None,
            outputs=outputs,
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        )
    dest = dest_dir / "model.mlpackage"
    mlmodel.save(str(dest))
    return dest, notes
