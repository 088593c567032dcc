"""Distill: teacher to student, by logits (temperature, weight) or embeddings (cosine + MSE).

Students: a layer-reduced copy of a Hugging Face teacher (DistilBERT-style: every k-th
layer kept, weights copied), a pruned model, or any user model (``module:factory``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import EdgekitError
from .._lazy import require
from .._types import Model
from .train import TrainConfig, TrainResult, train


@dataclass
class DistillConfig:
    loss: str = "auto"  # auto | logits | embedding
    temperature: float = 4.0
    alpha: float = 0.7  # weight of the distillation term against the labels' cross-entropy
    batch_size: int = 32
    train: TrainConfig | None = None


def layer_reduced(teacher: Model, layers: int) -> Model:
    """A student with ``layers`` encoder layers, every k-th of the teacher's, weights copied."""
    inner = getattr(teacher.module, "inner", None)
    encoder = getattr(getattr(inner, "base_model", inner), "encoder", None)
    blocks = getattr(encoder, "layer", None)
    if teacher.format != "hf" or blocks is None:
        raise EdgekitError(f"a layer-reduced student needs a Hugging Face encoder teacher; {teacher.spec} is {teacher.format}",
                           "give the student as module:factory, or use a pruned student (--prune)")
    n = len(blocks)
    if not 0 < layers < n:
        raise EdgekitError(f"the student must have fewer layers than the teacher's {n} (asked {layers})",
                           f"use --student layers:N with 1 <= N < {n}")
    step = n / layers
    keep = sorted({int((i + 1) * step) - 1 for i in range(layers)})  # the last layer always: it shaped the outputs
    torch = require("torch")
    student_inner = copy.deepcopy(inner)
    s_encoder = getattr(student_inner, "base_model", student_inner).encoder
    s_encoder.layer = torch.nn.ModuleList([s_encoder.layer[i] for i in keep])
    student_inner.config.num_hidden_layers = layers
    # the token embeddings (half of MiniLM's weights) stay the teacher's: training them is most of
    # the optimizer's work and barely moves the result
    for p in getattr(student_inner, "base_model", student_inner).embeddings.word_embeddings.parameters():
        p.requires_grad_(False)
    module = type(teacher.module)(student_inner).eval()
    student = replace(teacher, module=module, spec=f"{teacher.spec}#layers={layers}", sha256=None,
                      meta={**teacher.meta, "student_of": teacher.spec, "kept_layers": keep}, notes=list(teacher.notes))
    return student


def student_from(teacher: Model, module: Any, label: str) -> Model:
    from .ingest._torch import make_normalized

    names = [s.name for s in teacher.signature.inputs]
    return replace(teacher, module=make_normalized(module, names), spec=f"{teacher.spec}#{label}", sha256=None,
                   format="torch", meta=dict(teacher.meta), notes=list(teacher.notes))


def _check_outputs(teacher: Model, student: Model) -> None:
    """The student's outputs must line up with the teacher's before any training."""
    torch = require("torch")
    example = [t[:1] for t in teacher.meta["example"]]
    with torch.no_grad():
        t_out, s_out = teacher.module(*example), student.module(*example)
    if len(t_out) != len(s_out) or any(a.shape[-1] != b.shape[-1] for a, b in zip(t_out, s_out, strict=True)):
        raise EdgekitError(
            f"the student's outputs {[tuple(o.shape) for o in s_out]} cannot be matched to the teacher's "
            f"{[tuple(o.shape) for o in t_out]}", "give a student with the same outputs (names, count and last dimension)")


@dataclass
class _Outputs:
    """Which of the teacher's outputs are distilled, and by which loss."""

    names: list[str]  # input names
    loss: str  # logits | embedding
    qi: int  # the output compared (the sentence embedding, else the first)
    pooled: bool  # that output is pooled (no token axis)
    hid: int | None  # with a pooled embedding and the hidden states both out, the tokens are distilled too


def _outputs(teacher: Model, cfg: DistillConfig) -> _Outputs:
    out_names = [s.name for s in teacher.signature.outputs]
    loss_kind = cfg.loss
    if loss_kind == "auto":
        loss_kind = "embedding" if "sentence_embedding" in out_names or teacher.task == "feature-extraction" else "logits"
    qi = out_names.index("sentence_embedding") if "sentence_embedding" in out_names else 0
    pooled = len(teacher.signature.outputs[qi].shape) == 2
    hid = out_names.index("last_hidden_state") if (loss_kind == "embedding" and pooled
                                                   and "last_hidden_state" in out_names) else None
    return _Outputs([s.name for s in teacher.signature.inputs], loss_kind, qi, pooled, hid)


def distill(teacher: Model, student: Model, samples: list[dict], labels, cfg: DistillConfig, run_dir: Path,
            progress=None) -> TrainResult:
    """Train ``student.module`` to match ``teacher.module`` on ``samples`` (batch-1 dicts of arrays)."""
    _check_outputs(teacher, student)
    if len(samples) < 2 * cfg.batch_size:
        raise EdgekitError(f"{len(samples)} training samples are too few to train on (batch size {cfg.batch_size})",
                           "give more training data (hundreds of samples at least)")
    outs = _outputs(teacher, cfg)
    targets, hidden = _teacher_targets(teacher, samples, outs)
    batches = _batches(samples, labels, (targets, hidden), outs, cfg)
    loss_fn = _loss(outs, cfg)
    tcfg = cfg.train or TrainConfig()
    if tcfg.backend == "ray":  # the same loop on Ray Train workers (steps/train_ray.py)
        from .train_ray import train_on_ray

        return train_on_ray(student.module, loss_fn, batches, tcfg, run_dir, progress)
    return train(student.module, loss_fn, batches, tcfg, run_dir, progress)


def _teacher_targets(teacher: Model, samples: list[dict], o: _Outputs) -> tuple[list, list]:
    """The teacher's outputs once, not at every step: the compared one, and the hidden states."""
    torch = require("torch")
    names = o.names
    targets, hidden = [], []
    with torch.no_grad():
        for i in range(0, len(samples), 64):
            chunk = samples[i:i + 64]
            # pooled targets do not depend on padding: cut it; hidden-state targets keep full length
            feeds = _stack(chunk, names, trim=o.pooled and "attention_mask" in names)
            outs = teacher.module(*[torch.from_numpy(feeds[n]) for n in names])
            targets += list(outs[o.qi])
            if o.hid is not None:
                lens = feeds["attention_mask"].sum(1)
                hidden += [h[: int(n)].clone() for h, n in zip(outs[o.hid], lens, strict=True)]
    return targets, hidden


def _batches(samples: list[dict], labels, teacher_outs: tuple[list, list], o: _Outputs, cfg: DistillConfig):
    """``batches(epoch)``: the training batches of one epoch, shuffled by epoch; token inputs in
    batches of similar length (less padding to compute)."""
    torch = require("torch")
    targets, hidden = teacher_outs
    names = o.names
    label_arr = None if labels is None else torch.as_tensor(np.asarray(labels).reshape(-1))
    rng = np.random.default_rng(cfg.train.seed if cfg.train else 0)
    lengths = np.array([int(s["attention_mask"].sum()) for s in samples]) if "attention_mask" in names else None
    size = cfg.batch_size

    def groups_of(epoch: int):
        order = np.random.default_rng(rng.integers(1 << 31) + epoch).permutation(len(samples))
        if lengths is None:
            return [order[i:i + size] for i in range(0, len(order) - size + 1, size)]
        groups = []
        for chunk in (order[i:i + 50 * size] for i in range(0, len(order), 50 * size)):
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
            groups += [chunk[i:i + size] for i in range(0, len(chunk) - size + 1, size)]
        return [groups[i] for i in np.random.default_rng(epoch).permutation(len(groups))]

    def batches(epoch: int):
        for idx in groups_of(epoch):
            feeds = _stack([samples[j] for j in idx], names, trim="attention_mask" in names)
            batch = {"inputs": [torch.from_numpy(feeds[n]) for n in names],
                     "target": torch.stack([targets[j] for j in idx])}
            if label_arr is not None:
                batch["labels"] = label_arr[idx]
            if o.hid is not None:
                length = feeds["attention_mask"].shape[1]
                th = torch.zeros(len(idx), length, hidden[idx[0]].shape[-1])
                for row, j in enumerate(idx):
                    th[row, : len(hidden[j])] = hidden[j][:length]
                batch["hidden"] = th
                batch["mask"] = torch.from_numpy(feeds["attention_mask"]).float()
            yield batch

    return batches


def _loss(o: _Outputs, cfg: DistillConfig):
    """``loss_fn(module, batch) -> (loss, metrics)``: cosine + MSE on embeddings (and on each real
    token's hidden state), else temperature KD on the logits (with cross-entropy on labels)."""
    torch = require("torch")
    F = torch.nn.functional

    def loss_fn(module, batch):
        outs = module(*batch["inputs"])
        out = outs[o.qi]
        target = batch["target"]
        if o.loss == "embedding":
            if target.dim() == 3:  # hidden states: compare the positions the batch kept
                target = target[:, : out.shape[1]]
            cos = F.cosine_similarity(out.flatten(1), target.flatten(1), dim=-1)
            loss = (1 - cos).mean() + F.mse_loss(out, target)
            metrics = {"cosine": cos.mean().detach()}
            if "hidden" in batch:  # token-level: cosine of each real token's hidden state
                tok = F.cosine_similarity(outs[o.hid], batch["hidden"], dim=-1)
                tok_loss = ((1 - tok) * batch["mask"]).sum() / batch["mask"].sum()
                loss = loss + tok_loss
                metrics["token_cosine"] = 1 - tok_loss.detach()
            return loss, metrics
        t = cfg.temperature
        kd = F.kl_div(torch.log_softmax(out / t, -1), torch.softmax(target / t, -1), reduction="batchmean") * t * t
        if "labels" in batch:
            ce = F.cross_entropy(out, batch["labels"])
            return cfg.alpha * kd + (1 - cfg.alpha) * ce, {"kd": kd.detach(), "ce": ce.detach()}
        return kd, {"kd": kd.detach()}

    return loss_fn


def _stack(chunk: list[dict], names: list[str], trim: bool) -> dict[str, np.ndarray]:
    """Batch samples; for token inputs, cut the padding all of them share (dynamic length)."""
    feeds = {n: np.concatenate([s[n] for s in chunk]) for n in names}
    if trim:
        length = int(feeds["attention_mask"].sum(1).max())
        feeds = {n: np.ascontiguousarray(a[:, :length]) for n, a in feeds.items()}
    return feeds
