"""Types shared by the quantizers in each target's folder (backends/<target>/quantize.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class QuantOptions:
    keep_float: list[str] = field(default_factory=list)  # layer (node) names kept in float
    calibration_method: str = "minmax"  # minmax | entropy | percentile (where the backend offers it)
    per_channel: bool = True
    int8_io: bool = False  # TFLite: int8 inputs and outputs
    keep_names: bool = False  # TFLite: keep intermediate tensor names (compaction drops them)
    transformer: bool = False  # the model has attention: use the backend's transformer preset
    integer_ops: tuple[str, ...] | None = None  # TFLite static: only these op types int8 (None: all)
    dynamic_layers: list[str] = field(default_factory=list)  # TFLite repair: int8 weights, float activations
    cpu: Any = None  # the _cpu.CpuInfo that will run the artifact (None: this host, or EDGEKIT_CPU_FEATURES)
    model: Any = None  # the source Model, for quantizers of the torch graph (ExecuTorch's pt2e)
    ort: dict | None = None  # ONNX Runtime int8 settings (weight_type s8|u8, reduce_range, per_channel): None = by cpu


@dataclass
class QuantResult:
    path: Path
    notes: list[str] = field(default_factory=list)
    kept_float: list[str] = field(default_factory=list)


@dataclass
class RepairJob:
    """One variant to quantize and, when it loses more than ``max_drop`` on the tuning split,
    repair: what a search needs to requantize it and judge each try."""

    src: Path  # the fp32 artifact
    dest_dir: Path  # the variant's folder (emptied before each retry)
    mode: str
    calib: list[dict]  # calibration samples, keyed and typed for the artifact's runtime
    tune: list[dict]  # tuning samples (held back from calibration), likewise
    value_of: Callable[[Path], float]  # the quality of a quantized artifact on the tuning split
    baseline: float  # the source's quality on the tuning split
    max_drop: float  # points


def clear(folder: Path) -> None:
    """Empty ``folder`` (a variant's output, before a retry)."""
    for p in folder.iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
