"""`edgekit bench`: the same figures for every artifact, on this machine or on a device.

Load time, first inference, steady-state p50/p90/p99 with min, max and standard
deviation, throughput, peak RSS and its growth over the idle runtime, size, and a
per-op profile where the runtime gives one (ONNX Runtime profiling, OpenVINO
performance counters; LiteRT's through its benchmark_model over ADB).
"""

from __future__ import annotations

import datetime as _dt
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import EdgekitError
from .._types import size_of
from .._version import __version__
from ..schema import SCHEMA, check


@dataclass
class BenchResult:
    """The typed form of the JSON `edgekit bench --json` writes (see docs/bench.md)."""

    device: dict
    settings: dict
    results: list[dict]
    target: dict | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict:
        return check("bench", {"schema": SCHEMA, "kind": "bench", "edgekit": __version__, "created": self.created,
                               "device": self.device, "target": self.target, "settings": self.settings,
                               "results": self.results})

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @property
    def ok(self) -> bool:
        return all(r.get("error") is None for r in self.results)


def load_target(name: str) -> dict:
    from .._data import load_device_profile

    return load_device_profile(name, "target")


def _fits(results: list[dict], target: dict) -> list[dict]:
    budgets = target.get("budgets", {})
    out = []
    for r in results:
        if r.get("error"):
            continue
        out.append({"artifact": r["artifact"], "threads": r["threads"],
                    "latency": r["latency_ms"]["p50"] <= budgets.get("latency_ms", float("inf")),
                    "memory": (r["rss_mb"]["peak"] or 0) <= budgets.get("memory_mb", float("inf"))})
    return out


def _base(item) -> dict:
    """What every result of ``item`` starts with, run or not."""
    from .host import files_of

    return {"artifact": item.label, "format": item.format,
            "size_bytes": sum(size_of(f) for f in files_of(item) if f.exists())}


def _target_doc(results: list[dict], prof: dict | None) -> dict | None:
    if not prof:
        return None
    from .._cpu import from_profile

    cpu = from_profile(prof, prof["name"])
    return {"name": prof["name"], "budgets": prof.get("budgets", {}), "cpu": cpu.to_dict() if cpu else None,
            "fits": _fits(results, prof)}


def bench(path: str | Path, *, device: str = "local", target: str | None = None, threads: list[int] | None = None,
          runs: int = 100, warmup: int = 10, batch: int = 1, profile: bool = True, cores: str | None = None,
          memory_mb: int | None = None, python: str | None = None, benchmark_binary: str | Path | None = None,
          timeout: float = 900, step=None) -> BenchResult:
    """Benchmark an artifact, or every artifact of a convert/compress folder, on ``device``."""
    import contextlib

    import numpy as np

    from .._registry import TARGETS
    from .host import LocalDevice, SSHDevice, find_artifacts, make_inputs

    step = step or (lambda _t: contextlib.nullcontext())
    prof = load_target(target) if target else None
    threads = threads or ([prof["threads"]] if prof and prof.get("threads") else [1])
    if runs < 1 or warmup < 0 or batch < 1 or any(t < 1 for t in threads):
        raise EdgekitError("--runs, --batch and --threads must be positive, --warmup not negative", "fix the numbers")
    items = find_artifacts(Path(path))
    if prof:
        allowed = set(prof.get("runtimes", []))
        items = [i for i in items if i.format in allowed] or items
    if device == "local":
        dev = LocalDevice(cores, memory_mb, python)
    elif device.startswith("ssh://"):
        dev = SSHDevice(device, python=python or (prof or {}).get("reach", {}).get("python", "python3"))
    elif device.startswith("adb://"):
        return _bench_adb(device, items, prof, threads, runs, warmup, benchmark_binary, timeout, step)
    else:
        raise EdgekitError(f"unknown device {device!r}", "use local, ssh://user@host[:port] or adb://SERIAL")
    args = ["--threads", "{t}", "--runs", str(runs), "--warmup", str(warmup)] + (["--profile"] if profile else [])
    results = []
    workdir = dev.open() if isinstance(dev, SSHDevice) else None
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-inputs-") as tmp:
            for item in items:
                base = _base(item)
                cannot = TARGETS[item.format].cannot_run() if device == "local" else None
                if cannot:  # e.g. Core ML off macOS
                    results.append({**base, "threads": None, "error": cannot})
                    continue
                try:
                    inputs = make_inputs(item, batch, Path(tmp))
                except EdgekitError:
                    raise
                except Exception as exc:  # the host reads a bare artifact's signature with its runtime
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
                    results.append({**base, "threads": None, "error": f"{item.label} cannot be loaded on this host "
                                                                     f"to read its inputs: {first}"})
                    continue
                with np.load(inputs) as arrays:  # what was fed: dynamic axes resolved from the manifest's dims
                    base["input_shapes"] = {k: list(v.shape) for k, v in arrays.items()}
                if workdir:
                    dev.check_runtime(workdir, item.format)
                for t in threads:
                    a = [x.format(t=t) for x in args]
                    with step(f"{item.label}, {t} thread{'s' if t > 1 else ''}"):
                        r = dev.run(item, inputs, a, timeout, workdir) if workdir else dev.run(item, inputs, a, timeout)
                    results.append({**base, "threads": t, "error": None, **r})
                    if str(r.get("error") or "").startswith("not run"):
                        break  # e.g. Core ML on a Linux device: the same answer at every thread count
    finally:
        if workdir:
            dev.close(workdir)
    device_info = {"spec": dev.spec}
    first = next((r for r in results if r.get("device")), None)
    if first:
        device_info.update(first.pop("device"))
    for r in results:
        r.pop("device", None)
    return BenchResult(device=device_info, target=_target_doc(results, prof), results=results,
                       settings={"runs": runs, "warmup": warmup, "batch": batch, "threads": threads, "profile": profile})


def _bench_adb(device: str, items, prof: dict | None, threads: list[int], runs: int, warmup: int,
               benchmark_binary, timeout: float, step) -> BenchResult:
    """Android: LiteRT's own benchmark_model runs each .tflite; its log is parsed into the same schema."""
    from .adb import run_adb

    serial = device.removeprefix("adb://")
    if not serial:
        raise EdgekitError(f"bad device {device!r}", "write adb://SERIAL (the serial `adb devices` lists)")
    if benchmark_binary is None:
        raise EdgekitError(f"{device}: Android artifacts are timed with LiteRT's benchmark_model, and none was given",
                           "pass --benchmark-binary PATH (an Android build of benchmark_model, e.g. "
                           "android_aarch64_benchmark_model from LiteRT's releases)")
    results = []
    for item in items:
        base = _base(item)
        if item.format != "tflite":
            results.append({**base, "threads": None, "error": f"not run: {device} runs .tflite artifacts "
                                                             "(LiteRT's benchmark_model)"})
            continue
        for t in threads:
            with step(f"{item.label}, {t} thread{'s' if t > 1 else ''} on {device}"):
                parsed = run_adb(serial, item.path, Path(benchmark_binary), t, runs, warmup, timeout=timeout)
            results.append({**base, "threads": t, "error": None, **from_benchmark_model(parsed)})
    from .._cpu import from_profile

    cpu = from_profile(prof, prof["name"]) if prof else None  # benchmark_model does not say; the profile may
    return BenchResult(device={"spec": device, "system": "Android", "tool": "benchmark_model",
                               "cpu": {**cpu.to_dict(), "source": f"{cpu.source} (not read from the device)"}
                               if cpu else None},
                       target=_target_doc(results, prof),
                       results=results, settings={"runs": runs, "warmup": warmup, "batch": 1, "threads": threads,
                                                  "profile": True})


def from_benchmark_model(parsed: dict) -> dict:
    """A parsed benchmark_model log in the runner's result schema.

    benchmark_model prints mean, std, min, max and (recent builds) p5/p50/p95, not p90/p99,
    and no per-run samples: those stay None / empty rather than being invented.
    """
    lat = parsed["latency_ms"]
    mem = parsed["memory_mb"]
    peak = mem.get("peak") or mem.get("rss_end")
    return {
        "runtime": {"name": parsed["tool"], "version": None},
        "load_ms": parsed["load_ms"],
        "first_inference_ms": parsed["first_inference_ms"],
        "latency_ms": {"p50": lat.get("p50", lat.get("mean")), "p90": None, "p95": lat.get("p95"), "p99": None,
                       "min": lat.get("min"), "max": lat.get("max"), "mean": lat.get("mean"), "std": lat.get("std")},
        "throughput_ips": parsed["throughput_ips"],
        "samples_ms": [],
        "rss_mb": {"before_load": None, "after_load": mem.get("init_delta"), "peak": peak, "growth_idle": None},
        # the table's [avg ms] is per call of one node; per inference a node type takes avg x count
        "ops": [{"name": o["name"].removeprefix("Delegate/"), "ms": o["ms"] * o["count"], "share": o["share"],
                 "count": o["count"]} for o in parsed["ops"]],
    }
