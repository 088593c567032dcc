"""edgekit: take a full model and ship it to the edge.

The public surface is small and imports no ML framework until it is used::

    import edgekit
    model = edgekit.load("model.onnx")
    result = edgekit.convert(model, targets=["onnx", "openvino", "tflite"], out="build/model")
    for a in result.artifacts:
        print(a.target, a.parity.status, a.parity.max_abs_err)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import BackendMissing, ConversionError, EdgekitError, ParityError
from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from ._types import Artifact, Model, Parity, Signature, TensorSpec
    from .steps.export import ConvertResult

__all__ = [
    "Artifact", "BackendMissing", "ConversionError", "ConvertResult", "EdgekitError", "Model",
    "Parity", "ParityError", "Signature", "TensorSpec", "__version__", "compress", "convert", "load",
    "FallbackError", "FallbackModel", "FallbackPolicy", "FallbackResult", "serve",
]


def load(spec, *, inputs=None, dims=None, task=None, trust_pickle=False, trust_remote_code=False) -> Model:
    """Load a model: an ONNX file, a .pt2, TorchScript, ``package.module:factory``,
    a Hugging Face folder, a .keras or a .tflite file. See ``edgekit.steps.ingest.load``."""
    from .steps.ingest import load as _load

    return _load(spec, inputs=inputs, dims=dims, task=task, trust_pickle=trust_pickle,
                 trust_remote_code=trust_remote_code)


def convert(model, targets=("onnx", "openvino", "tflite", "coreml"), out="edgekit-out", **options) -> ConvertResult:
    """Convert ``model`` (a Model or anything ``load`` takes) to each target under ``out``,
    verify every artifact against the source, and write ``out/manifest.json``.

    Options: ``precision`` ("fp32"|"fp16"), ``inputs`` (an .npz keyed by input name),
    ``samples``, ``tolerance`` ({"atol", "rtol", "min_cosine"}), ``simplify``, ``force``.
    """
    from ._types import Model as _Model
    from .steps.export import convert as _convert

    if not isinstance(model, _Model):
        model = load(model)
    return _convert(model, list(targets) if not isinstance(targets, str) else targets, out, **options)


def compress(model, targets=("onnx", "openvino", "tflite"), quantize="static-int8", data=None, out="edgekit-out",
             **options):
    """Quantize ``model`` for each target with that target's own quantizer; evaluate every
    variant against the fp32 source on held-out ``data``; write ``out/report.json``.

    ``quantize``: modes (fp16, dynamic-int8, static-int8, int8-weights, int4-weights, mixed).
    Options: ``max_drop`` (points), ``calibration``, ``evaluation`` (sample counts),
    ``keep_float``, ``calibration_method``, ``threads``, ``runs``, ``int8_io``, ``keep_names``, ``force``.
    """
    from ._types import Model as _Model
    from .steps.compress import compress as _compress

    if data is None:
        raise EdgekitError("compress needs data", "pass data= (an .npz, an image folder, a .txt of sentences or module:callable)")
    if not isinstance(model, _Model):
        model = load(model)
    return _compress(model, targets=list(targets) if not isinstance(targets, str) else targets, modes=quantize,
                     data=data, out=out, **options)


def __getattr__(name: str):
    if name in ("Artifact", "Model", "Parity", "Signature", "TensorSpec"):
        from . import _types

        return getattr(_types, name)
    if name in ("FallbackError", "FallbackModel", "FallbackPolicy", "FallbackResult"):
        from . import fallback

        return getattr(fallback, name)
    if name == "serve":  # the package, callable: edgekit.serve("model.onnx", port=8000)
        import importlib

        return importlib.import_module(".serve", __name__)
    if name == "ConvertResult":
        from .steps.export import ConvertResult

        return ConvertResult
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
