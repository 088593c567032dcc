"""Build and train the student of a compress run (prune, distill), cached by a content hash.

The stage's output (the student's weights) lives under ``$EDGEKIT_CACHE/runs/<digest>``
with its checkpoints, so an interrupted run resumes and a re-run that changes only a
later stage (quantization, targets) does not train again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from .._errors import EdgekitError
from .._lazy import require
from .._types import Model
from . import prune as prune_mod
from .distill import DistillConfig, distill, layer_reduced, student_from
from .train import TrainConfig


@dataclass
class StudentPlan:
    prune: str | None = None  # structured:0.5 | unstructured:0.8
    student: str | None = None  # layers:3 | module:factory
    distill: bool = True  # train the student against the teacher (fine-tuning after pruning included)
    loss: str = "auto"
    batch_size: int = 32
    train: TrainConfig | None = None

    def digest(self, teacher: Model, data_desc: str) -> str:
        cfg = asdict(self) | {"train": (self.train or TrainConfig()).digest(), "teacher": teacher.sha256 or teacher.spec,
                              "data": data_desc}
        return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit"))


def build(teacher: Model, plan: StudentPlan) -> tuple[Model, dict]:
    """The untrained student and what was done to make it."""
    info: dict = {}
    if plan.student and plan.student.startswith("layers:"):
        try:
            n = int(plan.student.split(":", 1)[1])
        except ValueError:
            raise EdgekitError(f"bad --student {plan.student!r}", "write layers:N, e.g. layers:3") from None
        student = layer_reduced(teacher, n)
        info["student"] = f"{n} of the teacher's layers, kept: {student.meta['kept_layers']}"
    elif plan.student:
        from .ingest._torch import load_factory

        user = load_factory(plan.student, None, dict(teacher.dims), lambda p: None)
        student = student_from(teacher, user.module.inner, plan.student)
        info["student"] = plan.student
    else:
        student = student_from(teacher, teacher.module.inner, "copy")
        student.module = _deepcopy(teacher.module)
    if plan.prune:
        kind, ratio = prune_mod.parse_prune(plan.prune)
        example = tuple(t[:1] for t in teacher.meta["example"])
        if kind == "structured":
            pruned, stats = prune_mod.structured(student.module, example, ratio)
        else:
            pruned, stats = prune_mod.unstructured(student.module, ratio)
        student.module = pruned
        info["prune"] = stats
    info["params_teacher"] = prune_mod.count_params(teacher.module)
    info["params_student"] = prune_mod.count_params(student.module)
    return student, info


def _deepcopy(module):
    import copy

    return copy.deepcopy(module)


def train_student(teacher: Model, plan: StudentPlan, samples: list[dict], labels, data_desc: str,
                  progress=None) -> tuple[Model, dict]:
    """Build the student, then train it (or take the cached result of the same stage)."""
    torch = require("torch")
    tcfg = plan.train or TrainConfig()
    if tcfg.backend not in ("local", "ray"):
        raise EdgekitError(f"unknown training backend {tcfg.backend!r}", "use --backend local or ray")
    if tcfg.backend == "ray" and not plan.distill:
        raise EdgekitError("--backend ray runs a training job, and this run trains nothing (--no-distill)",
                           "drop --backend ray, or train the student (--distill)")
    student, info = build(teacher, plan)
    digest = plan.digest(teacher, data_desc)
    run_dir = cache_root() / "runs" / digest
    done = run_dir / "student.pt"
    info["cache"] = str(run_dir)
    if done.is_file():
        student.module.load_state_dict(torch.load(done, map_location="cpu", weights_only=True))
        info["trained"] = json.loads((run_dir / "train.json").read_text()) | {"cached": True}
        return student, info
    if plan.distill:
        if tcfg.backend == "ray":  # before the teacher's targets are computed: Ray there, the cluster reachable
            from .train_ray import preflight

            preflight(tcfg)
        cfg = DistillConfig(loss=plan.loss, batch_size=plan.batch_size, train=plan.train or TrainConfig())
        result = distill(teacher, student, samples, labels, cfg, run_dir, progress)
        info["trained"] = asdict(result) | {"cached": False}
        student.module.to("cpu").eval()
    else:
        info["trained"] = None
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "student.tmp"
    torch.save(student.module.state_dict(), tmp)
    tmp.replace(done)
    (run_dir / "train.json").write_text(json.dumps(info["trained"]))
    student.meta["example"] = teacher.meta["example"]
    return student, info
