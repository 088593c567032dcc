"""Core ML runs only on macOS; elsewhere the package is validated without running it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._lazy import require
from ..._types import Signature, TensorSpec
from . import can_run

_ARRAY_TYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}


def _specs(features) -> list[TensorSpec]:
    out = []
    for f in features:
        arr = f.type.multiArrayType
        out.append(TensorSpec(f.name, tuple(int(d) for d in arr.shape), _ARRAY_TYPES.get(arr.dataType, "float32")))
    return out


def op_count(spec) -> int:
    def count(block) -> int:
        return sum(1 + sum(count(b) for b in op.blocks) for op in block.operations)

    return sum(count(b) for f in spec.mlProgram.functions.values() for b in f.block_specializations.values())


class CoreMLRunner:
    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None, profile: bool = False):
        ct = require("coremltools", "Core ML")
        self.model = ct.models.MLModel(str(path), skip_model_load=not can_run())
        self.spec = self.model.get_spec()
        self.signature = Signature(_specs(self.spec.description.input), _specs(self.spec.description.output))

    def validate(self, source: Signature) -> dict:
        """What can be checked without running: it loads; inputs, outputs and op count are right."""
        problems = []
        if [s.name for s in self.signature.inputs] != [s.name for s in source.inputs]:
            problems.append(f"inputs {[s.name for s in self.signature.inputs]} != source {[s.name for s in source.inputs]}")
        if len(self.signature.outputs) != len(source.outputs):
            problems.append(f"{len(self.signature.outputs)} outputs, the source has {len(source.outputs)}")
        for got, want in zip(self.signature.outputs, source.outputs, strict=False):
            if len(got.shape) != len(want.shape):
                problems.append(f"output {got.name!r} has rank {len(got.shape)}, the source {len(want.shape)}")
        ops = op_count(self.spec)
        if ops == 0:
            problems.append("the ML program has no operations")
        return {"loads": True, "inputs": [s.to_dict() for s in self.signature.inputs],
                "outputs": [s.to_dict() for s in self.signature.outputs], "op_count": ops, "problems": problems}

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        result = self.model.predict(feeds)
        return [np.asarray(result[s.name]) for s in self.signature.outputs]
