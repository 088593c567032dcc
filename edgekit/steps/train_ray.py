"""The training loop of ``train.py`` on Ray Train: data-parallel workers, a GPU each where the cluster has them.

Same contract as ``train()``: the same module, loss and batches, a ``TrainResult``
back, the trained weights in ``module``. Every step, each of the N workers takes its
slice of the same batch and DDP averages the gradients, so a step trains on the same
samples as a local step: the run's digest (and the cached student) does not depend on
where it ran. Checkpoints go to ``storage`` under a name made of the run's digest, and
a job that finds one there resumes from it. Progress comes back to the driver through
a Ray queue.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .._errors import EdgekitError
from .._lazy import require
from .train import TrainConfig, TrainResult

_STATE = "state.pt"


def train_on_ray(module: Any, loss_fn: Callable[[Any, Any], tuple[Any, dict]], batches: Callable[[int], Iterator],
                 cfg: TrainConfig, run_dir: Path, progress: Callable | None = None) -> TrainResult:
    """Train ``module`` as ``train()`` does, on a Ray cluster (``cfg.address``) or a local Ray."""
    ray = require("ray", "Ray Train")
    require("ray.train.torch", "Ray Train")
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    started = _connect(ray, cfg)
    try:
        workers, use_gpu, per_worker = _resources(ray, cfg)
        _check_batch(batches, workers)
        storage = _storage(cfg, run_dir)
        name = f"edgekit-{run_dir.name}-{cfg.digest()[:8]}"
        each = "1 GPU" if use_gpu else f"{per_worker['CPU']} CPU"
        _say(progress, f"training on Ray Train ({cfg.address or 'a local Ray'}): {workers} worker"
                       f"{'s' * (workers > 1)}, {each} each; checkpoints in {storage}/{name}")
        if cfg.address and "://" not in storage:
            _say(progress, "note: checkpoints go to a path on the cluster's nodes: on several nodes, give --storage "
                           "a URI (s3://...) or a shared file system")
        queue = Queue(actor_options={"num_cpus": 0})
        payload = ray.put((module.to("cpu"), loss_fn, batches))
        trainer = TorchTrainer(
            _worker, train_loop_config={"payload": payload, "cfg": cfg, "queue": queue},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=per_worker),
            run_config=RunConfig(storage_path=storage, name=name, checkpoint_config=CheckpointConfig(num_to_keep=2)))
        try:
            result = _fit(trainer, queue, cfg, run_dir, progress)
        finally:
            queue.shutdown()
        if result.checkpoint is None:
            raise EdgekitError(f"the Ray Train job {name} ended without a checkpoint", "rerun with --debug")
        # read where the storage is (a cluster's path may not exist here, through Ray Client)
        state = ray.get(ray.remote(num_cpus=0)(_read_state).remote(result.checkpoint))
        module.load_state_dict(state["model"])
        module.eval()
        m = result.metrics
        return TrainResult(int(m["step"]), float(m["seconds"]), float(m["loss"]), m["device"], bool(m["stopped"]),
                           m.get("resumed_from"), backend="ray", workers=workers, checkpoint=result.checkpoint.path)
    finally:
        if started:
            ray.shutdown()


def _read_state(checkpoint) -> dict:
    torch = require("torch")
    with checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / _STATE, map_location="cpu", weights_only=True)


def preflight(cfg: TrainConfig) -> None:
    """Fail before any work when Ray Train is not installed or the cluster cannot be reached."""
    require("ray", "Ray Train")
    require("ray.train.torch", "Ray Train")
    if cfg.address:
        _reachable(cfg.address)


def _say(progress, text: str) -> None:
    """A line for the user: through the progress callback's ``note`` when it has one (the CLI's does)."""
    note = getattr(progress, "note", None)
    if note:
        note(text)
    else:
        import logging

        logging.getLogger("edgekit").info(text)


def _connect(ray, cfg: TrainConfig) -> bool:
    """Join ``cfg.address``, or start a local Ray; True when this call did (and so must shut it down)."""
    if ray.is_initialized():
        return False
    quiet = not os.environ.get("EDGEKIT_DEBUG")  # workers' logs would mix with the driver's stdout (--json)
    if not cfg.address:
        cpus = max(os.cpu_count() or 1, cfg.workers or 2)
        # "local": a new Ray, never one a `ray start` on this machine left running
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=not quiet,
                 configure_logging=not quiet)
        return True
    _reachable(cfg.address)
    package = Path(__file__).resolve().parents[1]  # the edgekit folder
    try:  # edgekit's own code travels with the job, so the cluster runs the driver's version of it
        ray.init(address=cfg.address, log_to_driver=not quiet, runtime_env={"py_modules": [str(package)]})
    except Exception as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise EdgekitError(f"cannot join the Ray cluster at {cfg.address}: {first[:300]}", _ADDRESS_FIX) from exc
    return True


_ADDRESS_FIX = ("check --address (host:6379 for a cluster's head, ray://host:10001 through Ray Client), that the "
                "cluster runs (`ray status` on the head) and, with Ray's token authentication, that this machine has "
                "its token (~/.ray/auth_token); or leave --address out for a local Ray")


def _reachable(address: str) -> None:
    """Fail in seconds on an address nothing listens at (ray.init would retry for a minute)."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise EdgekitError(f"bad Ray address {address!r}", "write host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise EdgekitError(f"the Ray cluster at {address} cannot be reached: {exc.strerror or exc}", _ADDRESS_FIX) from exc


def _resources(ray, cfg: TrainConfig) -> tuple[int, bool, dict]:
    """Workers, whether they get a GPU each, and each one's resources, from what the cluster has."""
    have = ray.cluster_resources()
    gpus, cpus = int(have.get("GPU", 0)), int(have.get("CPU", 0))
    if cfg.device == "cuda" and not gpus:
        raise EdgekitError("--train-device cuda was asked for but the Ray cluster has no GPU", "use --train-device auto or cpu")
    use_gpu = gpus > 0 and cfg.device != "cpu"
    workers = cfg.workers or (gpus if use_gpu else 2)
    if workers < 1:
        raise EdgekitError(f"--workers {workers}: at least one worker is needed", "use --workers 1 or more")
    if use_gpu and workers > gpus:
        raise EdgekitError(f"{workers} GPU workers asked for, the Ray cluster has {gpus} GPUs",
                           f"use --workers {gpus} or fewer, or --train-device cpu")
    per_cpu = 1 if use_gpu or cfg.address else max(1, cpus // workers)  # a local Ray: its cores shared out
    if not use_gpu and workers * per_cpu > cpus:
        raise EdgekitError(f"{workers} workers of {per_cpu} CPU asked for, the Ray cluster has {cpus} CPUs",
                           f"use --workers {max(1, cpus)} or fewer")
    return workers, use_gpu, {"CPU": per_cpu, **({"GPU": 1} if use_gpu else {})}


def _storage(cfg: TrainConfig, run_dir: Path) -> str:
    if cfg.storage and "://" in cfg.storage:
        return cfg.storage
    path = Path(cfg.storage) if cfg.storage else run_dir / "ray"
    path.mkdir(parents=True, exist_ok=True)
    return str(path.resolve())


def _check_batch(batches, workers: int) -> None:
    """Each worker takes a slice of every batch: a batch needs a row per worker at least."""
    rows = _rows(next(iter(batches(0)), None))
    if rows is not None and rows < workers:
        raise EdgekitError(f"a batch of {rows} samples cannot be shared out to {workers} workers",
                           f"use --batch-size {workers} or more, or fewer --workers")


def _fit(trainer, queue, cfg: TrainConfig, run_dir: Path, progress):
    """``trainer.fit()`` in a thread, while this one passes the workers' progress on (and to MLflow)."""
    from .train import _mlflow

    box: dict = {}

    def fit():
        try:
            box["result"] = trainer.fit()
        except BaseException as exc:  # noqa: BLE001 - raised again below, in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=fit, name="edgekit-ray-fit", daemon=True)
    tracker = _mlflow(cfg, run_dir)
    thread.start()
    try:
        while thread.is_alive() or not queue.empty():
            try:
                step, loss, elapsed, metrics = queue.get(timeout=0.5)
            except Exception:  # queue.Empty
                continue
            if progress:
                progress(step, cfg.steps, loss, elapsed)
            if tracker and metrics:
                tracker[0].log_metrics({"loss": loss, **metrics}, step=step)
        thread.join()
    finally:
        if tracker:
            tracker[0].end_run()
    if "error" in box:
        raise _failure(box["error"]) from box["error"]
    return box["result"]


def _failure(exc: BaseException) -> BaseException:
    """A worker's EdgekitError as itself; any other failure of the job, named."""
    if isinstance(exc, EdgekitError | KeyboardInterrupt):
        return exc
    seen = [exc]
    for failure in getattr(exc, "worker_failures", {}).values():
        seen += [failure, getattr(failure, "cause", None)]
    for e in seen:
        if isinstance(e, EdgekitError):
            return EdgekitError(e.cause, e.fix)
    text = "\n".join(str(e) for e in seen[1:] or seen)
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("Traceback", " "))),
                 type(exc).__name__)
    return EdgekitError(f"the Ray Train job failed: {first[:400]}", "rerun with --debug for the workers' logs")


def _rows(batch) -> int | None:
    """The batch size of a (nested) batch: the first axis of its first tensor."""
    if hasattr(batch, "shape"):
        return int(batch.shape[0]) if len(batch.shape) else None
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, list | tuple) else ()
    return next((r for r in map(_rows, items) if r is not None), None)


def _shard(batch, rank: int, world: int, rows: int):
    """This worker's rows of ``batch`` (contiguous slices; tensors that are not per-row are shared)."""
    if hasattr(batch, "shape"):
        if len(batch.shape) and batch.shape[0] == rows:
            size, extra = divmod(rows, world)
            start = rank * size + min(rank, extra)
            return batch[start:start + size + (rank < extra)]
        return batch
    if isinstance(batch, dict):
        return {k: _shard(v, rank, world, rows) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_shard(v, rank, world, rows) for v in batch)
    return batch


def _worker(config: dict) -> None:
    """One Ray Train worker: the loop of ``train()`` on this worker's slice of each batch, DDP across workers."""
    import ray
    import ray.train
    import ray.train.torch

    from .train import seed_everything

    module, loss_fn, batches = ray.get(config["payload"])
    ctx = ray.train.get_context()
    cfg: TrainConfig = config["cfg"]
    seed_everything(cfg.seed)
    run = _WorkerRun(cfg, ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())
    run.prepare(module)
    run.loop(loss_fn, batches, config["queue"])
    if not run.reported:  # a finished run found in storage: its checkpoint is the result
        run.report()


class _WorkerRun:
    """One worker's training: its model, optimizer and step, and its reports to Ray Train."""

    def __init__(self, cfg: TrainConfig, rank: int, world: int, device):
        self.cfg, self.rank, self.world, self.device = cfg, rank, world, device
        self.step, self.resumed, self.loss_value = 0, None, float("nan")
        self.stopped = self.reported = False
        self.t0 = time.perf_counter()

    def prepare(self, module) -> None:
        """Resume from Ray's checkpoint where there is one (of this run only), then wrap for DDP."""
        import ray.train
        import ray.train.torch
        import torch

        from .train import optimizer

        cfg, state = self.cfg, None
        ckpt = ray.train.get_checkpoint()
        if ckpt:
            with ckpt.as_directory() as folder:
                state = torch.load(Path(folder) / _STATE, map_location="cpu", weights_only=True)
            if state["digest"] != cfg.digest():
                raise EdgekitError(f"the Ray checkpoint {ckpt.path} is of a run with another config (digest "
                                   f"{state['digest']} != {cfg.digest()}); resuming it would mix two runs",
                                   "use another --storage, or delete that checkpoint to start over")
            module.load_state_dict(state["model"])
            self.step = self.resumed = int(state["step"])
            self.loss_value = float(state.get("loss", self.loss_value))
        self.model = ray.train.torch.prepare_model(module, parallel_strategy_kwargs={"find_unused_parameters": True})
        ddp = isinstance(self.model, torch.nn.parallel.DistributedDataParallel)
        self.raw = self.model.module if ddp else self.model
        self.raw.train()
        self.opt, self.sched = optimizer(self.raw, cfg)
        if state is not None:
            self.opt.load_state_dict(state["opt"])
            self.sched.load_state_dict(state["sched"])
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None

    def loop(self, loss_fn, batches, queue) -> None:
        cfg = self.cfg
        every = max(1, cfg.steps // 100)  # progress lines for the driver: every 1%
        self.t0, epoch = time.perf_counter(), self.step
        while self.step < cfg.steps:
            did = self.step
            for batch in batches(epoch):
                self.train_one(loss_fn, batch)
                if self.rank == 0 and (self.step % every == 0 or self.step % cfg.log_every == 0
                                       or self.step == cfg.steps):
                    logged = ({k: float(v) for k, v in self.metrics.items()} if self.step % cfg.log_every == 0
                              else None)
                    queue.put((self.step, self.loss_value, time.perf_counter() - self.t0, logged))
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps or self.stopped:
                    self.report()
                if self.stopped or self.step >= cfg.steps:
                    break
            if self.step == did:
                raise EdgekitError("a pass over the training data gave no batch", "give more training data")
            epoch += 1
            if self.stopped:
                break

    def train_one(self, loss_fn, batch) -> None:
        """One step on this worker's slice of ``batch``; past the time budget, ``stopped`` (rank 0 decides)."""
        import torch

        from .train import to_device, train_step

        batch = to_device(_shard(batch, self.rank, self.world, _rows(batch)), self.device)
        self.loss_value, self.metrics = train_step(self.model, loss_fn, batch, self.opt, self.sched, self.scaler,
                                                   self.use_amp)
        self.step += 1
        if self.cfg.time_budget_s:  # rank 0's clock decides for all: every worker must stop at the same step
            flag = torch.tensor([float(time.perf_counter() - self.t0 > self.cfg.time_budget_s)], device=self.device)
            if self.world > 1:
                torch.distributed.broadcast(flag, 0)
            self.stopped = bool(flag.item())

    def report(self) -> None:
        """Metrics to Ray Train from every worker (a barrier); rank 0's checkpoint is the model."""
        import ray.train
        import torch

        self.reported = True
        metrics = {"step": self.step, "loss": self.loss_value, "seconds": time.perf_counter() - self.t0,
                   "stopped": self.stopped, "device": self.device.type, "resumed_from": self.resumed}
        if self.rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save({"model": self.raw.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                        "step": self.step, "loss": self.loss_value, "digest": self.cfg.digest()},
                       Path(folder) / _STATE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
