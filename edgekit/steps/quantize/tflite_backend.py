"""LiteRT quantization with ai-edge-quantizer (LiteRT's own quantizer), from the fp32 .tflite."""

from __future__ import annotations

from pathlib import Path

from ..._lazy import require
from ._common import QuantOptions, QuantResult

GPTQ_SAMPLES = 64  # more gave nothing on MiniLM (256: same cosine within 0.0001) and cost time


def _signature_inputs(src: Path) -> tuple[str, list[str]]:
    interp = require("ai_edge_litert.interpreter", "LiteRT").Interpreter(model_path=str(src))
    sigs = interp.get_signature_list()
    key = next(iter(sigs))
    return key, list(sigs[key]["inputs"])


def quantize(src: Path, dest_dir: Path, mode: str, calib: list[dict] | None, opts: QuantOptions) -> QuantResult:
    aeq = require("ai_edge_quantizer", "LiteRT quantization")
    from ai_edge_quantizer import quantizer, recipe

    recipes = {
        "dynamic-int8": (recipe.dynamic_wi8_afp32, "dynamic range: int8 weights, activations quantized at run time"),
        "int8-weights": (recipe.weight_only_wi8_afp32, "int8 weights, float compute"),
        "int4-weights": (recipe.dynamic_wi4_afp32, "4-bit weights, activations quantized at run time"),
        "static-int8": (recipe.static_wi8_ai8, "full integer: int8 weights and activations"),
        "mixed": (recipe.static_wi8_ai8, "full integer with float layers kept"),
    }
    make, note = recipes[mode]
    gptq = mode == "dynamic-int8" and bool(calib)
    if gptq:
        # GPTQ (ai-edge-quantizer's): weights rounded to undo each other's error, weighted by the
        # layer's real inputs. Same int8 format, size and kernels; on MiniLM mean cosine 0.9974 -> 0.9977.
        # Embedding lookups have no input activations to weigh: plain min-max there.
        from ai_edge_quantizer import qtyping
        from ai_edge_quantizer.algorithm_manager import AlgorithmName

        qt = quantizer.Quantizer(str(src), make(algorithm_key=AlgorithmName.GPTQ))
        qt.add_dynamic_config(".*", "EMBEDDING_LOOKUP", 8, qtyping.QuantGranularity.CHANNELWISE,
                              AlgorithmName.MIN_MAX_UNIFORM_QUANT)
        calib = calib[:GPTQ_SAMPLES]
        note += f"; weights rounded by GPTQ on {len(calib)} calibration samples"
    else:
        qt = quantizer.Quantizer(str(src), make())
    notes = [note]
    if opts.keep_float:
        for name in opts.keep_float:  # regex on tensor names: these layers stay float
            qt.update_quantization_recipe(regex=name, operation_name="*", algorithm_key="no_quantize")
        notes.append(f"{len(opts.keep_float)} layers kept in float")
    if mode in ("static-int8", "mixed") and not opts.int8_io:  # float inputs and outputs unless asked
        for io in ("INPUT", "OUTPUT"):
            qt.update_quantization_recipe(regex=".*", operation_name=io, algorithm_key="no_quantize")
    elif mode in ("static-int8", "mixed"):
        notes.append("int8 inputs and outputs (scale and zero point in the model's tensor details)")
    result = None
    if qt.need_calibration:  # samples arrive keyed and typed for this .tflite's signature
        key, _ = _signature_inputs(src)
        result = qt.calibrate({key: calib})
        if not gptq:
            notes.append(f"{len(calib)} calibration samples")
    dest = dest_dir / "model.tflite"
    qt.quantize(result).export_model(str(dest), overwrite=True)
    del aeq
    return QuantResult(dest, notes, list(opts.keep_float))
