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
    "Parity", "ParityError", "Signature", "TensorSpec", "__version__", "convert", "load",
]


def load(spec, *, inputs=None, dims=None, task=None, trust_pickle=False) -> Model:
    """Load a model: an ONNX file, a .pt2, TorchScript, ``package.module:factory``,
    a Hugging Face folder, a .keras or a .tflite file. See ``edgekit.steps.ingest.load``."""
    from .steps.ingest import load as _load

    return _load(spec, inputs=inputs, dims=dims, task=task, trust_pickle=trust_pickle)


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


def __getattr__(name: str):
    if name in ("Artifact", "Model", "Parity", "Signature", "TensorSpec"):
        from . import _types

        return getattr(_types, name)
    if name == "ConvertResult":
        from .steps.export import ConvertResult

        return ConvertResult
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
