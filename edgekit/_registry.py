"""The targets edgekit converts to, and the runtime that runs each artifact format.

Extension points are dicts: add a target by adding an entry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from ._data import load_toml
from ._errors import EdgekitError
from ._lazy import version_of


@dataclass(frozen=True)
class Target:
    name: str
    backend: str  # module under edgekit.backends
    runner: str  # class in that backend's runtime module
    precisions: tuple[str, ...]
    static_shapes: bool


TARGETS: dict[str, Target] = {
    "onnx": Target("onnx", "onnxruntime", "OrtRunner", ("fp32", "fp16"), False),
    "openvino": Target("openvino", "openvino", "OpenVINORunner", ("fp32", "fp16"), False),
    "tflite": Target("tflite", "tflite", "LiteRTRunner", ("fp32", "fp16"), True),
    "coreml": Target("coreml", "coreml", "CoreMLRunner", ("fp32", "fp16"), True),
}
# what a source format can be converted to, and why not where it cannot
_NO_PATH = {
    ("keras", "onnx"): "Keras to ONNX needs tf2onnx, which does not install beside the pinned TensorFlow",
    ("keras", "coreml"): "coremltools 9 supports TensorFlow only up to 2.12; edgekit pins 2.21",
    ("tflite", "onnx"): "there is no maintained .tflite to ONNX converter",
    ("tflite", "coreml"): "coremltools does not read .tflite",
    ("onnx", "coreml"): "coremltools no longer reads ONNX, and onnx2torch cannot install beside torch 2.13 (it needs a torchvision that does not load)",
}


def parse_targets(text: str | list[str]) -> list[Target]:
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not names:
        raise EdgekitError("no target given", f"use --to with some of {', '.join(TARGETS)}")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise EdgekitError(f"unknown target(s) {unknown}", f"use some of {', '.join(TARGETS)}")
    ordered = sorted(dict.fromkeys(names), key=list(TARGETS).index)  # ONNX first: others reuse it
    return [TARGETS[n] for n in ordered]


def check_path(source_format: str, target: Target) -> None:
    """Refuse up front a conversion there is no path for."""
    why = _NO_PATH.get((source_format, target.name))
    if why:
        raise EdgekitError(f"cannot convert a {source_format} model to {target.name}: {why}",
                           "give edgekit the PyTorch model (module:factory, .pt2 or a Hugging Face folder), or drop this target")


def backend_module(target: Target, part: str):
    return importlib.import_module(f"edgekit.backends.{target.backend}.{part}")


def runner_for(target: Target, path: Path, **kwargs):
    return getattr(backend_module(target, "runtime"), target.runner)(path, **kwargs)


def tool_versions(target: str) -> dict[str, str | None]:
    """Versions of the packages a target's toolchain uses (converters/toolchains.toml)."""
    chain = load_toml("converters", "toolchains.toml")[target]
    return {pkg: version_of(pkg) for pkg in chain["packages"] if version_of(pkg)}


FORMAT_OF_SUFFIX = {".onnx": "onnx", ".xml": "openvino", ".tflite": "tflite", ".mlpackage": "coreml"}
