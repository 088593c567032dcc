"""Any source to ONNX: torch.onnx.export (dynamo, TorchScript exporter as fallback), then checks."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from ..._errors import ConversionError
from ..._lazy import require
from ..._types import Model
from .._common import ConvertContext

LARGE = 1_800_000_000  # bytes of weights past which ONNX needs external data (protobuf's 2 GB cap)


def _dynamic_shapes(model: Model, torch):
    dims: dict[str, object] = {}
    per_input = []
    for spec in model.signature.inputs:
        axes = {}
        for i, axis in spec.dynamic_axes.items():
            if axis not in dims:
                dims[axis] = torch.export.Dim(axis, max=8192 if axis != "batch" else 1024)
            axes[i] = dims[axis]
        per_input.append(axes or None)
    return tuple(per_input) if any(per_input) else None


def export_torch(model: Model, dest: Path, ctx: ConvertContext) -> list[str]:
    """torch -> ONNX at a fixed opset; returns notes."""
    torch = require("torch")
    require("onnxscript", "the torch.onnx exporter")
    module, example = model.module, tuple(model.meta["example"])
    in_names = [s.name for s in model.signature.inputs]
    out_names = [s.name for s in model.signature.outputs]
    weights = sum(p.numel() * p.element_size() for p in module.parameters())
    notes: list[str] = []
    if model.format == "torchscript":  # the dynamo exporter cannot take TorchScript
        dynamic_axes = {s.name: s.dynamic_axes for s in model.signature.inputs + model.signature.outputs if s.dynamic_axes}
        torch.onnx.export(model.meta["scripted"], example, str(dest), dynamo=False, opset_version=ctx.opset,
                          input_names=in_names, output_names=out_names, dynamic_axes=dynamic_axes or None)
        return ["TorchScript source: used the TorchScript exporter"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(dest), dynamo=True, opset_version=ctx.opset,
                              input_names=in_names, output_names=out_names,
                              dynamic_shapes=_dynamic_shapes(model, torch),
                              external_data=weights > LARGE, verbose=False, report=False)
    except Exception as exc:  # the dynamo exporter failed: the TorchScript exporter is the fallback
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        notes.append(f"torch.onnx dynamo exporter failed ({first}); used the TorchScript exporter")
        dynamic_axes = {s.name: s.dynamic_axes for s in model.signature.inputs + model.signature.outputs if s.dynamic_axes}
        for f in dest.parent.glob(dest.name + "*"):
            f.unlink()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, str(dest), dynamo=False, opset_version=ctx.opset,
                              input_names=in_names, output_names=out_names, dynamic_axes=dynamic_axes or None)
    return notes


def check_and_infer(path: Path, simplify: bool) -> list[str]:
    """onnx.checker, shape inference and (optionally) onnxsim, in place."""
    onnx = require("onnx")
    onnx.checker.check_model(str(path), full_check=True)
    notes = []
    external = any(path.parent.glob(path.name + ".data")) or any(path.parent.glob("*.data"))
    if not external:
        proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=False)
        stripped = _strip_node_metadata(proto)
        if stripped:
            notes.append(f"dropped the exporter's per-node metadata (stack traces, {stripped / 1e6:.2f} MB)")
        if simplify:
            onnxsim = require("onnxsim", "ONNX simplification")
            simplified, ok = onnxsim.simplify(proto)
            if ok:
                proto = simplified
                notes.append("simplified with onnxsim")
            else:
                notes.append("onnxsim could not validate the simplified model; kept the original")
        onnx.save(proto, str(path))
    return notes


def _strip_node_metadata(proto) -> int:
    """The dynamo exporter records each node's Python stack and module path (0.46 MB in MiniLM);
    no runtime reads them. Returns the bytes dropped."""
    dropped = 0
    for graph in [proto.graph, *proto.functions]:
        for node in graph.node:
            if node.metadata_props:
                dropped += sum(len(p.key) + len(p.value) for p in node.metadata_props)
                del node.metadata_props[:]
    return dropped


def to_fp16(src: Path, dest: Path) -> None:
    onnx = require("onnx")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    proto = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(proto, str(dest))


def copy_onnx(src: Path, dest: Path) -> None:
    """Copy an ONNX file and the external data files it names."""
    onnx = require("onnx")
    proto = onnx.load(str(src), load_external_data=False)
    shutil.copyfile(src, dest)
    locations = {
        e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"
    }
    for loc in locations:
        shutil.copyfile(src.parent / loc, dest.parent / loc)


def from_onnx_file(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: the source is an ONNX file (its external data copied with it)."""
    return _finish(dest_dir, precision, ctx, lambda fp32: copy_onnx(model.onnx_path, fp32) or [])


def from_torch(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: torch.onnx export of the torch module."""
    return _finish(dest_dir, precision, ctx, lambda fp32: export_torch(model, fp32, ctx))


def _finish(dest_dir: Path, precision: str, ctx: ConvertContext, make) -> tuple[Path, list[str]]:
    dest = dest_dir / "model.onnx"
    fp32 = dest if precision == "fp32" else dest_dir / "model.fp32.onnx"
    notes = list(make(fp32))
    notes += check_and_infer(fp32, ctx.simplify)
    ctx.onnx_path = fp32
    if precision == "fp16":
        to_fp16(fp32, dest)
        notes.append("fp16 weights and compute; inputs and outputs kept fp32")
        # keep the fp32 export for later converters, outside the artifact folder
        keep = (ctx.workdir or dest_dir.parent) / ".onnx-fp32"
        keep.mkdir(exist_ok=True)
        shutil.move(str(fp32), keep / "model.onnx")
        ctx.onnx_path = keep / "model.onnx"
    return dest, notes


def ensure_onnx(model: Model, ctx: ConvertContext) -> Path:
    """The fp32 ONNX of the model, exported once per run and shared by later converters."""
    ctx.used_onnx = True
    if ctx.onnx_path is not None:
        return ctx.onnx_path
    if model.onnx_path is not None:
        return model.onnx_path
    if model.module is None:
        raise ConversionError("onnx", f"no path from a {model.format} source to ONNX",
                              "give edgekit the PyTorch or ONNX form of the model")
    keep = (ctx.workdir or Path(".")) / ".onnx-fp32"
    keep.mkdir(parents=True, exist_ok=True)
    dest = keep / "model.onnx"
    ctx.notes += export_torch(model, dest, ctx)
    check_and_infer(dest, ctx.simplify)
    ctx.onnx_path = dest
    return dest
