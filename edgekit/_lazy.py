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
    "sklearn": ("train", ""),
    "fastapi": ("serve", ""),
    "uvicorn": ("serve", ""),
    "prometheus_client": ("serve", ""),
    "ray": ("ray", ""),
}


def install_hint(module: str) -> str:
    top = module.split(".")[0]
    if top not in _EXTRAS:  # a module a target's spec needs: that target's extra
        from ._registry import extras

        _EXTRAS.update({m: (e, "") for m, e in extras().items() if m not in _EXTRAS})
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
