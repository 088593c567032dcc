"""Run an ONNX file with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._lazy import require
from ..._types import Signature
from .._common import pick, spec_from_runtime

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool",
}


class OrtRunner:
    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None, profile: bool = False):
        ort = require("onnxruntime", "ONNX Runtime")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.enable_profiling = profile
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        src_in = source.inputs if source else []
        src_out = source.outputs if source else []
        self.signature = Signature(
            [spec_from_runtime(t.name, t.shape, _ORT_TYPES.get(t.type, "float32"), pick(src_in, i))
             for i, t in enumerate(self.session.get_inputs())],
            [spec_from_runtime(t.name, t.shape, _ORT_TYPES.get(t.type, "float32"), pick(src_out, i))
             for i, t in enumerate(self.session.get_outputs())],
        )

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)
