"""Bisect a drift the artifact does not expose: cut the ONNX graph at a tensor
(``onnx.utils.extract_model``), convert that prefix by the artifact's route, run it, and compare
its one output with the reference. The first cut that diverges names the culprit."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._lazy import require

Prefix = Callable[[str], list[np.ndarray]]  # tensor -> the converted prefix's output, per sample


def cut(onnx_path: Path, inputs: list[str], tensor: str, dest: Path) -> Path:
    """The graph from ``inputs`` up to ``tensor`` (its only output), written to ``dest``."""
    onnx = require("onnx", "ONNX models")
    onnx.utils.extract_model(str(onnx_path), str(dest), inputs, [tensor], check_model=False)
    return dest


def openvino_prefix(onnx_path: Path, inputs: list[str], feeds: list[dict]) -> Prefix:
    """Each prefix converted by OpenVINO's ONNX frontend (the openvino target's route), run at f32."""
    ov = require("openvino", "OpenVINO")

    def run(tensor: str) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="edgekit-bisect-") as tmp:
            model = ov.convert_model(str(cut(onnx_path, inputs, tensor, Path(tmp) / "prefix.onnx")))
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        names = {p.get_any_name() for p in compiled.inputs}
        return [np.array(compiled({k: v for k, v in f.items() if k in names})[compiled.outputs[0]]) for f in feeds]

    return run


def tflite_prefix(onnx_path: Path, inputs: list[str], samples: list[dict], layout: str = "tf") -> Prefix:
    """Each prefix converted by edgekit's onnx2tf route (``layout`` as the artifact's route), run in LiteRT."""
    from ..backends._common import ConvertContext
    from ..backends.tflite.convert import from_onnx
    from ..backends.tflite.runtime import LiteRTRunner
    from . import verify
    from .ingest import load

    def run(tensor: str) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="edgekit-bisect-") as tmp:
            prefix = cut(onnx_path, inputs, tensor, Path(tmp) / "prefix.onnx")
            model = load(prefix, shapes={k: tuple(np.shape(v)) for k, v in samples[0].items() if k in inputs})
            (Path(tmp) / "out").mkdir()
            path, _ = from_onnx(model, Path(tmp) / "out", "fp32", ConvertContext(onnx_path=prefix, workdir=Path(tmp)),
                                layout=layout)
            runner = LiteRTRunner(path, source=model.signature)
            return [runner.run(verify.adapt_feeds(s, model.signature, runner.signature))[0] for s in samples]

    return run


def first_bad(candidates: list[str], is_bad: Callable[[str], bool]) -> tuple[str | None, int]:
    """The first of ``candidates`` (in topological order; the last is known to diverge) that
    ``is_bad``, by bisection: a drift, once there, stays downstream. Returns it and the cuts made."""
    lo, hi, cuts = 0, len(candidates) - 1, 0
    if hi < 0:
        return None, 0
    while lo < hi:
        mid = (lo + hi) // 2
        cuts += 1
        if is_bad(candidates[mid]):
            hi = mid
        else:
            lo = mid + 1
    return candidates[lo], cuts
