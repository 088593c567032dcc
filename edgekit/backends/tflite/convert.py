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

import numpy as np

from ..._errors import ConversionError
from ..._lazy import require
from ..._types import Model
from .._common import ConvertContext, fixed_axes_note, static_example
from ._prepare import output_shapes, prepare_for_onnx2tf


def _fixed_note(model: Model, ctx: ConvertContext | None = None) -> list[str]:
    if ctx is not None and ctx.buckets:  # every bucketed axis has a signature per size
        return fixed_axes_note(model, "LiteRT needs static shapes", skip=set(ctx.buckets))
    return fixed_axes_note(model, "LiteRT needs static shapes")


def _no_buckets(ctx: ConvertContext, route: str) -> None:
    if ctx.buckets:
        raise ConversionError("tflite", f"shape buckets ({', '.join(ctx.buckets)}) need the litert-torch route: "
                                        f"{route} writes one signature only",
                              "convert from the torch model (a Hugging Face folder, .pt2, module:factory) with "
                              "litert-torch installed, or drop --shape-buckets for LiteRT")


@contextlib.contextmanager
def _quiet():
    """litert-torch and onnx2tf print pages of progress; keep them for errors only."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        yield buf


def _from_torch(model: Model, dest: Path, buckets: dict[str, list[int]] | None = None) -> list[str]:
    """One signature at the run's sizes; with ``buckets``, one signature per bucket (named by
    ``_buckets.key``) in one file, the weights stored once and shared by every signature."""
    litert_torch = require("litert_torch", "torch to TFLite")
    if not buckets:
        with _quiet():
            litert_torch.convert(model.module, static_example(model)).export(str(dest))
        return []
    from ..._buckets import combos, key

    every = combos(buckets)
    converter = litert_torch.Converter()
    for dims in every:
        converter.signature(key(dims), model.module, static_example(model, dims))
    with _quiet():
        converter.convert().export(str(dest))
    return [f"one signature per shape bucket ({', '.join(key(d) for d in every)}), sharing the weights"]


@contextlib.contextmanager
def _no_downloads():
    """onnx2tf fetches 20 sample images from GitHub when every input is 4D with 3 channels last
    (at most 20 in the batch), to feed its own check run: a ConnectionError offline. It is handed
    fixed random images of the same shape instead (they only feed that check, not the file)."""
    import importlib

    module = importlib.import_module("onnx2tf.onnx2tf")
    original = module.download_test_image_data
    module.download_test_image_data = lambda: np.random.default_rng(0).random((20, 128, 128, 3), np.float32)
    try:
        yield
    finally:
        module.download_test_image_data = original


# written by onnx2tf as elementary ops: LiteRT has no builtin for them (Erf: GELU without Flex ops)
_PSEUDO = ("erf", "asin", "acos", "atan")  # lower case: onnx2tf.convert() compares them so (its CLI lowers them)


def _onnx2tf_kwargs(model: Model, layout: str) -> dict:
    """onnx2tf's flags. ``layout="onnx"`` keeps every input's shape exactly as in ONNX (-kat), so
    no tensor is turned channels-last and outputs keep ONNX's layout too; ``"tf"`` is onnx2tf's
    own NHWC conversion, keeping only 3-5D inputs channels-first (-k)."""
    shapes = [f"{s.name}:{','.join(map(str, s.concrete(model.dims)))}" for s in model.signature.inputs]
    kwargs = {"overwrite_input_shape": shapes or None}
    names = [s.name for s in model.signature.inputs]
    if layout == "onnx":
        kwargs["keep_shape_absolutely_input_names"] = names or None
    else:
        kwargs["keep_ncw_or_nchw_or_ncdhw_input_names"] = [
            s.name for s in model.signature.inputs if len(s.shape) in (3, 4, 5)] or None
    return kwargs


def _from_onnx(model: Model, onnx_path: Path, dest: Path, precision: str, layout: str) -> list[str]:
    onnx2tf = require("onnx2tf", "ONNX to TFLite")
    with tempfile.TemporaryDirectory(prefix="edgekit-onnx2tf-") as tmp, _quiet() as log, _no_downloads():
        prepared, done = prepare_for_onnx2tf(model, onnx_path, Path(tmp))
        try:
            onnx2tf.convert(
                input_onnx_file_path=str(prepared),
                output_folder_path=str(Path(tmp) / "out"),
                copy_onnx_input_output_names_to_tflite=True,
                disable_strict_mode=True,             # -dsm
                replace_to_pseudo_operators=list(_PSEUDO),  # -rtpo: ops LiteRT lacks, as elementary ops
                non_verbose=True,
                **_onnx2tf_kwargs(model, layout),
            )
        except SystemExit as exc:  # onnx2tf ends some failures with sys.exit(1): never let it end edgekit
            said = [ln.strip() for ln in log.getvalue().splitlines() if ln.strip()][-3:]
            raise ConversionError("tflite", f"onnx2tf stopped (exit {exc.code}): {' | '.join(said)[:400] or 'no message'}",
                                  "try the other layout (--route), other input sizes (--shape), or convert from the "
                                  "torch model with litert-torch; the converters' log has onnx2tf's output") from None
        # onnx2tf names its files after the input file: <stem>_float32.tflite, <stem>_float16.tflite
        kind = "float16" if precision == "fp16" else "float32"
        found = sorted((Path(tmp) / "out").glob(f"*_{kind}.tflite"))
        if len(found) != 1:
            every = sorted(p.name for p in (Path(tmp) / "out").glob("*.tflite"))
            raise ConversionError("tflite", f"onnx2tf produced no single *_{kind}.tflite (found {every})")
        shutil.move(str(found[0]), dest)
        _refuse_flex(dest)
        done += _moved_outputs(dest, output_shapes(prepared))
    return done


def _float16_weights(onnx_path: Path) -> bool:
    """Whether the ONNX stores weights in float16 (initializers or Constant values, subgraphs too):
    a ``model.half()`` export, or a float16 model with float32 inputs and outputs."""
    onnx = require("onnx", "ONNX to TFLite")
    f16 = onnx.TensorProto.FLOAT16

    def has(graph) -> bool:
        if any(t.data_type == f16 for t in graph.initializer):
            return True
        attrs = [a for node in graph.node for a in node.attribute]
        return any(a.t.data_type == f16 for a in attrs if a.HasField("t")) or any(
            has(g) for a in attrs for g in ([a.g] if a.HasField("g") else list(a.graphs)))

    return has(onnx.load(str(onnx_path), load_external_data=False).graph)


def _keep_float16(dest: Path) -> list[str]:
    """A float16 source's weights, which onnx2tf writes as float32 (its graph is computed in
    float32), stored as float16 again: exactly the source's values, a DEQUANTIZE to float32 each
    when the model loads (LiteRT's own float16-weight form), so the file is about the source's
    size. The float32 constants that are not float16 values (folded ones) stay float32."""
    from .compact import keep_float16

    done = keep_float16(dest)
    if not done.fp16_constants:
        return []
    return [f"float16 weights kept as in the source ({done.fp16_constants} constants stored as float16, "
            f"dequantized to float32 when the model loads; values exact, compute float32: "
            f"{done.bytes_before / 1e6:.2f} -> {done.bytes_after / 1e6:.2f} MB)"]


def _moved_outputs(path: Path, want: dict[str, tuple[int, ...]]) -> list[str]:
    """A note for each output onnx2tf handed back in another layout than ONNX's (a 3D to 5D output
    channels-last, which parity compares transposed back; any other change fails parity, and the
    next route is tried)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    if interpreter.get_signature_list():
        details = interpreter.get_signature_runner().get_output_details()
    else:  # a file without a signature (large graphs): the tensors' own names
        details = {d["name"]: d for d in interpreter.get_output_details()}
    moved = [f"{name} {[int(x) for x in d['shape']]} (ONNX: {list(want[name])})"
             for name, d in details.items() if name in want and tuple(int(x) for x in d["shape"]) != want[name]]
    return [f"output(s) in another layout than the source's: {', '.join(moved)}; transpose them on the "
            "device (0, 2, 1 for NWC; 0, 3, 1, 2 for NHWC; 0, 4, 1, 2, 3 for NDHWC)"] if moved else []


def _refuse_flex(path: Path) -> None:
    """A file with Select-TF (Flex) ops runs only in a full TensorFlow build: not on a device."""
    data = path.read_bytes()
    if b"Flex" not in data:
        return
    import re

    ops = sorted({m.decode() for m in re.findall(rb"Flex[A-Z][A-Za-z0-9]+", data)})
    if ops:
        raise ConversionError("tflite", f"onnx2tf wrote Select-TF ops {ops}, which LiteRT runs only with the "
                                        "Flex delegate (not on a device)",
                              "rewrite those ops in the ONNX model with ones LiteRT has (a Flex op usually means an "
                              "unsupported element type or a non-constant axis), or convert from the torch model "
                              "with litert-torch")


def copy_tflite(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: the source is already a .tflite file."""
    _no_buckets(ctx, "copying a .tflite")
    dest = dest_dir / "model.tflite"
    shutil.copyfile(model.path, dest)
    return dest, ["copied: the source is already a .tflite file"]


def from_keras(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: TensorFlow's TFLiteConverter from the Keras model."""
    _no_buckets(ctx, "TFLiteConverter")
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
    notes = _from_torch(model, dest, ctx.buckets)
    return dest, _fixed_note(model, ctx) + ["litert-torch from the torch graph", *notes]


def from_onnx_torch(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: onnx2torch's torch graph of the ONNX source, then litert-torch (where onnx2tf's fails)."""
    from .._onnx2torch import to_torch

    _no_buckets(ctx, "onnx2torch")  # its graph is traced at one shape
    dest, notes = from_torch(to_torch(model, model.onnx_path, "tflite", ctx.example), dest_dir, precision, ctx)
    return dest, ["torch graph from the ONNX by onnx2torch", *notes]


def from_onnx(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext,
              layout: str = "tf") -> tuple[Path, list[str]]:
    """Route: onnx2tf from the run's fp32 ONNX, keeping ONNX's layout (``layout="onnx"``) or
    converting to NHWC (``"tf"``, onnx2tf's default)."""
    from ..onnxruntime.convert import ensure_onnx

    _no_buckets(ctx, "onnx2tf")
    dest = dest_dir / "model.tflite"
    onnx_path = ensure_onnx(model, ctx)
    done = _from_onnx(model, onnx_path, dest, precision, layout)
    kept = _keep_float16(dest) if precision == "fp32" and _float16_weights(onnx_path) else []
    how = "every input's shape kept (-kat)" if layout == "onnx" else "NHWC"
    prep = f"; {'; '.join(done)}" if done else ""
    return dest, _fixed_note(model) + [f"onnx2tf from ONNX ({how}; -dsm -rtpo {','.join(_PSEUDO)}: no Flex ops{prep})",
                                       *kept]
