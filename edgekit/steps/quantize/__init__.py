"""Quantize: each target's own quantizer, refused up front where a target cannot do a mode.

The quantizer lives in its target's folder (``backends/<target>/quantize.py``), imported only
when used; the modes a target takes are in its spec (``SPEC.quantization``). A quantizer has
``quantize(src, dest_dir, mode, calib, opts) -> QuantResult`` and, for repair,
``rank_layers(...)`` (greedy: keep the most sensitive layers float), ``repair_with(...)`` (the
backend's own search, judged by edgekit on the tuning split) or ``repair(...)`` (the backend's
own accuracy control).
"""

from __future__ import annotations

from dataclasses import replace

from ..._errors import EdgekitError
from ..._registry import TARGETS, backend_module
from ...backends._quant import QuantOptions, QuantResult, RepairJob, clear

MODES = ("fp16", "dynamic-int8", "static-int8", "int8-weights", "int4-weights", "mixed")


def support(target: str, mode: str) -> str | None:
    """None where ``target`` quantizes ``mode``, else why not."""
    return TARGETS[target].quantization.get(mode, f"{target} has no {mode} quantizer")


NEEDS_DATA = ("static-int8", "mixed")
# modes whose drop on the tuning split is checked and repaired (float layers) when over --max-drop
REPAIRABLE = ("static-int8", "mixed", "dynamic-int8")


def parse_modes(text: str | list[str], targets: list[str]) -> list[tuple[str, str]]:
    """Modes for every target (``static-int8``) or for one (``tflite:dynamic-int8``), as (target, mode) pairs."""
    items = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    pairs = []
    for item in items:
        target, _, mode = item.rpartition(":")
        if mode not in MODES:
            raise EdgekitError(f"unknown quantization mode {mode!r}", f"use some of {', '.join(MODES)}, optionally as target:mode")
        if target and target not in targets:
            raise EdgekitError(f"{item!r} names target {target!r}, which is not among --to {targets}",
                               "add the target to --to, or drop the prefix")
        pairs += [(t, mode) for t in ([target] if target else targets)]
    if not pairs:
        raise EdgekitError("no quantization mode given", f"use some of {', '.join(MODES)}")
    return list(dict.fromkeys(pairs))


def check_support(pairs: list[tuple[str, str]], skip_unsupported: bool = False) -> list[dict]:
    """Refuse, before any work, every (target, mode) pair the target cannot do; or, with
    ``skip_unsupported``, return them (with the reason) for the report."""
    refused = [{"target": t, "mode": m, "reason": support(t, m)} for t, m in pairs if support(t, m)]
    if refused and not skip_unsupported:
        raise EdgekitError("cannot " + "; cannot ".join(f"{r['mode']} for {r['target']}: {r['reason']}" for r in refused),
                           "drop that mode or target, or pass --skip-unsupported (each target's modes: docs/compress.md)")
    return refused


def backend(target: str):
    """The quantizer module of ``target`` (backends/<target>/quantize.py)."""
    return backend_module(TARGETS[target], "quantize")


def quantize_with_repair(target: str, job: RepairJob, opts: QuantOptions,
                         ov_validate=None) -> tuple[QuantResult, float | None]:
    """Quantize; for static and dynamic int8, if the drop on the tuning split exceeds ``job.max_drop``,
    keep the most sensitive layers in float and try again. Returns the result and its tuning value."""
    mod = backend(target)
    result = mod.quantize(job.src, job.dest_dir, job.mode, job.calib, opts)
    if job.mode not in REPAIRABLE:
        return result, None
    value = job.value_of(result.path)
    drop = job.baseline - value
    if drop <= job.max_drop:
        return result, value
    if job.mode == "dynamic-int8":
        if not getattr(mod, "RANKS_DYNAMIC", False):  # rank_layers reads dynamic-int8 artifacts too
            result.notes.append(f"drop {drop:.2f} points over --max-drop {job.max_drop} on the tuning split; "
                                f"no dynamic-int8 repair for {target}: try static-int8 or int8-weights")
            return result, value
        return _greedy(mod, job, opts, result, value)
    if hasattr(mod, "repair_with"):  # the backend's own search, judged on the tuning split
        clear(job.dest_dir)
        return mod.repair_with(job, opts, first_drop=drop)
    if hasattr(mod, "repair") and ov_validate is not None:
        clear(job.dest_dir)
        result = mod.repair(job.src, job.dest_dir, job.calib, job.tune, ov_validate, job.max_drop, opts)
        value = job.value_of(result.path)
        result.notes.append(f"repair: {len(result.kept_float)} layers reverted to float; tuning drop "
                            f"{job.baseline - value:.2f} points")
        return result, value
    if not hasattr(mod, "rank_layers"):
        result.notes.append(f"drop {drop:.2f} points over --max-drop {job.max_drop}; no repair for {target}")
        return result, value
    return _greedy(mod, job, opts, result, value)


def _greedy(mod, job: RepairJob, opts: QuantOptions, result: QuantResult, value: float) -> tuple[QuantResult, float]:
    """Keep the layers the backend ranks most sensitive in float, doubling their number until the
    drop on the tuning split is within ``max_drop`` (or every ranked layer is float)."""
    ranked = mod.rank_layers(job.src, result.path, job.tune[:8], opts)
    first_drop = job.baseline - value
    k, keep = max(1, len(ranked) // 16), list(opts.keep_float)
    while ranked and k <= len(ranked):
        clear(job.dest_dir)
        keep = list(opts.keep_float) + ranked[:k]
        result = mod.quantize(job.src, job.dest_dir, job.mode, job.calib, replace(opts, keep_float=keep))
        value = job.value_of(result.path)
        if job.baseline - value <= job.max_drop or k == len(ranked):
            break
        k = min(len(ranked), k * 2)
    result.kept_float = keep
    result.notes.append(f"repair: drop {first_drop:.2f} > {job.max_drop} points on the tuning split; kept the "
                        f"{min(k, len(ranked))} most sensitive of {len(ranked)} layers in float "
                        f"(drop now {job.baseline - value:.2f})")
    return result, value


__all__ = ["MODES", "QuantOptions", "QuantResult", "RepairJob", "check_support", "parse_modes", "quantize_with_repair"]
