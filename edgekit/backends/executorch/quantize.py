"""ExecuTorch int8: pt2e quantization with the XNNPACK quantizer, lowered to XNNPACK, as a .pte.

    captured = torch.export.export(module, example).module()
    prepared = prepare_pt2e(captured, XNNPACKQuantizer().set_global(config))
    prepared(*sample) for each calibration sample          # static-int8 only
    converted = convert_pt2e(prepared)
    torch.export.export(converted, example) -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte

The quantizer works on the torch graph, not on the fp32 .pte, so it needs the source
``Model``: ``quantize(src, dest_dir, mode, calib, opts, model=source)``, or ``opts.model``
where the caller's options carry it. ``src`` (the fp32 .pte) is only checked to exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..._errors import EdgekitError
from ..._types import Model
from ._deps import need
from .buckets import example_at, export_dynamic, io_extra, program_buckets
from .convert import PTE, check_source, example_inputs, export, lower, quiet
from .spec import SPEC

MODES = ("static-int8", "dynamic-int8")
_DESCRIBE = {
    "static-int8": "static int8 (pt2e, XNNPACKQuantizer): per-channel symmetric int8 weights, per-tensor "
                   "int8 activations (histogram observer)",
    "dynamic-int8": "dynamic int8 (pt2e, XNNPACKQuantizer): per-channel symmetric int8 weights of linear layers, "
                    "activations quantized per run",
}


def quantize(src: Path, dest_dir: Path, mode: str, calib: list[dict] | None, opts: Any,
             model: Model | None = None):
    """``quantize(src, dest_dir, mode, calib, opts) -> QuantResult``, with the source model as
    ``model=`` (or ``opts.model``). ``opts``: a QuantOptions (keep_float: module names kept
    float; per_channel)."""
    from .._quant import QuantResult

    model = model if model is not None else getattr(opts, "model", None)
    if model is None:
        raise EdgekitError("ExecuTorch int8 quantizes the torch graph, not the fp32 .pte: the source model is needed",
                           "pass the source Model: quantize(src, dest_dir, mode, calib, opts, model=model)")
    check_source(model)
    if mode not in MODES:
        raise EdgekitError(f"cannot {mode} for executorch: {SPEC.quantization.get(mode) or 'unknown mode'}",
                           f"use one of {', '.join(MODES)}")
    if mode == "static-int8" and not calib:
        raise EdgekitError("static-int8 for executorch needs calibration samples", "give --data (300 samples is plenty)")
    if src is not None and not Path(src).exists():
        raise EdgekitError(f"{src} does not exist", "convert the fp32 ExecuTorch baseline first")
    keep = list(getattr(opts, "keep_float", []) or [])
    per_channel = bool(getattr(opts, "per_channel", True))
    dest = Path(dest_dir) / PTE
    transformer = bool(getattr(opts, "transformer", False))
    buckets = getattr(opts, "buckets", None) or (program_buckets(Path(src)) if src is not None else None)
    converted, used = _quantized_module(model, mode, calib or [], keep, per_channel, transformer, buckets)
    notes = [_DESCRIBE[mode] if per_channel else _DESCRIBE[mode].replace("per-channel", "per-tensor")]
    if buckets:
        notes.append(f"shape buckets {buckets}: one dynamic program, as the fp32 one "
                     f"(torch.export.Dim on {', '.join(buckets)})")
    if transformer and mode == "static-int8":
        notes.append("transformer: linear layers only; adds, the attention mask and LayerNorm stay float")
    if used:
        notes.append(f"{used} calibration samples")
    if keep:
        notes.append(f"{len(keep)} modules kept in float: {', '.join(keep[:5])}{' ...' if len(keep) > 5 else ''}")
    if buckets:
        notes += lower(export_dynamic(model, buckets, converted), model.signature, dest, io_extra(model, buckets))
    else:
        notes += lower(export(converted, example_inputs(model)), model.signature, dest)
    return QuantResult(dest, notes, keep)


def _quantized_module(model: Model, mode: str, calib: list[dict], keep: list[str], per_channel: bool,
                      transformer: bool = False, buckets: dict[str, list[int]] | None = None):
    """The converted (quantize/dequantize) torch module and how many samples calibrated it.
    With ``buckets`` the graph is captured with the bucketed axes dynamic, and calibration
    samples may have any size within them."""
    torch = need("torch")
    need("executorch", "ExecuTorch quantization")
    need("torchao", "ExecuTorch quantization (pt2e)")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    class Quantizer(XNNPACKQuantizer):
        def transform_for_annotation(self, model):
            return _float_scalars_to_attrs(model)

    config = get_symmetric_quantization_config(is_per_channel=per_channel, is_dynamic=mode == "dynamic-int8")
    quantizer = Quantizer()
    if transformer:  # linear layers only: residual adds (outlier channels) and the mask arithmetic stay float
        quantizer.set_operator_type(torch.ops.aten.linear.default, config)
    else:
        quantizer.set_global(config)
    if keep:
        quantizer.set_filter_function(_outside(keep))
    example = example_at(model, {a: max(s) for a, s in buckets.items()}) if buckets else example_inputs(model)
    samples = [] if mode == "dynamic-int8" else calib
    with quiet(), torch.no_grad():
        captured = export_dynamic(model, buckets) if buckets else export(model.module, example)
        prepared = prepare_pt2e(captured.module(), quantizer)
        for feeds in samples:
            prepared(*_tensors(model, feeds, example, buckets))
        if not samples:
            prepared(*example)  # observers need one pass even where they record nothing
        converted = convert_pt2e(prepared)
    return converted, len(samples)


def _float_scalars_to_attrs(model):
    """XNNPACKQuantizer's own transform (``_convert_scalars_to_attrs``) turns the scalar of every
    add and mul into a float tensor, integer arithmetic included: in a BERT the attention mask's
    index arithmetic then indexes with floats and fails. The same, for float results only."""
    import torch
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix

    targets = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)
    for node in model.graph.nodes:
        val = node.meta.get("val")
        if node.op != "call_function" or node.target not in targets or not getattr(val, "is_floating_point", bool)():
            continue
        args = []
        for arg in node.args:
            if isinstance(arg, torch.fx.Node) or not isinstance(arg, int | float):
                args.append(arg)
                continue
            const = torch.tensor(float(arg))
            name = get_new_attr_name_with_prefix("_tensor_constant_")(model)
            model.register_buffer(name, const)
            with model.graph.inserting_before(node):
                attr = model.graph.create_node("get_attr", name, (), {})
            attr.meta["val"] = val.fake_mode.from_tensor(const, static_shapes=True)
            args.append(attr)
        node.args = tuple(args)
    model.recompile()
    return model


def _tensors(model: Model, feeds: dict[str, np.ndarray], example: tuple, buckets: dict | None = None) -> list:
    """One sample as torch tensors in signature order, at the example's shapes and dtypes (with
    ``buckets``: padded with 0 to its bucket, as it runs)."""
    import torch

    if buckets:
        from ...runtime import axis_sizes, pad, pick_bucket

        dims = pick_bucket(buckets, axis_sizes(feeds, model.signature.inputs, buckets))
        feeds = pad(feeds, model.signature.inputs, dims, {}) if dims else feeds
    values = list(feeds.values())
    out = []
    for i, (spec, ex) in enumerate(zip(model.signature.inputs, example, strict=True)):
        arr = np.asarray(feeds[spec.name] if spec.name in feeds else values[i])
        free = {a for a, d in enumerate(spec.shape) if buckets and d in buckets}
        if arr.ndim != ex.ndim or any(n != e if a not in free else n > e
                                      for a, (n, e) in enumerate(zip(arr.shape, ex.shape, strict=True))):
            raise EdgekitError(f"calibration input {spec.name!r} has shape {list(arr.shape)}, the ExecuTorch program "
                               f"{list(ex.shape)}", "give samples of the converted static shape (set axes with --dim)")
        out.append(torch.from_numpy(np.ascontiguousarray(arr)).to(ex.dtype))
    return out


def _outside(keep: list[str]):
    """A pt2e filter: True for nodes outside every module named in ``keep`` (exact dotted
    path or a suffix of it, so ``head.0`` matches ``inner.head.0``)."""

    def matches(path: str) -> bool:
        return any(path == k or path.endswith("." + k) for k in keep)

    def outside(node) -> bool:
        stack = node.meta.get("nn_module_stack") or {}
        return not any(matches(str(path)) for path, _ in stack.values())

    return outside
