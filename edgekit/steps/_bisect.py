"""Bisect a drift the artifact does not expose: cut the ONNX graph at a tensor
(``onnx.utils.Extractor``, as ``onnx.utils.extract_model``), convert that prefix by the artifact's route, run it, and compare
its one output with the reference. The first cut that diverges names the culprit."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._lazy import require

Prefix = Callable[[str], list[np.ndarray]]  # tensor -> the converted prefix's output, per sample


class Cutter:
    """Cuts of one ONNX graph (``onnx.utils.Extractor``): the graph is read and shape-inferred once."""

    def __init__(self, onnx_path: Path, inputs: list[str], feeds: dict | None = None):
        self.onnx_path, self.inputs, self._extractor = Path(onnx_path), inputs, None
        self.feeds = feeds  # a sample: sizes the cut's output where shape inference cannot

    def __call__(self, tensor: str, dest: Path) -> Path:
        """The graph from the inputs up to ``tensor`` (its only output), written to ``dest``."""
        onnx = require("onnx", "ONNX models")
        if self._extractor is None:
            proto = onnx.load(str(self.onnx_path))
            if proto.ByteSize() < 1_800_000_000:
                proto = onnx.shape_inference.infer_shapes(proto, strict_mode=False, data_prop=True)
            self._extractor = onnx.utils.Extractor(proto)
        part = self._extractor.extract_model(self.inputs, [tensor])
        if not part.graph.output[0].type.tensor_type.HasField("shape") and self.feeds is not None:
            self._size_output(part)
        big = part.ByteSize() > 1_800_000_000
        onnx.save(part, str(dest), save_as_external_data=big, location=dest.name + ".data" if big else None)
        return dest


    def _size_output(self, part) -> None:
        """The cut's output shaped as ONNX Runtime computes it on the sample (an ONNX file needs its
        outputs' shapes; inference leaves some unknown, e.g. a reduction over axes given as a tensor)."""
        ort = require("onnxruntime", "ONNX Runtime")
        session = ort.InferenceSession(part.SerializeToString(), providers=["CPUExecutionProvider"])
        names = {i.name for i in session.get_inputs()}
        value = session.run(None, {k: v for k, v in self.feeds.items() if k in names})[0]
        dims = part.graph.output[0].type.tensor_type.shape
        for size in np.shape(value):
            dims.dim.add().dim_value = int(size)


def openvino_prefix(onnx_path: Path, inputs: list[str], feeds: list[dict]) -> Prefix:
    """Each prefix read by OpenVINO's ONNX frontend (the openvino target's route; compiled from the
    file directly: 4x faster than ``convert_model`` then compile on MiniLM), run at f32."""
    ov = require("openvino", "OpenVINO")
    cut = Cutter(onnx_path, inputs, feeds[0] if feeds else None)
    core = ov.Core()

    def run(tensor: str) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="edgekit-bisect-") as tmp:
            compiled = core.compile_model(str(cut(tensor, Path(tmp) / "prefix.onnx")), "CPU",
                                          {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
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

    cut = Cutter(onnx_path, inputs, samples[0] if samples else None)

    def run(tensor: str) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="edgekit-bisect-") as tmp:
            prefix = cut(tensor, Path(tmp) / "prefix.onnx")
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
