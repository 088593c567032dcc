"""Locate: the first op of the ONNX graph whose output diverges between the source and an artifact.

The reference runs the ONNX graph (the source file, or the run's ONNX export) in ONNX Runtime with
every float intermediate exposed. The artifact exposes what its runtime can (``_intermediates``):
ONNX Runtime and OpenVINO by ONNX tensor name; LiteRT every tensor, mapped back to ONNX by name
where onnx2tf kept the node's name, else by value (a LiteRT tensor equal to an ONNX tensor, in
its layout or channels-last, is that tensor). Each ONNX tensor is then

- measured: the artifact has it; within tolerance or not (max abs, cosine), or
- implied good: an op after it is within tolerance (an op fused away, e.g. Conv into Conv+Relu).

The first divergence is, in the graph's topological order, the first node whose output is
measured out of tolerance while its inputs are good and GROWTH times closer to it; where the
culprit is not exposed, the first node whose inputs are all good, whose output is not, and which
leads to a divergent tensor (``exposed: false``). That guess is then refined by bisection
(``_bisect``): the graph is cut at a tensor, the cut converted by the artifact's route and run.
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _intermediates as inter
from . import verify

LOCATABLE = ("onnx", "openvino", "tflite")  # targets whose intermediates can be compared (_intermediates)
MAX_SAMPLES = 2  # intermediates of two samples are enough to see a drift, and half the memory of three
GROWTH = 10.0  # a culprit's output is this many times further out of tolerance than its inputs
BISECT_SECONDS = 120  # a bisection converting cuts stops past this (onnx2tf takes a while on a large graph)
NODE_RTOL = 1e-3  # an intermediate's error may reach 1e-3 of its scale: runtimes' kernels round differently
# (OpenVINO's CPU convolutions differ from ONNX Runtime's by ~3e-4 of their scale in f32)


@functools.cache
def _run_errors() -> tuple[type, ...]:
    """What a runtime raises when a model does not run on its inputs (ONNX Runtime's own ``Fail`` is
    neither a RuntimeError nor a ValueError); not conversion errors, which stop a bisection."""
    errors: tuple[type, ...] = (RuntimeError, ValueError)
    try:
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

        errors += (Fail, RuntimeException)
    except ImportError:
        pass
    return errors



def node_tolerance(tol: dict) -> dict:
    """The run's tolerance, applied to intermediate tensors: rtol at least NODE_RTOL."""
    return {**tol, "rtol": max(float(tol.get("rtol", 0.0)), NODE_RTOL)}


@dataclass
class Measure:
    """One ONNX tensor compared with its artifact counterpart over the samples."""

    max_abs_err: float
    cosine: float
    limit: float
    target_tensor: str

    @property
    def ratio(self) -> float:
        return self.max_abs_err / max(self.limit, 1e-30)

    def excess(self, tol: dict) -> float:
        """How far past its tolerance (1 = at it): max abs error over its limit, or 1 - cosine over 1 - min_cosine."""
        if not math.isfinite(self.max_abs_err):
            return math.inf
        return max(self.ratio, (1.0 - self.cosine) / max(1.0 - tol["min_cosine"], 1e-12))

    def ok(self, tol: dict) -> bool:
        return math.isfinite(self.max_abs_err) and self.max_abs_err <= self.limit and \
            self.cosine >= tol["min_cosine"]

    def to_dict(self) -> dict:
        return {"max_abs_err": _num(self.max_abs_err), "cosine": _num(self.cosine)}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _views(got: np.ndarray, shape: tuple) -> list[np.ndarray]:
    """``got`` in the reference's ``shape``: as is, channels-last moved back to channels-first,
    or with size-1 axes added or dropped."""
    views = []
    if got.shape == shape:
        views.append(got)
    n = got.ndim
    if n >= 3:
        moved = got.transpose(0, n - 1, *range(1, n - 1))
        if moved.shape == shape:  # also where both read the same ([3, 2, 2]): channels-last is the other
            views.append(moved)
    if not views and got.size == math.prod(shape) and \
            tuple(d for d in got.shape if d != 1) == tuple(d for d in shape if d != 1):
        views.append(got.reshape(shape))
    return views


def measure(refs: list[np.ndarray], gots: list[np.ndarray], tol: dict, target_tensor: str) -> Measure | None:
    """Errors of an artifact tensor against the reference over the samples; the best layout view
    is kept. None where no view of it has the reference's shape."""
    best: Measure | None = None
    count = len(_views(np.asarray(gots[0]), tuple(refs[0].shape)))
    for k in range(count):
        errs, coss, scale = [], [], 0.0
        for r, g in zip(refs, gots, strict=True):
            views = _views(np.asarray(g), tuple(r.shape))
            if len(views) <= k:
                return best
            ref, got = r.astype(np.float64), views[k].astype(np.float64)
            diff = verify._abs_diff(ref, got)
            errs.append(float(diff.max(initial=0.0)))
            coss.append(verify._cos(ref, got))
            scale = max(scale, float(np.max(np.abs(ref[np.isfinite(ref)]), initial=0.0)))
        m = Measure(max(errs), min(coss), tol["atol"] + tol["rtol"] * scale, target_tensor)
        if best is None or (m.max_abs_err, -m.cosine) < (best.max_abs_err, -best.cosine):
            best = m
    return best


def _bad(name: str) -> Measure:
    return Measure(math.inf, 0.0, 0.0, name)


def by_name(graph: inter.OnnxGraph, refs: list[dict], arts: list[dict], tol: dict) -> dict[str, Measure]:
    """ONNX tensors the artifact has under the same name (ONNX Runtime, OpenVINO)."""
    out = {}
    for name in graph.floats:
        if name in arts[0] and name in refs[0]:
            m = measure([r[name] for r in refs], [a[name] for a in arts], tol, name)
            out[name] = m or _bad(name)  # another shape than the source's: diverged
    return out


def _tflite_name(graph: inter.OnnxGraph, tname: str, nodes: dict[str, str]) -> str | None:
    """The ONNX tensor a LiteRT tensor is named after: a signature output keeps its ONNX name; onnx2tf
    names an op after its ONNX node (``model/tf.nn.softmax/<node>``; a fused op lists the outer one first)."""
    if tname.startswith("output:"):
        return tname[len("output:"):]
    last = tname.split(";")[0].rsplit("/", 1)[-1].split(":")[0]
    return nodes.get(last) or (last if last in graph.floats else None)


def _shape_key(shape: tuple) -> tuple:
    return (math.prod(shape), tuple(sorted(d for d in shape if d != 1)))


def _summary(arr: np.ndarray) -> np.ndarray:
    """max, min and mean: the same under any layout view, so a cheap test before comparing values."""
    a = np.asarray(arr, dtype=np.float64)
    return np.array([a.max(initial=-np.inf), a.min(initial=np.inf), a.mean() if a.size else 0.0])


def _same_values(graph: inter.OnnxGraph, refs: list[dict], arts: list[dict], tol: dict) -> dict[str, Measure]:
    """ONNX tensors some LiteRT tensor equals (within tolerance, in some layout view)."""
    buckets: dict[tuple, list[tuple[str, np.ndarray]]] = {}
    for tname, value in arts[0].items():
        buckets.setdefault(_shape_key(np.shape(value)), []).append((tname, _summary(value)))
    out: dict[str, Measure] = {}
    for name in (n for n in graph.floats if n in refs[0]):
        refs_t = [r[name] for r in refs]
        ref_sum = _summary(refs_t[0])
        limit = tol["atol"] + tol["rtol"] * float(np.max(np.abs(ref_sum[:2]), initial=0.0))
        for tname, art_sum in buckets.get(_shape_key(refs_t[0].shape), []):
            if not np.all(np.abs(art_sum - ref_sum) <= limit) and np.isfinite(limit):
                continue
            quick = measure(refs_t[:1], [arts[0][tname]], tol, tname)
            if quick is not None and quick.ok(tol):
                full = measure(refs_t, [a[tname] for a in arts], tol, tname)
                if full is not None and full.ok(tol):
                    out[name] = full
                    break
    return out


def by_value(graph: inter.OnnxGraph, refs: list[dict], arts: list[dict], tol: dict) -> dict[str, Measure]:
    """LiteRT tensors mapped to ONNX tensors: a tensor named after an ONNX node or output, and any
    tensor whose values equal an ONNX tensor's (within tolerance, in some layout view): that ONNX
    tensor is then within tolerance. A named tensor that matches nothing is a divergence."""
    nodes = {n.name: n.output[0] for n in graph.nodes if n.name and n.output and n.output[0] in graph.floats}
    named = {t: o for t in arts[0] if (o := _tflite_name(graph, t, nodes)) is not None and o in refs[0]}
    out = _same_values(graph, refs, arts, tol)
    guessed = set()
    for tname, name in named.items():
        if name not in out or tname.startswith("output:"):  # an output is what the signature gives, not a look-alike
            m = measure([r[name] for r in refs], [a[tname] for a in arts], tol, tname)
            if m is not None or tname.startswith("output:"):  # a named tensor of another shape: not that one
                out[name] = m or _bad(tname)
                guessed |= set() if tname.startswith("output:") else {name}
    # a name is a guess (onnx2tf names the pieces of an op it splits, e.g. a Div's reciprocal, after the
    # node): one out of tolerance that a good tensor after it depends on was not that tensor
    good = _implied(graph, {t for t, m in out.items() if m.ok(tol)}, set())
    return {t: m for t, m in out.items() if m.ok(tol) or t not in guessed or t not in good}


def _implied(graph: inter.OnnxGraph, start: set[str], stop: set[str]) -> set[str]:
    """``start`` and every tensor before it (the inputs of the nodes making them), except ``stop``."""
    seen = set(start)
    for node in reversed(graph.nodes):
        if any(o in seen for o in node.output):
            seen.update(x for x in node.input if x and x not in stop)
    return seen


def _grows(graph: inter.OnnxGraph, node, measured: dict[str, Measure], tol: dict) -> bool:
    """The node itself makes the error: its output's excess is GROWTH times its inputs' (at least 0.1)."""
    out = max((measured[o].excess(tol) for o in node.output if o in measured), default=0.0)
    before = max((measured[x].excess(tol) for x in node.input if x in measured), default=0.0)
    return out > 1.0 and out >= GROWTH * max(before, 0.1)


def first_divergence(graph: inter.OnnxGraph, measured: dict[str, Measure], tol: dict) -> tuple[int, bool] | None:
    """(index of the node, whether its output is exposed), in topological order; None if nothing diverges.

    First a node whose output is measured out of tolerance while all its inputs are good, and
    GROWTH times further out than they are (rounding noise a Softmax amplifies is not a culprit);
    else (the culprit is not exposed) the first node with good inputs whose output is not known to
    be good and leads to a divergent tensor; else the first node measured out of tolerance."""
    bad = {t for t, m in measured.items() if not m.ok(tol)}
    if not bad:
        return None
    good = _implied(graph, {t for t, m in measured.items() if m.ok(tol)}, bad)
    leads_to_bad = _implied(graph, bad, set())
    fine = good | graph.constants | set(graph.inputs)
    frontier = first_bad = None
    for i, node in enumerate(graph.nodes):
        outs = [o for o in node.output if o in graph.floats]
        inputs_fine = all(x in fine or x not in graph.floats for x in node.input if x)
        if any(o in bad for o in outs):
            if inputs_fine and _grows(graph, node, measured, tol):
                return i, True
            first_bad = i if first_bad is None else first_bad
        elif frontier is None and outs and inputs_fine and not any(o in good for o in outs) \
                and any(o in leads_to_bad for o in outs):
            frontier = i
    if frontier is not None:
        return frontier, False
    return (first_bad, True) if first_bad is not None else None


# layers with weights: what a quantizer quantizes (and --keep-float keeps), unlike an activation
# product such as attention's Q.K^T, which only amplifies the error its inputs bring
LAYER_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Gather", "Einsum", "LSTM", "GRU", "RNN"}


def ranking(graph: inter.OnnxGraph, measured: dict[str, Measure], tol: dict, top: int = 5,
            layers: bool = False) -> list[dict]:
    """The nodes that add the most error: their output's excess over tolerance, less their inputs'.
    ``layers``: only weighted layers (LAYER_OPS with a constant input), as for a quantized artifact."""
    rows = []
    for node in graph.nodes:
        if layers and not (node.op_type in LAYER_OPS and any(x in graph.constants for x in node.input)):
            continue
        for out in (o for o in node.output if o in measured):
            before = max((measured[x].excess(tol) for x in node.input if x in measured), default=0.0)
            added = measured[out].excess(tol) - before
            if math.isfinite(added) and added > 0:
                rows.append((added, node, out))
    rows.sort(key=lambda r: -r[0])
    return [{"node": n.name or o, "op_type": n.op_type, "tensor": o, "added": round(a, 3),
             **measured[o].to_dict()} for a, n, o in rows[:top]]


def _feeds(target: str, artifact: Path, samples: list[dict], source) -> list[dict]:
    """The samples keyed and typed for the artifact's runtime (as parity feeds them)."""
    from .._registry import TARGETS, runner_for

    runtime = runner_for(TARGETS[target], artifact, source=source).signature
    return [verify.adapt_feeds(s, source, runtime) for s in samples]


def _shapes(samples: list[dict]) -> dict[str, tuple] | None:
    """Each input's shape where every sample has the same (so intermediates' sizes are known)."""
    shapes = {k: tuple(np.shape(v)) for k, v in samples[0].items()}
    return shapes if all({k: tuple(np.shape(v)) for k, v in s.items()} == shapes for s in samples) else None


def _measure_artifact(graph: inter.OnnxGraph, target: str, artifact: Path, feeds: list[dict],
                      refs: list[dict], tol: dict) -> dict[str, Measure]:
    if target == "onnx":
        return by_name(graph, refs, inter.onnx_artifact(artifact, list(refs[0]), feeds), tol)
    if target == "openvino":
        return by_name(graph, refs, inter.openvino_artifact(artifact, list(refs[0]), feeds), tol)
    if target == "tflite":
        arts = inter.tflite_artifact(artifact, feeds)
        return {**_missing(graph, arts), **by_value(graph, refs, arts, tol)}
    raise ValueError(f"locating a drift is not available for {target} artifacts (onnx, openvino, tflite are)")


def _missing(graph: inter.OnnxGraph, arts: list[dict]) -> dict[str, Measure]:
    """Graph outputs a LiteRT artifact does not give at all, when it gives fewer outputs than the graph
    (onnx2tf folds an output it can compute ahead, such as Shape's, away): each is a divergence of
    the node making it."""
    given = {k[len("output:"):] for k in arts[0] if k.startswith("output:")}
    if len(given) >= len(graph.outputs):
        return {}
    return {o: _bad(f"{o} (not an output of the artifact)") for o in graph.outputs
            if o in graph.floats and o not in given}


def _input_errors(graph: inter.OnnxGraph, node, measured: dict[str, Measure], good: set[str]) -> list[dict]:
    out = []
    for name in (x for x in node.input if x):
        if name in graph.constants:
            out.append({"name": name, "kind": "constant"})
        elif name in graph.inputs:
            out.append({"name": name, "kind": "model input"})
        elif name in measured:
            out.append({"name": name, "kind": "tensor", **measured[name].to_dict()})
        elif name in graph.floats:
            out.append({"name": name, "kind": "not exposed" + (" (good: a later op is)" if name in good else "")})
    return out


def _describe(graph: inter.OnnxGraph, found: tuple[int, bool], measured: dict[str, Measure], tol: dict) -> dict:
    index, exposed = found
    node = graph.nodes[index]
    tensor = next((o for o in node.output if o in measured and not measured[o].ok(tol)),
                  next(o for o in node.output if o in graph.floats))
    good = _implied(graph, {t for t, m in measured.items() if m.ok(tol)}, set())
    result = {"node": node.name or tensor, "op_type": node.op_type, "tensor": tensor, "exposed": exposed,
              "inputs": _input_errors(graph, node, measured, good)}
    if tensor in measured:
        result.update(target_tensor=measured[tensor].target_tensor, **measured[tensor].to_dict())
    else:  # the evidence: the first divergent tensor it leads to
        after = _after(graph, index, tensor)
        later = next((o for n in graph.nodes[index:] for o in n.output
                      if o in after and o in measured and not measured[o].ok(tol)), None)
        if later:
            result["evidence"] = {"tensor": later, "target_tensor": measured[later].target_tensor,
                                  **measured[later].to_dict()}
    return result


def _after(graph: inter.OnnxGraph, index: int, tensor: str) -> set[str]:
    """``tensor`` and every tensor computed from it."""
    seen = {tensor}
    for node in graph.nodes[index:]:
        if any(x in seen for x in node.input):
            seen.update(node.output)
    return seen


def prefix_runner(target: str, onnx_path: Path, inputs: list[str], samples: list[dict], layout: str = "tf"):
    """How to convert and run a cut of the graph for ``target`` (None where bisection is not needed
    or not available: ONNX Runtime artifacts keep every ONNX name)."""
    from . import _bisect

    if target == "openvino":
        return _bisect.openvino_prefix(onnx_path, inputs, samples)
    if target == "tflite":
        return _bisect.tflite_prefix(onnx_path, inputs, samples, layout)
    return None


def refine(graph: inter.OnnxGraph, found: tuple[int, bool], measured: dict[str, Measure], refs: list[dict],
           tol: dict, prefix) -> dict | None:
    """Bisect between a node guessed from exposed tensors (its output is not exposed) and the first
    divergent tensor it leads to: each cut converted by ``prefix``. None if it cannot tell."""
    from ._bisect import first_bad

    index = found[0]
    good = _implied(graph, {t for t, m in measured.items() if m.ok(tol)}, set())
    after = _after(graph, index, next(o for o in graph.nodes[index].output if o in graph.floats))
    evidence = next((o for n in graph.nodes[index:] for o in n.output
                     if o in after and o in measured and not measured[o].ok(tol)), None)
    if evidence is None:
        return None
    before = _implied(graph, {evidence}, set())
    candidates = [o for n in graph.nodes[index:] for o in n.output
                  if o in graph.floats and o in before and o not in good and o not in measured]
    seen: dict[str, Measure] = {evidence: measured[evidence]}
    # a cut is divergent past a fraction of the evidence's excess: rounding noise on the way is not
    threshold = min(max(measured[evidence].excess(tol) / GROWTH, 1.0), GROWTH)

    deadline = time.perf_counter() + BISECT_SECONDS

    def is_bad(tensor: str) -> bool:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"past {BISECT_SECONDS} s ({len(seen) - 1} cuts converted)")
        try:
            got = prefix(tensor)
        except _run_errors() as exc:  # the cut converts but does not run: diverged there
            seen[tensor] = _bad(f"{tensor} (the graph cut there does not run: {str(exc).strip()[:80]})")
            return True
        m = measure([r[tensor] for r in refs], got, tol, f"{tensor} (the graph cut there, converted)")
        seen[tensor] = m or _bad(tensor)
        return seen[tensor].excess(tol) > threshold

    tensor, cuts = first_bad([*candidates, evidence], is_bad)
    if tensor == evidence and not is_bad(evidence):  # no cut diverges: the drift needs the whole graph
        return {"bisection": f"{cuts + 1} cuts of the graph converted and run: none diverges, so the node "
                             "above is inferred from the artifact's tensors only"}
    if tensor is None:
        return None
    tensor, more = _walk_back(graph, tensor, measured, is_bad)
    cuts += more
    node = graph.nodes[graph.producer[tensor]]
    return {"node": node.name or tensor, "op_type": node.op_type, "tensor": tensor, "exposed": False,
            "method": f"bisection ({cuts} cuts of the graph converted and run)",
            "inputs": _input_errors(graph, node, {**measured, **seen}, good),
            "target_tensor": seen[tensor].target_tensor, **seen[tensor].to_dict()}


def _walk_back(graph: inter.OnnxGraph, tensor: str, measured: dict[str, Measure], is_bad, steps: int = 8):
    """The cut found may have a divergent input after all: "implied good" trusts a tensor a later good
    one depends on, and a difference the later ops mask (-inf written as -FLT_MAX before a Softmax)
    is still where the values first part. While an unmeasured input of the culprit's node diverges
    when the graph is cut there, that input's node is the culprit. Returns (tensor, cuts made)."""
    cuts = 0
    for _ in range(steps):
        node = graph.nodes[graph.producer[tensor]]
        ins = [x for x in node.input if x in graph.floats and x in graph.producer and x not in measured]
        bad_in = None
        for x in ins:
            cuts += 1
            if is_bad(x):
                bad_in = x
                break
        if bad_in is None:
            return tensor, cuts
        tensor = bad_in
    return tensor, cuts


def locate(onnx_path: Path, target: str, artifact: Path, samples: list[dict], tol: dict,
           source=None, prefix="auto", layers: bool = False) -> dict:
    """The first node of ``onnx_path`` whose output diverges in ``artifact`` (a ``target`` file made
    from that graph), on ``samples`` (feeds keyed by the graph's input names), at ``tol`` (intermediates
    at rtol >= NODE_RTOL). Where the culprit is not exposed, ``prefix`` (``"auto"``: the target's own
    route; None: no bisection; or a callable tensor -> outputs per sample) converts cuts of the graph.
    ``layers``: the ranking is of weighted layers only (a quantized artifact: what --keep-float takes).

    Returns ``{"node", "op_type", "tensor", "target_tensor", "max_abs_err", "cosine", "exposed",
    "method", "inputs": [...], "ranking": [...], "compared", "seconds"}``; ``node`` is None when no
    tensor the artifact exposes is out of tolerance."""
    t0 = time.perf_counter()
    tol = node_tolerance(tol)
    samples = samples[:MAX_SAMPLES]
    graph = inter.read_graph(Path(onnx_path), _shapes(samples))
    if source is None:
        from ..backends.onnxruntime.runtime import OrtRunner

        source = OrtRunner(Path(onnx_path)).signature
    refs = inter.reference(graph, samples, inter.within_budget(graph, len(samples)))
    try:
        measured = _measure_artifact(graph, target, Path(artifact), _feeds(target, Path(artifact), samples, source),
                                     refs, tol)
    except _run_errors() as exc:  # the artifact does not run on the samples: bisect for the op
        said = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)[:120]
        measured = {o: _bad(f"{o} (the artifact does not run: {said})") for o in graph.outputs if o in graph.floats}
    found = first_divergence(graph, measured, tol)
    result: dict = {"node": None}
    if found is not None:
        runs = not any("(the artifact does not run" in m.target_tensor for m in measured.values())
        result = {**_describe(graph, found, measured, tol),
                  "method": "exposed tensors" if runs else "the artifact does not run: the node making its output"}
        if not found[1]:
            result["method"] = "inferred: its output is not exposed in the artifact (fused)"
            if prefix == "auto":
                prefix = prefix_runner(target, Path(onnx_path), graph.inputs, samples)
            try:
                refined = (refine(graph, found, measured, refs, tol, prefix) if prefix else None) or {}
                result = refined if "node" in refined else {**result, **refined}
            except Exception as exc:  # noqa: BLE001 - a cut that does not convert: keep the inference
                result["bisection"] = f"stopped: {type(exc).__name__}: {str(exc).strip()[:200]}"
    result["ranking"] = ranking(graph, measured, tol, layers=layers)
    result["compared"] = f"{len(measured)} of {len(graph.floats)} tensors of the ONNX graph (float; integer outputs)"
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def _known_entry(target: str, found: dict) -> dict | None:
    """The known-failures entry (converters/known_failures.toml) matching 'drift at <op> (node <node>)'."""
    from .._known import known

    err = known(target, RuntimeError(f"parity drift at {found['op_type']} (node {found['node']})"))
    return {"cause": err.cause, "fix": err.fix or ""} if err is not None else None


def for_artifact(model, ctx, target: str, path: Path, samples: list[dict], tol: dict, route: str = "",
                 layers: bool = False) -> dict:
    """``parity.first_divergence`` of an artifact export made (``route``: the kept route's name).
    The reference is the source ONNX file or the run's ONNX export (made here if none was). Never
    raises: what stopped it is in ``error``."""
    if target not in LOCATABLE:
        return {"node": None, "error": f"locating a drift is not available for {target} artifacts "
                                       "(onnx, openvino and tflite are)"}
    try:
        onnx_path = model.onnx_path or ctx.onnx_path
        if onnx_path is None:
            from ..backends.onnxruntime.convert import ensure_onnx

            onnx_path = ensure_onnx(model, ctx)
        if target == "onnx" and Path(path).resolve() == Path(onnx_path).resolve():
            return {"node": None, "error": "the artifact is the run's ONNX export, the graph drifts are located in: "
                                           "a drift from the torch model is the exporter's (torch.onnx)"}
        auto = route.startswith("onnx ->")  # cuts of the ONNX graph go the artifact's own way
        layout = "onnx" if "ONNX layout" in route else "tf"
        inputs = [s.name for s in model.signature.inputs]
        prefix = prefix_runner(target, Path(onnx_path), inputs, samples[:MAX_SAMPLES], layout) if auto else None
        found = locate(Path(onnx_path), target, Path(path), samples, tol, source=model.signature, prefix=prefix,
                       layers=layers)
        if found.get("node") is not None:
            found["known"] = _known_entry(target, found)
        return found
    except Exception as exc:  # noqa: BLE001 - locating is a diagnosis: it never fails the conversion
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        return {"node": None, "error": f"{type(exc).__name__}: {first[:300]}"}
