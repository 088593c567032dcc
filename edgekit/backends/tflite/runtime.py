"""Run a .tflite file with the LiteRT interpreter (ai-edge-litert)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._errors import EdgekitError
from ..._lazy import require
from ..._types import Signature
from .._common import pick, spec_from_runtime


class LiteRTRunner:
    """A .tflite in the LiteRT interpreter. A file with several signatures (one per shape
    bucket) runs the largest by default; ``use(key)`` switches to another (``signature_keys``)."""

    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None, profile: bool = False,
                 signature_key: str | None = None):
        interp_mod = require("ai_edge_litert.interpreter", "the LiteRT runtime")
        try:
            self.interpreter = interp_mod.Interpreter(model_path=str(path), num_threads=threads or None)
        except Exception as exc:
            raise EdgekitError(f"LiteRT cannot load {path} ({exc})",
                               "the file may be truncated, or use ops this LiteRT lacks (Flex/Select-TF ops)") from exc
        self._sigs = self.interpreter.get_signature_list()
        self._source = source
        self.signature_keys = list(self._sigs)
        if self._sigs:
            self.use(signature_key or self._largest())
        else:
            self.runner = None
            self.interpreter.allocate_tensors()
            in_details = self.interpreter.get_input_details()
            out_details = self.interpreter.get_output_details()
            self._in_index = [d["index"] for d in in_details]
            self._out_index = [d["index"] for d in out_details]
            self._describe([d["name"] for d in in_details], [d["name"] for d in out_details], in_details, out_details)

    def _largest(self) -> str:
        """The signature whose inputs are the largest (the one every input fits), first on a tie."""
        def volume(key: str) -> int:
            details = self.interpreter.get_signature_runner(key).get_input_details()
            return sum(int(np.prod(d["shape"])) for d in details.values())

        return max(self.signature_keys, key=lambda k: (volume(k), -self.signature_keys.index(k)))

    def use(self, key: str) -> None:
        """Run the signature ``key`` from now on."""
        if key not in self._sigs:
            raise EdgekitError(f"the .tflite has no signature {key!r} (it has {self.signature_keys})",
                               "convert it again with the shape buckets you run")
        self.key = key
        self.runner = self.interpreter.get_signature_runner(key)
        ins, outs = self.runner.get_input_details(), self.runner.get_output_details()
        in_names, out_names = list(self._sigs[key]["inputs"]), list(self._sigs[key]["outputs"])
        self._describe(in_names, out_names, [ins[n] for n in in_names], [outs[n] for n in out_names])

    def _describe(self, in_names: list[str], out_names: list[str], in_details: list, out_details: list) -> None:
        src_in = self._source.inputs if self._source else []
        src_out = self._source.outputs if self._source else []
        self._in_names, self._out_names = in_names, out_names
        self.quantization = {n: d.get("quantization", (0.0, 0)) for n, d in zip(self._in_names + self._out_names, in_details + out_details, strict=True)}
        self.signature = Signature(
            [spec_from_runtime(n, [int(x) for x in d.get("shape_signature", d["shape"])], d["dtype"], pick(src_in, i))
             for i, (n, d) in enumerate(zip(self._in_names, in_details, strict=True))],
            [spec_from_runtime(n, [int(x) for x in d.get("shape_signature", d["shape"])], d["dtype"], pick(src_out, i))
             for i, (n, d) in enumerate(zip(self._out_names, out_details, strict=True))],
        )

    def _quantize_in(self, name: str, arr: np.ndarray, dtype) -> np.ndarray:
        """Float data into an int8/uint8 input (full-integer models): with the tensor's scale and zero point."""
        scale, zero = self.quantization.get(name, (0.0, 0))
        if scale and np.dtype(dtype).kind in "iu" and arr.dtype.kind == "f":
            info = np.iinfo(dtype)
            return np.clip(np.round(arr / scale + zero), info.min, info.max).astype(dtype)
        return arr

    def _dequantize_out(self, name: str, arr: np.ndarray) -> np.ndarray:
        scale, zero = self.quantization.get(name, (0.0, 0))
        if scale and arr.dtype.kind in "iu":
            return (arr.astype(np.float32) - zero) * scale
        return arr

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        dtypes = {s.name: s.dtype for s in self.signature.inputs}
        feeds = {n: self._quantize_in(n, a, dtypes.get(n, a.dtype)) for n, a in feeds.items()}
        if self.runner is not None:
            result = self.runner(**feeds)
            return [self._dequantize_out(n, np.array(result[n])) for n in self._out_names]
        for idx, name in zip(self._in_index, self._in_names, strict=True):
            self.interpreter.set_tensor(idx, feeds[name])
        self.interpreter.invoke()
        return [self._dequantize_out(n, np.array(self.interpreter.get_tensor(i)))
                for n, i in zip(self._out_names, self._out_index, strict=True)]
