# Run: .venv/bin/python benchmarks/bench_agreement.py [--threads 1 2] [--runs 100] [--warmup 10]
"""Do a bare timing loop and each runtime's own benchmark tool agree on p50 latency?

For the same artifacts, inputs and thread counts, measure the p50 (median) latency, batch 1,
``--runs`` timed runs after ``--warmup`` warm-ups, from each *source*:

  bare   a plain Python loop of runtime calls, timed with perf_counter around each call:
         onnxruntime InferenceSession.run; an OpenVINO compiled model's infer request at the
         default precision (LATENCY hint, 1 stream, T threads); ai_edge_litert's Interpreter
         signature runner (num_threads=T).
  tool   the runtime's own tool: OpenVINO benchmark_app (-hint none -nstreams 1 -nthreads T
         -api sync -b 1 -niter N, our inputs as .npy; its "Median" line); LiteRT's Python
         benchmark tool (ai_edge_litert.tools.benchmark_litert_model, what `litert-benchmark`
         runs; its median), with one change: it fills inputs with our arrays, because its own
         fill draws integers from -128..127 and a negative token id fails EMBEDDING_LOOKUP.
         ONNX Runtime's pip package has no perf tool: the bare loop is its reference (no figure).

Every measurement runs in its own process, one after another. Artifacts default to the MiniLM
fp32 set under build/benchmarks/minilm-q/fp32 (inputs int64 [1,128]: input_ids drawn from
1000..30000 with a fixed seed, token_type_ids zeros, attention_mask ones; TFLite takes the same
values as int32 args_0..2). Output: a markdown table on stdout, and --out JSON.

  edgekit  `edgekit bench PATH --threads T --runs N --warmup W --no-profile`: the harness under test.

Adding a source: write ``def my_source(fmt, path, threads, runs, warmup) -> float | None``
(p50 in ms, None where it does not apply) and append ``("label", my_source)`` to SOURCES; the
table gets its column and its ratio to the first source (the bare loop).

Also, two helpers used to record tests/data/benchmark_model/ (see the README there):
  litert-tool [--feeds minilm] -- TOOL ARGS   LiteRT's Python benchmark tool, our inputs
  litert-profile MODEL [--runs N] [--warmup W] LiteRT's own per-op profile summary
      (libLiteRt.so's LiteRtGetProfileSummary, the summarizer benchmark_model prints with)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
FP32 = REPO / "build" / "benchmarks" / "minilm-q" / "fp32"
ARTIFACTS = {"onnx": FP32 / "onnx" / "model.onnx", "openvino": FP32 / "openvino" / "model.xml",
             "tflite": FP32 / "tflite" / "model.tflite"}
SEQ, SEED = 128, 0


def minilm_feeds(fmt: str) -> dict:
    import numpy as np

    rng = np.random.default_rng(SEED)
    ids = rng.integers(1000, 30000, size=(1, SEQ), dtype=np.int64)
    feeds = {"input_ids": ids, "token_type_ids": np.zeros((1, SEQ), np.int64),
             "attention_mask": np.ones((1, SEQ), np.int64)}
    if fmt == "tflite":
        return {f"args_{i}": v.astype(np.int32) for i, v in enumerate(feeds.values())}
    return feeds


def _p50(samples_ms: list[float]) -> float:
    import numpy as np

    return float(np.percentile(samples_ms, 50))


# --------------------------------------------------------------------------- sources


def _child(args: list[str], timeout: float = 900) -> dict:
    """Run this file's `_bare` mode in a fresh process and return its JSON line."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bare_loop(fmt: str, path: Path, threads: int, runs: int, warmup: int) -> float | None:
    return _child(["_bare", fmt, str(path), str(threads), str(runs), str(warmup)])["p50"]


def runtime_tool(fmt: str, path: Path, threads: int, runs: int, warmup: int) -> float | None:
    if fmt == "openvino":
        return openvino_benchmark_app(path, threads, runs)
    if fmt == "tflite":
        return litert_benchmark_tool(path, threads, runs, warmup)
    return None  # onnxruntime: no perf tool in the pip package


def openvino_benchmark_app(path: Path, threads: int, runs: int) -> float:
    """benchmark_app's median latency. It does one warm-up inference of its own ("First inference")."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="agree-ov-") as tmp:
        files = []
        for name, arr in minilm_feeds("openvino").items():
            np.save(Path(tmp) / f"{name}.npy", arr)
            files.append(f"{name}:{Path(tmp) / f'{name}.npy'}")
        cmd = [str(VENV_BIN / "benchmark_app"), "-m", str(path), "-d", "CPU", "-hint", "none", "-nstreams", "1",
               "-nthreads", str(threads), "-niter", str(runs), "-api", "sync", "-b", "1", "-i", *files]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark_app failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        for line in proc.stdout.splitlines():
            if "Median:" in line:
                return float(line.split("Median:")[1].split()[0])
    raise RuntimeError("benchmark_app printed no 'Median:' line")


def litert_benchmark_tool(path: Path, threads: int, runs: int, warmup: int) -> float:
    """The median of LiteRT's Python benchmark tool (rounded by the tool to 0.01 ms)."""
    with tempfile.TemporaryDirectory(prefix="agree-litert-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "litert-tool", "--feeds", "minilm", "--", "--model", str(path),
               "--num_threads", str(threads), "--num_runs", str(runs), "--warmup_runs", str(warmup),
               "--result_json", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"LiteRT benchmark tool failed: {proc.stderr[-2000:]}")
        return float(json.loads(out.read_text())["latency"]["median_ms"])


def edgekit_bench(fmt: str, path: Path, threads: int, runs: int, warmup: int) -> float | None:
    """`edgekit bench` itself (its device-side runner, no per-op profile: profiling adds overhead)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        proc = subprocess.run([str(VENV_BIN / "edgekit"), "bench", str(path), "--threads", str(threads), "--runs",
                               str(runs), "--warmup", str(warmup), "--no-profile", "--json", str(out)],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"edgekit bench failed: {proc.stderr.strip().splitlines()[-1:]}")
        return json.loads(out.read_text())["results"][0]["latency_ms"]["p50"]


# The first source is the reference the others are divided by.
SOURCES: list[tuple[str, Callable[[str, Path, int, int, int], float | None]]] = [
    ("bare-loop p50", bare_loop),
    ("tool p50", runtime_tool),
    ("edgekit p50", edgekit_bench),
]


# --------------------------------------------------------------------------- child modes


def _bare_main(fmt: str, path: str, threads: int, runs: int, warmup: int) -> None:
    feeds = minilm_feeds(fmt)
    if fmt == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

        def call():
            sess.run(None, feeds)
    elif fmt == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                         "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def call():
            request.infer(feeds)
    elif fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path, num_threads=threads)
        runner = interp.get_signature_runner()

        def call():
            runner(**feeds)
    else:
        raise SystemExit(f"unknown format {fmt}")
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000.0)
    print(json.dumps({"p50": _p50(samples), "min": min(samples), "max": max(samples)}))


def _litert_tool_main(argv: list[str]) -> None:
    """LiteRT's Python benchmark tool; with --feeds minilm its inputs are our arrays, matched by name."""
    ap = argparse.ArgumentParser(prog="bench_agreement.py litert-tool")
    ap.add_argument("--feeds", choices=["minilm", "tool"], default="tool")
    args, rest = ap.parse_known_args(argv)
    rest = [a for a in rest if a != "--"]
    from ai_edge_litert.tools import benchmark_litert_model as tool

    if args.feeds == "minilm":
        feeds = minilm_feeds("tflite")
        original = tool.fill_random_input

        def fill(buffer, details):
            name = details.get("name", "")
            key = next((k for k in feeds if name == k or name.endswith("_" + k)), None)
            if key is None:
                original(buffer, details)
            else:
                buffer.write(feeds[key].astype(tool.get_numpy_dtype(details.get("dtype", "int32"))))

        tool.fill_random_input = fill
    sys.argv = ["litert-benchmark", *rest]
    tool.main()


def _litert_profile_main(argv: list[str]) -> None:
    """Print libLiteRt.so's profile summary after ``--runs`` profiled runs (inputs zero-filled),
    with the device-side runner's own code (edgekit/bench/runner.py: litert_profile_summary).
    CPU accelerator (XNNPACK), default thread count."""
    sys.path.insert(0, str(REPO / "edgekit" / "bench"))
    from runner import litert_profile_summary  # the runner is one self-contained file

    ap = argparse.ArgumentParser(prog="bench_agreement.py litert-profile")
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args(argv)
    try:
        sys.stdout.write(litert_profile_summary(args.model, runs=args.runs, warmup=args.warmup))
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from exc


# --------------------------------------------------------------------------- driver


def measure(artifacts: dict[str, Path], threads: list[int], runs: int, warmup: int) -> list[dict]:
    rows = []
    for fmt, path in artifacts.items():
        for t in threads:
            row = {"artifact": f"{fmt}/{path.name}", "format": fmt, "threads": t}
            for label, source in SOURCES:
                print(f"  {row['artifact']} T={t}: {label} ...", file=sys.stderr, flush=True)
                try:
                    row[label] = source(fmt, path, t, runs, warmup)
                except Exception as exc:  # one failing source must not lose the others
                    row[label], row[f"{label} error"] = None, str(exc)[-500:]
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    ref, others = SOURCES[0][0], [label for label, _ in SOURCES[1:]]
    head = ["artifact", "threads", *(label for label, _ in SOURCES),
            *(f"{o.replace(' p50', '')} / {ref.replace(' p50', '')}" for o in others)]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v, suffix="": "—" if v is None else f"{v:.2f}{suffix}"  # noqa: E731
    for r in rows:
        cells = [r["artifact"], str(r["threads"]), *(fmt(r.get(label), " ms") for label, _ in SOURCES)]
        for o in others:
            cells.append(fmt(r[o] / r[ref]) if r.get(o) is not None and r.get(ref) else "—")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_bare"]:
        fmt, path, t, n, w = argv[1:6]
        _bare_main(fmt, path, int(t), int(n), int(w))
        return 0
    if argv[:1] == ["litert-tool"]:
        _litert_tool_main(argv[1:])
        return 0
    if argv[:1] == ["litert-profile"]:
        _litert_profile_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--formats", nargs="+", default=list(ARTIFACTS), choices=list(ARTIFACTS))
    ap.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    artifacts = {f: ARTIFACTS[f] for f in args.formats}
    missing = [str(p) for p in artifacts.values() if not p.exists()]
    if missing:
        print(f"missing artifacts: {', '.join(missing)} (make them with benchmarks/quantize_minilm.py)",
              file=sys.stderr)
        return 2
    rows = measure(artifacts, args.threads, args.runs, args.warmup)
    print(f"\np50 latency, batch 1, {args.runs} runs after {args.warmup} warm-ups; "
          f"host: {os.cpu_count()} CPUs\n")
    print(table(rows))
    for r in rows:
        for k, v in r.items():
            if k.endswith(" error"):
                print(f"\n{r['artifact']} T={r['threads']} {k}: {v}", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps({"runs": args.runs, "warmup": args.warmup, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
