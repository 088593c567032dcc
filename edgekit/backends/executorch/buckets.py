"""Shape buckets for ExecuTorch (``--shape-buckets``): one dynamic program, else a method per bucket.

    dynamic:    torch.export.export(module, example at the largest bucket,
                                    dynamic_shapes={axis: Dim(axis, min=smallest, max=largest)})
                -> XNNPACK -> model.pte whose ``forward`` runs at any size in [smallest, largest]
    per bucket: one torch.export per bucket, lowered together (``to_edge`` takes a dict of
                programs) -> one .pte with one method per bucket, named as the bucket
                (``sequence_16``); ``forward`` is absent

``edgekit_io`` records which: ``"dynamic"`` (input/output name -> {axis index: axis name}) for
the dynamic program, ``"methods"`` (bucket key -> method name) for the other; and ``"buckets"``
(axis -> sizes), which int8 quantization (quantize.py) follows: its program is dynamic too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._errors import ConversionError
from ..._types import Model, Signature
from .._common import ConvertContext
from ._deps import need


def axis_names(signature: Signature, buckets: dict[str, list[int]]) -> dict[str, dict[int, str]]:
    """Tensor name -> {axis index: axis name} for every bucketed axis, inputs and outputs."""
    out = {}
    for spec in [*signature.inputs, *signature.outputs]:
        axes = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str) and d in buckets}
        if axes:
            out[spec.name] = axes
    return out


def example_at(model: Model, dims: dict[str, int]) -> tuple:
    """The model's example inputs with the named axes at ``dims`` (the rest at the run's sizes)."""
    torch = need("torch")
    sizes = {**model.dims, **dims}
    example = []
    for spec, t in zip(model.signature.inputs, model.meta["example"], strict=True):
        shape = spec.concrete(sizes)
        example.append(t if tuple(t.shape) == shape else torch.zeros(shape, dtype=t.dtype))
    return tuple(example)


def export_dynamic(model: Model, buckets: dict[str, list[int]], module: Any = None) -> Any:
    """torch.export of ``module`` (default: the model's) with a ``Dim`` per bucketed axis,
    ranging over the buckets."""
    torch = need("torch")
    from .convert import quiet

    dims = {a: torch.export.Dim(a, min=min(s), max=max(s)) for a, s in buckets.items()}
    named = axis_names(model.signature, buckets)
    shapes = tuple({i: dims[a] for i, a in named.get(s.name, {}).items()} or None for s in model.signature.inputs)
    example = example_at(model, {a: max(s) for a, s in buckets.items()})
    with quiet():
        return torch.export.export(model.module if module is None else module, example, dynamic_shapes=shapes)


def export_each(model: Model, buckets: dict[str, list[int]]) -> dict[str, Any]:
    """Bucket key -> the model exported at that bucket's static shape, smallest first."""
    from ... import _buckets
    from .convert import export

    return {_buckets.key(dims): export(model.module, example_at(model, dims)) for dims in _buckets.combos(buckets)}


def io_extra(model: Model, buckets: dict[str, list[int]]) -> dict:
    """``edgekit_io``'s fields for a dynamic program: its named axes and the buckets."""
    return {"dynamic": axis_names(model.signature, buckets), "buckets": buckets}


def program_buckets(path: Path) -> dict[str, list[int]] | None:
    """The shape buckets a .pte was converted with (its ``edgekit_io``), or None."""
    from . import device

    need("executorch", "ExecuTorch")
    try:
        doc = device.io_doc(device.load_program(str(path)))
    except Exception:  # noqa: BLE001 - not a readable .pte: no buckets to follow
        return None
    found = doc.get("buckets") or {}
    return {str(a): sorted(int(n) for n in s) for a, s in found.items()} or None


def _range(buckets: dict[str, list[int]]) -> str:
    return ", ".join(f"{a} {min(s)}..{max(s)}" for a, s in buckets.items())


def convert(model: Model, dest: Path, ctx: ConvertContext, per_bucket: bool = False) -> list[str]:
    """Write ``dest`` for ``ctx.buckets``: the dynamic program, else (or with ``per_bucket``)
    one method per bucket. Returns the notes."""
    from .convert import lower

    buckets = ctx.buckets
    if not per_bucket:
        try:
            exported = export_dynamic(model, buckets)
            notes = lower(exported, model.signature, dest, io_extra(model, buckets))
            return [f"shape buckets: one dynamic program (torch.export.Dim: {_range(buckets)}); "
                    "it runs at every bucket, and at any size between"] + notes
        except Exception as exc:  # torch.export or the lowering refused the dynamic axes
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:200]
            reason = f"the dynamic export failed ({type(exc).__name__}: {first}); "
    else:
        reason = ""
    try:
        programs = export_each(model, buckets)
    except Exception as exc:
        raise ConversionError("executorch", f"torch.export failed at a bucket shape: {exc}",
                              "check the buckets fit the model (e.g. its maximum positions)") from exc
    methods = {k: k for k in programs}
    notes = lower(programs, model.signature, dest, {"methods": methods, "buckets": buckets})
    return [f"shape buckets: {reason}one method per bucket ({', '.join(methods)}) in one .pte"] + notes
