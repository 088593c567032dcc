"""MiniLM quantization benchmark: size, held-out cosine and latency of every edgekit variant.

Run (on an otherwise idle machine):

    .venv/bin/python benchmarks/quantize_minilm.py [--runs 100] [--out build/benchmarks/minilm-q]

It runs `edgekit compress --recipe models/minilm-l6.toml` (300 calibration and 500
held-out sentences from models/data/sentences.txt, sequence length 128, batch 1) and
prints a markdown table for docs/benchmarks.md: every variant against the fp32 ONNX
model in ONNX Runtime at one thread.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks" / "minilm-q")
    ap.add_argument("--recipe", type=Path, default=ROOT / "models" / "minilm-l6.toml")
    ap.add_argument("--extra", nargs="*", default=[], help="more modes, e.g. tflite:static-int8")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "edgekit", "compress", "--recipe", str(args.recipe), "--out", str(args.out),
           "--runs", str(args.runs), "--threads", "1,2", "--force"]
    if args.extra:
        from edgekit._recipe import load_recipe

        modes = load_recipe(args.recipe).compress.quantize + args.extra
        cmd += ["--quantize", ",".join(modes)]
    print("$", " ".join(cmd), file=sys.stderr)
    proc = subprocess.run(cmd, cwd=ROOT)
    report = args.out / "report.json"
    if not report.is_file():
        return proc.returncode or 1
    doc = json.loads(report.read_text())
    ref = doc["baselines"]["onnx"]["latency_ms"]["1"]["p50"]
    cpu = doc["host"]["cpu"]
    print(f"\nCPU: {cpu['model']} ({', '.join(cpu['features'])}; int8 dot product: {cpu['int8_dot']})")
    print(f"\nfp32 ONNX Runtime, 1 thread: {ref:.2f} ms (p50 of {args.runs})\n")
    print("| target | mode | size MB | x smaller | cosine mean | cosine min | p50 1t ms | p50 2t ms | vs ORT fp32 1t | float layers |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = [dict(b, target=t, mode="fp32", size_ratio=1.0) for t, b in doc["baselines"].items()] + doc["variants"]
    for r in rows:
        lat = r.get("latency_ms") or {}
        ag = r.get("agreement") or {}
        one, two = lat.get("1", {}).get("p50"), lat.get("2", {}).get("p50")
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"| {r['target']} | {r['mode']} | {r['size_bytes'] / 1e6:.1f} | {r.get('size_ratio', 1.0):.2f} | "
              f"{fmt(ag.get('cosine_mean'), '.4f')} | {fmt(ag.get('cosine_min'), '.4f')} | {fmt(one, '.2f')} | "
              f"{fmt(two, '.2f')} | {fmt(ref / one if one else None, '.2f') + ('x' if one else '')} | {len(r.get('layers_kept_float', []))} |")
    best = max((v for v in doc["variants"] if v.get("latency_ms") and (v.get("agreement") or {}).get("cosine_mean", 0) >= 0.99),
               key=lambda v: ref / v["latency_ms"]["1"]["p50"], default=None)
    if best:
        print(f"\nbest int8 with mean cosine >= 0.99: {best['target']} {best['mode']}, "
              f"{ref / best['latency_ms']['1']['p50']:.2f}x faster than fp32 ONNX Runtime at 1 thread")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
