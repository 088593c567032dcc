"""Core ML compression with coremltools.optimize: linear int8 weights, 4/6/8-bit palettization."""

from __future__ import annotations

from pathlib import Path

from ..._lazy import require
from .._quant import QuantOptions, QuantResult


def quantize(src: Path, dest_dir: Path, mode: str, calib: list[dict] | None, opts: QuantOptions) -> QuantResult:
    ct = require("coremltools", "Core ML")
    import coremltools.optimize.coreml as cto

    model = ct.models.MLModel(str(src), skip_model_load=True)
    if mode == "int8-weights":
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
        for name in opts.keep_float:
            config.set_op_name(name, None)
        out = cto.linear_quantize_weights(model, config=config)
        note = "linear symmetric int8 weights (coremltools.optimize)"
    elif mode == "int4-weights":
        config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=4))
        out = cto.palettize_weights(model, config=config)
        note = "4-bit k-means palettization (coremltools.optimize)"
    else:  # pragma: no cover
        raise ValueError(mode)
    dest = dest_dir / "model.mlpackage"
    out.save(str(dest))
    return QuantResult(dest, [note], list(opts.keep_float))
