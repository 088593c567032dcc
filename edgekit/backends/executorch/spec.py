"""What edgekit knows about the ExecuTorch target, as data (no framework imports).

``SPEC`` is a ``backends._spec.TargetSpec``; the registry finds it by listing the backend folders.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from .._spec import Route, TargetSpec

ARTIFACT = "model.pte"
DEVICE_LOADER = "edgekit.backends.executorch.device:load"  # the bench runner's loader contract
QUANTIZE_NEEDS_SOURCE = True  # quantize() needs the source Model (model= or opts.model), not only the fp32 .pte
CALIBRATED_MODES = ("static-int8",)

_TORCH_ONLY = ("ExecuTorch converts from the torch graph (torch.export); there is no ONNX, Keras or "
               "TFLite importer")

ROUTES: tuple[dict[str, Any], ...] = (
    {"source": "torch", "tool": "torch.export + XNNPACK (executorch)", "fn": "from_torch", "precisions": ("fp32",),
     "needs": ("torch", "executorch")},
)

FIELDS: dict[str, Any] = {
    "name": "executorch",
    "package": "executorch",
    "runner": "ExecuTorchRunner",
    "suffix": ".pte",
    "extra": "executorch",
    "needs": ("executorch",),  # its Python bindings load libtorch: torch comes with it
    "order": 40,
    "runtime_module": "executorch",  # a device needs numpy and executorch (which brings torch)
    "precisions": ("fp32",),
    "quantization": MappingProxyType({
        "static-int8": None,
        "dynamic-int8": None,
        "fp16": "edgekit's ExecuTorch flow writes fp32 and int8 (XNNPACK); use static-int8",
        "int8-weights": "the XNNPACK quantizer has no weight-only int8 config; dynamic-int8 gives int8 weights "
                        "with activations quantized at run time",
        "int4-weights": "4-bit weights (torchao 8da4w) are not wired here; use dynamic-int8 or static-int8",
        "mixed": "use static-int8 with --keep-float (module names) instead",
    }),
    "static_shapes": True,
    "colour": "#d62728",
    "no_route": MappingProxyType({
        "onnx": _TORCH_ONLY,
        "keras": _TORCH_ONLY,
        "tflite": _TORCH_ONLY,
        "torchscript": "torch.export cannot read a TorchScript module; give the eager module or a .pt2",
    }),
    "slow_reasons": MappingProxyType({
        ("dynamic-int8", "conv"): "the XNNPACK dynamic config quantizes linear layers only: convolutions stay fp32",
    }),
    "servable": True,  # static shapes: served at the converted shape (not batchable)
}


SPEC = TargetSpec(routes=tuple(Route(**r) for r in ROUTES), **FIELDS)
