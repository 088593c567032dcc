"""`edgekit check`: a pre-flight report in seconds, with no conversion.

For each target and each of its routes that applies to the model: the ops the route's converter
or runtime cannot take (ONNX Runtime's kernel table, OpenVINO's ``query_model``, onnx2tf's op
modules, coremltools' torch op registry, torch.onnx's registry, litert-torch's lowerings), the
known failures they match (``converters/known_failures.toml``), the axes that still need a
size, and whether the source is already quantized. Each target gets a verdict: ``will
convert``, ``may need route X``, ``may fail at Y`` or ``will fail at Y`` (with the fix).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable

from .._registry import TARGETS, parse_targets
from .._types import Model
from ..backends._spec import Route, TargetSpec
from ._check_types import FAIL, RISK, CheckResult, Finding, RouteCheck, TargetCheck

__all__ = ["CheckResult", "Finding", "RouteCheck", "TargetCheck", "check"]


class _Facts:
    """What the checks read from the model, each computed once and only when a route asks."""

    def __init__(self, model: Model):
        self.model = model
        self._onnx = self._torch = self._blockers = None
        self.openvino = None  # OpenVINO's findings on the ONNX as it is, once for both ONNX routes

    @property
    def onnx(self):
        if self._onnx is None and self.model.onnx_path is not None:
            from ._check_onnx import onnx_facts

            self._onnx = onnx_facts(self.model.onnx_path)
        return self._onnx

    def source_blockers(self) -> list[Finding]:
        """What stops ONNX Runtime running an ONNX source: edgekit verifies every target's artifact
        against it, so each target fails there too."""
        if self.model.format != "onnx" or self.onnx is None or importlib.util.find_spec("onnxruntime") is None:
            return []
        if self._blockers is None:
            from ._check_onnx import ort_findings

            self._blockers = [Finding(f.op, FAIL, "the source cannot run in ONNX Runtime, which every artifact is "
                                                  f"verified against: {f.cause}", f.fix, f.nodes)
                              for f in ort_findings(self.onnx) if f.severity == FAIL]
        return self._blockers

    @property
    def torch(self):
        if self._torch is None:
            from ._check_torch import torch_facts

            self._torch = torch_facts(self.model)
        return self._torch


def check(model: Model, targets=None, precision: str = "fp32") -> CheckResult:
    """Predict, for each target, whether ``edgekit.convert`` will make its artifact, by which
    route, and which op stops it; nothing is converted. ``model`` is a loaded Model."""
    t0 = time.perf_counter()
    specs = parse_targets(targets) if targets else list(TARGETS.values())
    facts = _Facts(model)
    unsized = _unsized(model)
    results = [_check_target(spec, model, facts, precision, bool(unsized)) for spec in specs]
    return CheckResult(source=_source(model, facts), targets=results, unsized=unsized,
                       seconds=round(time.perf_counter() - t0, 2))


def _source(model: Model, facts: _Facts) -> dict:
    doc = {"spec": str(model.spec), "format": model.format, "dims": dict(model.dims),
           "quantized": model.meta.get("quantized"), "custom_ops": model.meta.get("custom_ops") or []}
    if facts.onnx is not None:
        doc["opsets"] = facts.onnx.opsets
        doc["ops"] = sorted({n.op_type for n in facts.onnx.nodes})
    elif facts._torch is not None and not facts._torch.error:
        doc["ops"] = sorted({f"aten.{op._opname}" for op in facts._torch.ops})
    return doc


def _unsized(model: Model) -> list[dict]:
    """Dynamic axes no flag, sample or default sizes: convert needs one for each."""
    out, seen = [], set()
    for spec in model.signature.inputs:
        for axis in spec.dynamic_axes.values():
            if axis not in model.dims and axis not in seen:
                seen.add(axis)
                out.append({"input": spec.name, "axis": axis,
                            "fix": f"give --dim {axis}=N, --shape {spec.name}=... or sample inputs (--inputs x.npz)"})
    return out


def _check_target(spec: TargetSpec, model: Model, facts: _Facts, precision: str, unsized: bool) -> TargetCheck:
    why = spec.no_route.get(model.format)
    if why:
        return TargetCheck(spec.name, FAIL, f"will fail: no route from {model.format}",
                           fix="give edgekit the PyTorch model (module:factory, .pt2 or a Hugging Face folder), "
                               "or drop this target", notes=[why])
    routes = spec.routes_for(model, precision)
    if not routes:
        return TargetCheck(spec.name, FAIL, f"will fail: no route takes a {model.format} model at {precision}",
                           fix=f"use one of {', '.join(spec.precisions)}")
    if unsized and model.module is not None:  # torch.export needs every size
        skip = "not checked: the model has an axis with no size (see above)"
        checks = [RouteCheck(r.name, checked=False, note=skip) for r in routes]
    else:
        checks = [_check_route(spec, r, model, facts) for r in routes]
    if spec.name != "onnx":
        for c in checks:
            c.findings[:0] = [f for f in facts.source_blockers() if not any(g.op == f.op for g in c.findings)]
    return _verdict(spec.name, checks)


def _ops(check: RouteCheck, severity: str) -> str:
    names = list(dict.fromkeys(f.op for f in check.findings if f.severity == severity))
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _verdict(target: str, checks: list[RouteCheck]) -> TargetCheck:
    first = checks[0]
    notes = [f"{c.route}: {c.note}" for c in checks if c.note]
    clean = next((c for c in checks if c.status in ("ok", "unchecked")), None)
    if clean is first:
        return TargetCheck(target, "ok", "will convert", first.route, routes=checks, notes=notes)
    blocked = next(f for f in first.findings)
    if clean is not None:
        return TargetCheck(target, "route", f"may need route {clean.route} ({first.route}: {_ops(first, first.status)})",
                           clean.route, fix=blocked.fix, routes=checks, notes=notes)
    risky = next((c for c in checks if c.status == RISK), None)
    if risky is not None:
        finding = next(f for f in risky.findings if f.severity == RISK)
        return TargetCheck(target, RISK, f"may fail at {_ops(risky, RISK)}", risky.route, fix=finding.fix,
                           routes=checks, notes=notes)
    finding = next(f for f in first.findings if f.severity == FAIL)
    return TargetCheck(target, FAIL, f"will fail at {_ops(first, FAIL)}", None, fix=finding.fix, routes=checks,
                       notes=notes)


# ---- one route: which table answers for it ----

def _check_route(spec: TargetSpec, route: Route, model: Model, facts: _Facts) -> RouteCheck:
    missing = _missing_modules(route, spec)
    if missing:
        return RouteCheck(route.name, checked=False, note=f"not checked: {missing} is not installed")
    ask = _ROUTE_CHECKS.get((spec.name, route.source, route.fn)) or _ROUTE_CHECKS.get((spec.name, route.source))
    if ask is None:
        return RouteCheck(route.name, checked=False, note="not checked: edgekit check has no op table for this route")
    try:
        findings, note = ask(model, facts)
    except Exception as exc:  # noqa: BLE001 - a check that cannot run says so; it predicts nothing
        return RouteCheck(route.name, checked=False, note=f"not checked: {type(exc).__name__}: {str(exc)[:200]}")
    return RouteCheck(route.name, findings, checked=note is None or not note.startswith("not checked"), note=note)


def _missing_modules(route: Route, spec: TargetSpec) -> str | None:
    for module in (*route.needs, *spec.needs):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def _ort(model: Model, facts: _Facts):
    from ._check_onnx import ort_findings

    return ort_findings(facts.onnx), None


def _torch_onnx(model: Model, facts: _Facts):
    from ._check_torch import onnx_export_findings

    if model.format == "torchscript":
        return [], "not checked: TorchScript is exported by the TorchScript exporter"
    return onnx_export_findings(facts.torch), None


def _openvino_file(model: Model, facts: _Facts):
    from ._check_onnx import openvino_findings

    return openvino_findings(model.path), None


def _openvino_onnx(model: Model, facts: _Facts):
    from ._check_onnx import openvino_findings

    if model.onnx_path is not None:
        if facts.openvino is None:
            facts.openvino = openvino_findings(model.onnx_path)
        return facts.openvino, None
    found, _ = _torch_onnx(model, facts)
    return found, "checked: the torch.onnx export; OpenVINO is asked about the ONNX only when converting"


def _openvino_static(model: Model, facts: _Facts):
    """The static-shape route, which convert tries only where OpenVINO cannot read the graph with
    its dynamic axes: asked the same way, of the graph at the run's sizes with shape-only Ifs taken."""
    from ._check_onnx import openvino_static_findings

    found, _ = _openvino_onnx(model, facts)
    if not any(f.severity == FAIL for f in found):
        return found, None
    if not any(s.dynamic_axes for s in model.signature.inputs):
        return [Finding("(shapes)", FAIL, "the model has no dynamic axis to fix: this route is the dynamic one",
                        found[0].fix)], None
    sizes = {s.name: s.concrete(model.dims) for s in model.signature.inputs}
    return openvino_static_findings(model.onnx_path, sizes), None


def _openvino_rewritten(model: Model, facts: _Facts):
    """The rewritten-ONNX route, which convert tries where the ONNX routes before it fail: asked of
    the graph with the ops OpenVINO lacks or converts wrongly written as ONNX defines them (only
    where the dynamic read fails; a wrong value, which those rewrites also fix, is not predicted)."""
    from ._check_onnx import openvino_rewritten_findings

    found, note = _openvino_onnx(model, facts)
    if model.onnx_path is None or not any(f.severity == FAIL for f in found):
        return found, note
    dynamic = any(s.dynamic_axes for s in model.signature.inputs)
    sizes = {s.name: s.concrete(model.dims) for s in model.signature.inputs} if dynamic else None
    rewritten = openvino_rewritten_findings(model.onnx_path, sizes)
    if rewritten is None:
        return [Finding("(rewrites)", FAIL, "no op here this route rewrites: it converts the onnx route's graph",
                        found[0].fix)], None
    return rewritten, None


def _openvino_torch(model: Model, facts: _Facts):
    from ._check_torch import export_failure

    return export_failure(facts.torch), "checked: torch.export only (OpenVINO's PyTorch frontend is not asked)"


def _tflite_copy(model: Model, facts: _Facts):
    """The file is the artifact: LiteRT loaded it already. Custom ops are a note (a device's
    LiteRT needs their library; the Python interpreter here ran them)."""
    ops = [o["op"] for o in model.meta.get("custom_ops") or []]
    return [], (f"checked: LiteRT loads it; custom op(s) {', '.join(ops)} need their library on a device"
                if ops else None)


def _onnx2tf(model: Model, facts: _Facts):
    from ._check_onnx2tf import onnx2tf_findings

    if facts.onnx is None:
        return [], "not checked: onnx2tf converts the run's ONNX export, which check does not make"
    return onnx2tf_findings(facts.onnx), None


def _litert(model: Model, facts: _Facts):
    from ._check_torch import litert_findings

    return litert_findings(facts.torch), None


def _coreml(model: Model, facts: _Facts):
    from ._check_torch import coreml_findings

    if model.format == "torchscript":
        return [], "not checked: a TorchScript module is traced, not exported"
    return coreml_findings(facts.torch), None


def _onnx2torch(model: Model, facts: _Facts):
    from ._check_onnx2torch import onnx2torch_findings

    return onnx2torch_findings(facts.onnx), "checked: onnx2torch's converter table (the converter after it is " \
                                            "asked when converting)"


def _executorch(model: Model, facts: _Facts):
    from ._check_torch import export_failure

    return export_failure(facts.torch), None  # ops XNNPACK does not take run in portable kernels


_ROUTE_CHECKS: dict[tuple, Callable] = {
    ("onnx", "onnx-file"): _ort,
    ("onnx", "torch-any"): _torch_onnx,
    ("openvino", "tflite"): _openvino_file,
    ("openvino", "onnx"): _openvino_onnx,
    ("openvino", "onnx-file"): _openvino_static,
    ("openvino", "onnx", "from_onnx_rewritten"): _openvino_rewritten,
    ("openvino", "torch"): _openvino_torch,
    ("tflite", "tflite"): _tflite_copy,
    ("tflite", "torch"): _litert,
    ("tflite", "onnx"): _onnx2tf,
    ("tflite", "onnx-file", "from_onnx_torch"): _onnx2torch,
    ("coreml", "onnx-file", "from_onnx"): _onnx2torch,
    ("coreml", "torch-any"): _coreml,
    ("executorch", "torch"): _executorch,
}
