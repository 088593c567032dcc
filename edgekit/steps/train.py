"""One training loop for distillation and fine-tuning.

CUDA when available (mixed precision), else CPU; deterministic seeds; checkpoints
every N steps and resume after an interruption (refused when the config changed);
a progress bar with loss and ETA; metrics logged to MLflow (a local store by
default, ``tracking_uri`` for a server) when mlflow is installed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._errors import EdgekitError
from .._lazy import require

# fields of TrainConfig that change how or where a run goes, never its result
_WHERE_NOT_WHAT = ("time_budget_s", "tracking_uri", "checkpoint_every", "log_every", "device", "amp", "backend",
                   "address", "workers", "storage")


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.06  # fraction of steps
    seed: int = 0
    checkpoint_every: int = 200
    log_every: int = 20
    time_budget_s: float | None = None  # stop early (and say so) past this
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # mixed precision on CUDA
    tracking_uri: str | None = None
    experiment: str = "edgekit"
    extra: dict = field(default_factory=dict)  # what else defines the run (data, losses...): part of the hash
    # where the job runs (steps/train_ray.py), not what it trains: left out of the digest
    backend: str = "local"  # local | ray
    address: str | None = None  # a Ray cluster (host:6379, ray://host:10001); None: a local Ray started on demand
    workers: int | None = None  # Ray Train workers (default: the cluster's GPUs, else 2)
    storage: str | None = None  # Ray checkpoints (a path or URI; default: the run folder)

    def digest(self) -> str:
        keep = {k: v for k, v in asdict(self).items() if k not in _WHERE_NOT_WHAT}
        return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    steps_done: int
    seconds: float
    final_loss: float
    device: str
    stopped_early: bool
    resumed_from: int | None
    backend: str = "local"
    workers: int = 1
    checkpoint: str | None = None  # where the last checkpoint is


def pick_device(choice: str) -> str:
    torch = require("torch")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise EdgekitError("--train-device cuda was asked for but no CUDA device is available", "use --train-device auto or cpu")
    return choice


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    torch = require("torch")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _mlflow(cfg: TrainConfig, run_dir: Path):
    try:
        import mlflow
    except ImportError:
        return None
    if not cfg.tracking_uri:  # a local file store beside the run (mlflow-skinny has no SQL backend)
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(cfg.tracking_uri or (run_dir / "mlruns").resolve().as_uri())
    mlflow.set_experiment(cfg.experiment)
    run = mlflow.start_run(run_name=run_dir.name)
    mlflow.log_params({k: v for k, v in asdict(cfg).items() if k != "extra"} | {f"x.{k}": v for k, v in cfg.extra.items()})
    return mlflow, run


def train(module: Any, loss_fn: Callable[[Any, Any], tuple[Any, dict]], batches: Callable[[int], Iterator],
          cfg: TrainConfig, run_dir: Path, progress: Callable[[int, int, float, float], None] | None = None) -> TrainResult:
    """Train ``module`` for ``cfg.steps`` steps.

    ``batches(epoch)`` yields batches (already on CPU); ``loss_fn(module, batch)`` returns
    (loss tensor, metrics dict); batches are moved to the device by ``to_device``.
    Checkpoints go to ``run_dir/checkpoint.pt`` and carry the config digest.
    """
    torch = require("torch")
    device = pick_device(cfg.device)
    seed_everything(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    module.to(device).train()
    opt, sched = optimizer(module, cfg)
    use_amp = cfg.amp and device == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    ckpt = run_dir / "checkpoint.pt"
    step, resumed = 0, None
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        if state["digest"] != cfg.digest():
            raise EdgekitError(f"{run_dir} holds a checkpoint of a run with another config (digest {state['digest']} "
                               f"!= {cfg.digest()}); resuming it would mix two runs",
                               "use another output folder, or delete the checkpoint to start over")
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = resumed = int(state["step"])
        torch.set_rng_state(state["rng"])
    tracker = _mlflow(cfg, run_dir)
    t0, loss_value, epoch, stopped = time.perf_counter(), float("nan"), step, False
    try:
        while step < cfg.steps:
            for batch in batches(epoch):
                loss_value, metrics = train_step(module, loss_fn, to_device(batch, device), opt, sched, scaler, use_amp)
                step += 1
                if progress:
                    progress(step, cfg.steps, loss_value, time.perf_counter() - t0)
                if tracker and step % cfg.log_every == 0:
                    tracker[0].log_metrics({"loss": loss_value, "lr": sched.get_last_lr()[0],
                                            **{k: float(v) for k, v in metrics.items()}}, step=step)
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    _save(torch, ckpt, module, opt, sched, step, cfg)
                if cfg.time_budget_s and time.perf_counter() - t0 > cfg.time_budget_s:
                    stopped = True
                    _save(torch, ckpt, module, opt, sched, step, cfg)
                    break
                if step >= cfg.steps:
                    break
            epoch += 1
            if stopped:
                break
    finally:
        if tracker:
            tracker[0].end_run()
    module.eval()
    return TrainResult(step, time.perf_counter() - t0, loss_value, device, stopped, resumed, checkpoint=str(ckpt))


def optimizer(module, cfg: TrainConfig):
    """AdamW with linear warm-up and cosine decay: shared with the Ray Train workers."""
    torch = require("torch")
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    warm = max(1, int(cfg.warmup * cfg.steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps)))))
    return opt, sched


def train_step(module, loss_fn, batch, opt, sched, scaler, use_amp: bool) -> tuple[float, dict]:
    """One optimizer step (mixed precision with a grad scaler on CUDA); the same for local and Ray workers."""
    torch = require("torch")
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
        loss, metrics = loss_fn(module, batch)
    opt.zero_grad(set_to_none=True)
    if scaler:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    sched.step()
    return float(loss.detach()), metrics


def _save(torch, path: Path, module, opt, sched, step: int, cfg: TrainConfig) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": module.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                "rng": torch.get_rng_state(), "digest": cfg.digest()}, tmp)
    tmp.replace(path)


def to_device(batch, device: str):
    torch = require("torch")
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
