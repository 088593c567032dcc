"""Core ML runs only on macOS; elsewhere the package is validated without running it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..._lazy import require
from ..._types import Signature, TensorSpec
from .._common import pick, spec_from_runtime
from . import can_run

_ARRAY_TYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32", 131080: "int8"}


def flexible_shapes(feature) -> dict:
    """``{"enumerated": [[...], ...]}`` or ``{"range": [[lo, hi], ...]}`` of a flexible input; {} if static."""
    arr = feature.type.multiArrayType
    kind = arr.WhichOneof("ShapeFlexibility")
    if kind == "enumeratedShapes":
        return {"enumerated": [[int(d) for d in s.shape] for s in arr.enumeratedShapes.shapes]}
    if kind == "shapeRange":
        return {"range": [[int(r.lowerBound), int(r.upperBound)] for r in arr.shapeRange.sizeRanges]}
    return {}


def _flexible_axes(feature) -> set[int]:
    flex = flexible_shapes(feature)
    if "enumerated" in flex:
        shapes = flex["enumerated"]
        return {a for a in range(len(shapes[0])) if len({s[a] for s in shapes}) > 1}
    return {a for a, (lo, hi) in enumerate(flex.get("range", [])) if lo != hi}


def core_ml_name(name: str) -> str:
    """``name`` as coremltools writes a feature name (its NameSanitizer, prefix ``var_``): ``x.1``
    becomes ``x_1``, ``53`` becomes ``var_53``."""
    clean = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return f"var_{clean}" if re.match(r"[^a-zA-Z_]", clean) else clean


def _specs(features, source: list[TensorSpec] | None = None) -> list[TensorSpec]:
    """Tensor specs; an axis whose size varies (enumerated shapes, range) is named as in the source."""
    out = []
    for i, f in enumerate(features):
        arr = f.type.multiArrayType
        flexible = _flexible_axes(f)
        shape = tuple(-1 if a in flexible else int(d) for a, d in enumerate(arr.shape))
        dtype = _ARRAY_TYPES.get(arr.dataType, "float32")
        src = pick(source or [], i)
        if not shape and src is not None:  # flexible inputs leave the outputs' shapes out of the spec
            out.append(TensorSpec(f.name, tuple(src.shape), dtype))
            continue
        out.append(spec_from_runtime(f.name, shape, dtype, pick(source or [], i)) if flexible
                   else TensorSpec(f.name, shape, dtype))
    return out


def bucket_problems(spec) -> tuple[dict, list[str]]:
    """(flexible shapes per input, problems): every bucket the package was converted for
    (its ``edgekit.buckets`` metadata) must be among each bucketed input's shapes."""
    from .convert import BUCKETS_KEY

    features = {f.name: f for f in spec.description.input}
    flex = {k: v for k, v in ((k, flexible_shapes(f)) for k, f in features.items()) if v}
    raw = spec.description.metadata.userDefined.get(BUCKETS_KEY)
    if not raw:
        return flex, []
    sizes = sorted({s for sizes in json.loads(raw).values() for s in sizes})
    problems = []
    if not flex:
        problems.append(f"the package was converted for shape buckets {raw} but its inputs have fixed shapes")
    for name, shapes in flex.items():
        if "enumerated" in shapes:
            axes = _flexible_axes(features[name])
            dims = {d for s in shapes["enumerated"] for a, d in enumerate(s) if a in axes}
            missing = [n for n in sizes if n not in dims]
            if missing:
                problems.append(f"input {name!r}: no enumerated shape at bucket size(s) {missing}")
        elif not any(lo <= min(sizes) and max(sizes) <= hi for lo, hi in shapes["range"]):
            problems.append(f"input {name!r}: its range {shapes['range']} does not cover the buckets {sizes}")
    return flex, problems


def op_count(spec) -> int:
    def count(block) -> int:
        return sum(1 + sum(count(b) for b in op.blocks) for op in block.operations)

    return sum(count(b) for f in spec.mlProgram.functions.values() for b in f.block_specializations.values())


class CoreMLRunner:
    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None, profile: bool = False):
        ct = require("coremltools", "Core ML")
        self.model = ct.models.MLModel(str(path), skip_model_load=not can_run())
        self.spec = self.model.get_spec()
        self.signature = Signature(_specs(self.spec.description.input, source.inputs if source else None),
                                   _specs(self.spec.description.output, source.outputs if source else None))

    def validate(self, source: Signature) -> dict:
        """What can be checked without running: it loads; inputs, outputs and op count are right."""
        problems = []
        if [s.name for s in self.signature.inputs] not in ([s.name for s in source.inputs],
                                                            [core_ml_name(s.name) for s in source.inputs]):
            problems.append(f"inputs {[s.name for s in self.signature.inputs]} != source {[s.name for s in source.inputs]}")
        if len(self.signature.outputs) != len(source.outputs):
            problems.append(f"{len(self.signature.outputs)} outputs, the source has {len(source.outputs)}")
        for got, want in zip(self.signature.outputs, source.outputs, strict=False):
            if len(got.shape) != len(want.shape):
                problems.append(f"output {got.name!r} has rank {len(got.shape)}, the source {len(want.shape)}")
        ops = op_count(self.spec)
        if ops == 0:
            problems.append("the ML program has no operations")
        flexible, bucket_issues = bucket_problems(self.spec)
        doc = {"loads": True, "inputs": [s.to_dict() for s in self.signature.inputs],
               "outputs": [s.to_dict() for s in self.signature.outputs], "op_count": ops,
               "problems": problems + bucket_issues}
        if flexible:
            doc["flexible_shapes"] = flexible
        return doc

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = {s.name for s in self.signature.inputs}
        result = self.model.predict({k if k in names else core_ml_name(k): v for k, v in feeds.items()})
        return [np.asarray(result[s.name]) for s in self.signature.outputs]
