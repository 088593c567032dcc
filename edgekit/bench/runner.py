"""The device side of `edgekit bench`: one self-contained file needing only numpy and the
artifact's runtime (not edgekit). The host copies it to the device with the artifact and an
inputs .npz, runs it, and reads back one JSON result.

    python3 runner.py --artifact model.onnx --format onnx --inputs inputs.npz \
        --threads 1 --runs 100 --warmup 10 --out result.json [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time


def _cpu() -> dict | None:
    """The device's CPU model and int8/bf16 ISA features (edgekit/_cpu.py, pushed beside this file)."""
    try:
        from edgekit import _cpu as cpu  # a local run, from edgekit's own environment
    except ImportError:
        try:
            import _cpu as cpu  # copied beside runner.py on a device
        except ImportError:
            return None
    try:
        return cpu.host().to_dict()
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}


def _rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    cur = peak = None
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ru_mb = ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024
    return (cur if cur is not None else ru_mb), (peak if peak is not None else ru_mb)


def _ort(path, threads, profile_dir=None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if profile_dir:
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(profile_dir, "ort")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return (lambda feeds: sess.run(None, {n: feeds[n] for n in names})), sess, {"name": "onnxruntime",
                                                                             "version": ort.__version__}


def _ort_ops(sess):
    trace = sess.end_profiling()
    with open(trace) as fh:
        events = json.load(fh)
    os.unlink(trace)
    agg = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            ms, n = agg.get(op, (0.0, 0))
            agg[op] = (ms + e["dur"] / 1000.0, n + 1)
    return agg


def _ov(path, threads, profile=False):
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    if profile:
        config["PERF_COUNT"] = True
    compiled = core.compile_model(path, "CPU", config)
    request = compiled.create_infer_request()
    names = [p.get_any_name() for p in compiled.inputs]
    precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    return (lambda feeds: request.infer({n: feeds[n] for n in names})), request, {
        "name": "openvino", "version": ov.__version__.split("-")[0], "inference_precision": precision}


def _ov_ops(request, runs):
    agg = {}
    for info in request.get_profiling_info():
        if info.status.name != "EXECUTED":
            continue
        ms, n = agg.get(info.node_type, (0.0, 0))
        agg[info.node_type] = (ms + info.real_time.total_seconds() * 1000.0 / runs, n + 1)
    return agg


def _tflite(path, threads):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=threads)
    sigs = interp.get_signature_list()
    runners = {key: interp.get_signature_runner(key) for key in sigs}  # one per shape bucket, or one
    details = {key: r.get_input_details() for key, r in runners.items()}

    def signature_for(values):
        """The signature whose input shapes are the feeds' (a multi-signature file: one per
        bucket), else the first."""
        shapes = [tuple(np.shape(v)) for v in values]
        for key in sigs:
            if [tuple(details[key][n]["shape"]) for n in sigs[key]["inputs"]] == shapes:
                return key
        return next(iter(sigs))

    def run(feeds):
        values = list(feeds.values())
        key = signature_for(values) if len(sigs) > 1 else next(iter(sigs))
        args, d = {}, details[key]
        for i, n in enumerate(sigs[key]["inputs"]):
            arr = feeds[n] if n in feeds else values[i]
            args[n] = arr.astype(d[n]["dtype"]) if arr.dtype != np.dtype(d[n]["dtype"]) else arr
        return runners[key](**args)

    from importlib.metadata import version

    return run, None, {"name": "ai-edge-litert", "version": version("ai-edge-litert")}


def _tflite_ops(path, threads, feeds, runs):
    """LiteRT's own op profile as {op: (ms per inference, count)}; see litert_profile_summary."""
    return _summary_by_node_type(litert_profile_summary(path, threads, feeds, runs))


def litert_profile_summary(path, threads=None, feeds=None, runs=10, warmup=2):
    """The profile summary text of libLiteRt.so's own profiler (the table benchmark_model prints).

    The Python Interpreter has no profiler, the compiled-model C API has: runtime option
    "enable_profiling = true", then LiteRtGetProfileSummary. Written against ai-edge-litert
    2.3; raises RuntimeError naming the failing call. Inputs are ``feeds``' arrays copied by
    signature position (zero-filled where absent or of another size); None: all zeros.
    """
    api = _LiteRtProfiler()
    api.compile(path, threads)
    return api.profile(list((feeds or {}).values()), runs, warmup)


class _LiteRtProfiler:
    """The few calls of LiteRT's C API (libLiteRt.so, through ctypes) a profiled run needs."""

    def __init__(self):
        import ctypes as C

        import ai_edge_litert

        self.C = C
        self.lib = C.CDLL(os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so"))
        self.libc = C.CDLL(None)
        self.libc.strdup.restype, self.libc.strdup.argtypes = C.c_void_p, [C.c_char_p]
        self.libc.free.argtypes = [C.c_void_p]
        self.env, self.model, self.cm, self.sig = C.c_void_p(), C.c_void_p(), C.c_void_p(), C.c_void_p()
        self.tensor_type = _ranked_tensor_type(C)

    @staticmethod
    def ok(status, what):
        if status != 0:
            raise RuntimeError(f"{what}: LiteRtStatus {status}")

    def compile(self, path, threads):
        C, lib, ok = self.C, self.lib, self.ok
        opts, opaque = C.c_void_p(), C.c_void_p()
        ok(lib.LiteRtCreateEnvironment(0, None, C.byref(self.env)), "environment")
        with open(path, "rb") as f:
            data = f.read()
        self.buf = C.create_string_buffer(data, len(data))  # must outlive the model
        ok(lib.LiteRtCreateModelFromBuffer(self.env, self.buf, C.c_size_t(len(data)), C.byref(self.model)), "model")
        ok(lib.LiteRtCreateOptions(C.byref(opts)), "options")
        ok(lib.LiteRtSetOptionsHardwareAccelerators(opts, 1), "CPU accelerator")
        text = "enable_profiling = true\n" + (f"num_threads = {threads}\n" if threads else "")
        payload = self.libc.strdup(text.encode())
        ok(lib.LiteRtCreateOpaqueOptions(b"runtime_options_string", C.c_void_p(payload),
                                         C.cast(self.libc.free, C.c_void_p), C.byref(opaque)), "runtime options")
        ok(lib.LiteRtAddOpaqueOptions(opts, opaque), "add options")
        ok(lib.LiteRtCreateCompiledModel(self.env, self.model, opts, C.byref(self.cm)), "compiled model")
        ok(lib.LiteRtGetModelSignature(self.model, C.c_size_t(0), C.byref(self.sig)), "signature")

    def buffers(self, n, values=None):
        """``n`` managed tensor buffers for the signature's inputs (``values``: a list, zero-filled and
        copied in) or outputs (``values`` None)."""
        C, lib, ok = self.C, self.lib, self.ok
        inputs = values is not None
        arr = (C.c_void_p * n)()
        for i in range(n):
            tensor, ttype, req, b = C.c_void_p(), self.tensor_type(), C.c_void_p(), C.c_void_p()
            get = lib.LiteRtGetSignatureInputTensorByIndex if inputs else lib.LiteRtGetSignatureOutputTensorByIndex
            ok(get(self.sig, C.c_size_t(i), C.byref(tensor)), "signature tensor")
            ok(lib.LiteRtGetRankedTensorType(tensor, C.byref(ttype)), "tensor type")
            need = (lib.LiteRtGetCompiledModelInputBufferRequirements if inputs
                    else lib.LiteRtGetCompiledModelOutputBufferRequirements)
            ok(need(self.cm, C.c_size_t(0), C.c_size_t(i), C.byref(req)), "buffer requirements")
            ok(lib.LiteRtCreateManagedTensorBufferFromRequirements(self.env, C.byref(ttype), req, C.byref(b)), "buffer")
            if inputs:
                self._fill(b, values[i] if i < len(values) else None)
            arr[i] = b
        return arr

    def _fill(self, b, value):
        """Zero the buffer, then copy ``value`` in, as its own dtype, int32 or float32: the first that fits."""
        import numpy as np

        C, lib, ok = self.C, self.lib, self.ok
        addr, nbytes = C.c_void_p(), C.c_size_t()
        ok(lib.LiteRtGetTensorBufferSize(b, C.byref(nbytes)), "buffer size")
        ok(lib.LiteRtLockTensorBuffer(b, C.byref(addr), 1), "lock")
        C.memset(addr, 0, nbytes.value)
        src = np.ascontiguousarray(value) if value is not None else None
        for dtype in ((src.dtype, np.int32, np.float32) if src is not None else ()):
            raw = src.astype(dtype).tobytes()
            if len(raw) == nbytes.value:
                C.memmove(addr, raw, len(raw))
                break
        ok(lib.LiteRtUnlockTensorBuffer(b), "unlock")

    def profile(self, values, runs, warmup):
        """Run ``warmup`` + ``runs`` times, profiling the last ``runs``; the summary text."""
        C, lib, ok = self.C, self.lib, self.ok
        n_in, n_out, prof = C.c_size_t(), C.c_size_t(), C.c_void_p()
        ok(lib.LiteRtGetNumSignatureInputs(self.sig, C.byref(n_in)), "inputs")
        ok(lib.LiteRtGetNumSignatureOutputs(self.sig, C.byref(n_out)), "outputs")
        ins, outs = self.buffers(n_in.value, values), self.buffers(n_out.value)
        ok(lib.LiteRtCompiledModelGetProfiler(self.cm, C.byref(prof)), "profiler")
        if not prof:
            raise RuntimeError("the compiled model has no profiler")
        for i in range(warmup + runs):
            if i == warmup:
                ok(lib.LiteRtResetProfiler(prof), "reset profiler")
                ok(lib.LiteRtStartProfiler(prof), "start profiler")
            ok(lib.LiteRtRunCompiledModel(self.cm, C.c_size_t(0), n_in, ins, n_out, outs), "run")
        ok(lib.LiteRtStopProfiler(prof), "stop profiler")
        summary = C.c_void_p()
        ok(lib.LiteRtGetProfileSummary(prof, self.cm, C.byref(summary)), "profile summary")
        text = C.string_at(summary).decode()
        self.libc.free(summary)
        return text


def _ranked_tensor_type(C):
    """litert/c/litert_layout.h's LiteRtRankedTensorType as a ctypes structure."""

    class Layout(C.Structure):  # rank:7 + has_strides:1 share one unsigned int
        _fields_ = [("packed", C.c_uint32), ("dimensions", C.c_int32 * 8), ("strides", C.c_uint32 * 8)]

    class RankedTensorType(C.Structure):
        _fields_ = [("element_type", C.c_int32), ("layout", Layout)]

    return RankedTensorType


def _summary_by_node_type(text):
    """{op: (avg ms, count)} from the "Summary by node type" table of a LiteRT profile summary."""
    lines = text.splitlines()
    heads = [i for i, ln in enumerate(lines) if "[Node type]" in ln]
    if not heads:
        return None
    agg = {}
    for ln in lines[heads[-1] + 1:]:  # the last table: the regular runs, not initialization
        parts = ln.strip().rsplit(None, 6)
        if len(parts) != 7:
            break
        name, count, ms = parts[0], parts[1], parts[2]
        try:
            # [avg ms] is per call of one node: per inference, a node type takes avg x count
            agg[name.removeprefix("Delegate/")] = (float(ms) * int(count), int(count))
        except ValueError:
            break
    return agg or None


def _coreml(path, threads):
    import coremltools as ct

    model = ct.models.MLModel(path)
    return (lambda feeds: model.predict(feeds)), None, {"name": "coremltools", "version": ct.__version__}


def _loader(fmt: str, path: str | None):
    """The runtimes this file knows, else the target's own device.py (sent beside this file)."""
    builtin = {"onnx": _ort, "openvino": _ov, "tflite": _tflite, "coreml": _coreml}
    if fmt in builtin:
        return builtin[fmt]
    if not path:
        raise SystemExit(f"runner: no loader for format {fmt!r} (give --loader DEVICE_PY)")
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"edgekit_device_{fmt}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load


def _args(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--format", required=True)
    ap.add_argument("--loader", help="a target's device.py (load(artifact, threads) -> (run, handle, runtime))")
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-runs", type=int, default=10)
    ap.add_argument("--lengths-inputs", help="an .npz of one feed per real length (s{i}.{input}): timed once each")
    ap.add_argument("--out", required=True)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = _args(argv)
    import numpy as np

    result = {"threads": args.threads, "device": {"system": platform.system(), "machine": platform.machine(),
                                                  "python": platform.python_version(), "cpu_count": os.cpu_count(),
                                                  "cpu": _cpu()}}
    if args.format == "coreml" and platform.system() != "Darwin":  # a result, not a failure: nothing to fix
        result["error"] = f"not run: the Core ML runtime needs macOS (this device runs {platform.system()})"
    else:
        feeds = dict(np.load(args.inputs, allow_pickle=False))
        result.update(_timed(args, feeds))
        if args.lengths_inputs:
            result["real_lengths"] = _timed_lengths(args)
        _op_profile(args, feeds, result)
    with open(args.out, "w") as fh:
        json.dump(result, fh)
    return 0


def _timed(args, feeds) -> dict:
    """Load, first inference, then ``args.runs`` timed runs after ``args.warmup``; memory around them."""
    import numpy as np

    before, _ = _rss_mb()
    t0 = time.perf_counter()
    run, _, runtime = _loader(args.format, args.loader)(args.artifact, args.threads)
    load_ms = (time.perf_counter() - t0) * 1000
    after_load, _ = _rss_mb()
    t0 = time.perf_counter()
    run(feeds)
    first_ms = (time.perf_counter() - t0) * 1000
    for _ in range(args.warmup):
        run(feeds)
    samples = np.empty(args.runs)
    for i in range(args.runs):
        t0 = time.perf_counter()
        run(feeds)
        samples[i] = (time.perf_counter() - t0) * 1000
    idle, peak = _rss_mb()
    p50, p90, p99 = (float(x) for x in np.percentile(samples, [50, 90, 99]))
    return {
        "runtime": runtime, "load_ms": round(load_ms, 3), "first_inference_ms": round(first_ms, 3),
        "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "min": float(samples.min()), "max": float(samples.max()),
                       "mean": float(samples.mean()), "std": float(samples.std())},
        "throughput_ips": 1000.0 / float(samples.mean()) * next(iter(feeds.values())).shape[0],
        "samples_ms": [round(float(s), 4) for s in samples],
        "rss_mb": {"before_load": round(before, 1), "after_load": round(after_load, 1), "peak": round(peak, 1),
                   "growth_idle": round(max(0.0, idle - after_load), 1)},
        "ops": None,
    }


def _timed_lengths(args) -> dict:
    """Each feed of ``--lengths-inputs`` (one per real length, at the shape it runs at) timed once,
    after one warm-up run at each distinct shape: p50/p90/p99/mean over the distribution."""
    import numpy as np

    samples: dict[int, dict] = {}
    with np.load(args.lengths_inputs, allow_pickle=False) as data:
        for key in data.files:
            index, _, name = key.partition(".")
            samples.setdefault(int(index[1:]), {})[name] = data[key]
    feeds = [samples[i] for i in sorted(samples)]
    run, _, _ = _loader(args.format, args.loader)(args.artifact, args.threads)
    warmed = set()
    for f in feeds:
        shape = tuple(tuple(v.shape) for v in f.values())
        if shape not in warmed:
            run(f)
            warmed.add(shape)
    times = np.empty(len(feeds))
    for i, f in enumerate(feeds):
        t0 = time.perf_counter()
        run(f)
        times[i] = (time.perf_counter() - t0) * 1000
    p50, p90, p99 = (float(x) for x in np.percentile(times, [50, 90, 99]))
    return {"latency_ms": {"p50": p50, "p90": p90, "p99": p99, "mean": float(times.mean()), "min": float(times.min()),
                           "max": float(times.max())}, "shapes_warmed": len(warmed)}


def _op_profile(args, feeds, result) -> None:
    """The per-op profile (``--profile``), into ``result["ops"]``; a separate instance: profiling costs time."""
    agg = None
    if args.profile and args.format == "tflite":
        try:
            agg = _tflite_ops(args.artifact, args.threads, feeds, args.profile_runs)
        except Exception as exc:  # the op profile is optional; the timings stand
            result["ops_error"] = f"LiteRT op profile unavailable: {exc}"
    if args.profile and args.format in ("onnx", "openvino"):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            if args.format == "onnx":
                prun, sess, _ = _ort(args.artifact, args.threads, profile_dir=tmp)
                for _ in range(args.profile_runs):
                    prun(feeds)
                agg = {k: (ms / args.profile_runs, n // args.profile_runs) for k, (ms, n) in _ort_ops(sess).items()}
            else:
                prun, request, _ = _ov(args.artifact, args.threads, profile=True)
                prun(feeds)
                agg = _ov_ops(request, 1)
    if agg:
        total = sum(ms for ms, _ in agg.values()) or 1.0
        result["ops"] = sorted(({"name": k, "ms": round(ms, 4), "share": round(ms / total, 4), "count": n}
                                for k, (ms, n) in agg.items()), key=lambda o: -o["ms"])


if __name__ == "__main__":
    sys.exit(main())
