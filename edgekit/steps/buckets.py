"""Shape buckets in a conversion: the sizes (``auto``: chosen from the lengths of ``--data``),
each bucket's verification samples (real lengths padded to the bucket, with the attention
mask), and the per-bucket parity folded into the artifact's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._buckets import auto_count, check_axes, choose_auto, combos, is_auto, key, parse_buckets
from .._errors import EdgekitError
from .._types import Model, Parity
from ..runtime import axis_sizes, pad, pick_bucket


@dataclass
class BucketPlan:
    """What every target of a bucketed conversion is verified on."""

    axes: dict[str, list[int]]  # axis -> ascending sizes
    pad: dict[str, float]  # input -> the value it is padded with
    samples: dict[str, list[dict]] = field(default_factory=dict)  # bucket key -> padded feeds
    lengths: dict[str, list[dict[str, int]]] = field(default_factory=dict)  # bucket key -> each sample's real sizes
    refs: dict[str, list] = field(default_factory=dict)  # bucket key -> the source's outputs on the samples
    description: str = ""

    @property
    def keys(self) -> list[str]:
        return [key(d) for d in combos(self.axes)]


def declared_max(model: Model) -> dict[str, int]:
    """The largest size each axis may take: a text model's position embeddings."""
    config = model.meta.get("hf_config") or {}
    top = config.get("max_position_embeddings")
    return {"sequence": int(top)} if isinstance(top, int) and top > 0 else {}


def plan(model: Model, spec, data=None, count: int = 3, n_auto: int = 4) -> BucketPlan | None:
    """The buckets asked for (``--shape-buckets``, parsed), checked against the model, ``auto``
    axes chosen from the real lengths of ``data``, and each bucket's verification samples: rows
    of ``data`` at their real length padded to the bucket, else generated ones at lengths inside it."""
    asked = parse_buckets(spec)
    if not asked:
        return None
    dynamic = [a for s in model.signature.inputs for a in s.dynamic_axes.values()]
    check_axes(asked, dynamic, declared_max(model))
    auto = [a for a, v in asked.items() if is_auto(v)]
    if auto and data is None:
        raise EdgekitError(f"--shape-buckets {auto[0]}=auto chooses the sizes from the lengths of --data, "
                           "and no --data was given",
                           "pass --data FILE (a .txt of sentences or an .npz), or give the sizes, e.g. "
                           f"--shape-buckets {auto[0]}=16,32,64,128")
    rows, described = [], f"{count} generated samples per bucket at lengths inside it"
    if data is not None:
        from .._datasets import real_rows

        rows, described = real_rows(data, model, list(asked))
    axes: dict[str, list[int]] = {}
    for a, sizes in asked.items():
        if is_auto(sizes):
            lengths = [axis_sizes(r, model.signature.inputs, [a]).get(a, 0) for r in rows]
            sizes = choose_auto([x for x in lengths if x], auto_count(sizes, n_auto), model.dims.get(a))
        axes[a] = list(sizes)
    check_axes(axes, dynamic, declared_max(model))
    result = BucketPlan(axes, pad_values(model))
    for dims in combos(axes):
        chosen = _from_rows(model, rows, axes, dims, count) if rows else _generated(model, axes, dims, count)
        result.lengths[key(dims)] = [axis_sizes(r, model.signature.inputs, list(axes)) for r in chosen]
        result.samples[key(dims)] = [pad(r, model.signature.inputs, dims, result.pad) for r in chosen]
    result.description = (f"shape buckets {', '.join(result.keys)}: {described}, padded to each bucket "
                          f"(up to {count} per bucket, with the attention mask)")
    return result


def pad_values(model: Model) -> dict[str, float]:
    """What each input is padded with: the tokenizer's pad token for ids, 0 for masks and types."""
    tokenizer = model.meta.get("tokenizer")
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    out: dict[str, float] = {}
    for s in model.signature.inputs:
        name = s.name.lower()
        if np.dtype(s.dtype).kind == "f":
            out[s.name] = 0.0
        elif "ids" in name and not any(w in name for w in ("type", "segment", "position")):
            out[s.name] = int(pad_id)
        else:
            out[s.name] = 0
    return out


def _cut(model: Model, row: dict, dims: dict[str, int]) -> dict:
    """A row cut to ``dims`` along the bucketed axes (a sample longer than the bucket)."""
    out = {}
    for spec in model.signature.inputs:
        arr = row[spec.name]
        index = tuple(slice(0, dims[d]) if isinstance(d, str) and d in dims else slice(None)
                      for d in spec.shape[:arr.ndim])
        out[spec.name] = np.ascontiguousarray(arr[index])
    return out


def _from_rows(model: Model, rows: list[dict], axes: dict[str, list[int]], dims: dict[str, int],
               count: int) -> list[dict]:
    """Up to ``count`` rows for the bucket ``dims``: those whose smallest bucket it is, spread over
    their lengths; else the longest that fit; else rows cut to it."""
    sizes = [axis_sizes(r, model.signature.inputs, list(axes)) for r in rows]
    own = sorted((i for i, s in enumerate(sizes) if pick_bucket(axes, s) == dims), key=lambda i: _volume(sizes[i]))
    if len(own) > count:
        own = [own[round(j * (len(own) - 1) / max(count - 1, 1))] for j in range(count)]
    fit = sorted((i for i, s in enumerate(sizes) if i not in own and all(s.get(a, 0) <= n for a, n in dims.items())),
                 key=lambda i: -_volume(sizes[i]))
    picked = [*own, *fit][:count]
    rest = [i for i in range(len(rows)) if i not in picked][:count - len(picked)]
    return [rows[i] for i in picked] + [_cut(model, rows[i], dims) for i in rest]


def _volume(sizes: dict[str, int]) -> int:
    return math.prod(sizes.values()) if sizes else 0


def _generated(model: Model, axes: dict[str, list[int]], dims: dict[str, int], count: int) -> list[dict]:
    """``count`` generated samples at real sizes spread over the bucket's range (the largest at
    the bucket's own size), from just over the next smaller bucket."""
    from .._inputs import generate_inputs

    rows = []
    for s in range(count):
        real = {}
        for a, n in dims.items():
            lower = max((x for x in axes[a] if x < n), default=0)
            real[a] = lower + math.ceil((n - lower) * (s + 1) / count)
        rows.append(generate_inputs(model.signature, {**model.dims, **real}, model.meta, seed=s))
    return rows


def bucket_record(name: str, parity: Parity, lengths: list[dict[str, int]]) -> dict:
    """One bucket's line in the manifest's ``buckets.parity``: its samples' real sizes too."""
    return {"bucket": name, "status": parity.status, "max_abs_err": parity.max_abs_err, "cosine": parity.cosine,
            "samples": len(lengths), "lengths": lengths, "reason": parity.reason}


def overall(per_bucket: list[tuple[str, Parity]], tol: dict) -> Parity:
    """The artifact's parity over its buckets: it fails when any bucket fails; the errors are
    the worst over the buckets, the outputs those of the worst bucket."""
    ran = [(k, p) for k, p in per_bucket if p.status != "not_run"]
    if not ran:
        return per_bucket[0][1]
    failed = [(k, p) for k, p in ran if p.status == "fail"]
    worst_key, worst = failed[0] if failed else min(ran, key=lambda kp: kp[1].cosine if kp[1].cosine is not None
                                                       else math.inf)
    values = [p for _, p in ran if p.max_abs_err is not None]
    top1 = [p.top1_agreement for p in values if p.top1_agreement is not None]
    return Parity(
        status="fail" if failed else "pass",
        max_abs_err=max((p.max_abs_err for p in values), default=None),
        mean_abs_err=max((p.mean_abs_err for p in values if p.mean_abs_err is not None), default=None),
        cosine=min((p.cosine for p in values if p.cosine is not None), default=None),
        top1_agreement=min(top1) if top1 else None,
        worst_output=worst.worst_output,
        reason="; ".join(f"bucket {k}: {p.reason}" for k, p in failed) or None,
        tolerance=tol, outputs=worst.outputs,
        validation={"buckets": [k for k, _ in per_bucket], "worst_bucket": worst_key},
    )


# ---- compress: calibration per signature, evaluation and latency at real lengths ----------------------

def real_lengths(model: Model, samples: list[dict], axes: dict[str, list[int]]) -> list[dict]:
    """Padded samples (``--data`` read at the model's sizes) cut back to their real length (and
    to the largest bucket, as a device truncates what no bucket holds)."""
    from .._datasets import _cut_to_mask

    top = {a: sizes[-1] for a, sizes in axes.items()}
    out = []
    for s in samples:
        row = _cut_to_mask(s, model, list(axes))
        real = axis_sizes(row, model.signature.inputs, list(axes))
        out.append(_cut(model, row, top) if any(real.get(a, 0) > n for a, n in top.items()) else row)
    return out


def per_signature(model: Model, rows: list[dict], axes: dict[str, list[int]], pads: dict, count: int) -> dict:
    """Calibration samples for each bucket (key -> padded rows): the rows whose bucket it is, topped
    up with the longest that fit (or rows cut to it) where it has fewer than ``count``."""
    out = {}
    for dims in combos(axes):
        own = sum(1 for r in rows if pick_bucket(axes, axis_sizes(r, model.signature.inputs, list(axes))) == dims)
        chosen = _from_rows(model, rows, axes, dims, max(count, own))
        out[key(dims)] = [pad(r, model.signature.inputs, dims, pads) for r in chosen]
    return out


class BucketedRunner:
    """An artifact run as a device would run it: each sample at its real length, padded to the
    smallest bucket that holds it (that bucket's signature, where the file has one per bucket),
    its outputs cut back to the real length. ``run(sample)`` -> outputs in the source's order."""

    def __init__(self, model: Model, runner, axes: dict[str, list[int]], pads: dict):
        from .verify import output_order

        self.model, self.runner, self.axes, self.pads = model, runner, axes, pads
        self.per_sig = {key(d) for d in combos(axes)} <= set(getattr(runner, "signature_keys", None) or ())
        self.order = output_order(model.signature, runner.signature)

    def prepare(self, sample: dict) -> tuple[str, dict, dict]:
        """(bucket key, the feeds for the runtime, the real sizes) of one sample."""
        from .verify import adapt_feeds

        real = axis_sizes(sample, self.model.signature.inputs, list(self.axes))
        dims = pick_bucket(self.axes, real)
        if dims is None:
            raise EdgekitError(f"a sample of size {real} is over the largest bucket {self.axes}",
                               "add a larger bucket to --shape-buckets")
        if self.per_sig:
            self.runner.use(key(dims))
        feeds = adapt_feeds(pad(sample, self.model.signature.inputs, dims, self.pads), self.model.signature,
                            self.runner.signature)
        return key(dims), feeds, real

    def run(self, sample: dict) -> list[np.ndarray]:
        from ..runtime import unpad

        _, feeds, real = self.prepare(sample)
        got = self.runner.run(feeds)
        names = [s.name for s in self.model.signature.outputs]
        outs = unpad({n: got[i] for n, i in zip(names, self.order, strict=True)}, self.model.signature.outputs, real)
        return [outs[n] for n in names]


def measure(bucketed: BucketedRunner, samples: list[dict], threads: int, warmup: int = 2) -> dict:
    """Latency over ``samples`` at their real lengths (each padded to its bucket): one timed run
    per sample after ``warmup`` runs of every bucket they use; the figures profile.Latency has."""
    import time

    prepared = [bucketed.prepare(s)[:2] for s in samples]
    firsts = {k: f for k, f in reversed(prepared)}
    for k, f in firsts.items():
        for _ in range(warmup):
            _run_at(bucketed, k, f)
    times = np.empty(len(prepared))
    for i, (k, f) in enumerate(prepared):
        t0 = time.perf_counter()
        _run_at(bucketed, k, f)
        times[i] = (time.perf_counter() - t0) * 1000.0
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {"threads": threads, "p50": round(float(p50), 4), "p90": round(float(p90), 4), "p99": round(float(p99), 4),
            "mean": round(float(times.mean()), 4), "min": round(float(times.min()), 4),
            "max": round(float(times.max()), 4), "std": round(float(times.std()), 4), "runs": len(prepared),
            "lengths": "real lengths of the evaluation data, each padded to its bucket",
            "per_bucket": {k: sum(1 for kk, _ in prepared if kk == k) for k in firsts}}


def _run_at(bucketed: BucketedRunner, k: str, feeds: dict) -> None:
    if bucketed.per_sig and bucketed.runner.key != k:
        bucketed.runner.use(k)
    bucketed.runner.run(feeds)
