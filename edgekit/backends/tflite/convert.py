"""To TFLite: litert-torch from a torch source; onnx2tf from an ONNX-only source.

Both need static shapes, so dynamic axes are fixed at the run's sizes (a note
says so). onnx2tf gets the flags that keep Flex/Select-TF ops out of the file,
so it runs in a plain LiteRT interpreter.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from pathlib import Path

from ..._errors import ConversionError
from ..._lazy import require
from ..._types import Model
from .._common import ConvertContext, fixed_axes_note, static_example


def _fixed_note(model: Model) -> list[str]:
    return fixed_axes_note(model, "LiteRT needs static shapes")


@contextlib.contextmanager
def _quiet():
    """litert-torch and onnx2tf print pages of progress; keep them for errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        yield buf


def _from_torch(model: Model, dest: Path) -> None:
    litert_torch = require("litert_torch", "torch to TFLite")
    example = static_example(model)
    with _quiet():
        edge = litert_torch.convert(model.module, example)
        edge.export(str(dest))


def _from_onnx(model: Model, onnx_path: Path, dest: Path, precision: str) -> None:
    onnx2tf = require("onnx2tf", "ONNX to TFLite")
    shapes = [f"{s.name}:{','.join(map(str, s.concrete(model.dims)))}" for s in model.signature.inputs]
    nchw = [s.name for s in model.signature.inputs if len(s.shape) in (3, 4, 5)]
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx2tf-") as tmp, _quiet():
        onnx2tf.convert(
            input_onnx_file_path=str(onnx_path),
            output_folder_path=tmp,
            copy_onnx_input_output_names_to_tflite=True,
            overwrite_input_shape=shapes,
            keep_ncw_or_nchw_or_ncdhw_input_names=nchw or None,
            disable_strict_mode=True,             # -dsm
            replace_to_pseudo_operators=["Erf"],  # -rtpo Erf: no Flex ops for GELU
            non_verbose=True,
        )
        name = "model_float16.tflite" if precision == "fp16" else "model_float32.tflite"
        produced = Path(tmp) / name
        if not produced.is_file():
            found = sorted(p.name for p in Path(tmp).glob("*.tflite"))
            raise ConversionError("tflite", f"onnx2tf produced no {name} (found {found})")
        shutil.move(str(produced), dest)


def copy_tflite(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: the source is already a .tflite file."""
    dest = dest_dir / "model.tflite"
    shutil.copyfile(model.path, dest)
    return dest, ["copied: the source is already a .tflite file"]


def from_keras(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: TensorFlow's TFLiteConverter from the Keras model."""
    tf = require("tensorflow", "Keras to TFLite")
    dest = dest_dir / "model.tflite"
    conv = tf.lite.TFLiteConverter.from_keras_model(model.keras)
    if precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    with _quiet():
        dest.write_bytes(conv.convert())
    return dest, _fixed_note(model)


def from_torch(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: litert-torch from the torch graph (fp32)."""
    dest = dest_dir / "model.tflite"
    _from_torch(model, dest)
    return dest, _fixed_note(model) + ["litert-torch from the torch graph"]


def from_onnx(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: onnx2tf from the run's fp32 ONNX."""
    from ..onnxruntime.convert import ensure_onnx

    dest = dest_dir / "model.tflite"
    _from_onnx(model, ensure_onnx(model, ctx), dest, precision)
    return dest, _fixed_note(model) + ["onnx2tf from ONNX (-dsm -rtpo Erf: no Flex ops)"]
