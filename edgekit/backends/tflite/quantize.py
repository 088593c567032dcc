"""LiteRT quantization with ai-edge-quantizer (LiteRT's own quantizer), from the fp32 .tflite."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..._lazy import require
from .._quant import QuantOptions, QuantResult, RepairJob, clear

GPTQ_SAMPLES = 64  # more gave nothing on MiniLM (256: same cosine within 0.0001) and cost time


def _signature_inputs(src: Path, feeds: dict | None = None) -> tuple[str, list[str]]:
    """The signature samples go to: the first, or (a file with one signature per shape bucket)
    the one whose inputs have the shapes of ``feeds``."""
    interp = require("ai_edge_litert.interpreter", "LiteRT").Interpreter(model_path=str(src))
    sigs = interp.get_signature_list()
    key = next(iter(sigs))
    if feeds is not None and len(sigs) > 1:
        for k in sigs:
            details = interp.get_signature_runner(k).get_input_details()
            if all(n in feeds and tuple(d["shape"]) == tuple(feeds[n].shape) for n, d in details.items()):
                key = k
                break
    return key, list(sigs[key]["inputs"])


def quantize(src: Path, dest_dir: Path, mode: str, calib: list[dict] | None, opts: QuantOptions,
             calibration=None) -> QuantResult:
    """``calibration``: an earlier calibration result covering this recipe's tensors, reused."""
    return _export(*_build(src, mode, calib, opts, calibration), dest_dir, opts)


def _export(qt, calibration, notes: list[str], dest_dir: Path, opts: QuantOptions) -> QuantResult:
    from .compact import compact

    dest = dest_dir / "model.tflite"
    qt.quantize(calibration).export_model(str(dest), overwrite=True)
    return QuantResult(dest, [*notes, compact(dest, keep_names=opts.keep_names).note()], list(opts.keep_float))


def _build(src: Path, mode: str, calib: list[dict] | None, opts: QuantOptions, calibration=None):
    """The quantizer with its recipe, calibrated: (quantizer, calibration result, notes)."""
    require("ai_edge_quantizer", "LiteRT quantization")
    from ai_edge_quantizer import quantizer, recipe

    from .compact import widen_float16

    weights = widen_float16(src) or str(src)  # float16 weights (a float16 source's) read as float32, to quantize

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

        qt = quantizer.Quantizer(weights, make(algorithm_key=AlgorithmName.GPTQ))
        qt.add_dynamic_config(".*", "EMBEDDING_LOOKUP", 8, qtyping.QuantGranularity.CHANNELWISE,
                              AlgorithmName.MIN_MAX_UNIFORM_QUANT)
        calib = {k: v[:GPTQ_SAMPLES] for k, v in calib.items()} if isinstance(calib, dict) else calib[:GPTQ_SAMPLES]
        note += f"; weights rounded by GPTQ on {_count(calib)} calibration samples"
    elif mode in ("static-int8", "mixed") and opts.integer_ops:  # the repair's narrower recipe
        qt = quantizer.Quantizer(weights, [])
        for op in opts.integer_ops:
            qt.add_static_config(".*", op, 8, 8)
        qt.add_dynamic_config(".*", "EMBEDDING_LOOKUP", 8)  # int8 tables: the lookup needs no activation scale
        for name in opts.dynamic_layers:  # the sensitive ones: int8 weights, activations quantized per run
            qt.add_dynamic_config(name, "FULLY_CONNECTED", 8)
        note = (f"int8 weights and activations in {', '.join(opts.integer_ops)}"
                + (f" ({len(opts.dynamic_layers)} of them with run-time (dynamic-range) activations)"
                   if opts.dynamic_layers else "") + "; int8 embedding tables; every other op float")
    else:
        qt = quantizer.Quantizer(weights, make())
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
    result = calibration
    if qt.need_calibration and calibration is None:  # samples arrive keyed and typed for this .tflite's signature
        # a dict: signature key -> its samples (one signature per shape bucket)
        result = qt.calibrate(calib if isinstance(calib, dict) else {_signature_inputs(src)[0]: calib})
        if not gptq:
            notes.append(f"{_count(calib)} calibration samples")
    return qt, result, notes


def _count(calib) -> str:
    """'300', or '120 over 4 signatures' for calibration samples per signature."""
    if isinstance(calib, dict):
        return f"{sum(len(v) for v in calib.values())} (over {len(calib)} signatures: {', '.join(f'{k} {len(v)}' for k, v in calib.items())})"
    return str(len(calib))


WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


def repair_with(job: RepairJob, opts: QuantOptions, *, first_drop: float) -> tuple[QuantResult, float]:
    """Full-integer int8 lost more than ``job.max_drop``: find what to keep in float, in two steps.

    1. Only the weight layers (fully connected, convolutions) int8, every other op float. In a
       transformer the ops that break under per-tensor int8 are not weight layers: the attention
       mask's select with float-min constants, the LayerNorm arithmetic, residual adds with
       outlier channels.
    2. Still too lossy: rank the fully connected layers by the error each adds (ai-edge-quantizer's
       validate: cosine of every tensor against the float model, on tuning samples; a layer's
       error minus its inputs') and give the worst float activations, quantized per run
       (dynamic range: int8 weights still), doubling their number until the drop is within
       ``max_drop``, up to half of them; past that the variant is reported as failing.
    """
    src, dest_dir, mode, calib, baseline, max_drop = (job.src, job.dest_dir, job.mode, job.calib, job.baseline,
                                                      job.max_drop)
    narrowed = replace(opts, integer_ops=WEIGHT_OPS)
    qt, calibration, notes = _build(src, mode, calib, narrowed)  # calibrated once; the search below reuses it
    result = _export(qt, calibration, notes, dest_dir, narrowed)
    value = job.value_of(result.path)
    note = (f"repair: drop {first_drop:.2f} > {max_drop} points on the tuning split with every op int8; "
            f"weight layers only int8, other ops float: drop {baseline - value:.2f}")
    kept: list[str] = []
    if baseline - value > max_drop:
        ranked = _rank_fully_connected(src, qt, job.tune)
        limit = max(1, len(ranked) // 2)
        k = max(1, len(ranked) // 16)
        while True:
            kept = ranked[:k]
            clear(dest_dir)
            result = quantize(src, dest_dir, mode, calib, replace(narrowed, dynamic_layers=kept), calibration)
            value = job.value_of(result.path)
            if baseline - value <= max_drop or k >= limit:
                break
            k = min(limit, 2 * k)
        note += (f"; then gave the {k} most sensitive of {len(ranked)} fully connected layers run-time "
                 f"activations: drop {baseline - value:.2f}")
    result.notes.append(note)
    result.kept_float = [*opts.keep_float, *kept]
    return result, value


def _rank_fully_connected(src: Path, qt, tune: list[dict]) -> list[str]:
    """Fully connected layers' output tensor names (escaped as regexes), the most error-adding first,
    in the model ``qt`` (a quantizer that has quantized) makes."""
    import re

    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fu
    from ai_edge_quantizer.utils import validation_utils as vu

    key, _ = _signature_inputs(src, tune[0])
    res = qt.validate({key: tune[:4]}, error_metrics=[vu.ValidationErrorMetric.COSINE_SIMILARITY])
    consts = set(res.get_signature_comparison_result(key).constant_tensors)
    err = {name: 1.0 - next(iter(v.values())) for name, v in res.get_all_tensor_results().items()}
    model = fu.read_model(str(src))
    graph = model.subgraphs[next((d.subgraphIndex for d in model.signatureDefs or []
                                  if (d.signatureKey.decode() if isinstance(d.signatureKey, bytes) else d.signatureKey)
                                  == key), 0)]  # the tuning samples' signature (one per shape bucket)
    codes = {qtyping.BuiltinOperator.FULLY_CONNECTED}

    def name(i: int) -> str:
        n = graph.tensors[i].name
        return n.decode() if isinstance(n, bytes) else n

    added = []
    for op in graph.operators:
        if model.operatorCodes[op.opcodeIndex].builtinCode not in codes:
            continue
        outs = [name(i) for i in op.outputs if i >= 0]
        ins = [name(i) for i in op.inputs if i >= 0 and name(i) not in consts]
        added.append((max(err.get(n, 0.0) for n in outs) - max((err.get(n, 0.0) for n in ins), default=0.0),
                      re.escape(outs[0])))
    return [n for _, n in sorted(added, reverse=True)]
