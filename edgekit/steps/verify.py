"""Verify: run source and artifact on the same inputs and compare every output."""

from __future__ import annotations

import math

import numpy as np

from .._data import load_toml
from .._errors import EdgekitError
from .._types import Model, OutputParity, Parity, Signature


def default_tolerance(precision: str, overrides: dict | None = None, model: Model | None = None) -> dict:
    """The parity tolerances of ``precision``, with the user's ``overrides`` on top.

    A source that is already quantized (``model.meta["quantized"]``, set by the ONNX and TFLite
    loaders) is judged at ``[int8-source]`` instead: its artifact re-implements integer math and
    drifts by quantization steps, not by float rounding. A source that computes in float16
    (``float16_reason``) and converted at fp32 is judged by ``[fp16]``: its own results carry
    float16's rounding. The model's notes then say so."""
    table = load_toml("converters", "tolerances.toml")
    quantized = model.meta.get("quantized") if model is not None else None
    basis = "int8-source" if quantized and precision in ("fp32", "fp16") else precision
    half = float16_reason(model) if model is not None and not quantized and precision == "fp32" else None
    basis = "fp16" if half else basis
    tol = dict(table.get(basis, table["fp32"]))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    tol.update(given)
    if half and model is not None:
        note = f"the source computes in float16 ({half}): verified at fp16 tolerances"
        if note not in model.notes:
            model.notes.append(note)
    if quantized and model is not None:
        note = quantized_source_note(quantized, tol, given)
        if note not in model.notes:
            model.notes.append(note)
    return tol


def float16_reason(model: Model) -> str | None:
    """Why the source's own results carry float16 rounding, or None: its outputs are float16, or
    most of its float weights are (an ONNX source, ``meta["float16_compute"]``: a float16
    converter's ``keep_io_types`` output computes in float16 between float32 inputs and outputs)."""
    if any(s.dtype == "float16" for s in model.signature.outputs):
        return "its outputs are float16"
    share = model.meta.get("float16_compute")
    if share:
        return f"{share['float16'] / share['float']:.0%} of its float weights are float16"
    return None


def quantized_source_note(quantized: dict, tol: dict, given: dict) -> str:
    """'the source is already int8 (QDQ: 9 QuantizeLinear, ...): verified at int8 tolerances (...)'."""
    bits = f"int{quantized.get('bits', 8)}"
    rules = [f"cosine >= {tol['min_cosine']}"]
    if tol.get("min_top1") is not None:
        rules.append(f"top-1 agreement >= {tol['min_top1']} on class outputs")
    if tol["atol"] != float("inf"):
        rules.append(f"max abs error <= {tol['atol']:g} + {tol['rtol']:g} x max|source|")
    yours = f"; yours: {', '.join(f'{k}={v}' for k, v in given.items())}" if given else ""
    return (f"the source is already {bits} ({quantized['summary']}): verified at int8 tolerances "
            f"([int8-source] in converters/tolerances.toml: {', '.join(rules)}{yours})")


def source_runner(model: Model):
    """A callable running the source model itself: feeds dict -> list of outputs."""
    names = [s.name for s in model.signature.inputs]
    if model.module is not None:
        import torch

        def run(feeds):
            with torch.no_grad():
                out = model.module(*[torch.from_numpy(np.asarray(feeds[n], order="C")) for n in names])
            return [t.detach().numpy() for t in out]

        return run
    if model.format in ("onnx", "tflite"):
        return _file_runner(model)
    if model.format == "keras":
        def run(feeds):
            out = model.keras([feeds[n] for n in names] if len(names) > 1 else feeds[names[0]], training=False)
            return [np.asarray(o) for o in (out if isinstance(out, list | tuple) else [out])]

        return run
    raise EdgekitError(f"cannot run a {model.format} source for verification")


def contiguous(arr: np.ndarray) -> np.ndarray:
    """C-contiguous, with its shape kept: np.ascontiguousarray turns a scalar ``[]`` into ``[1]``,
    which a runtime whose input is declared ``[]`` refuses."""
    return np.asarray(arr, order="C")


def _file_runner(model: Model):
    """The source file in its own runtime; a custom op it has no kernel for is named as one."""
    try:
        if model.format == "onnx":
            from ..backends.onnxruntime.runtime import OrtRunner

            return OrtRunner(model.onnx_path).run
        from ..backends.tflite.runtime import LiteRTRunner

        return LiteRTRunner(model.path).run
    except Exception as exc:
        from .ingest._custom import source_error

        err = source_error(model.format, exc, model.meta.get("custom_ops") or [])
        if err is None:
            raise
        raise err from exc


def _as_rank(arr: np.ndarray, want: tuple) -> np.ndarray:
    """A scalar the source declares ``[]`` fed to an artifact that made it ``[1]`` (or the reverse):
    the same one value, at the artifact's rank. Any other shape is left for the check to refuse."""
    if arr.size == 1 and arr.ndim != len(want) and len(want) <= 1 and all(d in (1,) or isinstance(d, str)
                                                                            for d in want):
        return arr.reshape((1,) * len(want))
    return arr


def adapt_feeds(feeds: dict[str, np.ndarray], source: Signature, runtime: Signature) -> dict[str, np.ndarray]:
    """The sample keyed and typed for the artifact's runtime: names (else position), dtype, shape."""
    out = {}
    for i, spec in enumerate(runtime.inputs):
        key = spec.name if spec.name in feeds else (source.inputs[i].name if i < len(source.inputs) else None)
        if key is None or key not in feeds:
            raise EdgekitError(f"the artifact has an input {spec.name!r} the source does not have",
                               "check that the conversion kept the model's inputs")
        arr = _as_rank(feeds[key], tuple(spec.shape))
        want = tuple(d for d in spec.shape)
        if len(want) != arr.ndim or any(isinstance(d, int) and d != s for d, s in zip(want, arr.shape, strict=False)):
            raise EdgekitError(
                f"input {key!r} has shape {list(arr.shape)}, the artifact wants {list(want)}",
                "give inputs of the artifact's static shape (set dynamic axes with --dim)")
        if arr.dtype.kind == "f" and np.dtype(spec.dtype).kind in "iu":
            out[spec.name] = contiguous(arr)  # a quantized input: the runner applies its scale
        else:
            out[spec.name] = contiguous(arr.astype(spec.dtype, copy=False))
    return out


def output_order(source: Signature, runtime: Signature) -> list[int] | None:
    """Index of each source output among the runtime's outputs: by name, else by position."""
    names_src = [s.name for s in source.outputs]
    names_rt = [s.name for s in runtime.outputs]
    if set(names_src) <= set(names_rt):
        return [names_rt.index(n) for n in names_src]
    return list(range(len(names_src))) if len(names_rt) >= len(names_src) else None


def _align(ref: np.ndarray, got: np.ndarray) -> np.ndarray | None:
    """The artifact's output in the source's layout, where it is a known permutation: channels-last
    (NWC, NHWC, NDHWC, as onnx2tf hands back 3D to 5D tensors) moved back to channels-first."""
    if got.shape == ref.shape:
        return got
    n = got.ndim
    if got.size == ref.size and n == ref.ndim >= 3 and got.transpose(0, n - 1, *range(1, n - 1)).shape == ref.shape:
        return got.transpose(0, n - 1, *range(1, n - 1))
    if got.size == ref.size:
        return got.reshape(ref.shape)
    return None


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    finite = np.isfinite(a) & np.isfinite(b)  # inf or NaN where both have it is judged by _abs_diff
    a, b = a[finite], b[finite]
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / (na * nb)) if na and nb else 0.0


def _abs_diff(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|ref - got|, 0 where both hold the same value (the same inf included) or both NaN: an
    empty reduction's -inf is the right answer when the source gives it too."""
    same = (ref == got) | (np.isnan(ref) & np.isnan(got))
    with np.errstate(invalid="ignore"):
        return np.where(same, 0.0, np.abs(ref - got)).ravel()


def _output_parity(name: str, ref_all: list[np.ndarray], got_all: list[np.ndarray],
                   classifier: bool) -> tuple[OutputParity, float]:
    """One output's errors over the samples, and the scale of the source's values."""
    pairs = list(zip(ref_all, got_all, strict=True))
    diff = np.concatenate([_abs_diff(r, g) for r, g in pairs])
    top1 = None
    if classifier and all(r.size for r in ref_all):
        agree = [np.argmax(r, -1) == np.argmax(g, -1) for r, g in pairs]
        top1 = float(np.mean(np.concatenate([a.ravel() for a in agree])))
    # initial: an output may be empty (an axis of size 0)
    scale = max(float(np.max(np.abs(r[np.isfinite(r)]), initial=0.0)) for r in ref_all)
    op = OutputParity(name, float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0,
                      float(min(_cos(r, g) for r, g in pairs)), top1)
    return op, scale


def _judge(op: OutputParity, scale: float, tolerance: dict) -> tuple[float, tuple[float, str, str] | None]:
    """How close the output is to its limit (1 = at it), and its failure if it fails."""
    name = op.name
    limit = tolerance["atol"] + tolerance["rtol"] * scale
    ratio = op.max_abs_err / max(limit, 1e-30)
    min_top1 = tolerance.get("min_top1")
    if not math.isfinite(op.max_abs_err):
        return ratio, (math.inf, name, f"output {name!r}: NaN or inf where the source and the artifact differ")
    if op.max_abs_err > limit:
        return ratio, (ratio, name, f"output {name!r}: max abs error {op.max_abs_err:.3g} > {limit:.3g}")
    if op.cosine < tolerance["min_cosine"]:
        return ratio, ((1 - op.cosine) / max(1 - tolerance["min_cosine"], 1e-30), name,
                       f"output {name!r}: cosine {op.cosine:.6f} < {tolerance['min_cosine']}")
    if min_top1 is not None and op.top1_agreement is not None and op.top1_agreement < min_top1:
        return ratio, ((1 - op.top1_agreement) / max(1 - min_top1, 1e-30), name,
                       f"output {name!r}: top-1 agreement {op.top1_agreement:.3f} < {min_top1}")
    return ratio, None


def compare(model: Model, refs: list[list[np.ndarray]], gots: list[list[np.ndarray]], out_names: list[str],
            tolerance: dict, classifier: set[str]) -> Parity:
    """Per-output errors over all samples; the worst output decides the status."""
    results: list[OutputParity] = []
    ratios: list[tuple[float, str]] = []
    failures: list[tuple[float, str, str]] = []
    for j, name in enumerate(out_names):
        ref_all, got_all = [], []
        for ref_s, got_s in zip(refs, gots, strict=True):
            ref = np.asarray(ref_s[j], dtype=np.float64)
            got = _align(ref, np.asarray(got_s[j]).astype(np.float64))
            if got is None:
                return Parity(status="fail", worst_output=name, tolerance=tolerance,
                              reason=f"output {name!r} has shape {list(np.shape(got_s[j]))}, the source {list(ref.shape)}")
            ref_all.append(ref)
            got_all.append(got)
        op, scale = _output_parity(name, ref_all, got_all, name in classifier)
        results.append(op)
        ratio, failure = _judge(op, scale, tolerance)
        ratios.append((ratio, name))
        if failure:
            failures.append(failure)
    return Parity(
        status="fail" if failures else "pass",
        max_abs_err=max(r.max_abs_err for r in results),
        mean_abs_err=max(r.mean_abs_err for r in results),
        cosine=min(r.cosine for r in results),
        top1_agreement=min((r.top1_agreement for r in results if r.top1_agreement is not None), default=None),
        worst_output=max(failures)[1] if failures else max(ratios)[1],
        reason="; ".join(f[2] for f in sorted(failures, reverse=True)) or None,
        tolerance=tolerance,
        outputs=results,
    )


def classifier_outputs(model: Model) -> set[str]:
    """Outputs where top-1 agreement means something: class scores."""
    if model.task in ("text-classification", "image-classification", "token-classification", "fill-mask"):
        return {s.name for s in model.signature.outputs if "logit" in s.name}
    if model.task in ("feature-extraction", "sentence-embedding"):
        return set()
    out = set()
    for s in model.signature.outputs:
        if any(w in s.name.lower() for w in ("logit", "prob", "score", "class")):
            out.add(s.name)
        elif len(s.shape) == 2 and isinstance(s.shape[-1], int) and 1 < s.shape[-1] <= 1000 and model.format in ("torch", "exported-program", "torchscript", "onnx", "keras", "tflite"):
            out.add(s.name)
    return out
