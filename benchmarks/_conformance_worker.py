"""The conformance worker: reads jobs (JSON lines) on stdin, writes each answer to the job's
``result`` file. Started by ``_conformance_pool.Worker``; not meant to be run by hand.

Jobs:
- ``{"kind": "raw", "model", "inputs", "expected", "rtol", "atol"}``: the model run by raw ONNX
  Runtime and raw OpenVINO (CPU, INFERENCE_PRECISION_HINT f32), each compared to the expected
  outputs -> ``{"ort": {"status", "error"}, "ov": {...}}``.
- ``{"kind": "edgekit", "model", "inputs", "target", "out", "keep", "dims_from_inputs"}``:
  ``edgekit.load`` (with ``dims=`` sized from the .npz when dims_from_inputs, as ``--dim`` would)
  then ``edgekit.convert(targets=[target], inputs=...)`` -> ``{"status": pass|fail|error|known-failure|no-route,
  "error", "route", "attempts", "parity"}``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import traceback
from pathlib import Path


def _first_line(text) -> str:
    """The first line of a message; two when the first only says where (OpenVINO's "Exception
    from src/...:84:", "Check '...' failed at ..."), plus OpenVINO's list of failed ops."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    first = " ".join(lines[:2]) if len(lines) > 1 and (lines[0].startswith("Exception from ")
                                                      or lines[0].endswith(":")) else (lines[0] if lines else "")
    failed = [ln for ln in lines if ln.startswith("-- Conversion is failed for:")]  # OpenVINO's summary
    return (first + (f" [{failed[0][3:]}]" if failed else ""))[:500]


def _compare_all(names, outputs, expected, rtol, atol) -> dict:
    from _conformance_nodes import compare

    err = compare(expected, outputs, rtol, atol)
    return {"status": "pass" if err is None else "fail", "error": err}


def run_ort(model: str, feeds: dict, expected: list, rtol: float, atol: float) -> dict:
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        outputs = sess.run(None, feeds)
        return _compare_all(names, outputs, expected, rtol, atol)
    except Exception as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {_first_line(exc)}"}


def run_ov(model: str, feeds: dict, expected: list, rtol: float, atol: float) -> dict:
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(model), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})
        request = compiled.create_infer_request()
        by_name = {}
        for port in compiled.inputs:
            for name in port.get_names():
                by_name[name] = port
        request.infer({by_name[k]: v for k, v in feeds.items()})
        outputs = [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]
        return _compare_all(None, outputs, expected, rtol, atol)
    except Exception as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {_first_line(exc)}"}


def raw_job(job: dict) -> dict:
    import numpy as np

    with np.load(job["inputs"], allow_pickle=True) as z:
        feeds = {k: z[k] for k in z.files}
    with np.load(job["expected"], allow_pickle=True) as z:
        expected = [z[f"out_{i}"] for i in range(len(z.files))]
    answer = {"ort": run_ort(job["model"], feeds, expected, job["rtol"], job["atol"])}
    if job.get("ov", True):
        answer["ov"] = run_ov(job["model"], feeds, expected, job["rtol"], job["atol"])
    return answer


def _known_patterns() -> list[re.Pattern]:
    """One regex per cause in known_failures.toml (the text edgekit puts in a known error)."""
    from edgekit._data import load_toml

    pats = []
    for entry in load_toml("converters", "known_failures.toml").get("failure", []):
        cause = re.escape(entry.get("cause", ""))
        cause = re.sub(r"\\\{\w+\\\}", ".*?", cause)
        if cause:
            pats.append(re.compile(cause))
    return pats


def classify_error(text: str) -> str:
    """known-failure when the message is a cause from converters/known_failures.toml."""
    if "not in converters/known_failures.toml" in text:
        return "error"
    if text.startswith("cannot convert a "):  # edgekit has no route for this format pair
        return "no-route"
    return "known-failure" if any(p.search(text) for p in _known_patterns()) else "error"


def _route(attempts: list[dict]) -> str | None:
    ok = [a.get("route") for a in attempts if not a.get("error")]
    return ok[-1] if ok else None


def _onnx_axes(path: str) -> dict[str, list]:
    """Each graph input's axes as the ONNX file declares them: a dim_param name, an int, or '?'
    for an unnamed or non-positive axis (as edgekit names it)."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    axes = {}
    for vi in graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        axes[vi.name] = [d.dim_param or (d.dim_value if d.dim_value > 0 else "?")
                         for d in vi.type.tensor_type.shape.dim]
    return axes


def dims_from_inputs(model_path: str, npz: str) -> dict[str, int]:
    """Each dynamic axis of the model's inputs sized from the .npz's arrays (the first array to
    name an axis wins), as `--dim NAME=N` would give them."""
    import numpy as np

    if model_path.endswith(".onnx"):
        axes = _onnx_axes(model_path)
    else:
        import edgekit

        axes = {s.name: list(s.shape) for s in edgekit.load(model_path).signature.inputs}
    dims: dict[str, int] = {}
    with np.load(npz, allow_pickle=True) as z:
        for name, shape in axes.items():
            if name not in z.files:
                continue
            arr = z[name]
            for i, d in enumerate(shape):
                if isinstance(d, str) and i < arr.ndim:
                    dims.setdefault(d, int(arr.shape[i]))
    return dims


_UNSIZED = re.compile(r"input '(?P<input>[^']+)' has a dynamic axis '(?P<axis>[^']+)' \((?P<shape>\[[^\]]*\])\)")


def _load_sized(model_path: str, npz: str):
    """edgekit.load with dims= from the .npz: the axes the file names first, then each axis
    edgekit reports unsized (its own name for it, found in the error's shape), up to 8 times."""
    import numpy as np

    import edgekit

    dims = dims_from_inputs(model_path, npz)
    for _ in range(8):
        try:
            return edgekit.load(model_path, **({"dims": dims} if dims else {})), dims
        except edgekit.EdgekitError as exc:
            m = _UNSIZED.search(str(exc))
            if not m or m["axis"] in dims:
                raise
            shape = [d.strip() for d in m["shape"].strip("[]").split(",")]
            with np.load(npz, allow_pickle=True) as z:
                if m["input"] not in z.files or m["axis"] not in shape:
                    raise
                dims[m["axis"]] = int(z[m["input"]].shape[shape.index(m["axis"])])
    return edgekit.load(model_path, dims=dims), dims


def _predict(model, target: str) -> dict:
    """edgekit.check's verdict for the target, before converting (conformance.py --check)."""
    import time

    import edgekit

    t0 = time.monotonic()
    try:
        t = edgekit.check(model, targets=[target]).target(target)
        return {"status": t.status, "verdict": t.verdict, "seconds": round(time.monotonic() - t0, 2)}
    except Exception as exc:  # noqa: BLE001 - a check that breaks is recorded, not fatal
        return {"status": "error", "verdict": f"{type(exc).__name__}: {_first_line(exc)}"}


def edgekit_job(job: dict) -> dict:
    import edgekit

    out = Path(job["out"])
    dims = predicted = None
    try:
        if job.get("dims_from_inputs") and job.get("inputs"):
            model, dims = _load_sized(job["model"], job["inputs"])
        else:
            model = edgekit.load(job["model"])
        predicted = _predict(model, job["target"]) if job.get("check") else None
        result = edgekit.convert(model, targets=[job["target"]], out=out, force=True,
                                 inputs=Path(job["inputs"]) if job.get("inputs") else None)
        art = result.artifacts[0]
        parity = art.parity
        status = parity.status if parity else "not_run"
        validated = bool(parity and status == "not_run" and parity.validation
                         and parity.validation.get("loads") and not parity.validation.get("problems"))
        answer = {"status": "pass" if validated else status, "validated_only": validated,
                  "route": _route(art.attempts), "attempts": art.attempts, "notes": art.notes,
                  "parity": {k: getattr(parity, k, None) for k in
                             ("max_abs_err", "cosine", "worst_output", "reason", "top1_agreement")}
                  if parity else None, "error": parity.reason if parity and status == "fail" else None}
        if parity is not None and parity.validation:
            answer["validation"] = parity.validation
        if parity is not None and parity.first_divergence:
            answer["first_divergence"] = {k: parity.first_divergence.get(k) for k in (
                "node", "op_type", "tensor", "target_tensor", "max_abs_err", "cosine", "exposed", "method", "inputs",
                "known", "error", "seconds")}
    except edgekit.EdgekitError as exc:
        text = str(exc)
        answer = {"status": classify_error(text), "error": _first_line(exc.cause),
                  "fix": _first_line(exc.fix or ""), "detail": text[:2000]}
    except (Exception, SystemExit) as exc:  # onnx2tf calls sys.exit(1) on some failures
        answer = {"status": "error", "error": f"{type(exc).__name__}: {_first_line(exc)}",
                  "detail": traceback.format_exc()[-2000:]}
    if dims is not None:
        answer["dims"] = dims
    if predicted is not None:
        answer["predicted"] = predicted
    if not job.get("keep"):
        shutil.rmtree(out, ignore_errors=True)
    return answer


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the harness dies (no orphan left holding a model)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> None:
    _die_with_parent()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            answer = raw_job(job) if job["kind"] == "raw" else edgekit_job(job)
        except Exception as exc:  # the harness's own bug: report it, keep serving
            answer = {"status": "error", "error": f"harness: {type(exc).__name__}: {_first_line(exc)}"}
        tmp = job["result"] + ".tmp"
        Path(tmp).write_text(json.dumps(answer, default=str))
        os.replace(tmp, job["result"])
        sys.stdout.flush()


if __name__ == "__main__":
    main()
