"""ONNX (or .tflite) to OpenVINO IR: fp32 unless fp16 is asked."""

from __future__ import annotations

from pathlib import Path

from ..._errors import ConversionError
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


def from_onnx(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: the run's fp32 ONNX (the source file, or the export the ONNX target made)."""
    from ..onnxruntime.convert import ensure_onnx

    ov = require("openvino", "OpenVINO IR")
    return _save(ov, str(ensure_onnx(model, ctx)), dest_dir, precision)


def _save(ov, source: str, dest_dir: Path, precision: str) -> tuple[Path, list[str]]:
    try:
        ov_model = ov.convert_model(source)
    except Exception as exc:
        raise ConversionError("openvino", f"OpenVINO cannot read the model: {exc}") from exc
    dest = dest_dir / "model.xml"
    ov.save_model(ov_model, str(dest), compress_to_fp16=precision == "fp16")
    return dest, ["weights compressed to fp16"] if precision == "fp16" else []
