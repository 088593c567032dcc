"""Input specs (`--input name:shape:dtype`), user inputs (.npz) and realistic generated inputs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ._errors import EdgekitError
from ._types import Signature, TensorSpec

DEFAULT_DIMS = {"batch": 1, "sequence": 128}
_DTYPES = {"float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool"}
_SPEC_FIX = "write it as name:shape:dtype, e.g. --input pixels:1x3x32x32:float32 or input_ids:batchx128:int64"


def parse_input_spec(text: str) -> TensorSpec:
    """Parse ``name:shape:dtype``; a shape is dims joined by x or ',', a dim an int or an axis name."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise EdgekitError(f"bad --input {text!r}", _SPEC_FIX)
    name, shape_text = parts[0], parts[1]
    dtype = parts[2] if len(parts) == 3 else "float32"
    if dtype not in _DTYPES:
        raise EdgekitError(f"bad dtype {dtype!r} in --input {text!r}", f"use one of {sorted(_DTYPES)}")
    dims: list[int | str] = []
    for tok in re.split(r"[x,]", shape_text) if shape_text else []:
        tok = tok.strip()
        if tok.isdigit() and int(tok) > 0:
            dims.append(int(tok))
        elif re.fullmatch(r"[A-Za-z_]\w*", tok):
            dims.append(tok)
        else:
            raise EdgekitError(f"bad dimension {tok!r} in --input {text!r}", _SPEC_FIX)
    return TensorSpec(name, tuple(dims), dtype)


def parse_dims(items: list[str] | None) -> dict[str, int]:
    """``--dim sequence=64`` -> {"sequence": 64}."""
    out: dict[str, int] = {}
    for item in items or []:
        key, _, val = item.partition("=")
        if not key or not val.isdigit() or int(val) < 1:
            raise EdgekitError(f"bad --dim {item!r}", "write it as axis=size, e.g. --dim sequence=64")
        out[key] = int(val)
    return out


def parse_shapes(items: list[str] | dict | None) -> dict[str, tuple[int, ...]]:
    """``--shape images=1x3x640x640`` -> {"images": (1, 3, 640, 640)}; a size may be 0 (an empty axis)."""
    if isinstance(items, dict):
        return {k: tuple(int(d) for d in v) for k, v in items.items()}
    out: dict[str, tuple[int, ...]] = {}
    for item in items or []:
        name, _, text = item.partition("=")
        dims = re.split(r"[x,]", text.strip()) if text.strip() else []
        if not name or not all(d.strip().isdigit() for d in dims):
            raise EdgekitError(f"bad --shape {item!r}",
                               "write it as input=dims, e.g. --shape images=1x3x640x640 (a scalar: --shape step=)")
        out[name] = tuple(int(d) for d in dims)
    return out


def _axis_sizes(spec: TensorSpec, shape: tuple[int, ...], origin: str) -> dict[str, int]:
    """The size each dynamic axis of ``spec`` gets from a concrete ``shape`` (checked against the fixed ones)."""
    if len(shape) != len(spec.shape) or any(isinstance(d, int) and d != s for d, s in zip(spec.shape, shape,
                                                                                         strict=True)):
        raise EdgekitError(f"{origin} gives input {spec.name!r} the shape {list(shape)}, the model declares "
                           f"{list(spec.shape)}",
                           f"give a shape of rank {len(spec.shape)} that keeps the fixed sizes")
    return {axis: shape[i] for i, axis in spec.dynamic_axes.items()}


def resolve_dims(signature: Signature, given: dict[str, int], defaults: dict[str, int], *,
                 shapes: dict[str, tuple[int, ...]] | None = None, arrays: dict | None = None,
                 arrays_from: str = "--inputs", strict: bool = True) -> tuple[dict[str, int], dict[str, str]]:
    """The size of every dynamic axis, and where it came from.

    In order: ``--dim`` (``given``), ``--shape`` (``shapes``), the user's arrays (``arrays``:
    input name -> array), the model's own defaults, then edgekit's (batch=1, sequence=128).
    Two explicit sources that disagree on an axis are an error, not a silent choice. An axis no
    source sizes is an error, or (``strict=False``) left out, to be sized later by ``size_axes``."""
    names = {s.name for s in signature.inputs}
    unknown = sorted(set(shapes or {}) - names)
    if unknown:
        raise EdgekitError(f"--shape names input(s) {unknown} the model does not have",
                           f"its inputs are {sorted(names)}")
    dims: dict[str, int] = {}
    sources: dict[str, str] = {}
    explicit: list[tuple[str, dict[str, int]]] = [("--dim", dict(given))]
    for spec in signature.inputs:
        if spec.name in (shapes or {}):
            explicit.append((f"--shape {spec.name}", _axis_sizes(spec, shapes[spec.name], "--shape")))
        if spec.name in (arrays or {}):
            shape = tuple(arrays[spec.name].shape)
            explicit.append((f"{arrays_from} ({spec.name})", _axis_sizes(spec, shape, arrays_from)))
    for origin, sizes in explicit:
        for axis, size in sizes.items():
            if axis in dims and dims[axis] != size:
                raise EdgekitError(f"axis {axis!r} is {dims[axis]} by {sources[axis]} but {size} by {origin}",
                                   "give one size per axis (the arrays in --inputs must agree with --dim/--shape)")
            dims.setdefault(axis, size)
            sources.setdefault(axis, origin)
    for spec in signature.inputs:
        for axis in spec.dynamic_axes.values():
            if axis in dims:
                continue
            size = defaults.get(axis, DEFAULT_DIMS.get(axis))
            if size is None and strict:
                raise _unsized(spec, axis)
            if size is not None:
                dims[axis], sources[axis] = size, "the model's default" if axis in defaults else "edgekit's default"
    return dims, sources


def _unsized(spec: TensorSpec, axis: str) -> EdgekitError:
    return EdgekitError(
        f"input {spec.name!r} has a dynamic axis {axis!r} ({_shape_text(spec)}) with no size to test it at",
        f"give sample inputs with --inputs x.npz, or the shape with --shape {spec.name}=...,"
        f" or the axis with --dim {axis}=N")


def size_axes(model, arrays: dict | None = None, origin: str = "--inputs") -> None:
    """Size ``model``'s dynamic axes from the user's ``arrays`` (input name -> array) where they
    were unsized or only defaulted; an axis an explicit flag sized must agree. Then every axis
    must have a size (else the error says how to give one)."""
    sources = model.meta.setdefault("dim_sources", {})
    for spec in model.signature.inputs:
        if arrays is None or spec.name not in arrays:
            continue
        for axis, size in _axis_sizes(spec, tuple(arrays[spec.name].shape), origin).items():
            known, source = model.dims.get(axis), sources.get(axis, "")
            if known is not None and known != size and not source.endswith("default"):
                raise EdgekitError(f"axis {axis!r} is {known} by {source} but {size} by {origin} ({spec.name})",
                                   "give one size per axis (the arrays in --inputs must agree with --dim/--shape)")
            if known is None or source.endswith("default"):
                model.dims[axis], sources[axis] = size, f"{origin} ({spec.name})"
    for spec in model.signature.inputs:
        for axis in spec.dynamic_axes.values():
            if axis not in model.dims:
                raise _unsized(spec, axis)


def _shape_text(spec: TensorSpec) -> str:
    return "[" + ", ".join(str(d) for d in spec.shape) + "]"


def generate_inputs(signature: Signature, dims: dict[str, int], meta: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Realistic inputs: token ids inside the vocabulary, masks of ones, images in range."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = spec.concrete(dims)
        name = spec.name.lower()
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            arr = np.ones(shape, dtype=bool)
        elif dtype.kind in "iu":
            if "mask" in name:
                arr = np.ones(shape, dtype)
            elif "type" in name or "segment" in name:
                arr = np.zeros(shape, dtype)
            elif "position" in name:
                arr = np.broadcast_to(np.arange(shape[-1]), shape).astype(dtype)
            else:
                vocab = int(meta.get("vocab_size") or 100)
                low = min(1000, vocab // 2)  # skip special tokens at the start of a vocabulary
                arr = rng.integers(low, vocab, size=shape).astype(dtype)
        elif len(shape) == 4 and (shape[1] in (1, 3) or shape[-1] in (1, 3)):
            lo, hi = meta.get("image_range", (0.0, 1.0))
            arr = rng.uniform(lo, hi, size=shape).astype(dtype)
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        out[spec.name] = np.asarray(arr, order="C")  # ascontiguousarray would make a scalar [1]
    return out


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a user's .npz (no pickles), or a clear error."""
    if not path.is_file():
        raise EdgekitError(f"inputs file {str(path)!r} does not exist", "pass an .npz keyed by input name")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises many kinds here
        raise EdgekitError(f"{path} is not a readable .npz file ({exc})", "save it with numpy.savez") from exc


def load_npz(path: Path, signature: Signature, data: dict[str, np.ndarray] | None = None
             ) -> list[dict[str, np.ndarray]]:
    """The user's inputs, keyed by input name; each becomes one sample (batch kept as given).
    Scalars and empty axes stay as given: each array is fed at the rank the model declares.
    ``data``: the file's arrays when already read (``read_npz``)."""
    data = dict(data) if data is not None else read_npz(path)
    names = [s.name for s in signature.inputs]
    missing = [n for n in names if n not in data]
    if missing:
        raise EdgekitError(
            f"{path} has no array for input(s) {missing} (it has {sorted(data)})",
            f"key the arrays by the model's input names: {names}",
        )
    for spec in signature.inputs:
        arr = data[spec.name]
        if arr.ndim != len(spec.shape) or any(
            isinstance(d, int) and d != s for d, s in zip(spec.shape, arr.shape, strict=False)
        ):
            raise EdgekitError(
                f"input {spec.name!r} in {path} has shape {list(arr.shape)}, the model wants {list(spec.shape)}",
                "reshape the array to match the model's signature",
            )
        data[spec.name] = arr.astype(spec.dtype, copy=False)
    return [{n: data[n] for n in names}]
