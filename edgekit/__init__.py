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
    from .steps._check_types import CheckResult
    from .steps.export import ConvertResult

__all__ = [
    "Artifact", "BackendMissing", "ConversionError", "ConvertResult", "EdgekitError", "Model",
    "Parity", "ParityError", "Signature", "TensorSpec", "__version__", "compress", "convert", "load",
    "FallbackError", "FallbackModel", "FallbackPolicy", "FallbackResult", "serve", "check", "CheckResult",
]


def load(spec, *, inputs=None, dims=None, task=None, trust_pickle=False, trust_remote_code=False, shapes=None,
         sample=None) -> Model:
    """Load a model: an ONNX file, a .pt2, TorchScript, ``package.module:factory``,
    a Hugging Face folder, a .keras or a .tflite file. Dynamic axes are sized by ``dims``
    ({"sequence": 64}), ``shapes`` ({"images": (1, 3, 640, 640)}) or the arrays of ``sample``
    (an .npz keyed by input name). See ``edgekit.steps.ingest.load``."""
    from .steps.ingest import load as _load

    return _load(spec, inputs=inputs, dims=dims, task=task, trust_pickle=trust_pickle,
                 trust_remote_code=trust_remote_code, shapes=shapes, sample=sample)


def convert(model=None, targets=None, out="edgekit-out", *, recipe=None, **options) -> ConvertResult:
    """Convert ``model`` (a Model or anything ``load`` takes) to each target under ``out``
    (default targets: onnx, openvino, tflite, coreml), verify every artifact against the source,
    and write ``out/manifest.json``.

    ``recipe`` (a models/*.toml path) runs a recipe as `edgekit convert --recipe` does: ``model``
    (a spec string) replaces its source, and ``options`` override its fields:
    ``edgekit.convert(recipe="models/minilm-l6.toml", out="build/m", targets=["onnx"])``.

    Options: ``precision`` ("fp32"|"fp16"), ``inputs`` (an .npz keyed by input name: it also
    sizes dynamic axes when ``model`` is loaded here), ``shapes`` ({"images": (1, 3, 640, 640)},
    when ``model`` is loaded here), ``samples``, ``tolerance`` ({"atol", "rtol", "min_cosine"}),
    ``simplify``, ``force``, ``routes`` (route names, tools or functions to use where they apply),
    ``explain`` (locate the first divergent op of every artifact, not only of those failing parity),
    ``shape_buckets`` ({"sequence": [16, 32, 64, 128]} or {"sequence": "auto"}, or the CLI's
    ["sequence=16,32"]: LiteRT gets one signature per bucket, every artifact is verified at each),
    ``data`` (real samples, a .txt or .npz: the lengths ``auto`` chooses from, and each bucket's
    verification samples).
    """
    from ._types import Model as _Model
    from .steps.export import convert as _convert

    if recipe is not None:
        from ._recipe import load_recipe, resolve_convert

        recipe_keys = {"precision", "inputs", "samples", "routes", "tolerance", "simplify", "force", "input", "dims",
                       "shapes", "task", "trust_pickle", "trust_remote_code", "shape_buckets", "data"}
        load_kw, convert_kw = resolve_convert(load_recipe(recipe), model if isinstance(model, str) else None,
                                              {"targets": targets, **{k: v for k, v in options.items()
                                                                      if k in recipe_keys}})
        rest = {k: v for k, v in options.items() if k not in recipe_keys}  # e.g. explain: checked by convert
        return _convert(load(**load_kw), convert_kw.pop("targets"), out, **convert_kw, **rest)
    if model is None:
        raise EdgekitError("convert needs a model", "pass model= (anything edgekit.load takes), or recipe=")
    targets = targets or ("onnx", "openvino", "tflite", "coreml")
    shapes = options.pop("shapes", None)
    if not isinstance(model, _Model):
        model = load(model, shapes=shapes, sample=options.get("inputs"))
    elif shapes:
        raise EdgekitError("shapes= applies when edgekit.convert loads the model",
                           "pass shapes= to edgekit.load instead")
    return _convert(model, list(targets) if not isinstance(targets, str) else targets, out, **options)


def check(model, targets=("onnx", "openvino", "tflite", "coreml"), **options) -> CheckResult:
    """Predict, in seconds and without converting, whether ``convert`` will make each target's
    artifact: per target and route, the ops its converter or runtime cannot take, the known
    failures they match, the axes still needing a size, and whether the source is quantized.

    Options: ``precision`` ("fp32"|"fp16"); when ``model`` is loaded here, ``inputs`` (an .npz),
    ``shapes`` ({"images": (1, 3, 640, 640)}) and ``dims`` ({"sequence": 64}) size its axes.
    The result's ``exit_code`` is 0 when every target will convert, 3 when one will fail.
    See docs/check.md."""
    from ._types import Model as _Model
    from .steps.check import check as _check

    sizing = {k: options.pop(k, None) for k in ("inputs", "shapes", "dims")}
    unknown = sorted(set(options) - {"precision"})
    if unknown:
        raise EdgekitError(f"edgekit.check has no option(s) {unknown}", "use precision=, inputs=, shapes= or dims=")
    if not isinstance(model, _Model):
        model = load(model, dims=sizing["dims"], shapes=sizing["shapes"], sample=sizing["inputs"])
    elif any(v is not None for v in sizing.values()):
        raise EdgekitError("inputs=, shapes= and dims= apply when edgekit.check loads the model",
                           "pass them to edgekit.load instead")
    return _check(model, list(targets) if not isinstance(targets, str) else targets, **options)


def compress(model=None, targets=None, quantize=None, data=None, out="edgekit-out", *, recipe=None, **options):
    """Quantize ``model`` for each target with that target's own quantizer; evaluate every
    variant against the fp32 source on held-out ``data``; write ``out/report.json``.

    ``targets``: default onnx, openvino, tflite. ``quantize``: modes (fp16, dynamic-int8,
    static-int8 (the default), int8-weights, int4-weights, mixed).
    Options (``steps.compress.CompressOptions``): ``max_drop`` (points), ``calibration``,
    ``evaluation`` (sample counts), ``keep_float``, ``calibration_method``, ``threads``, ``runs``,
    ``int8_io``, ``keep_names``, ``skip_unsupported``, ``device`` (a profile in targets/: quantize
    for its CPU; ``target_device`` in 0.1), ``force``; and ``progress`` (an
    ``edgekit._progress.Progress``). An unknown name is an error that lists them.

    ``recipe`` (a models/*.toml path, or a loaded ``Recipe``) runs a recipe as `edgekit compress
    --recipe` does; ``model`` (a spec string) then replaces its source, and ``options`` named as
    the recipe's [compress] fields override it: ``edgekit.compress(recipe="models/digits-cnn.toml",
    out="build/q", max_drop=0.5)``.
    """
    progress = options.pop("progress", None)
    if recipe is not None:
        return _compress_recipe(recipe, model, targets, quantize, data, out, progress, options)
    from ._types import Model as _Model
    from .steps.compress import CompressOptions
    from .steps.compress import compress as _compress

    if data is None:
        raise EdgekitError("compress needs data", "pass data= (an .npz, an image folder, a .txt of sentences or module:callable)")
    if model is None:
        raise EdgekitError("compress needs a model", "pass model= (anything edgekit.load takes), or recipe=")
    opts = CompressOptions.from_kwargs(options)
    if not isinstance(model, _Model):
        model = load(model)
    targets = targets or ("onnx", "openvino", "tflite")
    return _compress(model, targets=list(targets) if not isinstance(targets, str) else targets,
                     modes=quantize or "static-int8", data=data, out=out, options=opts, progress=progress)


def _compress_recipe(recipe, model, targets, quantize, data, out, progress, options: dict):
    """``compress(recipe=...)``: the recipe, with ``options`` named as its [compress] fields over it."""
    from ._recipe import Recipe, load_recipe, resolve_compress
    from .steps.compress import compress_recipe

    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    force = options.pop("force", False)
    renamed = {"calibration": "calibration_samples", "evaluation": "eval_samples"}  # the non-recipe names
    flags = {renamed.get(k, k): v for k, v in options.items()}
    for key, value in (("targets", targets), ("quantize", quantize), ("threads", flags.get("threads"))):
        flags[key] = value.split(",") if isinstance(value, str) else value
    flags["data"] = data
    resolved = resolve_compress(loaded, model if isinstance(model, str) else None, flags)
    return compress_recipe(resolved, out=out, force=force, progress=progress)


def __getattr__(name: str):
    if name in ("Artifact", "Model", "Parity", "Signature", "TensorSpec"):
        from . import _types

        return getattr(_types, name)
    if name in ("FallbackError", "FallbackModel", "FallbackPolicy", "FallbackResult"):
        from . import fallback

        return getattr(fallback, name)
    if name == "runtime":  # the module: edgekit.runtime.load(DIR, target=...)
        import importlib

        return importlib.import_module(".runtime", __name__)
    if name == "serve":  # the package, callable: edgekit.serve("model.onnx", port=8000)
        import importlib

        return importlib.import_module(".serve", __name__)
    if name == "CheckResult":
        from .steps._check_types import CheckResult

        return CheckResult
    if name == "ConvertResult":
        from .steps.export import ConvertResult

        return ConvertResult
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
