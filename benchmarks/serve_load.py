"""Load test of `edgekit serve`: throughput and latency with batching on and off.

    .venv/bin/python benchmarks/serve_load.py --requests 5000 --concurrency 64
    .venv/bin/python benchmarks/serve_load.py --backend ray --replicas 2 --requests 5000 --concurrency 64
    .venv/bin/python benchmarks/serve_load.py --minilm --buckets sequence=16,32,64,128 --concurrency 1,8,32

Starts the real server (`edgekit serve`, a subprocess on loopback) once per configuration,
sends every request from an asyncio client (aiohttp, keep-alive, ``--concurrency`` at
once), and checks every answer against ONNX Runtime in this process on the same input.
Prints a markdown table (for docs/benchmarks.md) and writes JSON to ``--out``.

``--buckets SPEC`` compares serving with shape buckets (``edgekit serve --shape-buckets SPEC``:
each request padded to the smallest bucket its length fits, batched with its bucket) against a
fixed size, every request padded to the largest bucket (``--shape-buckets sequence=128``, the
compute of a client padding to 128), and against each request at its exact length (batched
only with requests of the same length), at each ``--concurrency`` (a comma list sweeps it: the
throughput at the same p99 is read off the sweep). ``--minilm``: all-MiniLM-L6-v2 in ONNX
(`edgekit convert --recipe models/minilm-l6.toml --to onnx`, made under build/serve/minilm when
missing), fed the real sentences of models/data/sentences.txt at their own token lengths.

The model (without ``--minilm``): the digits CNN (`edgekit.zoo.digits`) converted to ONNX with a dynamic batch
axis (`edgekit convert edgekit.zoo.digits:cnn --input image:batchx1x8x8:float32 --to onnx`),
made under build/serve/digits when missing; ``--model`` takes any other .onnx.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "build" / "serve" / "digits"
MINILM = ROOT / "build" / "serve" / "minilm"
SENTENCES = ROOT / "models" / "data" / "sentences.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int, *args: str, token: str | None = None, timeout: float = 120.0,
                 log: Path | None = None) -> subprocess.Popen:
    """`edgekit serve MODEL` in a subprocess, returned once /readyz says ready."""
    import urllib.request

    env = {**os.environ, "EDGEKIT_SERVE_TOKEN": token or ""}
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", "serve", str(model), "--port", str(port), *args],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server was not ready in {timeout:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


async def run_load(url: str, model: str, inputs: list[dict[str, np.ndarray]], concurrency: int,
                   token: str | None = None, use_json_every: int = 4, timeout: float = 60.0) -> dict:
    """Send every input once (``concurrency`` in flight); each answer or error is kept by index.

    Every ``use_json_every``-th request goes as JSON, the rest as .npz, so both codecs are
    under load. Returns {"outputs", "status", "latency_s", "wall_s", "errors"}.
    """
    import aiohttp

    n = len(inputs)
    outputs: list = [None] * n
    status = [0] * n
    latency = [0.0] * n
    errors: list[str] = []
    headers = {"authorization": f"Bearer {token}"} if token else {}
    endpoint = f"{url}/v1/models/{model}:predict"
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(session):
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            as_json = use_json_every and i % use_json_every == 0
            if as_json:
                body = json.dumps({"inputs": {k: v.tolist() for k, v in inputs[i].items()}}).encode()
                h = {**headers, "content-type": "application/json"}
            else:
                body = _npz(inputs[i])
                h = {**headers, "content-type": "application/x-npz"}
            t0 = time.perf_counter()
            try:
                async with session.post(endpoint, data=body, headers=h) as resp:
                    status[i] = resp.status
                    raw = await resp.read()
                latency[i] = time.perf_counter() - t0
                if status[i] == 200:
                    if as_json:
                        doc = json.loads(raw)
                        outputs[i] = [np.asarray(v, dtype=doc["dtypes"][k]) for k, v in doc["outputs"].items()]
                    else:
                        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                            outputs[i] = [z[k] for k in z.files]
                else:
                    errors.append(f"{status[i]}: {raw[:200]!r}")
            except Exception as exc:  # noqa: BLE001 - a lost request is counted, not raised
                errors.append(f"request {i}: {type(exc).__name__}: {exc}")

    conn = aiohttp.TCPConnector(limit=concurrency)
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return {"outputs": outputs, "status": status, "latency_s": latency, "wall_s": time.perf_counter() - t0,
            "errors": errors}


def summarize(result: dict, expected: list[list[np.ndarray]], atol: float = 1e-5) -> dict:
    """Throughput, p50/p99, 5xx, lost and mismatched answers against ``expected`` (an answer
    of another shape than expected counts as a mismatch)."""
    st = np.array(result["status"])
    ok = st == 200
    lat = np.array(result["latency_s"])[ok] * 1000
    mismatches = 0
    worst = 0.0
    for got, want in zip(result["outputs"], expected, strict=True):
        if got is None:
            continue
        diff = max(float(np.max(np.abs(g - w))) if g.shape == w.shape else np.inf for g, w in zip(got, want, strict=True))
        worst = max(worst, diff)
        mismatches += diff > atol
    return {
        "requests": len(st), "ok": int(ok.sum()), "errors_5xx": int((st >= 500).sum()),
        "errors_4xx": int(((st >= 400) & (st < 500)).sum()), "lost": int((st == 0).sum()),
        "mismatches": int(mismatches), "max_abs_diff": worst,
        "throughput_rps": round(len(st) / result["wall_s"], 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
        "wall_s": round(result["wall_s"], 2),
    }


def make_inputs(signature, n: int, seed: int = 0, dims: dict[str, int] | None = None) -> list[dict[str, np.ndarray]]:
    """One request per item: batch 1 (other dynamic axes from ``dims``, else 1); floats in
    [0, 1), masks of ones, token types of zeros, other integers (token ids) in [0, 1000)."""
    rng = np.random.default_rng(seed)

    def one(s):
        shape = [d if isinstance(d, int) else 1 if i == 0 else (dims or {}).get(d, 1) for i, d in enumerate(s.shape)]
        if np.dtype(s.dtype).kind == "f":
            return rng.random(shape).astype(s.dtype)
        if "mask" in s.name or "type" in s.name:  # attention masks of ones, token type ids of zeros
            return np.full(shape, "mask" in s.name).astype(s.dtype)
        return rng.integers(0, 1000, shape).astype(s.dtype)

    return [{s.name: one(s) for s in signature.inputs} for _ in range(n)]


def minilm_model() -> Path:
    """all-MiniLM-L6-v2 in ONNX (dynamic batch and sequence), converted once."""
    onnx = MINILM / "onnx" / "model.onnx"
    if not onnx.is_file():
        import edgekit

        edgekit.convert(recipe=str(ROOT / "models" / "minilm-l6.toml"), out=MINILM, targets=["onnx"], force=True)
    return onnx


def sentence_inputs(model: Path, n: int, max_len: int = 128) -> list[dict[str, np.ndarray]]:
    """``n`` requests of batch 1: the real sentences (cycled), tokenized with the folder's tokenizer
    at their own lengths (cut to ``max_len``)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model.parent.parent / "tokenizer" / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    lines = [ln.strip() for ln in SENTENCES.read_text().splitlines() if ln.strip()]
    out = []
    for enc in tok.encode_batch([lines[i % len(lines)] for i in range(n)]):
        ids = np.array([enc.ids], np.int64)
        out.append({"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)})
    return out


def bucket_configs(spec: str | None, batching: str) -> list[tuple[str, list[str]]]:
    """(label, server flags) per configuration: batching on/off, or with ``spec`` (``sequence=16,32,64,128``)
    every request padded to the largest bucket, each at its exact length (batched only with
    requests of the same length), and the buckets."""
    if not spec:
        return [(mode, ["--no-batching"] if mode == "off" else []) for mode in batching.split(",")]
    axis, _, sizes = spec.partition("=")
    top = max(int(x) for x in sizes.split(","))
    return [(f"fixed {axis}={top}", ["--shape-buckets", f"{axis}={top}"]), ("exact lengths", []),
            (f"buckets {sizes}", ["--shape-buckets", spec])]


def digits_model() -> Path:
    onnx = DIGITS / "onnx" / "model.onnx"
    if not onnx.is_file():
        import edgekit

        m = edgekit.load("edgekit.zoo.digits:cnn", inputs=["image:batchx1x8x8:float32"])
        edgekit.convert(m, targets=["onnx"], out=DIGITS, force=True)
    return onnx


def _args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="an .onnx (default: the digits CNN)")
    ap.add_argument("--minilm", action="store_true", help="all-MiniLM-L6-v2 on the real sentences at their lengths")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", default="64", help="requests in flight; a comma list sweeps it")
    ap.add_argument("--backend", default="local", choices=["local", "ray"])
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--batching", default="on,off", help="on, off or on,off")
    ap.add_argument("--buckets", help="e.g. sequence=16,32,64,128: shape buckets against every request padded "
                                      "to the largest")
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, help="runtime threads in the server (default: the runtime's)")
    ap.add_argument("--dim", action="append", default=[], help="size of a dynamic axis, e.g. sequence=128")
    ap.add_argument("--atol", type=float, default=1e-5, help="largest difference from local ONNX Runtime")
    ap.add_argument("--json-every", type=int, default=4, help="every Nth request as JSON (0: all .npz)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks" / "serve_load.json")
    return ap.parse_args()


def _one(args, model: Path, label: str, flags: list[str], concurrency: int, inputs, expected) -> dict:
    """One configuration at one concurrency: a fresh server, a warm-up, the measured run."""
    port, name, token = free_port(), "model", "bench-token"
    extra = ["--name", name, "--backend", args.backend, *flags]
    extra += [] if "--no-batching" in flags else ["--max-batch-size", str(args.max_batch_size)]
    extra += ["--threads", str(args.threads)] if args.threads else []
    if args.backend == "ray":
        extra += ["--replicas", str(args.replicas), "--replica-cpus", str(min(1.0, 2 / args.replicas))]
    log = args.out.with_name(f"serve_load-{args.backend}-{label.replace(' ', '_').replace(',', '-')}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = start_server(model, port, *extra, token=token, log=log, timeout=300)
    try:
        url = f"http://127.0.0.1:{port}"
        asyncio.run(run_load(url, name, inputs[:200], concurrency, token, args.json_every))  # warm-up
        res = asyncio.run(run_load(url, name, inputs, concurrency, token, args.json_every))
    finally:
        stop_server(proc)
    return {"backend": args.backend, "replicas": args.replicas, "batching": label,
            "concurrency": concurrency, **summarize(res, expected, args.atol)}


def main() -> None:
    args = _args()
    from edgekit.backends.onnxruntime.runtime import OrtRunner

    model = args.model or (minilm_model() if args.minilm else digits_model())
    runner = OrtRunner(model, threads=1)
    dims = {k: int(v) for k, v in (d.split("=") for d in args.dim)}
    inputs = (sentence_inputs(model, args.requests) if args.minilm
              else make_inputs(runner.signature, args.requests, dims=dims))
    expected = [runner.run(x) for x in inputs]
    rows = []
    for concurrency in [int(c) for c in str(args.concurrency).split(",")]:
        for label, flags in bucket_configs(args.buckets, args.batching):
            row = _one(args, model, label, flags, concurrency, inputs, expected)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    lengths = [int(next(iter(x.values())).shape[-1]) for x in inputs]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(model), "mean_length": float(np.mean(lengths)), "rows": rows},
                                   indent=1) + "\n")
    print("| backend | batching | requests | concurrency | throughput req/s | p50 ms | p99 ms | 5xx | lost | mismatches |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        backend = r["backend"] + (f" ({r['replicas']} replicas)" if r["backend"] == "ray" else "")
        print(f"| {backend} | {r['batching']} | {r['requests']} | {r['concurrency']} | {r['throughput_rps']} | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['errors_5xx']} | {r['lost']} | {r['mismatches']} |")


if __name__ == "__main__":
    main()
