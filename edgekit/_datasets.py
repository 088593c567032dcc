"""Calibration and evaluation data (`--data`): .npz/.npy, an image folder, a text file
of sentences, or ``module:callable``; split so evaluation never sees calibration samples.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import EdgekitError
from ._types import Model

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass
class Split:
    """Batch-1 samples keyed by input name; labels where the data has them."""

    samples: list[dict[str, np.ndarray]]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.samples)


@dataclass
class Data:
    calibration: Split
    evaluation: Split
    description: str


def _rows(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    n = {len(a) for a in arrays.values()}
    if len(n) != 1:
        raise EdgekitError(f"data arrays have different numbers of samples: { {k: len(v) for k, v in arrays.items()} }",
                           "give every input the same number of samples along the first axis")
    return [{k: v[i:i + 1] for k, v in arrays.items()} for i in range(n.pop())]


def _from_npz(path: Path, model: Model) -> tuple[list[dict], np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise EdgekitError(f"{path} is not a readable .npz/.npy file ({exc})", "save it with numpy.savez") from exc
    if isinstance(loaded, np.ndarray):
        if len(model.signature.inputs) != 1:
            raise EdgekitError(f"{path} holds one array but the model has {len(model.signature.inputs)} inputs",
                               "use an .npz keyed by input name")
        arrays = {model.signature.inputs[0].name: loaded}
        labels = None
    else:
        arrays = dict(loaded)
        labels = arrays.pop("labels", None)
    return _rows(arrays), labels


def _from_images(folder: Path, model: Model, mean, std) -> tuple[list[dict], np.ndarray | None]:
    Image = importlib.import_module("PIL.Image")
    spec = model.signature.inputs[0]
    shape = spec.concrete(model.dims)
    if len(shape) != 4:
        raise EdgekitError(f"an image folder needs a model with one 4-D image input; {spec.name} is {list(shape)}",
                           "give the data as an .npz instead")
    channels_first = shape[1] in (1, 3)
    c, h, w = (shape[1], shape[2], shape[3]) if channels_first else (shape[3], shape[1], shape[2])
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    classes = sorted({p.parent.name for p in files}) if all(p.parent != folder for p in files) else None
    rows, labels = [], []
    mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(std, np.float32).reshape(-1, 1, 1)
    for p in files:
        img = Image.open(p).convert("L" if c == 1 else "RGB").resize((w, h))
        arr = np.asarray(img, np.float32) / 255.0
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        arr = (arr - mean) / std
        rows.append({spec.name: (arr if channels_first else arr.transpose(1, 2, 0))[None].astype(spec.dtype)})
        if classes:
            labels.append(classes.index(p.parent.name))
    return rows, (np.asarray(labels) if classes else None)


def _from_text(path: Path, model: Model) -> tuple[list[dict], None]:
    tokenizer = model.meta.get("tokenizer")
    if tokenizer is None:
        raise EdgekitError(f"{path} is text, but the model has no tokenizer to turn it into inputs",
                           "give a Hugging Face model folder that includes its tokenizer, or pre-tokenized .npz data")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    seq = model.dims.get("sequence", 128)
    names = [s.name for s in model.signature.inputs]
    rows = []
    for line in lines:
        enc = tokenizer(line, padding="max_length", truncation=True, max_length=seq, return_tensors="np")
        rows.append({n: enc[n].astype(next(s.dtype for s in model.signature.inputs if s.name == n)) for n in names})
    return rows, None


def real_rows(spec, model: Model, axes: list[str], limit: int | None = None) -> tuple[list[dict], str]:
    """Samples of ``--data`` at their real sizes along ``axes`` (for shape buckets): a text file
    tokenized without padding (cut at the model's ``sequence`` size), or .npz rows cut to their
    attention mask's length. Returns the rows and what they are."""
    path = Path(str(spec))
    if path.is_file() and (path.suffix in (".txt", ".text") or path.suffix == ""):
        tokenizer = model.meta.get("tokenizer")
        if tokenizer is None:
            raise EdgekitError(f"{path} is text, but the model has no tokenizer to turn it into inputs",
                               "give a Hugging Face model folder with its tokenizer, or pre-tokenized .npz data")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        dtypes = {s.name: s.dtype for s in model.signature.inputs}
        cut = model.dims.get("sequence", 128)
        rows = []
        for line in lines[:limit]:
            enc = tokenizer(line, truncation=True, max_length=cut, return_tensors="np")
            rows.append({n: enc[n].astype(t) for n, t in dtypes.items() if n in enc})
        return rows, f"{path.name}: {len(rows)} sentences tokenized without padding"
    if path.is_file() and path.suffix in (".npz", ".npy"):
        rows, _ = _from_npz(path, model)
        return [_cut_to_mask(r, model, axes) for r in rows[:limit]], f"{path.name}: {len(rows[:limit])} rows"
    raise EdgekitError(f"shape buckets read real lengths from text or .npz data; {spec} is neither",
                       "give --data a .txt of sentences or an .npz (with an attention_mask for padded rows)")


def _cut_to_mask(row: dict[str, np.ndarray], model: Model, axes: list[str]) -> dict[str, np.ndarray]:
    """A padded row cut to its attention mask's length, along the bucketed axes the mask has."""
    mask_spec = next((s for s in model.signature.inputs if "mask" in s.name.lower() and s.name in row), None)
    if mask_spec is None:
        return row
    mask = np.asarray(row[mask_spec.name])
    real = {}
    for i, axis in mask_spec.dynamic_axes.items():
        if axis in axes and i < mask.ndim:
            nonzero = np.nonzero(np.moveaxis(mask, i, 0).reshape(mask.shape[i], -1).any(axis=1))[0]
            real[axis] = int(nonzero[-1]) + 1 if nonzero.size else 1
    out = {}
    for spec in model.signature.inputs:
        arr = row.get(spec.name)
        if arr is None:
            continue
        index = tuple(slice(0, real[d]) if isinstance(d, str) and d in real else slice(None)
                      for d in spec.shape[:arr.ndim])
        out[spec.name] = arr[index]
    return out


def _from_callable(spec: str) -> dict | list:
    mod_name, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EdgekitError(f"cannot import data callable {spec!r}: {exc}", "give module:callable importable from here") from exc
    return fn()


def _batches_to_rows(batches, model: Model) -> tuple[list[dict], np.ndarray | None]:
    """Each batch is a dict of arrays, a tuple of arrays (in input order), or (inputs, labels)."""
    names = [s.name for s in model.signature.inputs]
    rows, labels = [], []
    for batch in batches:
        lab = None
        if isinstance(batch, tuple) and len(batch) == 2 and isinstance(batch[0], dict | tuple | list):
            batch, lab = batch
        arrays = batch if isinstance(batch, dict) else dict(zip(names, batch, strict=False))
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        rows.extend(_rows(arrays))
        if lab is not None:
            labels.extend(np.asarray(lab).reshape(-1).tolist())
    if labels and len(labels) != len(rows):
        raise EdgekitError(f"the data gives {len(labels)} labels for {len(rows)} samples", "give one label per sample")
    return rows, (np.asarray(labels) if labels else None)


def validate(rows: list[dict], model: Model, source: str) -> None:
    """Wrong names, ranks, static dims or dtypes: an error before any work."""
    for spec in model.signature.inputs:
        if spec.name not in rows[0]:
            raise EdgekitError(f"{source} has no data for input {spec.name!r} (it has {sorted(rows[0])})",
                               f"key the data by the model's input names: {[s.name for s in model.signature.inputs]}")
        arr = rows[0][spec.name]
        want = spec.concrete(model.dims)
        if arr.ndim != len(want) or any(
                isinstance(d, int) and d != s for d, s in zip(spec.shape[1:], arr.shape[1:], strict=False)):
            raise EdgekitError(f"{source}: input {spec.name!r} has samples of shape {list(arr.shape)}, "
                               f"the model wants {list(spec.shape)}", "reshape the data to the model's signature")
        kind_ok = np.dtype(spec.dtype).kind == arr.dtype.kind or (
            np.dtype(spec.dtype).kind in "iu" and arr.dtype.kind in "iu")
        if not kind_ok:
            raise EdgekitError(f"{source}: input {spec.name!r} is {arr.dtype}, the model wants {spec.dtype}",
                               f"convert the data to {spec.dtype}")


def load_data(spec, model: Model, *, calibration: int = 300, evaluation: int = 500,
              min_samples: int = 8, seed: int = 0, mean=(0.0,), std=(1.0,)) -> Data:
    """Load ``--data`` and split it: ``calibration`` samples to calibrate, up to ``evaluation`` held out.

    ``spec`` is a path, ``module:callable``, or (from Python) the callable itself.
    """
    text = getattr(spec, "__qualname__", None) if callable(spec) else str(spec)
    explicit = None
    if callable(spec) or (_FACTORY.match(text) and not Path(text).exists()):
        result = spec() if callable(spec) else _from_callable(text)
        if isinstance(result, dict) and {"calibration", "evaluation"} <= set(result):
            explicit = tuple(_batches_to_rows(result[k], model) for k in ("calibration", "evaluation"))
        else:
            rows, labels = _batches_to_rows(result, model)
    else:
        path = Path(text)
        if not path.exists():
            raise EdgekitError(f"data {text!r} does not exist",
                               "give an .npz/.npy, an image folder, a text file or module:callable")
        if path.is_file() and path.stat().st_size == 0:
            raise EdgekitError(f"data file {path} is empty", "give a file with samples in it")
        if path.is_dir():
            rows, labels = _from_images(path, model, mean, std)
        elif path.suffix in (".npz", ".npy"):
            rows, labels = _from_npz(path, model)
        elif path.suffix in (".txt", ".text") or path.suffix == "":
            rows, labels = _from_text(path, model)
        else:
            raise EdgekitError(f"data {path} is not a format edgekit reads",
                               "give an .npz/.npy, an image folder, a .txt of sentences or module:callable")
    if explicit:
        (cal_rows, cal_labels), (ev_rows, ev_labels) = explicit
        n_total = len(cal_rows) + len(ev_rows)
    else:
        n_total = len(rows)
    if n_total < 2 * min_samples:
        raise EdgekitError(f"data {text} has {n_total} samples; calibration and a held-out evaluation need at least {2 * min_samples}",
                           "give more samples (hundreds calibrate well)")
    if explicit:
        cal = Split(cal_rows[:calibration], cal_labels[:calibration] if cal_labels is not None else None)
        ev = Split(ev_rows[:evaluation], ev_labels[:evaluation] if ev_labels is not None else None)
        how = f"{len(cal)} calibration samples from the data's calibration split, {len(ev)} held-out evaluation samples"
    else:
        order = np.random.default_rng(seed).permutation(len(rows))
        n_eval = min(evaluation, max(min_samples, len(rows) // 4))
        ev_idx, cal_idx = order[:n_eval], order[n_eval:][:calibration]
        cal = Split([rows[i] for i in cal_idx], labels[cal_idx] if labels is not None else None)
        ev = Split([rows[i] for i in ev_idx], labels[ev_idx] if labels is not None else None)
        how = f"{len(cal)} calibration and {len(ev)} held-out evaluation samples (disjoint; seed {seed})"
    for split in (cal, ev):
        if len(split) < min_samples:
            raise EdgekitError(f"data {text} gives only {len(split)} samples for a split; at least {min_samples} are needed",
                               "give more samples")
        validate(split.samples, model, f"data {text}")
    return Data(cal, ev, f"{text}: {how}")
