"""The host side of `edgekit bench`: find the artifacts, make inputs, run the device-side
runner locally or over SSH, and collect one JSON result per artifact and thread count."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .._errors import EdgekitError

RUNNER = Path(__file__).with_name("runner.py")
CPU = Path(__file__).parents[1] / "_cpu.py"  # the runner reports the device's CPU with it


@dataclass
class Item:
    """One artifact to benchmark, with what its runtime expects."""

    path: Path
    format: str
    label: str  # relative to the folder given
    signature: dict | None  # {"inputs": [{"name", "shape", "dtype"}]} when a manifest says
    dims: dict
    source_names: list[str] | None = None  # the source's input names, in order (they say what each input is)
    vocab_size: int | None = None
    source_inputs: list[dict] | None = None  # the source's inputs with their axis names (--lengths)
    buckets: dict | None = None  # the manifest's shape buckets of this artifact (axes, signatures, pad)


def find_artifacts(path: Path) -> list[Item]:
    """A single artifact, or every artifact of a `convert`/`compress` output folder."""
    if not path.exists():
        raise EdgekitError(f"{path} does not exist", "give an artifact or an edgekit convert/compress output folder")
    from .._registry import format_of_suffix

    suffixes = format_of_suffix()
    if path.is_file() or path.suffix in suffixes:  # a package folder (.mlpackage) is one artifact too
        fmt = suffixes.get(path.suffix)
        if fmt is None:
            raise EdgekitError(f"{path} is not an artifact edgekit benchmarks",
                               f"give one of {', '.join(f'{s} ({t})' for s, t in suffixes.items())}")
        return [_from_manifest(path) or Item(path, fmt, path.name, None, {})]
    items = []
    manifests = sorted(path.rglob("manifest.json"))
    if not manifests:
        raise EdgekitError(f"{path} holds no manifest.json", "give an edgekit convert/compress output folder or one artifact")
    from .. import schema

    for manifest in manifests:
        doc = schema.load("manifest", manifest)
        names = [i.name for i in doc.source.signature.inputs] or None
        source_inputs = [i.model_dump() for i in doc.source.signature.inputs]
        for a in doc.artifacts:
            p = manifest.parent / a.path
            buckets = getattr(a, "buckets", None)
            items.append(Item(p, a.target, str(p.relative_to(path)), a.signature.model_dump(), doc.source.dims,
                              names, doc.source.vocab_size, source_inputs,
                              buckets.model_dump() if hasattr(buckets, "model_dump") else buckets))
    report = path / "report.json"
    if report.is_file():  # compress: the variants too, with the fp32 source's signature
        sig_of = {i.format: i for i in items}
        for v in schema.load("compress-report", report).variants:
            p = path / v.path
            base = sig_of.get(v.target)
            if base is not None and p.exists():
                buckets = getattr(v, "buckets", None)
                items.append(Item(p, v.target, str(p.relative_to(path)), base.signature, base.dims,
                                  base.source_names, base.vocab_size, base.source_inputs,
                                  (buckets.model_dump() if hasattr(buckets, "model_dump") else buckets)
                                  or base.buckets))
    return items


def _from_manifest(path: Path) -> Item | None:
    """An artifact inside an edgekit output folder (convert, or compress with its variants): the
    folder's manifest says the inputs' names, dims and meaning (which input holds token ids),
    which the runtime's own signature does not."""
    resolved = path.resolve()
    for folder in list(resolved.parents)[:3]:
        if (folder / "manifest.json").is_file() or (folder / "report.json").is_file():
            for item in find_artifacts(folder):
                if item.path.resolve() == resolved:
                    return replace(item, path=path, label=path.name)
    return None


def make_inputs(item: Item, batch: int, folder: Path) -> Path:
    """Realistic inputs for the artifact (keyed by its runtime's names), saved as .npz."""
    from .._inputs import generate_inputs
    from .._types import Signature, TensorSpec

    if item.signature is None:
        from .._registry import TARGETS, runner_for

        spec = TARGETS[item.format]
        sig = runner_for(spec, item.path).signature if not spec.cannot_run() else None
        specs = sig.inputs if sig else []
    else:
        specs = [TensorSpec(i["name"], tuple(i["shape"]), i["dtype"]) for i in item.signature["inputs"]]
    dims = {**item.dims, "batch": batch}
    for s in specs:
        for i, d in enumerate(s.shape):
            if isinstance(d, str):
                dims.setdefault(d, 128 if "seq" in d else (batch if i == 0 else 8))
    static_batch = [s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], int)]
    if batch != 1 and static_batch and static_batch[0] != batch:
        raise EdgekitError(f"{item.label} has a static batch of {static_batch[0]}; --batch {batch} cannot run on it",
                           "use --batch 1, or convert with a dynamic batch")
    # generated under the source's names (input_ids, attention_mask...: realistic values), keyed by the artifact's
    named = item.source_names if item.source_names and len(item.source_names) == len(specs) else [s.name for s in specs]
    generated = generate_inputs(Signature([TensorSpec(n, s.shape, s.dtype) for n, s in zip(named, specs, strict=True)], []),
                                dims, {"vocab_size": item.vocab_size or 100})
    arrays = {s.name: generated[n] for n, s in zip(named, specs, strict=True)}
    out = folder / f"inputs-{abs(hash(item.label))}.npz"
    np.savez(out, **arrays)
    return out


def device_loader(fmt: str) -> Path | None:
    """A target's device-side loader (backends/<target>/device.py: numpy and the runtime only),
    sent with the runner for formats the runner does not know itself."""
    from .._registry import TARGETS

    spec = TARGETS.get(fmt)  # a format no target has (a hostile manifest) gets no loader
    path = Path(__file__).parents[1] / "backends" / spec.package / "device.py" if spec else None
    return path if path is not None and path.is_file() else None


def files_of(item: Item) -> list[Path]:
    from .._registry import TARGETS

    spec = TARGETS.get(item.format)
    return spec.files(item.path) if spec else [item.path]


class LocalDevice:
    name = "local"

    def __init__(self, cores: str | None = None, memory_mb: int | None = None, python: str | None = None):
        self.cores, self.memory_mb, self.python = cores, memory_mb, python or sys.executable
        if memory_mb is not None and (memory_mb < 1 or not Path("/proc/self/status").exists()):
            raise EdgekitError(f"--memory-mb {memory_mb}: the cap needs a positive size and Linux's /proc to watch "
                               "the runner's resident memory", "drop --memory-mb, or run on Linux")
        self.spec = "local" + (f" (cores {cores})" if cores else "") + (f" (memory {memory_mb} MB)" if memory_mb else "")

    def run(self, item: Item, inputs: Path, args: list[str], timeout: float) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
            out = Path(tmp) / "result.json"
            loader = device_loader(item.format)
            cmd = [self.python, str(RUNNER), "--artifact", str(item.path), "--format", item.format,
                   "--inputs", str(inputs), "--out", str(out), *(["--loader", str(loader)] if loader else []), *args]
            if self.cores:
                cmd = ["taskset", "-c", self.cores, *cmd]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            watch = _MemoryCap(proc.pid, self.memory_mb) if self.memory_mb else None
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                return {"error": f"{item.label} on {self.spec}: no result within {timeout:.0f} s; the runner was stopped"}
            finally:
                if watch:
                    watch.stop()
            if watch and watch.tripped:
                return {"error": f"{item.label} needs more memory than the cap on {self.spec}: its resident set reached "
                                 f"{watch.peak_mb:.0f} MB > {self.memory_mb} MB, and the runner was stopped as a device's "
                                 "out-of-memory killer would stop it"}
            return _result(subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), out, self.spec, item)


class _MemoryCap:
    """Stop a process whose resident set grows past ``limit_mb``, as a small device's OOM killer would.

    An address-space limit (RLIMIT_AS) is no model of a device: runtimes reserve far more
    virtual memory than they touch (OpenVINO's thread pools hang under one), and a
    device runs out of physical pages, not addresses. So the resident set is polled
    (every 5 ms, from /proc) and the process is killed the moment it crosses the cap.
    """

    def __init__(self, pid: int, limit_mb: int, interval: float = 0.005):
        import threading

        self.pid, self.limit_kb, self.interval = pid, limit_mb * 1024, interval
        self.tripped, self.peak_kb = False, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024

    def _rss_kb(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        return 0

    def _watch(self) -> None:
        while not self._done.is_set():
            rss = self._rss_kb()
            if rss is None:
                return
            self.peak_kb = max(self.peak_kb, rss)
            if rss > self.limit_kb:
                self.tripped = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                return
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=1)


class SSHDevice:
    """``ssh://user@host[:port]``: key authentication, the device's own Python."""

    def __init__(self, spec: str, python: str = "python3", key: str | None = None, known_hosts: str | None = None):
        url = urlparse(spec)
        if url.scheme != "ssh" or not url.hostname:
            raise EdgekitError(f"bad device {spec!r}", "write ssh://user@host[:port]")
        self.spec, self.python = spec, python
        self.target = f"{url.username}@{url.hostname}" if url.username else url.hostname
        opts = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=15"]
        key = key or os.environ.get("EDGEKIT_SSH_KEY")
        if key:
            opts += ["-i", key, "-o", "IdentitiesOnly=yes"]
        known_hosts = known_hosts or os.environ.get("EDGEKIT_SSH_KNOWN_HOSTS")
        if known_hosts:
            opts += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        else:
            opts += ["-o", "StrictHostKeyChecking=accept-new"]
        self.ssh = ["ssh", *opts, *(["-p", str(url.port)] if url.port else [])]
        self.scp = ["scp", "-q", *opts, *(["-P", str(url.port)] if url.port else [])]
        if shutil.which("ssh") is None:
            raise EdgekitError("the ssh client is not installed on this host", "install OpenSSH's client (apt install openssh-client)")

    def _ssh(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        # "--": a target that starts with "-" is a host name, never an option (-oProxyCommand=...)
        return subprocess.run([*self.ssh, "--", self.target, command], capture_output=True, text=True,
                              timeout=timeout)

    def _fail(self, what: str, proc: subprocess.CompletedProcess) -> EdgekitError:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        cause = err[-1] if err else f"exit status {proc.returncode}"
        return EdgekitError(f"device {self.spec}: {what}: {cause}",
                            "check the device is reachable (" + shlex.join([*self.ssh, "--", self.target, "true"])
                            + ") with key authentication")

    def open(self) -> str:
        proc = self._ssh("mktemp -d /tmp/edgekit-bench.XXXXXX")
        if proc.returncode != 0:
            raise self._fail("cannot connect", proc)
        return proc.stdout.strip()

    def check_runtime(self, workdir: str, fmt: str) -> None:
        from .._registry import TARGETS

        module = TARGETS[fmt].runtime_module
        proc = self._ssh(f"{shlex.quote(self.python)} -c 'import numpy, {module}'")
        if proc.returncode != 0:
            raise EdgekitError(f"device {self.spec} cannot run {fmt} artifacts: {module} (or numpy) is missing "
                               f"from {self.python} there", f"install it on the device: {self.python} -m pip install {module.replace('_', '-')} numpy")

    def close(self, workdir: str) -> None:
        if workdir.startswith("/tmp/edgekit-bench."):
            self._ssh(f"rm -rf {shlex.quote(workdir)}")

    def push(self, files: list[Path], workdir: str) -> None:
        proc = subprocess.run([*self.scp, "-r", "--", *map(str, files), f"{self.target}:{workdir}/"],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise self._fail("copying to the device failed", proc)

    def run(self, item: Item, inputs: Path, args: list[str], timeout: float, workdir: str) -> dict:
        sub = f"{workdir}/{abs(hash(item.label))}"
        self._ssh(f"mkdir -p {shlex.quote(sub)}")
        loader = device_loader(item.format)
        extra = [Path(args[i + 1]) for i, a in enumerate(args[:-1]) if a == "--lengths-inputs"]
        args = [Path(a).name if a in map(str, extra) else a for a in args]  # pushed beside runner.py
        self.push([RUNNER, CPU, inputs, *files_of(item), *([loader] if loader else []), *extra], sub)
        argv = [self.python, "runner.py", "--artifact", item.path.name, "--format", item.format,
                "--inputs", inputs.name, "--out", "result.json", *(["--loader", loader.name] if loader else []), *args]
        remote = f"cd {shlex.quote(sub)} && " + shlex.join(argv)  # every argument quoted
        proc = self._ssh(remote, timeout=timeout)
        with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
            out = Path(tmp) / "result.json"
            if proc.returncode == 0:
                pull = subprocess.run([*self.scp, "--", f"{self.target}:{sub}/result.json", str(out)],
                                      capture_output=True, text=True, timeout=120)
                if pull.returncode != 0:
                    raise self._fail("copying the result back failed", pull)
            return _result(proc, out, self.spec, item)


def _result(proc: subprocess.CompletedProcess, out: Path, device: str, item: Item) -> dict:
    if proc.returncode == 0 and out.is_file():
        return json.loads(out.read_text())
    if proc.returncode < 0 or proc.returncode in (128 + signal.SIGKILL, 137):
        sig = -proc.returncode if proc.returncode < 0 else proc.returncode - 128
        return {"error": f"the runner was killed on {device} (signal {sig}) while benchmarking {item.label}; "
                         "out of memory? (--memory-mb caps it)"}
    lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
    return {"error": f"{item.label} failed on {device}: {lines[-1] if lines else f'exit status {proc.returncode}'}"}
