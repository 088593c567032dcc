"""Core types: tensor specs, signatures, a loaded source model and its artifacts."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Dim = int | str  # a str names a dynamic axis ("batch", "sequence")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str  # numpy dtype name: float32, int64, ...

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete(self, dims: dict[str, int]) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else dims[d] for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    def __str__(self) -> str:
        return f"{self.name}:{'x'.join(map(str, self.shape))}:{self.dtype}"


@dataclass
class Signature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def to_dict(self) -> dict:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }


@dataclass
class Model:
    """A source model, loaded: what every converter and verifier starts from.

    ``module`` is a torch ``nn.Module`` whose forward takes the inputs in signature
    order and returns a tuple of tensors in output order, when the source is torch
    (or was turned into torch); ``onnx_path`` is set for ONNX sources; ``runner``
    runs the source itself for parity checks.
    """

    spec: str
    format: str  # torch | exported-program | torchscript | onnx | hf | keras | tflite
    signature: Signature
    dims: dict[str, int] = field(default_factory=dict)  # concrete size of each dynamic axis
    path: Path | None = None
    sha256: str | None = None
    task: str | None = None
    module: Any = None
    onnx_path: Path | None = None
    keras: Any = None
    meta: dict = field(default_factory=dict)  # vocab_size, tokenizer, image range, ...
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        base = self.path.name if self.path else self.spec.rsplit(":", 1)[-1]
        for suffix in (".onnx", ".pt2", ".pt", ".pth", ".keras", ".tflite", ".ts"):
            base = base.removesuffix(suffix)
        return base or "model"

    def source_dict(self) -> dict:
        return {
            "spec": self.spec,
            "format": self.format,
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
            "task": self.task,
            "signature": self.signature.to_dict(),
            "dims": self.dims,
            "dim_sources": self.meta.get("dim_sources"),  # axis -> what sized it (--dim, --shape, --inputs...)
            "vocab_size": self.meta.get("vocab_size"),  # what generated token ids must stay under
            "quantization": self.meta.get("quantized"),  # an already-quantized source: kind, ops, bits
        }


@dataclass
class OutputParity:
    name: str
    max_abs_err: float
    mean_abs_err: float
    cosine: float
    top1_agreement: float | None


@dataclass
class Parity:
    status: str  # pass | fail | not_run
    max_abs_err: float | None = None
    mean_abs_err: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    worst_output: str | None = None
    reason: str | None = None
    tolerance: dict | None = None
    outputs: list[OutputParity] = field(default_factory=list)
    validation: dict | None = None  # checks done where the runtime cannot run here
    first_divergence: dict | None = None  # where it drifts: the first ONNX node out of tolerance (steps/locate.py)


@dataclass
class Artifact:
    target: str
    precision: str
    path: Path
    signature: Signature
    sha256: str
    size_bytes: int
    convert_seconds: float
    tool_versions: dict[str, str | None]
    parity: Parity | None = None
    notes: list[str] = field(default_factory=list)
    lineage: list[str] = field(default_factory=list)
    attempts: list[dict] = field(default_factory=list)  # conversion routes tried: route, seconds, error, parity
    buckets: dict | None = None  # shape buckets: axes, signatures, pad, per-bucket parity (steps/buckets.py)

    def to_dict(self, root: Path | None = None) -> dict:
        path = self.path
        if root is not None:
            try:
                path = self.path.relative_to(root)
            except ValueError:
                pass
        return {
            "target": self.target,
            "precision": self.precision,
            "path": str(path),
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "signature": self.signature.to_dict(),
            "convert_seconds": round(self.convert_seconds, 3),
            "tool_versions": self.tool_versions,
            "parity": asdict(self.parity) if self.parity else None,
            "notes": self.notes,
            "lineage": self.lineage,
            "attempts": self.attempts,
            **({"buckets": self.buckets} if self.buckets else {}),
        }


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files (sorted by relative path)."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
