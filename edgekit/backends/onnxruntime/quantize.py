"""ONNX Runtime quantization: QDQ static (per-channel, with ORT's pre-processing), dynamic, int4 weights.

Static int8 quantizes the layers that carry weights (Conv, Gemm, MatMul with an
initializer) and the large lookup tables (word and position embeddings, gathered as int8
rows). Activation-by-activation MatMuls and Adds stay float: quantizing
the attention mask's large negative values is what wrecks transformers (cosine
0.4 with Optimum's defaults here).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from pathlib import Path

from ..._lazy import require
from .._quant import QuantOptions, QuantResult

WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
RANKS_DYNAMIC = True  # rank_layers ranks dynamic-int8 artifacts too (the error each layer adds)


def int8_settings(opts: QuantOptions) -> dict:
    """ONNX Runtime int8 weight settings for the CPU that will run the artifact.

    x86 without VNNI or AMX (AVX2, or AVX-512 without VNNI) multiplies u8 activations by s8
    weights into int16 pairs that saturate (``vpmaddubsw``). Its two cures, measured on MiniLM
    dynamic int8 on an AVX2-only CPU (benchmarks/int8_isa.py, docs/benchmarks.md): u8 weights
    (ORT's u8 x u8 kernels widen to int16 before multiplying: no saturation, all 8 bits) 0.9915
    mean cosine; ``reduce_range`` (7-bit s8 weights) 0.9898; full-range s8 0.9896. So u8 there.
    VNNI, AMX and Arm's dot product accumulate in int32: full-range s8.
    ``opts.ort`` (benchmarks, tests) overrides the choice.
    """
    if opts.ort is not None:
        return {"weight_type": "s8", "reduce_range": False, "per_channel": opts.per_channel, "why": "given", **opts.ort}
    from ..._cpu import host

    cpu = opts.cpu or host()
    if cpu.saturates_u8s8:
        return {"weight_type": "u8", "reduce_range": False, "per_channel": opts.per_channel,
                "why": f"{cpu.model}: int8 dot product is {cpu.int8_dot}; u8 x u8 kernels do not saturate"}
    return {"weight_type": "s8", "reduce_range": False, "per_channel": opts.per_channel,
            "why": f"{cpu.model}: int8 dot product is {cpu.int8_dot}, no saturation; full-range weights"}


def _settings_note(s: dict) -> str:
    rng = "7-bit (reduce_range)" if s["reduce_range"] else "full-range"
    return (f"{rng} {s['weight_type']} weights, {'per-channel' if s['per_channel'] else 'per-tensor'}, "
            f"for {s['why']}")


def _preprocess(src: Path, dest: Path) -> Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(src), str(dest), skip_symbolic_shape=False)
    except Exception:  # symbolic shape inference fails on some dynamo exports: ONNX shape inference then
        quant_pre_process(str(src), str(dest), skip_symbolic_shape=True)
    return dest


def _graph(path: Path):
    """The model's structure (initializer shapes and nodes; weights left on disk)."""
    return require("onnx").load(str(path), load_external_data=False)


def weight_nodes(proto) -> list[str]:
    inits = {i.name for i in proto.graph.initializer}
    return [n.name for n in proto.graph.node
            if n.op_type in WEIGHT_OPS and len(n.input) > 1 and n.input[1] in inits]


def table_lookups(proto, min_elements: int = 1 << 16) -> list[str]:
    """Gathers from a large constant table (word embeddings). Quantized as QDQ with the same
    parameters on both sides, ORT drops the pair and gathers int8 rows, dequantizing only
    those: the table is stored in int8 and never dequantized whole."""
    sizes = {i.name: math.prod(i.dims) for i in proto.graph.initializer}
    return [n.name for n in proto.graph.node
            if n.op_type == "Gather" and sizes.get(n.input[0], 0) >= min_elements]


class _Reader:
    """ORT's CalibrationDataReader protocol (get_next), iterable too (qdq_loss_debug iterates)."""

    def __init__(self, samples: list[dict]):
        self._samples = samples
        self._it = iter(samples)

    def __iter__(self):
        return iter(self._samples)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - ORT calls it for some calibrators
        pass


@contextlib.contextmanager
def _scratch_cwd(folder: Path):
    """ORT's quantization tools write temporary files (symbolic shape inference, external data of
    augmented models) into the current directory: keep them in a scratch folder, removed after."""
    scratch = Path(tempfile.mkdtemp(prefix=".ort-", dir=folder))
    old = os.getcwd()
    os.chdir(scratch)
    try:
        yield
    finally:
        os.chdir(old)
        shutil.rmtree(scratch, ignore_errors=True)


def quantize(src: Path, dest_dir: Path, mode: str, calib: list[dict] | None, opts: QuantOptions) -> QuantResult:
    src, dest_dir = src.resolve(), dest_dir.resolve()
    with _scratch_cwd(dest_dir):
        return _quantize(src, dest_dir, mode, calib, opts)


def _quantize(src: Path, dest_dir: Path, mode: str, calib: list[dict] | None, opts: QuantOptions) -> QuantResult:
    q = require("onnxruntime.quantization", "ONNX Runtime quantization")
    dest = dest_dir / "model.onnx"
    scratch = dest_dir / ".prep.onnx"
    pre = _preprocess(src, scratch)
    notes = []
    isa = int8_settings(opts)
    wtype = {"s8": q.QuantType.QInt8, "u8": q.QuantType.QUInt8}[isa["weight_type"]]
    try:
        if mode == "dynamic-int8":
            q.quantize_dynamic(str(pre), str(dest), weight_type=wtype, per_channel=isa["per_channel"],
                               reduce_range=isa["reduce_range"], nodes_to_exclude=opts.keep_float or None)
            notes.append("int8 weights; activations quantized at run time (MatMulInteger/DynamicQuantizeLinear)")
            notes.append(f"ISA: {_settings_note(isa)}")
        elif mode in ("static-int8", "mixed"):
            method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
                      "percentile": q.CalibrationMethod.Percentile}[opts.calibration_method]
            graph, keep = _graph(pre), set(opts.keep_float)
            nodes = [n for n in weight_nodes(graph) if n not in keep]
            tables = [n for n in table_lookups(graph) if n not in keep]
            q.quantize_static(str(pre), str(dest), _Reader(calib), quant_format=q.QuantFormat.QDQ,
                              per_channel=isa["per_channel"], reduce_range=isa["reduce_range"],
                              activation_type=q.QuantType.QUInt8, weight_type=wtype, nodes_to_quantize=nodes + tables,
                              op_types_to_quantize=[*WEIGHT_OPS, "Gather"], calibrate_method=method,
                              extra_options={"CalibMovingAverage": opts.calibration_method == "minmax"})
            notes.append(f"QDQ, per-channel int8 weights, uint8 activations, {opts.calibration_method} calibration "
                         f"on {len(calib)} samples; {len(nodes)} weight layers quantized")
            notes.append(f"ISA: {_settings_note(isa)}")
        elif mode == "int4-weights":
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

            onnx = require("onnx")
            quant = MatMulNBitsQuantizer(onnx.load(str(pre)), block_size=32, is_symmetric=True,
                                         nodes_to_exclude=opts.keep_float or None)
            quant.process()
            quant.model.save_model_to_file(str(dest), use_external_data_format=False)
            notes.append("4-bit blockwise weights (MatMulNBits, block 32) for MatMul layers")
        else:  # pragma: no cover - refused up front by the support table
            raise ValueError(mode)
    finally:
        for p in dest_dir.glob(".prep*"):
            p.unlink()
    return QuantResult(dest, notes, list(opts.keep_float))


def rank_layers(src: Path, quantized: Path, samples: list[dict], opts: QuantOptions) -> list[str]:
    """Quantized layers, most sensitive first: lowest SQNR of their input's own quantization."""
    src, quantized = src.resolve(), quantized.resolve()
    with _scratch_cwd(quantized.parent):
        return _rank_layers(src, quantized, samples, opts)


def _relative_error(q: list, f: list) -> float:
    import numpy as np

    num = sum(float(np.sum((np.asarray(a, np.float64) - b) ** 2)) for a, b in zip(q, f, strict=True))
    den = sum(float(np.sum(np.asarray(b, np.float64) ** 2)) for b in f)
    return math.sqrt(num / max(den, 1e-30))


def _added_error(proto, fa: dict, qa: dict, candidates: set[str]) -> list[tuple[float, str]]:
    """Per layer, the relative error of its output minus that of its input: what the layer adds.
    Tensor names survive quantization (the quantized graph writes each layer's original output),
    so fp32 and quantized activations pair up by name."""
    scored = []
    for node in proto.graph.node:
        if node.name not in candidates:
            continue
        out, inp = node.output[0], node.input[0]
        if out not in fa or out not in qa:
            scored.append((0.0, node.name))
            continue
        before = _relative_error(qa[inp], fa[inp]) if inp in fa and inp in qa else 0.0
        scored.append((_relative_error(qa[out], fa[out]) - before, node.name))
    return scored


def _rank_layers(src: Path, quantized: Path, samples: list[dict], opts: QuantOptions) -> list[str]:
    """Static (QDQ): lowest SQNR of each layer's input quantization first. Dynamic (no QDQ pairs to
    match): the layers that add the most error to their output first."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    work = quantized.parent / ".rank"
    work.mkdir(exist_ok=True)
    try:
        pre = _preprocess(src, work / "pre.onnx")
        modify_model_output_intermediate_tensors(str(pre), str(work / "f.onnx"))
        modify_model_output_intermediate_tensors(str(quantized), str(work / "q.onnx"))
        fa = collect_activations(str(work / "f.onnx"), _Reader(samples))
        qa = collect_activations(str(work / "q.onnx"), _Reader(samples))
        proto = _graph(pre)
        candidates = set(weight_nodes(proto)) - set(opts.keep_float)
        if any(n.op_type == "DynamicQuantizeLinear" for n in _graph(quantized).graph.node):
            return [name for _, name in sorted(_added_error(proto, fa, qa, candidates), reverse=True)]
        errors = compute_activation_error(create_activation_matching(qa, fa))
        scored = []
        for node in proto.graph.node:
            if node.name in candidates:
                sqnr = errors.get(node.input[0], {}).get("qdq_err")
                scored.append((float("inf") if sqnr is None else float(sqnr), node.name))
        return [name for _, name in sorted(scored)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
