"""ONNX (or .tflite) to OpenVINO IR: fp32 unless fp16 is asked."""

from __future__ import annotations

from pathlib import Path

from ..._errors import ConversionError
from ..._lazy import require
from ..._types import Model
from .._common import ConvertContext


def convert(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    ov = require("openvino", "OpenVINO IR")
    if model.format == "tflite":
        source = model.path
    elif model.format == "keras":  # OpenVINO reads Keras 3 through a TensorFlow SavedModel
        source = (ctx.workdir or dest_dir) / ".keras-savedmodel"
        if not source.exists():
            model.keras.export(str(source), format="tf_saved_model", verbose=False)
    else:
        from ..onnxruntime.convert import ensure_onnx

        source = ensure_onnx(model, ctx)
    try:
        ov_model = ov.convert_model(source if not isinstance(source, Path) else str(source))
    except Exception as exc:
        raise ConversionError("openvino", f"OpenVINO cannot read the model: {exc}") from exc
    dest = dest_dir / "model.xml"
    ov.save_model(ov_model, str(dest), compress_to_fp16=precision == "fp16")
    notes = ["weights compressed to fp16"] if precision == "fp16" else []
    return dest, notes
