"""What the backends share: the conversion context and runtime-signature helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._types import TensorSpec


@dataclass
class ConvertContext:
    """Options and intermediate results shared by the converters of one run."""

    onnx_path: Path | None = None  # the fp32 ONNX, once made: later converters start from it
    opset: int = 18
    simplify: bool = False
    workdir: Path | None = None
    used_onnx: bool = False  # set when the current target was converted from the ONNX export
    # shape buckets (--shape-buckets): axis name (a dynamic axis of the source signature) -> ascending
    # sizes; set by export when buckets are asked for, read by each converter. None: one shape.
    # A converter that writes one signature/method per bucket names each `edgekit._buckets.key(dims)`
    # ("sequence_16"); its runner then exposes `signature_keys` (list) and `use(key)`, and export
    # verifies each bucket through them. Without those, each bucket's feeds are run as they are
    # (one dynamic graph, or enumerated shapes)
    buckets: dict[str, list[int]] | None = None
    example: dict | None = None  # the run's first sample (name -> array), for routes that trace the model
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)


def spec_from_runtime(name: str, shape, dtype, source: TensorSpec | None) -> TensorSpec:
    """A runtime's tensor description, with dynamic axes named as in the source where they line up."""
    dims = []
    for i, d in enumerate(shape):
        if d is None or (isinstance(d, int | np.integer) and d < 0) or isinstance(d, str):
            named = source.shape[i] if source is not None and i < len(source.shape) else None
            dims.append(named if isinstance(named, str) else (d if isinstance(d, str) else ("batch" if i == 0 else f"dim{i}")))
        else:
            dims.append(int(d))
    return TensorSpec(name, tuple(dims), np.dtype(dtype).name)


def pick(specs: list[TensorSpec], i: int) -> TensorSpec | None:
    return specs[i] if i < len(specs) else None


def static_example(model, dims: dict[str, int] | None = None) -> tuple:
    """The model's example inputs at the run's static shapes (dynamic axes at ``model.dims``, or
    at ``dims`` where given: one shape bucket), for converters that trace or export the torch
    module at one shape. Masks (an input named ``*mask*``) are ones at a new shape."""
    from .._lazy import require

    torch = require("torch")
    sizes = {**model.dims, **(dims or {})}
    example = []
    for spec, t in zip(model.signature.inputs, model.meta["example"], strict=True):
        shape = spec.concrete(sizes)
        if tuple(t.shape) == shape:
            example.append(t)
        else:
            fill = torch.ones if "mask" in spec.name.lower() else torch.zeros
            example.append(fill(shape, dtype=t.dtype))
    return tuple(example)


def fixed_axes_note(model, why: str, skip: set[str] | None = None) -> list[str]:
    """A note naming the dynamic axes a static-shape target fixed, and at which sizes (``skip``:
    axes with shape buckets, which are not fixed at one size)."""
    axes = {a: model.dims[a] for s in model.signature.inputs for a in s.dynamic_axes.values()
            if a not in (skip or set())}  # dict: no repeats
    if not axes:
        return []
    fixed = ", ".join(f"{a}={n}" for a, n in axes.items())
    return [f"dynamic axes fixed ({fixed}): {why}; set them with --inputs, --shape or --dim"]
