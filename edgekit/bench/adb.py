"""Benchmark a `.tflite` on an Android device with LiteRT's own `benchmark_model`, over ADB.

The user supplies the `benchmark_model` binary built for the device (LiteRT publishes
prebuilt ``android_aarch64_benchmark_model`` binaries; edgekit does not download it).
:func:`adb_commands` lists the exact ``adb`` argv lists, :func:`run_adb` runs them (always
removing the device work folder at the end) and :func:`parse_benchmark_model` turns the
tool's log into the figures `edgekit bench` reports, in milliseconds and megabytes.

`parse_benchmark_model` also reads the summary printed by the pip package's Python tool
(``litert-benchmark``, ``ai_edge_litert.tools.benchmark_litert_model``), which has no op
profile and no memory figures; :func:`parse_op_profile` reads the "Summary by node type"
table on its own (benchmark_model's, or ``LiteRtGetProfileSummary``'s).
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .._errors import EdgekitError

REMOTE_ROOT = "/data/local/tmp"
REMOTE_MODEL = "model.tflite"
REMOTE_BINARY = "benchmark_model"

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"  # C++ streams print 1.23457e+06
_SAFE_WORKDIR = re.compile(r"/data/local/tmp/[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
_STAT = re.compile(
    rf"count=(?P<count>\d+)\s+first=(?P<first>{_NUM})\s+curr=(?P<curr>{_NUM})\s+min=(?P<min>{_NUM})\s+"
    rf"max=(?P<max>{_NUM})\s+avg=(?P<avg>{_NUM})\s+std=(?P<std>{_NUM})"
    rf"(?:\s+p5=(?P<p5>{_NUM})\s+median=(?P<median>{_NUM})\s+p95=(?P<p95>{_NUM}))?")
_TIMINGS = re.compile(
    rf"Inference timings in us:\s*Init:\s*(?P<init>{_NUM}),\s*First inference:\s*(?P<first>{_NUM}),\s*"
    rf"Warmup \(avg\):\s*(?P<warmup>{_NUM}),\s*Inference \(avg\):\s*(?P<avg>{_NUM})")
_ROW = re.compile(
    rf"^\s*(?P<name>\S.*?)\s+(?P<count>\d+)\s+(?P<ms>{_NUM})\s+(?P<pct>{_NUM})%\s+(?P<cdf>{_NUM})%\s+"
    rf"(?P<mem>{_NUM})\s+(?P<calls>\d+)\s*$")
_LOG_PREFIX = re.compile(r"^(?:INFO|WARNING|WARN|ERROR|VERBOSE): ")
_INIT_SECTION = "Profiling Info for Benchmark Initialization:"
_RUN_SECTION = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_UNREACHABLE = re.compile(  # adb's own words for "no such device" / "cannot talk to it"
    r"(error|adb): device .*(not found|offline|unauthori[sz]ed|still authorizing)|no devices(/emulators)? found|"
    r"error: no devices|error: closed|device offline|cannot connect to|failed to connect to|"
    r"insufficient permissions for device|no permissions", re.IGNORECASE)


# --------------------------------------------------------------------------- commands


def default_workdir() -> str:
    return f"{REMOTE_ROOT}/edgekit-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class AdbBench:
    """One benchmark_model run on an Android device: the device, what runs there, and how."""

    serial: str  # as `adb devices` lists it
    tflite: Path
    benchmark_binary: Path  # LiteRT's benchmark_model built for the device
    threads: int = 1
    runs: int = 50
    warmup: int = 5
    peak_memory: bool = True  # --report_peak_memory_footprint (a periodic monitor: costs a little)
    adb: str = "adb"  # the adb client


def adb_commands(job: AdbBench, workdir: str | None = None) -> list[list[str]]:
    """The argv lists :func:`run_adb` runs, in order; the last one removes ``workdir``.

    ``workdir`` (default ``/data/local/tmp/edgekit-<8 hex>``) must lie under /data/local/tmp:
    it is removed with ``rm -rf``. The model and binary get fixed names there, so local names
    with spaces or shell characters never reach the device shell. ``--min_secs=0`` and
    ``--warmup_min_secs=0`` make benchmark_model do exactly ``runs`` and ``warmup`` runs
    (by default it repeats until 1 s / 0.5 s have passed).
    """
    serial, threads, runs, warmup = job.serial, job.threads, job.runs, job.warmup
    if not serial or any(c.isspace() for c in serial):
        raise ValueError(f"bad adb serial {serial!r}")
    if threads < 1 or runs < 1 or warmup < 0:
        raise ValueError(f"threads and runs must be >= 1 and warmup >= 0 (got {threads}, {runs}, {warmup})")
    workdir = workdir or default_workdir()
    if not _SAFE_WORKDIR.fullmatch(workdir) or ".." in workdir.split("/"):
        raise ValueError(f"workdir {workdir!r} must be a folder under {REMOTE_ROOT}/ named with [A-Za-z0-9._-]")
    dev = [job.adb, "-s", serial]
    model, binary = f"{workdir}/{REMOTE_MODEL}", f"{workdir}/{REMOTE_BINARY}"
    bench = [binary, f"--graph={model}", f"--num_threads={threads}", f"--num_runs={runs}",
             f"--warmup_runs={warmup}", "--min_secs=0", "--warmup_min_secs=0", "--enable_op_profiling=true"]
    if job.peak_memory:
        bench.append("--report_peak_memory_footprint=true")
    return [
        [*dev, "shell", "mkdir", "-p", workdir],
        [*dev, "push", str(job.tflite), model],
        [*dev, "push", str(job.benchmark_binary), binary],
        [*dev, "shell", "chmod", "+x", binary],
        [*dev, "shell", *bench],
        [*dev, "shell", "rm", "-rf", workdir],
    ]


def run_adb(job: AdbBench, workdir: str | None = None, *, timeout: float = 900) -> dict:
    """Push, run and parse benchmark_model on device ``job.serial``; the work folder is always removed.

    Returns :func:`parse_benchmark_model`'s dict plus ``device``, ``threads`` and ``log`` (the
    tool's full output). Raises :class:`EdgekitError` naming the device and the cause when adb
    is missing, the device is unreachable, a push fails, or benchmark_model fails.
    """
    spec = f"adb://{job.serial}"
    tflite, benchmark_binary, adb = Path(job.tflite), Path(job.benchmark_binary), job.adb
    if shutil.which(adb) is None:
        raise EdgekitError(f"cannot benchmark on {spec}: the adb client ({adb!r}) is not on PATH",
                           "install Android platform-tools (apt install adb, or the SDK's platform-tools) "
                           "and put adb on PATH")
    for what, path in (("model", tflite), ("benchmark_model binary", benchmark_binary)):
        if not path.is_file():
            raise EdgekitError(f"cannot benchmark on {spec}: the {what} {path} does not exist",
                               "pass an existing file" + (" (an Android build of LiteRT's benchmark_model, "
                                                          "e.g. android_aarch64_benchmark_model)"
                                                          if what != "model" else ""))
    commands = adb_commands(job, workdir)
    *steps, cleanup = commands
    whats = ["creating the work folder", f"pushing {tflite}", f"pushing {benchmark_binary}",
             "making benchmark_model executable"]
    log = ""
    try:
        for what, argv in zip(whats, steps[:-1], strict=True):
            _check(spec, what, _run(spec, what, argv, timeout=min(timeout, 600)))
        proc = _run(spec, "running benchmark_model", steps[-1], timeout=timeout, merge=True)
        log = proc.stdout or ""
        if proc.returncode != 0:
            if _UNREACHABLE.search(_tail(log)):
                _check(spec, "running benchmark_model", proc)  # the device went away: say so
            err = EdgekitError(f"benchmark_model failed on {spec} (exit status {proc.returncode}): "
                               f"{_root_error(log) or 'no output'}",
                               "check the binary matches the device ABI (adb shell getprop ro.product.cpu.abi) "
                               "and that the model's ops are supported; the full log is in the error's `log`")
            err.log = log
            raise err
        try:
            result = parse_benchmark_model(log)
        except ValueError as exc:
            err = EdgekitError(f"benchmark_model on {spec} printed no usable results: {exc}",
                               "run the 5th command of edgekit.bench.adb.adb_commands() by hand to see why")
            err.log = log
            raise err from exc
    finally:
        try:  # never let a failing cleanup hide the real error
            done = _run(spec, "removing the work folder", cleanup, timeout=120)
            cleanup_error = None if done.returncode == 0 else _tail(done.stderr or done.stdout)
        except EdgekitError as exc:
            cleanup_error = str(exc)
    return {**result, "device": spec, "threads": job.threads, "cleanup_error": cleanup_error, "log": log}


def _run(spec: str, what: str, argv: list[str], *, timeout: float, merge: bool = False):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                              text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise EdgekitError(f"{spec}: {what}: cannot start {argv[0]!r}: {exc.strerror}",
                           "install Android platform-tools and put adb on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise EdgekitError(f"{spec}: {what} did not finish within {timeout:.0f} s",
                           "check the device is responsive (adb -s SERIAL shell true), or raise the timeout") from exc


def _check(spec: str, what: str, proc: subprocess.CompletedProcess) -> None:
    if proc.returncode == 0:
        return
    msg = _tail(proc.stderr or proc.stdout) or f"exit status {proc.returncode}"
    if _UNREACHABLE.search(msg):
        raise EdgekitError(f"device {spec} is unreachable ({what}): {msg}",
                           "check `adb devices` lists it as 'device' (USB debugging on and this host authorised; "
                           "for network devices: adb connect HOST:PORT)")
    raise EdgekitError(f"{spec}: {what} failed: {msg}", "check the device has space in /data/local/tmp and is "
                       "writable by the shell user")


def _tail(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _root_error(log: str) -> str:
    """The first ERROR line (TFLite logs the cause first, then what failed because of it), else the last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    first = next((ln for ln in lines if re.match(r"(ERROR|FATAL)\b", ln)), None)
    return first or next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")


# --------------------------------------------------------------------------- parsing


def _us(x: str | float | None) -> float | None:
    return None if x is None else float(x) / 1000.0


def _strip(line: str) -> str:
    return _LOG_PREFIX.sub("", line)


def parse_op_profile(text: str) -> dict:
    """The "Summary by node type" tables of an op-profiling log.

    Returns ``{"ops": [...], "delegate_ops": [...] | None}``, each op a dict ``name``, ``ms``
    (the table's [avg ms]), ``share`` (its [avg %] / 100), ``count`` (nodes of that type) and
    ``calls`` ([times called]), sorted by share, largest first. In a benchmark_model log the
    table is taken from the regular-runs section (not the initialization one), from the primary
    graph; ``delegate_ops`` is the "Delegate internal" table, when the log has one. Both are
    empty/None when the log has no profile.
    """
    lines = [_strip(ln) for ln in text.splitlines()]
    start = next((i for i, ln in enumerate(lines) if _RUN_SECTION in ln), None)
    if start is None:
        if any(_INIT_SECTION in ln for ln in lines):
            return {"ops": [], "delegate_ops": None}  # only the initialization profile
        start = 0
    delegate_at = next((i for i in range(start, len(lines)) if lines[i].strip().startswith("Delegate internal:")),
                       len(lines))
    ops = _table_after(lines, start, delegate_at)
    delegate = _table_after(lines, delegate_at, len(lines)) if delegate_at < len(lines) else None
    return {"ops": ops, "delegate_ops": delegate}


def _table_after(lines: list[str], start: int, stop: int) -> list[dict]:
    at = next((i for i in range(start, stop) if "Summary by node type" in lines[i]), None)
    if at is None:
        return []
    ops, i = [], at + 1
    csv = i < len(lines) and lines[i].strip().lower().startswith("node type,")
    if i < len(lines) and ("[Node type]" in lines[i] or csv):
        i += 1
    while i < stop and lines[i].strip():
        row = _csv_row(lines[i]) if csv else _ROW.match(lines[i])
        if row is None:
            break
        ops.append({"name": row["name"].strip(), "ms": float(row["ms"]), "share": float(row["pct"]) / 100.0,
                    "count": int(row["count"]), "calls": int(row["calls"])})
        i += 1
    return sorted(ops, key=lambda o: -o["share"])


def _csv_row(line: str) -> dict | None:
    parts = [p.strip() for p in line.rsplit(",", 6)]  # the name may hold commas: "Convolution (NHWC, F32) IGEMM"
    if len(parts) != 7:
        return None
    name, count, ms, pct, cdf, mem, calls = parts
    try:
        int(count), float(ms), float(pct.rstrip("%")), float(calls)
    except ValueError:
        return None
    return {"name": name, "count": count, "ms": ms, "pct": pct.rstrip("%"), "calls": int(float(calls))}


def parse_benchmark_model(text: str) -> dict:
    """Figures from a LiteRT ``benchmark_model`` log (or ``litert-benchmark``'s summary), in ms and MB.

    Keys: ``tool``; ``load_ms`` (initialization); ``first_inference_ms``; ``warmup_ms``
    (``{"mean", "count"}``); ``latency_ms`` (steady state: ``mean``, ``std``, ``min``, ``max``,
    ``count`` and ``p5``/``p50``/``p95`` when printed); ``throughput_ips`` (1000 / mean, batch 1);
    ``memory_mb`` (``init_delta``, ``overall_delta``, ``peak``, ``rss_end``: None where not
    printed); ``model_size_mb``; ``num_threads``; ``ops`` and ``delegate_ops`` (see
    :func:`parse_op_profile`). benchmark_model prints microseconds; they are converted.

    Raises ValueError naming what is missing when the text is not such a log.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty text: expected a benchmark_model log")
    if "BENCHMARK RESULTS" in text and "Inference (avg):" in text and "Inference timings in us" not in text:
        return _parse_litert_python(text)
    lines = [_strip(ln) for ln in text.splitlines()]
    stats = [m for ln in lines if "Timings (microseconds):" not in ln  # the op profile's own summary line
             for m in [_STAT.search(ln)] if m]
    timings = next((m for ln in lines if (m := _TIMINGS.search(ln))), None)
    if not stats and timings is None:
        missing = ("no steady-state timing line (neither 'count=N first=.. min=.. max=.. avg=.. std=..' after "
                   "'Running benchmark for at least ...' nor 'Inference timings in us: ...')")
        err = _root_error(text) if re.search(r"ERROR|Error|Traceback", text) else ""
        raise ValueError(f"not a benchmark_model log: {missing}" + (f"; its first error: {err}" if err else ""))
    regular = stats[1] if len(stats) >= 2 else (stats[0] if stats else None)
    warm = stats[0] if len(stats) >= 2 else None
    latency = _latency(regular, timings)
    load_ms = _us(timings["init"]) if timings else _find_float(lines, rf"Initialized session in ({_NUM})\s*ms")
    if load_ms is None:
        raise ValueError("benchmark_model log has run timings but no initialization time "
                         "('Initialized session in X ms' or 'Inference timings in us: Init: ...')")
    first = _us(timings["first"]) if timings else (_us(warm["first"]) if warm else None)
    warmup = None
    if warm is not None:
        warmup = {"mean": _us(warm["avg"]), "count": int(warm["count"])}
    elif timings is not None:
        warmup = {"mean": _us(timings["warmup"]), "count": None}
    threads = _find_float(lines, r"Num threads:\s*\[(\d+)\]")
    mean = latency.get("mean")
    return {
        "tool": "benchmark_model",
        "load_ms": load_ms,
        "first_inference_ms": first,
        "warmup_ms": warmup,
        "latency_ms": latency,
        "throughput_ips": 1000.0 / mean if mean else None,
        "memory_mb": _memory(lines),
        "model_size_mb": _find_float(lines, rf"The input model file size \(MB\):\s*({_NUM})"),
        "num_threads": int(threads) if threads is not None else None,
        **parse_op_profile(text),
    }


def _latency(regular: re.Match | None, timings: re.Match | None) -> dict:
    """Steady-state latency (ms) from the regular runs' stat line, else the timings line's mean."""
    if regular is not None:
        latency = {"mean": _us(regular["avg"]), "std": _us(regular["std"]), "min": _us(regular["min"]),
                   "max": _us(regular["max"]), "count": int(regular["count"])}
        if regular["median"] is not None:
            latency.update(p5=_us(regular["p5"]), p50=_us(regular["median"]), p95=_us(regular["p95"]))
        return latency
    if timings is not None:
        return {"mean": _us(timings["avg"])}
    return {}


def _memory(lines: list[str]) -> dict:
    """benchmark_model's memory figures (MB); None where not printed."""
    memory = {"init_delta": None, "overall_delta": None, "peak": None, "rss_end": None}
    for ln in lines:
        m = re.search(rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*"
                      rf"init=({_NUM})\s+overall=({_NUM})", ln)
        if m:
            memory["init_delta"], memory["overall_delta"] = float(m[1]), float(m[2])
    memory["peak"] = _find_float(lines, rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*({_NUM})")
    memory["rss_end"] = _find_float(lines, rf"-\s*VmRSS\s*:\s*({_NUM})\s*MB")
    return memory


def _find_float(lines: list[str], pattern: str) -> float | None:
    rx = re.compile(pattern)
    for ln in lines:
        m = rx.search(ln)
        if m:
            return float(m[1])
    return None


def _parse_litert_python(text: str) -> dict:
    """The summary block of ai_edge_litert.tools.benchmark_litert_model (`litert-benchmark`)."""
    lines = text.splitlines()

    def ms(label: str) -> float | None:
        return _find_float(lines, rf"^{re.escape(label)}:\s*({_NUM}) ms")

    latency = {"mean": ms("Inference (avg)"), "std": ms("Inference (std)"), "min": ms("Inference (min)"),
               "max": ms("Inference (max)"), "p5": ms("Inference (p5)"), "p50": ms("Inference (median)"),
               "p95": ms("Inference (p95)")}
    missing = [k for k in ("mean", "min", "max") if latency[k] is None]
    load = ms("Model initialization")
    if missing or load is None:
        what = ", ".join([f"Inference ({'avg' if k == 'mean' else k})" for k in missing]
                         + ([] if load is not None else ["Model initialization"]))
        raise ValueError(f"litert-benchmark summary is missing: {what}")
    runs = _find_float(lines, rf"^Inference \(avg\):\s*{_NUM} ms \((\d+) runs\)")
    latency["count"] = int(runs) if runs is not None else None
    wruns = _find_float(lines, rf"^Warmup \(avg\):\s*{_NUM} ms \((\d+) runs\)")
    warm = ms("Warmup (avg)")
    threads = _find_float(lines, r"Num threads:\s*(\d+)")
    mean = latency["mean"]
    return {
        "tool": "litert-benchmark",
        "load_ms": load,
        "first_inference_ms": ms("Warmup (first)"),
        "warmup_ms": None if warm is None else {"mean": warm, "count": int(wruns) if wruns is not None else None},
        "latency_ms": latency,
        "throughput_ips": 1000.0 / mean if mean else None,
        "input_mb_per_s": _find_float(lines, rf"^Throughput:\s*({_NUM}) MB/s"),
        "memory_mb": {"init_delta": None, "overall_delta": None, "peak": None, "rss_end": None},
        "model_size_mb": _find_float(lines, rf"Model size:\s*({_NUM}) MB"),
        "num_threads": int(threads) if threads is not None else None,
        "ops": [],
        "delegate_ops": None,
    }
