"""Profile: latency of an artifact in its own runtime (batch 1), at chosen thread counts."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from .._registry import TARGETS, runner_for
from .._types import Signature
from .verify import adapt_feeds


@dataclass
class Latency:
    threads: int
    p50: float
    p90: float
    p99: float
    mean: float
    min: float
    max: float
    std: float
    runs: int

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def all_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def thread_counts(spec: str | list | None) -> list[int]:
    """``"1,all"`` -> [1, <cores>]; duplicates dropped."""
    items = spec.split(",") if isinstance(spec, str) else (spec or ["1", "all"])
    out = [all_cores() if str(t).strip() == "all" else int(t) for t in items]
    return list(dict.fromkeys(out))


def measure(target: str, path, feeds: dict[str, np.ndarray], source: Signature, threads: int,
            runs: int = 50, warmup: int = 5, **runner_kwargs) -> Latency:
    """Time ``runs`` calls after ``warmup`` calls, one runtime instance pinned to ``threads``."""
    runner = runner_for(TARGETS[target], path, threads=threads, source=source, **runner_kwargs)
    adapted = adapt_feeds(feeds, source, runner.signature)
    for _ in range(warmup):
        runner.run(adapted)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        runner.run(adapted)
        times[i] = (time.perf_counter() - t0) * 1000.0
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return Latency(threads, float(p50), float(p90), float(p99), float(times.mean()), float(times.min()),
                   float(times.max()), float(times.std()), runs)
