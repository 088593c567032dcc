"""ONNX (or .tflite) to OpenVINO IR: fp32 unless fp16 is asked."""

from __future__ import annotations

from pathlib import Path

from ..._errors import ConversionError
from ..._known import known
from ..._lazy import require
from ..._types import Model
from .._common import ConvertContext


def from_file(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: a file OpenVINO reads itself (.tflite)."""
    return _save(require("openvino", "OpenVINO IR"), str(model.path), dest_dir, precision)


def from_keras(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: Keras 3 through a TensorFlow SavedModel."""
    ov = require("openvino", "OpenVINO IR")
    source = (ctx.workdir or dest_dir) / ".keras-savedmodel"
    if not source.exists():
        model.keras.export(str(source), format="tf_saved_model", verbose=False)
    return _save(ov, str(source), dest_dir, precision)


def from_onnx(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext,
              static: bool = False) -> tuple[Path, list[str]]:
    """Route: the run's fp32 ONNX (the source file, or the export the ONNX target made); with
    ``static``, at the run's sizes with every ``If`` that depends on shapes only taken."""
    from ..onnxruntime.convert import ensure_onnx

    ov = require("openvino", "OpenVINO IR")
    source = ensure_onnx(model, ctx)
    onnx = require("onnx", "ONNX models")
    if static:
        if ctx.buckets:
            raise ConversionError("openvino", "shape buckets keep OpenVINO's axes dynamic; this route fixes them")
        return _static(ov, onnx, model, source, dest_dir, precision)
    if not onnx.load(str(source), load_external_data=False).functions:
        return _save(ov, str(source), dest_dir, precision)
    # OpenVINO's ONNX frontend does not expand a model's local functions (a custom-domain op the
    # model defines itself reads as an op with no conversion): inline them first
    import tempfile

    from onnx.inliner import inline_local_functions

    with tempfile.TemporaryDirectory(prefix="edgekit-inlined-") as tmp:
        inlined = Path(tmp) / "model.onnx"
        onnx.save(inline_local_functions(onnx.load(str(source))), str(inlined), save_as_external_data=True,
                  location="model.onnx.data")
        path, notes = _save(ov, str(inlined), dest_dir, precision)
    return path, [*notes, "the model's local ONNX functions inlined for OpenVINO's frontend"]


def _static(ov, onnx, model: Model, source: Path, dest_dir: Path, precision: str) -> tuple[Path, list[str]]:
    """The ONNX at the run's sizes, shape-only ``If``s taken: for a graph OpenVINO's frontend cannot
    read with dynamic axes (an ``If`` whose branches give tensors of different ranks)."""
    import tempfile

    from .._common import fixed_axes_note
    from .._onnx_static import fold_static_ifs, static_inputs

    if not any(s.dynamic_axes for s in model.signature.inputs):
        raise ConversionError("openvino", "no dynamic axis to fix: the static route is the dynamic one")
    proto = onnx.load(str(source))
    static_inputs(proto, {s.name: s.concrete(model.dims) for s in model.signature.inputs})
    taken = fold_static_ifs(onnx, proto)
    with tempfile.TemporaryDirectory(prefix="edgekit-static-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(proto, str(path), save_as_external_data=True, location="model.onnx.data")
        dest, notes = _save(ov, str(path), dest_dir, precision)
    why = "OpenVINO's ONNX frontend could not read the graph with dynamic axes"
    return dest, [*fixed_axes_note(model, why), *([f"{taken} If taken at these sizes (shape-only conditions)"]
                                                   if taken else []), *notes]


def from_onnx_rewritten(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: the run's fp32 ONNX with the ops OpenVINO's frontend lacks or converts wrongly written
    as ONNX defines them (``_rewrite.py``), axes kept dynamic unless a rewrite needs the run's
    sizes; each TopK made stable once converted. Raises where there is nothing to rewrite."""
    import tempfile

    from ..onnxruntime.convert import ensure_onnx
    from . import _rewrite

    ov = require("openvino", "OpenVINO IR")
    onnx = require("onnx", "ONNX models")
    if ctx.used_onnx and ctx.onnx_path is None and model.onnx_path is None:  # not exported twice
        raise ConversionError("openvino", "no ONNX to rewrite: the export an earlier route asked for failed")
    source = ensure_onnx(model, ctx)
    dynamic = any(s.dynamic_axes for s in model.signature.inputs) and not ctx.buckets
    sizes = {s.name: s.concrete(model.dims) for s in model.signature.inputs} if dynamic else None
    proto, done, count, fixed = _rewrite.rewritten(onnx, source, sizes)
    if not count and not _rewrite.topks(proto):
        raise ConversionError("openvino", "nothing to rewrite: the graph has no op this route writes differently "
                                          "(the ONNX route before it converted the same graph)")
    with tempfile.TemporaryDirectory(prefix="edgekit-rewritten-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(proto, str(path), save_as_external_data=True, location="model.onnx.data")
        dest, notes = _save(ov, str(path), dest_dir, precision, adjust=_rewrite.stable_topks)
    if fixed:
        from .._common import fixed_axes_note

        done = [*fixed_axes_note(model, "a rewrite OpenVINO needs here is written at static shapes"), *done]
    return dest, [*done, *notes]


def from_torch(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: OpenVINO's PyTorch frontend on the torch module, traced at the run's example inputs
    (where the model cannot go through ONNX)."""
    from .._common import static_example

    ov = require("openvino", "OpenVINO IR")
    require("torch", "PyTorch models")
    try:
        ov_model = ov.convert_model(model.module, example_input=static_example(model))
    except Exception as exc:
        raise known("openvino", exc) or ConversionError(
            "openvino", f"OpenVINO's PyTorch frontend cannot convert the model: {str(exc)[:500]}",
            "convert through ONNX instead (see the onnx route's error in the manifest's attempts)") from exc
    for port, spec in zip(ov_model.inputs, model.signature.inputs, strict=False):  # the frontend names none
        port.get_tensor().set_names({spec.name})
    for port, spec in zip(ov_model.outputs, model.signature.outputs, strict=False):
        port.get_tensor().set_names({spec.name})
    dest = dest_dir / "model.xml"
    ov.save_model(ov_model, str(dest), compress_to_fp16=precision == "fp16")
    return dest, ["OpenVINO's PyTorch frontend (the ONNX route did not pass)"] + (
        ["weights compressed to fp16"] if precision == "fp16" else [])


def _save(ov, source: str, dest_dir: Path, precision: str, adjust=None) -> tuple[Path, list[str]]:
    """Convert ``source``; ``adjust`` (the converted model -> notes) edits it before it is saved."""
    try:
        ov_model = ov.convert_model(source)
    except Exception as exc:
        # a known failure (a custom op, an op without a conversion) names the op and the fix
        raise known("openvino", exc) or ConversionError("openvino", f"OpenVINO cannot read the model: {exc}") from exc
    notes = adjust(ov_model) if adjust is not None else []
    dest = dest_dir / "model.xml"
    ov.save_model(ov_model, str(dest), compress_to_fp16=precision == "fp16")
    return dest, [*notes, *(["weights compressed to fp16"] if precision == "fp16" else [])]
