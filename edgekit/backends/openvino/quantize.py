"""OpenVINO quantization with NNCF: static int8 (transformer preset with SmoothQuant where it
applies), accuracy-controlled repair, and weight compression (int8/int4)."""

from __future__ import annotations

from pathlib import Path

from ..._lazy import require
from .._quant import QuantOptions, QuantResult


def _save(ov, model, dest_dir: Path) -> Path:
    dest = dest_dir / "model.xml"
    ov.save_model(model, str(dest), compress_to_fp16=False)
    return dest


def _fq_inputs(model) -> set[str]:
    """Names of the layers fed by a FakeQuantize: the ones that run in int8."""
    out = set()
    for op in model.get_ops():
        if op.get_type_name() in ("MatMul", "Convolution", "GroupConvolution"):
            if any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs()):
                out.add(op.get_friendly_name())
    return out


def quantize(src: Path, dest_dir: Path, mode: str, calib: list[dict] | None, opts: QuantOptions) -> QuantResult:
    ov = require("openvino", "OpenVINO")
    nncf = require("nncf", "OpenVINO quantization (NNCF)")
    model = ov.Core().read_model(str(src))
    if mode in ("static-int8", "mixed"):
        kwargs = {"subset_size": len(calib)}
        if opts.transformer:
            kwargs["model_type"] = nncf.ModelType.TRANSFORMER
        if opts.keep_float:
            kwargs["ignored_scope"] = nncf.IgnoredScope(names=list(opts.keep_float), validate=False)
        q = nncf.quantize(model, nncf.Dataset(calib), **kwargs)
        notes = [f"NNCF post-training int8 ({'transformer preset, SmoothQuant' if opts.transformer else 'default preset'}), "
                 f"{len(calib)} calibration samples"]
    elif mode in ("dynamic-int8", "int8-weights"):
        q = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        notes = ["int8 weights (NNCF compress_weights)"]
        if mode == "dynamic-int8":
            notes.append("activations are quantized at run time by the CPU plugin's dynamic quantization")
    elif mode == "int4-weights":
        q = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT4_SYM, group_size=32, ratio=1.0,
                                  all_layers=True)
        notes = ["int4 weights (NNCF compress_weights, group 32)"]
    else:  # pragma: no cover
        raise ValueError(mode)
    return QuantResult(_save(ov, q, dest_dir), notes, list(opts.keep_float))


def repair(src: Path, dest_dir: Path, calib: list[dict], tune: list[dict], validate, max_drop: float,
           opts: QuantOptions) -> QuantResult:
    """NNCF's quantization with accuracy control: reverts the most harmful layers to float."""
    ov = require("openvino", "OpenVINO")
    nncf = require("nncf", "OpenVINO quantization (NNCF)")
    model = ov.Core().read_model(str(src))
    kwargs = {"model_type": nncf.ModelType.TRANSFORMER} if opts.transformer else {}

    def validation_fn(compiled, items) -> float:
        return validate(compiled, list(items))

    first = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib), **kwargs)
    q = nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calib), nncf.Dataset(tune), validation_fn=validation_fn,
        max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calib), **kwargs)
    kept = sorted(_fq_inputs(first) - _fq_inputs(q))
    return QuantResult(_save(ov, q, dest_dir), [
        f"NNCF quantization with accuracy control (max drop {max_drop} points on {len(tune)} tuning samples)"], kept)
