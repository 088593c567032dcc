"""The served model: find the artifact, open it in its runtime, and check requests against
its signature before anything runs (a bad request must cost a 4xx, never an inference)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import EdgekitError
from .._types import Signature, TensorSpec, sha256_of

DEFAULT_MAX_ROWS = 256  # largest batch (axis 0) one request may carry
DEFAULT_MAX_DIM = 4096  # largest size of any other dynamic axis, unless --max-dim says


class RequestError(Exception):
    """A request the server refuses: ``status`` is the HTTP code, ``detail`` says what is wrong."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class ModelInfo:
    """What the HTTP front needs to know about a model, without holding its runtime (so the
    Ray ingress can validate requests while the replicas hold the sessions)."""

    name: str
    version: str
    path: Path
    format: str  # onnx | openvino
    signature: Signature
    batchable: bool
    limits: dict[str, int] = field(default_factory=dict)  # axis name -> largest size allowed
    buckets: dict[str, list[int]] | None = None  # shape buckets: axis -> sizes each request is padded up to
    pad: dict[str, float] = field(default_factory=dict)  # input -> the value it is padded with (default 0)

    def to_dict(self, max_batch_size: int) -> dict:
        return {
            "name": self.name, "version": self.version, "format": self.format,
            "signature": self.signature.to_dict(), "limits": self.limits,
            "buckets": {"axes": self.buckets, "pad": self.pad} if self.buckets else None,
            "batching": {"enabled": self.batchable and max_batch_size > 1,
                         "max_batch_size": max_batch_size if self.batchable else 1,
                         "reason": None if self.batchable else "axis 0 is not dynamic: one request at a time"},
        }


def locate(path: Path) -> tuple[Path, str]:
    """An artifact of a servable target (ONNX, OpenVINO IR), or a convert output folder (its first
    servable artifact, in the targets' order: ONNX, else OpenVINO)."""
    from .._registry import TARGETS
    from ..bench.host import find_artifacts

    servable = [name for name, spec in TARGETS.items() if spec.servable]
    items = [i for i in find_artifacts(Path(path)) if i.format in servable]
    for fmt in servable:
        for item in items:
            if item.format == fmt:
                return item.path, fmt
    raise EdgekitError(f"{path} holds no artifact edgekit serves ({', '.join(servable)})",
                       "give an .onnx, an OpenVINO .xml, or a folder from `edgekit convert --to onnx`")


def open_runner(path: Path, fmt: str, threads: int | None = None):
    """The artifact's runtime on this machine's CPU; an EdgekitError naming the file if it cannot open."""
    from .._registry import TARGETS, runner_for

    try:
        if fmt == "onnx":
            from ..steps.ingest._onnx import check_external_data

            check_external_data(path)
        return runner_for(TARGETS[fmt], path, threads=threads)
    except EdgekitError:
        raise
    except Exception as exc:  # the runtime's own message, first line: no traceback for a bad file
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise EdgekitError(f"cannot open {path} in {TARGETS[fmt].runtime_module}: "
                           f"{type(exc).__name__}: {first[:300]}",
                           "check the file (and its external data or .bin) is complete; rerun with --debug "
                           "for the traceback") from exc


def describe(path: Path, runner, fmt: str, name: str | None = None,
             limits: dict[str, int] | None = None) -> ModelInfo:
    """ModelInfo for an opened runner; the version is the artifact's content hash."""
    sig = runner.signature
    batchable = bool(sig.inputs) and all(s.shape and isinstance(s.shape[0], str) for s in sig.inputs) \
        and all(s.shape and isinstance(s.shape[0], str) for s in sig.outputs)
    from .._registry import TARGETS

    files = TARGETS[fmt].files(path)
    digest = "".join(sha256_of(f) for f in files if f.exists())
    lim = {}
    for spec in sig.inputs:
        for i, axis in spec.dynamic_axes.items():
            default = DEFAULT_MAX_ROWS if i == 0 else DEFAULT_MAX_DIM
            lim[axis] = (limits or {}).get(axis, lim.get(axis, default))
    return ModelInfo(name or default_name(path), digest[:12], path, fmt, sig, batchable, lim)


def manifest_buckets(path: Path) -> tuple[dict[str, list[int]] | None, dict[str, float]]:
    """(axes, pad values) of the artifact's shape buckets in the convert folder's manifest.json
    (``artifacts[i]["buckets"]``), or (None, {}) where there is none."""
    import json

    path = Path(path).resolve()
    for folder in list(path.parents)[:3]:
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            doc = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None, {}
        for entry in doc.get("artifacts", []):
            if (folder / str(entry.get("path", ""))).resolve() == path and entry.get("buckets"):
                spec = entry["buckets"]
                axes = {str(a): sorted(int(n) for n in s) for a, s in (spec.get("axes") or {}).items()}
                return axes or None, dict(spec.get("pad") or {})
        return None, {}
    return None, {}


def with_buckets(info: ModelInfo, buckets: dict[str, list[int]] | None, pad: dict[str, float]) -> ModelInfo:
    """``info`` serving ``buckets``: each must be a named dynamic axis (not the batch axis) of
    its inputs; the axis's limit becomes its largest bucket (longer requests: 422)."""
    if not buckets:
        return info
    axes = {a for s in info.signature.inputs for i, a in s.dynamic_axes.items() if i > 0}
    for axis, sizes in buckets.items():
        if axis not in axes:
            raise EdgekitError(f"shape buckets for {axis!r}, which is not a dynamic axis of {info.name}'s inputs",
                               f"its dynamic axes (besides the batch) are {sorted(axes) or 'none'}")
        info.limits[axis] = min(info.limits.get(axis, DEFAULT_MAX_DIM), max(sizes))
    info.buckets, info.pad = {a: sorted(s) for a, s in buckets.items()}, dict(pad)
    return info


def default_name(path: Path) -> str:
    """model.onnx in build/digits/onnx/ -> "digits": the folder says more than "model".

    In a compress output folder (it holds report.json) the name is the folder's plus the
    variant's: build/mlp-c/fp32/onnx/model.onnx -> "mlp-c-fp32", build/mlp-c/onnx-static-int8/
    model.onnx -> "mlp-c-onnx-static-int8", so two compress folders never share a name.
    """
    root = _compress_root(path)
    if root is not None:
        variant = Path(path).resolve().relative_to(root).parts[0]
        stem = f"{root.name}-{variant}"
    else:
        stem = path.stem
        if stem == "model":
            parent = path.parent
            from .._registry import TARGETS

            if (parent.name in TARGETS or parent.name == "fp32") and parent.parent.name:
                parent = parent.parent
            stem = parent.name or stem
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in stem) or "model"


def _compress_root(path: Path) -> Path | None:
    """The compress output folder holding ``path`` (two or three levels up), if any."""
    resolved = Path(path).resolve()
    for folder in list(resolved.parents)[1:3]:
        if (folder / "report.json").is_file() and (folder / "fp32").is_dir():
            return folder
    return None


# ---- request bodies ---------------------------------------------------------------------

NPZ_TYPES = ("application/x-npz", "application/octet-stream")


def encode_npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def validate(info: ModelInfo, raw: dict[str, object], from_json: bool,
             max_elements: int | None = None) -> dict[str, np.ndarray]:
    """Feeds in the model's dtypes, or a RequestError naming the input and what is wrong.

    JSON values are converted (JSON has no dtypes) but integers are never made from
    fractions, and NaN or infinities are refused (400); an .npz array must have the
    model's dtype exactly. More than ``max_elements`` numbers in all: 413.
    """
    specs = {s.name: s for s in info.signature.inputs}
    missing = [n for n in specs if n not in raw]
    extra = [n for n in raw if n not in specs]
    if missing or extra:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {extra}"] if extra else [])
        raise RequestError(422, f"inputs do not match the model: {', '.join(parts)}; it takes {list(specs)}")
    feeds = {name: _check(spec, raw[name], from_json, info.limits) for name, spec in specs.items()}
    total = sum(a.size for a in feeds.values())
    if max_elements is not None and total > max_elements:
        raise RequestError(413, f"the request holds {total} numbers; this server's limit is {max_elements} "
                                "(--max-elements)")
    rows = {name: a.shape[0] for name, a in feeds.items() if a.ndim and isinstance(specs[name].shape[0], str)}
    if len(set(rows.values())) > 1:
        raise RequestError(422, f"inputs disagree on the batch size (axis 0): {rows}")
    return feeds


def _check(spec: TensorSpec, value, from_json: bool, limits: dict[str, int]) -> np.ndarray:
    want = np.dtype(spec.dtype)
    if from_json:
        arr = _from_json(spec, value, want)
    else:
        arr = np.asarray(value)
        if arr.dtype != want:
            raise RequestError(422, f"input {spec.name!r} has dtype {arr.dtype.name}; the model takes {spec.dtype}")
    if arr.ndim != len(spec.shape):
        raise RequestError(422, f"input {spec.name!r} has rank {arr.ndim} (shape {list(arr.shape)}); "
                                f"the model takes rank {len(spec.shape)} ({_shape_text(spec)})")
    for axis, (got, dim) in enumerate(zip(arr.shape, spec.shape, strict=True)):
        if isinstance(dim, int) and got != dim:
            raise RequestError(422, f"input {spec.name!r} has size {got} on axis {axis}; the model takes {dim} "
                                    f"({_shape_text(spec)})")
        if isinstance(dim, str):
            top = limits.get(dim, DEFAULT_MAX_DIM)
            if not 1 <= got <= top:
                raise RequestError(422, f"input {spec.name!r} has {dim}={got} on axis {axis}; "
                                        f"this server takes 1 to {top}")
    return np.ascontiguousarray(arr)


def _from_json(spec: TensorSpec, value, want: np.dtype) -> np.ndarray:
    """A JSON value as an array of the model's dtype: numbers only, integers from integers, all finite."""
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged lists
        raise RequestError(422, f"input {spec.name!r} is not a rectangular array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise RequestError(422, f"input {spec.name!r} must hold {spec.dtype} numbers; got {arr.dtype.name} values")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise RequestError(400, f"input {spec.name!r} holds NaN or an infinity (or a number too large for a "
                                "float, such as 1e400); send finite values, or an .npz body for IEEE specials")
    if arr.dtype.kind == "f" and want.kind in "biu" and not np.all(arr == np.round(arr)):
        raise RequestError(422, f"input {spec.name!r} must hold {spec.dtype} numbers; got {arr.dtype.name} values")
    if want.kind in "iu" and arr.size and (arr.min() < np.iinfo(want).min or arr.max() > np.iinfo(want).max):
        raise RequestError(422, f"input {spec.name!r} has values outside the range of {spec.dtype}")
    with np.errstate(over="ignore"):
        out = arr.astype(want)
    if want.kind == "f" and not np.all(np.isfinite(out)):
        raise RequestError(400, f"input {spec.name!r} has values too large for {spec.dtype}; send finite values "
                                f"within its range (about {np.finfo(want).max:.3g})")
    return out


def _shape_text(spec: TensorSpec) -> str:
    return "x".join(map(str, spec.shape))
