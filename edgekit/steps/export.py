"""Export: convert a loaded model to each target, verify each artifact, write the manifest.

Everything is written to a temporary folder beside ``out`` and moved into place
only when every conversion succeeded, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .._capture import capture_output
from .._errors import EdgekitError
from .._inputs import generate_inputs, load_npz
from .._known import explain
from .._registry import Target, check_path, parse_targets, runner_for, tool_versions
from .._types import Artifact, Model, Parity, sha256_of, size_of
from ..backends._common import ConvertContext
from ..backends._quant import clear
from ..backends._spec import Route
from . import report, verify

Step = Callable[[str], contextlib.AbstractContextManager]


@dataclass
class ConvertResult:
    out: Path
    manifest_path: Path
    artifacts: list[Artifact]
    model: Model
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(a.parity is None or a.parity.status != "fail" for a in self.artifacts)

    @functools.cached_property
    def manifest(self) -> dict:
        """manifest.json as written (read once)."""
        import json

        return json.loads(self.manifest_path.read_text())


def _route_needs(model: Model, route: Route) -> list[str]:
    # a route from ONNX exports the torch module first when the source is not an ONNX file
    export = ["onnx", "onnxscript"] if route.source == "onnx" and model.onnx_path is None else []
    return [*route.needs, *export]


def _check_backends(model: Model, targets: list[Target], precision: str) -> None:
    """Before any work: each target's runtime imports, and at least one of its routes can run
    (else the first route's missing module is named, with its extra)."""
    from .._lazy import require

    for t in targets:
        for mod in t.needs:
            require(mod, f"the {t.name} target")
        routes = t.routes_for(model, precision)
        if not routes:
            raise EdgekitError(f"no route from a {model.format} model to {t.name} at {precision}",
                               f"{t.name} converts from: {', '.join(r.name for r in t.routes)}")
        if not any(_importable(_route_needs(model, r)) for r in routes):
            for mod in _route_needs(model, routes[0]):
                require(mod, f"the {t.name} target ({routes[0].tool})")


def _importable(modules: list[str]) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def _samples(model: Model, inputs: Path | None, count: int) -> tuple[list[dict], str]:
    if inputs is not None:
        return load_npz(Path(inputs), model.signature), f"user inputs from {inputs}"
    samples = [generate_inputs(model.signature, model.dims, model.meta, seed=i) for i in range(count)]
    dims = ", ".join(f"{k}={v}" for k, v in model.dims.items()) or "static shapes"
    return samples, f"{count} generated samples (seeds 0-{count - 1}; {dims})"


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EdgekitError(f"--out {out} is a file", "give a folder path")
    ours = (out / "manifest.json").is_file() or (out / "report.json").is_file()
    if out.is_dir() and any(out.iterdir()) and not ours and not force:
        raise EdgekitError(f"--out {out} is a non-empty folder edgekit did not write",
                           "give a new or empty folder, or pass --force to replace it")


def _verify(model: Model, target: Target, path: Path, samples, refs, tol: dict) -> tuple[Parity, list]:
    runner = runner_for(target, path, source=model.signature)
    validation = runner.validate(model.signature) if hasattr(runner, "validate") else None
    cannot = target.cannot_run()
    if cannot:  # validated (it loads; inputs, outputs right) but not run here, e.g. Core ML off macOS
        problems = (validation or {}).get("problems") or []
        return Parity(status="fail" if problems else "not_run", reason="; ".join(problems) or cannot, tolerance=tol,
                      validation=validation), runner.signature
    names_src = [s.name for s in model.signature.outputs]
    order = verify.output_order(model.signature, runner.signature)
    if order is None:
        return Parity(status="fail", tolerance=tol, reason=f"the artifact has {len(runner.signature.outputs)} "
                      f"outputs, the source {len(names_src)}"), runner.signature
    gots = []
    for s in samples:
        out = runner.run(verify.adapt_feeds(s, model.signature, runner.signature))
        gots.append([out[i] for i in order])
    parity = verify.compare(model, refs, gots, names_src, tol, verify.classifier_outputs(model))
    parity.validation = validation
    return parity, runner.signature


def convert(model: Model, targets: str | list[str], out: str | Path, *, precision: str = "fp32",
            inputs: Path | None = None, samples: int = 3, tolerance: dict | None = None,
            simplify: bool = False, force: bool = False, step: Step | None = None) -> ConvertResult:
    """Convert ``model`` to each target under ``out``, verify each artifact, write manifest.json.

    Converters' own output (C++ logs included) goes to ``out/logs/convert.log``; on
    failure nothing is left under ``out`` and the log's path is in the error.
    """
    step = step or (lambda _text: contextlib.nullcontext())
    out = Path(out).resolve()  # backends resolve their paths; relative_to(tmp) needs the same form
    chosen = parse_targets(targets)
    bad = [t.name for t in chosen if precision not in t.precisions]
    if precision not in ("fp32", "fp16") or bad:
        raise EdgekitError(f"precision {precision!r} is not available for {bad or 'convert'}",
                           "use --precision fp32 or fp16; int8 and smaller are `edgekit compress`")
    _prepare_out(out, force)
    for t in chosen:
        check_path(model.format, t)
    data, inputs_desc = _samples(model, inputs, samples)
    tol = verify.default_tolerance(precision, tolerance, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    fd, log_name = tempfile.mkstemp(prefix=f"edgekit-{out.name}-", suffix=".log")
    os.close(fd)
    log = Path(log_name)
    ctx = ConvertContext(workdir=tmp, simplify=simplify)
    try:
        with capture_output(log):
            _check_backends(model, chosen, precision)
            with step("running the source model"):
                run_source = verify.source_runner(model)
                refs = [run_source(s) for s in data]
            artifacts = [_one_target(model, t, precision, tmp, ctx, data, refs, tol, step) for t in chosen]
            for scratch in (".onnx-fp32", ".keras-savedmodel"):
                shutil.rmtree(tmp / scratch, ignore_errors=True)
            if model.meta.get("tokenizer") is not None:
                model.meta["tokenizer"].save_pretrained(str(tmp / "tokenizer"))
        (tmp / "logs").mkdir()
        shutil.move(str(log), tmp / "logs" / "convert.log")
        (tmp / "logs" / "convert.log").chmod(0o644)
        report.write_manifest(tmp, model, artifacts, inputs_desc, ctx.notes + model.notes)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except EdgekitError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if log.exists() and log.stat().st_size:
            exc.fix = f"{exc.fix or ''}\n  converters' log: {log}".lstrip("\n ")
        else:
            log.unlink(missing_ok=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final = [_moved(a, tmp, out) for a in artifacts]
    return ConvertResult(out, out / "manifest.json", final, model, ctx.notes + model.notes)


def _one_target(model: Model, target: Target, precision: str, tmp: Path, ctx: ConvertContext,
                data, refs, tol: dict, step: Step) -> Artifact:
    sub = tmp / (target.name if precision == "fp32" else f"{target.name}-{precision}")
    sub.mkdir()
    ctx.used_onnx = False
    with step(f"converting to {target.name}"):
        t0 = time.perf_counter()
        path, notes, attempts = convert_by_routes(model, target, sub, precision, ctx)
        seconds = time.perf_counter() - t0
    with step(f"verifying {target.name}"):
        parity, signature = _verify(model, target, path, data, refs, tol)
    attempts[-1]["parity"] = parity.status
    lineage = [f"{model.format}:{model.sha256 or model.spec}"]
    if ctx.used_onnx:
        lineage.append(f"onnx:opset{ctx.opset}")
    lineage.append(f"{target.name}:{precision}")
    return Artifact(target=target.name, precision=precision, path=path, signature=signature,
                    sha256=sha256_of(sub), size_bytes=size_of(sub), convert_seconds=seconds,
                    tool_versions=tool_versions(target.name), parity=parity, notes=notes, lineage=lineage,
                    attempts=attempts)


def convert_by_routes(model: Model, target: Target, dest: Path, precision: str,
                      ctx: ConvertContext) -> tuple[Path, list[str], list[dict]]:
    """Walk the target's routes that apply to this model, in order, until one makes an artifact.
    Returns the artifact, its notes, and every attempt (route, seconds, error)."""
    from .._registry import backend_module

    routes = [r for r in target.routes_for(model, precision) if _importable(_route_needs(model, r))]
    module = backend_module(target, "convert")
    attempts: list[dict] = []
    first_error: Exception | None = None
    for route in routes:
        t0 = time.perf_counter()
        try:
            path, notes = getattr(module, route.fn)(model, dest, precision, ctx, **route.options)
        except Exception as exc:
            if os.environ.get("EDGEKIT_DEBUG"):
                raise
            err = exc if isinstance(exc, EdgekitError) else explain(target.name, exc)
            attempts.append({"route": route.name, "seconds": round(time.perf_counter() - t0, 3), "error": str(err)})
            first_error = first_error or err
            clear(dest)  # the next route starts from an empty folder
            continue
        attempts.append({"route": route.name, "seconds": round(time.perf_counter() - t0, 3), "error": None})
        if len(attempts) > 1:
            notes = [*notes, f"route {route.name} after {len(attempts) - 1} failed: "
                             + "; ".join(f"{a['route']}: {a['error'][:200]}" for a in attempts[:-1])]
        return path, notes, attempts
    assert first_error is not None
    if isinstance(first_error, EdgekitError) and len(attempts) > 1:
        first_error.fix = (f"{first_error.fix or ''}\n  every route failed: "
                           + "; ".join(f"{a['route']} ({a['error'][:120]})" for a in attempts)).lstrip("\n ")
    raise first_error


def _moved(a: Artifact, tmp: Path, out: Path) -> Artifact:
    a.path = out / a.path.relative_to(tmp)
    return a
