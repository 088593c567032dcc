"""Evaluate a variant against the fp32 source: task metric (with labels) or agreement, on held-out data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._registry import TARGETS, runner_for
from .._types import Model
from .verify import adapt_feeds, classifier_outputs, output_order


@dataclass
class Quality:
    metric: str  # accuracy | cosine
    value: float  # in points (0-100): accuracy %, or mean cosine x 100
    cosine_mean: float
    cosine_min: float
    top1: float | None
    top5: float | None

    def to_dict(self) -> dict:
        return {"cosine_mean": round(self.cosine_mean, 6), "cosine_min": round(self.cosine_min, 6),
                "top1": self.top1, "top5": self.top5}


def quality_output(model: Model) -> int:
    """The output judged: the sentence embedding where there is one, else the first."""
    names = [s.name for s in model.signature.outputs]
    return names.index("sentence_embedding") if "sentence_embedding" in names else 0


def run_source(model: Model, samples: list[dict]) -> list[list[np.ndarray]]:
    from .verify import source_runner

    run = source_runner(model)
    return [run(s) for s in samples]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den else 0.0


def score(model: Model, refs: list[list[np.ndarray]], outs: list[list[np.ndarray]], labels) -> Quality:
    qi = quality_output(model)
    cos = [_cos(r[qi], o[qi]) for r, o in zip(refs, outs, strict=True)]
    top1 = top5 = None
    name = model.signature.outputs[qi].name
    if name in classifier_outputs(model):
        r = np.concatenate([x[qi].reshape(-1, x[qi].shape[-1]) for x in refs])
        o = np.concatenate([x[qi].reshape(-1, x[qi].shape[-1]) for x in outs])
        top1 = float(np.mean(r.argmax(-1) == o.argmax(-1)))
        k = min(5, o.shape[-1])
        top5 = float(np.mean([a in row for a, row in zip(r.argmax(-1), np.argsort(-o, -1)[:, :k], strict=True)]))
    if labels is not None:
        pred = np.concatenate([x[qi].reshape(-1, x[qi].shape[-1]).argmax(-1) for x in outs])
        return Quality("accuracy", float(np.mean(pred == np.asarray(labels).reshape(-1)) * 100), float(np.mean(cos)),
                       float(np.min(cos)), top1, top5)
    return Quality("cosine", float(np.mean(cos) * 100), float(np.mean(cos)), float(np.min(cos)), top1, top5)


def run_artifact(model: Model, target: str, path, samples: list[dict], **runner_kwargs) -> list[list[np.ndarray]]:
    runner = runner_for(TARGETS[target], path, source=model.signature, **runner_kwargs)
    order = output_order(model.signature, runner.signature)
    outs = []
    for s in samples:
        got = runner.run(adapt_feeds(s, model.signature, runner.signature))
        outs.append([got[i] for i in order])
    return outs


def evaluate(model: Model, target: str, path, samples: list[dict], refs, labels, **runner_kwargs) -> Quality:
    return score(model, refs, run_artifact(model, target, path, samples, **runner_kwargs), labels)
