"""Prune: structured (channels, neurons; Torch-Pruning's dependency graph) and unstructured magnitude.

Structured pruning removes whole channels, so parameters, FLOPs, file size and latency
fall in every exported target. Unstructured pruning only zeroes weights: it needs sparse
kernels (or compression) to pay off, and the report says so.
"""

from __future__ import annotations

import copy
from typing import Any

from .._errors import EdgekitError
from .._lazy import require


def parse_prune(spec: str) -> tuple[str, float]:
    """``structured:0.5`` / ``unstructured:0.8`` -> (kind, ratio)."""
    kind, _, ratio = spec.partition(":")
    try:
        value = float(ratio)
    except ValueError:
        value = -1.0
    if kind not in ("structured", "unstructured") or not 0.0 < value < 1.0:
        raise EdgekitError(f"bad --prune {spec!r}", "write structured:RATIO or unstructured:RATIO with 0 < RATIO < 1, "
                                                    "e.g. structured:0.5 (half the channels)")
    return kind, value


def count_params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def _output_layers(module: Any, example: tuple) -> list:
    """The layers producing the model's outputs (a classifier's last Linear): never pruned."""
    torch = require("torch")
    last = [m for m in module.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    return last[-1:]


def structured(module: Any, example: tuple, ratio: float) -> tuple[Any, dict]:
    """Remove ``ratio`` of the channels of every prunable layer, outputs kept intact."""
    require("torch")
    tp = require("torch_pruning", "structured pruning")
    pruned = copy.deepcopy(module).eval()
    ignored = _output_layers(pruned, example)
    macs0, params0 = tp.utils.count_ops_and_params(pruned, example)
    pruner = tp.pruner.MetaPruner(pruned, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                  pruning_ratio=ratio, ignored_layers=ignored, round_to=4)
    for layer in pruned.modules():
        for attr in ("out_channels", "out_features"):
            n = getattr(layer, attr, None)
            if n is not None and layer not in ignored and int(n * (1 - ratio)) < 1:
                raise EdgekitError(f"pruning {ratio:.0%} would remove every channel of a layer with {n}",
                                   "use a smaller ratio")
    pruner.step()
    macs1, params1 = tp.utils.count_ops_and_params(pruned, example)
    return pruned, {"kind": "structured", "ratio": ratio, "params_before": int(params0), "params_after": int(params1),
                    "macs_before": int(macs0), "macs_after": int(macs1)}


def unstructured(module: Any, sparsity: float) -> tuple[Any, dict]:
    """Global magnitude pruning of Conv/Linear weights, made permanent."""
    torch = require("torch")
    from torch.nn.utils import prune as tprune

    pruned = copy.deepcopy(module).eval()
    targets = [(m, "weight") for m in pruned.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]
    tprune.global_unstructured(targets, pruning_method=tprune.L1Unstructured, amount=sparsity)
    for m, name in targets:
        tprune.remove(m, name)
    total = sum(m.weight.numel() for m, _ in targets)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in targets)
    return pruned, {"kind": "unstructured", "ratio": sparsity, "sparsity": zeros / max(total, 1),
                    "params_before": count_params(module), "params_after": count_params(pruned),
                    "note": "unstructured sparsity needs sparse kernels to run faster; dense runtimes "
                            "(ONNX Runtime, OpenVINO, LiteRT on CPU) run it at the same speed and size"}
