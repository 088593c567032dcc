"""Run an OpenVINO IR on the CPU, in f32 inference precision by default.

On CPUs with AMX OpenVINO infers in bf16 unless told otherwise; parity checks
must see the artifact's own numbers, so f32 is the default here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._lazy import require
from ..._types import Signature
from .._common import pick, spec_from_runtime


def _shape(pshape) -> list:
    return [d.get_length() if d.is_static else -1 for d in pshape]


class OpenVINORunner:
    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None,
                 precision_hint: str | None = "f32", profile: bool = False):
        ov = require("openvino", "OpenVINO")
        self.core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": precision_hint} if precision_hint else {}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if profile:
            config["PERF_COUNT"] = True
        self.compiled = self.core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inference_precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        src_in = source.inputs if source else []
        src_out = source.outputs if source else []

        def spec(port, i, src):
            return spec_from_runtime(port.get_any_name(), _shape(port.get_partial_shape()),
                                     port.get_element_type().to_dtype(), pick(src, i))

        self.signature = Signature(
            [spec(p, i, src_in) for i, p in enumerate(self.compiled.inputs)],
            [spec(p, i, src_out) for i, p in enumerate(self.compiled.outputs)],
        )

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.request.infer(feeds)
        return [np.array(result[port]) for port in self.compiled.outputs]
