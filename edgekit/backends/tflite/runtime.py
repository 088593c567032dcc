"""Run a .tflite file with the LiteRT interpreter (ai-edge-litert)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._errors import EdgekitError
from ..._lazy import require
from ..._types import Signature
from .._common import pick, spec_from_runtime


class LiteRTRunner:
    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None, profile: bool = False):
        interp_mod = require("ai_edge_litert.interpreter", "the LiteRT runtime")
        try:
            self.interpreter = interp_mod.Interpreter(model_path=str(path), num_threads=threads or None)
        except Exception as exc:
            raise EdgekitError(f"LiteRT cannot load {path} ({exc})",
                               "the file may be truncated, or use ops this LiteRT lacks (Flex/Select-TF ops)") from exc
        sigs = self.interpreter.get_signature_list()
        src_in = source.inputs if source else []
        src_out = source.outputs if source else []
        if sigs:
            key = next(iter(sigs))
            self.runner = self.interpreter.get_signature_runner(key)
            ins = self.runner.get_input_details()
            outs = self.runner.get_output_details()
            self._in_names = list(sigs[key]["inputs"])
            self._out_names = list(sigs[key]["outputs"])
            in_details = [ins[n] for n in self._in_names]
            out_details = [outs[n] for n in self._out_names]
        else:
            self.runner = None
            self.interpreter.allocate_tensors()
            in_details = self.interpreter.get_input_details()
            out_details = self.interpreter.get_output_details()
            self._in_names = [d["name"] for d in in_details]
            self._out_names = [d["name"] for d in out_details]
            self._in_index = [d["index"] for d in in_details]
            self._out_index = [d["index"] for d in out_details]
        self.quantization = {n: d.get("quantization", (0.0, 0)) for n, d in zip(self._in_names + self._out_names, in_details + out_details, strict=True)}
        self.signature = Signature(
            [spec_from_runtime(n, [int(x) for x in d.get("shape_signature", d["shape"])], d["dtype"], pick(src_in, i))
             for i, (n, d) in enumerate(zip(self._in_names, in_details, strict=True))],
            [spec_from_runtime(n, [int(x) for x in d.get("shape_signature", d["shape"])], d["dtype"], pick(src_out, i))
             for i, (n, d) in enumerate(zip(self._out_names, out_details, strict=True))],
        )

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.runner is not None:
            result = self.runner(**feeds)
            return [np.array(result[n]) for n in self._out_names]
        for idx, name in zip(self._in_index, self._in_names, strict=True):
            self.interpreter.set_tensor(idx, feeds[name])
        self.interpreter.invoke()
        return [np.array(self.interpreter.get_tensor(i)) for i in self._out_index]
