"""`edgekit bench`: the same figures for every artifact, on this machine or on a device.

Load time, first inference, steady-state p50/p90/p99 with min, max and standard
deviation, throughput, peak RSS and its growth over the idle runtime, size, and a
per-op profile where the runtime gives one (ONNX Runtime profiling, OpenVINO
performance counters; LiteRT's through its benchmark_model over ADB).
"""

from __future__ import annotations

import dataclasses
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


@dataclass
class BenchOptions:
    """What `edgekit bench` measures, where, and how."""

    on: str = "local"  # where it runs: local, ssh://user@host[:port] or adb://SERIAL
    device: str | None = None  # a device profile in targets/ (threads, runtimes, budgets, CPU)
    threads: list[int] | None = None  # default: the profile's, else 1
    runs: int = 100  # timed runs
    warmup: int = 10  # runs before timing
    batch: int = 1  # batch size (dynamic-batch artifacts)
    profile: bool = True  # the per-op profile
    cores: str | None = None  # local: pin to these cores (a taskset list)
    memory_mb: int | None = None  # local: cap the runner's resident memory
    python: str | None = None  # the device's Python (ssh)
    benchmark_binary: str | Path | None = None  # adb: LiteRT's benchmark_model for the device
    timeout: float = 900  # seconds per run
    lengths: str | Path | None = None  # a file of sentences or integer lengths: latency over real lengths

    @classmethod
    def from_kwargs(cls, settings: dict) -> BenchOptions:
        """The settings named as keywords; the names of 0.1 (``target=`` for the profile,
        ``device=`` for where it runs) still work, with a warning; an unknown name is an error."""
        from .._names import deprecated, is_place

        settings = dict(settings)
        if settings.get("device") is not None and is_place(str(settings["device"])):
            deprecated(f"bench: device={settings['device']!r} names where it runs: use on=; device= is a profile "
                       "in targets/")
            settings.setdefault("on", settings.pop("device"))
        if "target" in settings:
            deprecated("bench: target= is deprecated, use device= (a profile in targets/)")
            target = settings.pop("target")
            settings["device"] = settings.get("device") or target
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise EdgekitError(f"unknown bench option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                               f"use some of: {', '.join(names)}")
        return cls(**settings)


def load_target(name: str) -> dict:
    """The device profile ``targets/NAME.toml``."""
    from .._data import load_device_profile

    return load_device_profile(name)


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


def bench(path: str | Path, options: BenchOptions | None = None, *, stage=None, **settings) -> BenchResult:
    """Benchmark an artifact, or every artifact of a convert/compress folder, where ``options.on`` says.

    ``settings`` are BenchOptions fields by name (``bench(path, device="raspberry-pi-5", runs=10)``),
    for when no ``options`` is given. ``stage(text)`` is a context manager around each run (a spinner)."""
    from .._progress import no_stage
    from .host import find_artifacts

    if options is not None and settings:
        raise EdgekitError(f"bench got options and settings {sorted(settings)}", "pass one or the other")
    opts = options or BenchOptions.from_kwargs(settings)
    stage = stage or no_stage
    prof = load_target(opts.device) if opts.device else None
    opts = dataclasses.replace(opts, threads=opts.threads or ([prof["threads"]] if prof and prof.get("threads")
                                                               else [1]))
    if opts.runs < 1 or opts.warmup < 0 or opts.batch < 1 or any(t < 1 for t in opts.threads):
        raise EdgekitError("--runs, --batch and --threads must be positive, --warmup not negative", "fix the numbers")
    items = find_artifacts(Path(path))
    if prof:
        allowed = set(prof.get("runtimes", []))
        items = [i for i in items if i.format in allowed] or items
    if opts.on.startswith("adb://"):
        if opts.lengths:
            raise EdgekitError("--lengths runs through edgekit's runner; on adb:// LiteRT's benchmark_model runs a "
                               "fixed shape", "drop --lengths, or bench the .tflite on ssh:// or here")
        return _bench_adb(opts, items, prof, stage)
    dev = _host_device(opts, prof)
    results = _bench_host(opts, dev, items, stage, _lengths(opts, path))
    device_info = {"spec": dev.spec}
    first = next((r for r in results if r.get("device")), None)
    if first:
        device_info.update(first.pop("device"))
    for r in results:
        r.pop("device", None)
    return BenchResult(device=device_info, target=_target_doc(results, prof), results=results, settings=_settings(opts))


def _settings(opts: BenchOptions, batch: int | None = None, profile: bool | None = None) -> dict:
    return {"runs": opts.runs, "warmup": opts.warmup, "batch": opts.batch if batch is None else batch,
            "threads": opts.threads, "profile": opts.profile if profile is None else profile,
            **({"lengths": str(opts.lengths)} if opts.lengths else {})}


def _lengths(opts: BenchOptions, path):
    """``--lengths``: the real lengths to time each artifact over (bench/lengths.py), or None."""
    if not opts.lengths:
        return None
    if opts.batch != 1:
        raise EdgekitError("--lengths times one input at a time", "drop --batch (or use --batch 1) with --lengths")
    from .lengths import read_lengths

    return read_lengths(opts.lengths, path)


def _host_device(opts: BenchOptions, prof: dict | None):
    """This machine, or one over SSH, as ``opts.on`` names it."""
    from .host import LocalDevice, SSHDevice

    if opts.on == "local":
        return LocalDevice(opts.cores, opts.memory_mb, opts.python)
    if opts.on.startswith("ssh://"):
        return SSHDevice(opts.on, python=opts.python or (prof or {}).get("reach", {}).get("python", "python3"))
    raise EdgekitError(f"unknown place to run {opts.on!r}", "use local, ssh://user@host[:port] or adb://SERIAL")


def _bench_host(opts: BenchOptions, dev, items, stage, lengths=None) -> list[dict]:
    """Each artifact at each thread count, run by the device runner (bench/runner.py) on ``dev``;
    with ``lengths``, also one run per real length (``real_lengths``)."""
    from .host import SSHDevice

    args = ["--threads", "{t}", "--runs", str(opts.runs), "--warmup", str(opts.warmup)]
    args += ["--profile"] if opts.profile else []
    results: list[dict] = []
    workdir = dev.open() if isinstance(dev, SSHDevice) else None
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-inputs-") as tmp:
            for item in items:
                base, inputs = _inputs_for(opts, item, Path(tmp))
                if inputs is None:
                    results.append(base)
                    continue
                if workdir:
                    dev.check_runtime(workdir, item.format)
                real = _real_inputs(item, lengths, Path(tmp))
                for t in opts.threads:
                    a = [x.format(t=t) for x in args] + (["--lengths-inputs", str(real[0])] if real else [])
                    with stage(f"{item.label}, {t} thread{'s' if t > 1 else ''}"):
                        r = dev.run(item, inputs, a, opts.timeout, workdir) if workdir else dev.run(item, inputs, a,
                                                                                                   opts.timeout)
                    if real and r.get("real_lengths"):
                        r["real_lengths"] = {**real[1], **r["real_lengths"]}
                    results.append({**base, "threads": t, "error": None, **r})
                    if str(r.get("error") or "").startswith("not run"):
                        break  # e.g. Core ML on a Linux device: the same answer at every thread count
    finally:
        if workdir:
            dev.close(workdir)
    return results


def _real_inputs(item, lengths, tmp: Path):
    """(the .npz of one feed per real length, its summary) for ``item``; None without --lengths."""
    if lengths is None:
        return None
    if item.signature is None or not item.source_inputs:
        raise EdgekitError(f"--lengths needs the output folder's manifest to know {item.label}'s sequence axis",
                           "bench the folder edgekit convert wrote (or an artifact inside it)")
    from .lengths import sample_feeds

    return sample_feeds(item, lengths, tmp)


def _inputs_for(opts: BenchOptions, item, tmp: Path) -> tuple[dict, Path | None]:
    """The result ``item``'s runs start from, and its inputs (.npz); None and an error result
    where it cannot run (here) or its inputs cannot be read."""
    import numpy as np

    from .._registry import TARGETS
    from .host import make_inputs

    base = _base(item)
    cannot = TARGETS[item.format].cannot_run() if opts.on == "local" else None
    if cannot:  # e.g. Core ML off macOS
        return {**base, "threads": None, "error": cannot}, None
    try:
        inputs = make_inputs(item, opts.batch, tmp)
    except EdgekitError:
        raise
    except Exception as exc:  # the host reads a bare artifact's signature with its runtime
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:300]
        return {**base, "threads": None, "error": f"{item.label} cannot be loaded on this host "
                                                  f"to read its inputs: {first}"}, None
    with np.load(inputs) as arrays:  # what was fed: dynamic axes resolved from the manifest's dims
        base["input_shapes"] = {k: list(v.shape) for k, v in arrays.items()}
    return base, inputs


def _bench_adb(opts: BenchOptions, items, prof: dict | None, stage) -> BenchResult:
    """Android: LiteRT's own benchmark_model runs each .tflite; its log is parsed into the same schema."""
    from .adb import AdbBench, run_adb

    serial = opts.on.removeprefix("adb://")
    if not serial:
        raise EdgekitError(f"bad device {opts.on!r}", "write adb://SERIAL (the serial `adb devices` lists)")
    if opts.benchmark_binary is None:
        raise EdgekitError(f"{opts.on}: Android artifacts are timed with LiteRT's benchmark_model, and none was given",
                           "pass --benchmark-binary PATH (an Android build of benchmark_model, e.g. "
                           "android_aarch64_benchmark_model from LiteRT's releases)")
    results = []
    for item in items:
        base = _base(item)
        if item.format != "tflite":
            results.append({**base, "threads": None, "error": f"not run: {opts.on} runs .tflite artifacts "
                                                             "(LiteRT's benchmark_model)"})
            continue
        for t in opts.threads:
            job = AdbBench(serial, item.path, Path(opts.benchmark_binary), t, opts.runs, opts.warmup)
            with stage(f"{item.label}, {t} thread{'s' if t > 1 else ''} on {opts.on}"):
                parsed = run_adb(job, timeout=opts.timeout)
            results.append({**base, "threads": t, "error": None, **from_benchmark_model(parsed)})
    from .._cpu import from_profile

    cpu = from_profile(prof, prof["name"]) if prof else None  # benchmark_model does not say; the profile may
    return BenchResult(device={"spec": opts.on, "system": "Android", "tool": "benchmark_model",
                               "cpu": {**cpu.to_dict(), "source": f"{cpu.source} (not read from the device)"}
                               if cpu else None},
                       target=_target_doc(results, prof), results=results,
                       settings=_settings(opts, batch=1, profile=True))


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
