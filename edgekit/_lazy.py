"""Lazy, optional imports: a missing backend fails with the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from ._errors import BackendMissing

# module -> (pip extra, extra install note)
_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", ""),
    "transformers": ("hf", ""),
    "onnx": ("onnx", ""),
    "onnxruntime": ("onnx", ""),
    "onnxscript": ("onnx", ""),
    "onnxsim": ("onnx", ""),
    "openvino": ("openvino", ""),
    "nncf": ("openvino", ""),
    "coremltools": ("coreml", ""),
    "tensorflow": ("tflite", ""),
    "ai_edge_litert": ("tflite", ""),
    "litert_torch": ("tflite", ""),
    "onnx2tf": ("tflite", " and then `pip install --no-deps -r converters/nodeps.txt` (onnx2tf pins an old stack)"),
    "onnx2torch": ("coreml", " and then `pip install --no-deps -r converters/nodeps.txt` (onnx2torch asks for a "
                             "torchvision that does not load beside torch 2.13+cpu)"),
    "sklearn": ("train", ""),
    "fastapi": ("serve", ""),
    "uvicorn": ("serve", ""),
    "prometheus_client": ("serve", ""),
    "ray": ("ray", ""),
}


def register_extras(extras: dict[str, str]) -> None:
    """Modules the targets' specs need -> their extra (the registry calls this on discovery)."""
    for module, extra in extras.items():
        _EXTRAS.setdefault(module, (extra, ""))


def install_hint(module: str) -> str:
    top = module.split(".")[0]
    extra, note = _EXTRAS.get(top, ("all", ""))
    return f"pip install 'edgekit[{extra}]' -c converters/constraints.txt{note}"


def require(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise a one-line error naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if exc.name and exc.name.split(".")[0] != top:
            # the backend is there but one of its own dependencies is not
            what = f"{top} is installed but cannot import {exc.name!r}"
        else:
            what = f"{top} is not installed"
        for_what = f" ({purpose})" if purpose else ""
        raise BackendMissing(f"{what}{for_what}", install_hint(module)) from exc


def version_of(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None
