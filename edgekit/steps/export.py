"""Export: convert a loaded model to each target, verify each artifact, write the manifest.

Everything is written to a temporary folder beside ``out`` and moved into place
only when every conversion succeeded, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .._atomic import atomic_folder, check_out
from .._capture import capture_output
from .._errors import EdgekitError
from .._inputs import generate_inputs, load_npz, read_npz, size_axes
from .._known import explain
from .._progress import Stage, no_stage
from .._registry import Target, check_path, parse_targets, runner_for, tool_versions
from .._types import Artifact, Model, Parity, Signature, sha256_of, size_of
from ..backends._common import ConvertContext
from ..backends._quant import clear
from ..backends._spec import Route
from . import buckets, report, verify


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
    """The verification samples: the user's (which also size the axes still unsized or defaulted),
    else generated at the model's sizes."""
    if inputs is not None:
        arrays = read_npz(Path(inputs))  # read once: it sizes the axes, then it is checked and fed
        size_axes(model, arrays, f"--inputs {Path(inputs).name}")
        return load_npz(Path(inputs), model.signature, arrays), f"user inputs from {inputs}"
    size_axes(model)
    samples = [generate_inputs(model.signature, model.dims, model.meta, seed=i) for i in range(count)]
    dims = ", ".join(f"{k}={v}" for k, v in model.dims.items()) or "static shapes"
    return samples, f"{count} generated samples (seeds 0-{count - 1}; {dims})"


def _runner(model: Model, target: Target, path: Path, tol: dict):
    """The artifact's runner, its validation, and its parity already decided where it cannot run here."""
    runner = runner_for(target, path, source=model.signature)
    validation = runner.validate(model.signature) if hasattr(runner, "validate") else None
    cannot = target.cannot_run()
    if cannot:  # validated (it loads; inputs, outputs right) but not run here, e.g. Core ML off macOS
        problems = (validation or {}).get("problems") or []
        return runner, validation, Parity(status="fail" if problems else "not_run",
                                          reason="; ".join(problems) or cannot, tolerance=tol, validation=validation)
    return runner, validation, None


def _run_compare(model: Model, runner, samples, refs, tol: dict) -> Parity:
    names_src = [s.name for s in model.signature.outputs]
    order = verify.output_order(model.signature, runner.signature)
    if order is None:
        return Parity(status="fail", tolerance=tol, reason=f"the artifact has {len(runner.signature.outputs)} "
                      f"outputs, the source {len(names_src)}")
    gots = []
    try:
        for s in samples:
            out = runner.run(verify.adapt_feeds(s, model.signature, runner.signature))
            gots.append([out[i] for i in order])
    except Exception as exc:  # the artifact cannot take these inputs, or its runtime fails on them
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        return Parity(status="fail", tolerance=tol, reason=f"the artifact does not run on the samples: {first[:300]}")
    return verify.compare(model, refs, gots, names_src, tol, verify.classifier_outputs(model))


def _verify(model: Model, target: Target, path: Path, samples, refs, tol: dict) -> tuple[Parity, Signature, None]:
    runner, validation, decided = _runner(model, target, path, tol)
    parity = decided or _run_compare(model, runner, samples, refs, tol)
    parity.validation = validation
    return parity, runner.signature, None


def _verify_buckets(model: Model, target: Target, path: Path, plan: buckets.BucketPlan,
                    tol: dict) -> tuple[Parity, Signature, dict]:
    """Each bucket against the source on its own samples (real lengths padded to it), in the
    artifact's signature for it where it has one per bucket; ``buckets`` for the manifest."""
    runner, validation, decided = _runner(model, target, path, tol)
    keys = plan.keys
    per_sig = set(keys) <= set(getattr(runner, "signature_keys", None) or ())
    per_bucket = []
    for k in keys:
        if per_sig:
            runner.use(k)
        per_bucket.append((k, decided or _run_compare(model, runner, plan.samples[k], plan.refs[k], tol)))
    record = {"axes": plan.axes, "signatures": {k: k for k in keys} if per_sig else None, "pad": plan.pad,
              "parity": [buckets.bucket_record(k, p, plan.lengths[k]) for k, p in per_bucket]}
    parity = buckets.overall(per_bucket, tol)
    parity.validation = {**(validation or {}), **(parity.validation or {})} if decided is None else parity.validation
    return parity, runner.signature, record


@dataclass
class ConvertOptions:
    """The choices of one conversion (``edgekit convert``'s flags, ``edgekit.convert``'s keywords)."""

    precision: str = "fp32"
    inputs: Path | None = None  # an .npz keyed by input name: the verification samples
    samples: int = 3  # generated samples when no inputs are given
    tolerance: dict | None = None  # atol, rtol, min_cosine
    simplify: bool = False
    force: bool = False  # replace a non-empty out folder edgekit did not write
    routes: tuple[str, ...] = ()  # force these routes (a route's name, tool or function) where they apply
    explain: bool = False  # locate the first divergent op of every artifact, not only of those failing parity
    # shape buckets: ["sequence=16,32,64"] or {"sequence": [16, 32, 64] | "auto"} (edgekit._buckets)
    shape_buckets: list[str] | dict | None = None
    data: str | Path | None = None  # real samples for the buckets: their lengths (auto) and verification

    @classmethod
    def of(cls, options: ConvertOptions | None, overrides: dict) -> ConvertOptions:
        """``options`` with keyword ``overrides``; an unknown keyword is a clear error."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise EdgekitError(f"unknown convert option(s) {bad}", f"the options are {sorted(known)}")
        if isinstance(overrides.get("routes"), str):
            overrides["routes"] = (overrides["routes"],)
        return replace(options or cls(), **overrides)


@dataclass
class _Run:
    """What every target of one conversion shares."""

    model: Model
    options: ConvertOptions
    tmp: Path
    ctx: ConvertContext
    data: list[dict]
    refs: list
    tol: dict
    stage: Stage
    buckets: buckets.BucketPlan | None = None


def convert(model: Model, targets: str | list[str], out: str | Path, options: ConvertOptions | None = None, *,
            stage: Stage | None = None, **overrides) -> ConvertResult:
    """Convert ``model`` to each target under ``out``, verify each artifact, write manifest.json.

    ``options`` (or keyword overrides: ``precision``, ``inputs``, ``samples``, ``tolerance``,
    ``simplify``, ``force``, ``routes``, ``explain``, ``shape_buckets``, ``data``) as in
    :class:`ConvertOptions`. With shape buckets, each artifact is verified at every bucket (real
    lengths of ``data``, or generated ones, padded to it). Converters' own output
    (C++ logs included) goes to ``out/logs/convert.log``; on failure nothing is left under
    ``out`` and the log's path is in the error.
    """
    opts = ConvertOptions.of(options, overrides)
    stage = stage or no_stage
    out = Path(out).resolve()  # backends resolve their paths; relative_to(tmp) needs the same form
    chosen = _check_request(model, parse_targets(targets), opts)
    check_out(out, opts.force)
    data, inputs_desc = _samples(model, opts.inputs, opts.samples)
    plan = _bucket_plan(model, opts)
    inputs_desc = plan.description if plan else inputs_desc
    fd, log_name = tempfile.mkstemp(prefix=f"edgekit-{out.name}-", suffix=".log")
    os.close(fd)
    log = Path(log_name)
    try:
        with atomic_folder(out) as tmp:
            run = _Run(model, opts, tmp, ConvertContext(workdir=tmp, simplify=opts.simplify), data, [],
                       verify.default_tolerance(opts.precision, opts.tolerance, model), stage, plan)
            run.ctx.buckets = plan.axes if plan else None
            run.ctx.example = data[0] if data else None
            with capture_output(log):
                artifacts = _convert_all(run, chosen)
            (tmp / "logs").mkdir()
            shutil.move(str(log), tmp / "logs" / "convert.log")
            (tmp / "logs" / "convert.log").chmod(0o644)
            report.write_manifest(tmp, model, artifacts, inputs_desc, run.ctx.notes + model.notes)
    except EdgekitError as exc:
        if log.exists() and log.stat().st_size:
            exc.fix = f"{exc.fix or ''}\n  converters' log: {log}".lstrip("\n ")
        else:
            log.unlink(missing_ok=True)
        raise
    final = [_moved(a, tmp, out) for a in artifacts]
    return ConvertResult(out, out / "manifest.json", final, model, run.ctx.notes + model.notes)


def _bucket_plan(model: Model, opts: ConvertOptions) -> buckets.BucketPlan | None:
    if opts.data is not None and not opts.shape_buckets:
        raise EdgekitError("convert reads --data only for shape buckets",
                           "add --shape-buckets (e.g. sequence=auto), or give verification inputs with --inputs")
    return buckets.plan(model, opts.shape_buckets, opts.data, max(opts.samples, 3))


def _check_request(model: Model, chosen: list[Target], opts: ConvertOptions) -> list[Target]:
    """Refuse, before any work, a precision or a route the chosen targets do not have."""
    bad = [t.name for t in chosen if opts.precision not in t.precisions]
    if opts.precision not in ("fp32", "fp16") or bad:
        raise EdgekitError(f"precision {opts.precision!r} is not available for {bad or 'convert'}",
                           "use --precision fp32 or fp16; int8 and smaller are `edgekit compress`")
    for t in chosen:
        check_path(model.format, t)
    for name in opts.routes:
        if not any(_matches(r, name) for t in chosen for r in t.routes_for(model, opts.precision)):
            have = "; ".join(f"{t.name}: {', '.join(r.name for r in t.routes_for(model, opts.precision))}"
                             for t in chosen)
            raise EdgekitError(f"no target here has a route {name!r} from this {model.format} model",
                               f"the routes that apply are ({have})")
    return chosen


def _matches(route: Route, name: str) -> bool:
    return name in (route.name, route.tool, route.fn)


def _convert_all(run: _Run, chosen: list[Target]) -> list[Artifact]:
    _check_backends(run.model, chosen, run.options.precision)
    with run.stage("running the source model"):
        run_source = verify.source_runner(run.model)
        run.refs = [run_source(s) for s in run.data]
        if run.buckets:
            run.buckets.refs = {k: [run_source(s) for s in v] for k, v in run.buckets.samples.items()}
    artifacts = [_one_target(run, t) for t in chosen]
    for scratch in (".onnx-fp32", ".keras-savedmodel", ".failed-routes"):
        shutil.rmtree(run.tmp / scratch, ignore_errors=True)
    if run.model.meta.get("tokenizer") is not None:
        run.model.meta["tokenizer"].save_pretrained(str(run.tmp / "tokenizer"))
    return artifacts


def _one_target(run: _Run, target: Target) -> Artifact:
    precision, model = run.options.precision, run.model
    sub = run.tmp / (target.name if precision == "fp32" else f"{target.name}-{precision}")
    sub.mkdir()
    run.ctx.used_onnx = False
    checked: list[tuple[Parity, Signature, dict | None]] = []  # one per artifact a route made, in order

    def check(path: Path) -> str:
        with run.stage(f"verifying {target.name}"):
            checked.append(_verify_buckets(model, target, path, run.buckets, run.tol) if run.buckets else
                           _verify(model, target, path, run.data, run.refs, run.tol))
        return checked[-1][0].status

    with run.stage(f"converting to {target.name}"):
        t0 = time.perf_counter()
        path, notes, attempts = convert_by_routes(model, target, sub, precision, run.ctx,
                                                  check=check, only=run.options.routes)
        seconds = time.perf_counter() - t0
    made = [a for a in attempts if a["error"] is None]
    parity, signature, bucketed = checked[next(i for i, a in enumerate(made) if a.get("kept"))]
    lineage = [f"{model.format}:{model.sha256 or model.spec}"]
    if run.ctx.used_onnx:
        lineage.append(f"onnx:opset{run.ctx.opset}")
    lineage.append(f"{target.name}:{precision}")
    # locate runs the run's shape (the largest bucket): the signature taking it, in a .tflite with one per bucket
    _explain(run, target, path, parity, next(a["route"] for a in made if a.get("kept")))
    return Artifact(target=target.name, precision=precision, path=path, signature=signature,
                    sha256=sha256_of(sub), size_bytes=size_of(sub), convert_seconds=seconds,
                    tool_versions=tool_versions(target.name), parity=parity, notes=notes, lineage=lineage,
                    attempts=attempts, buckets=bucketed)


def _explain(run: _Run, target: Target, path: Path, parity: Parity, route: str) -> None:
    """``parity.first_divergence`` (steps/locate.py) where the artifact ran and failed (wrong values or
    an output of the wrong shape), or with ``explain``."""
    if parity.status == "not_run" or (parity.status == "pass" and not run.options.explain):
        return
    from . import locate

    with run.stage(f"locating the drift in {target.name}"):
        parity.first_divergence = locate.for_artifact(run.model, run.ctx, target.name, path, run.data, run.tol, route)


def _routes(model: Model, target: Target, precision: str, only: tuple[str, ...]) -> list[Route]:
    routes = [r for r in target.routes_for(model, precision) if _importable(_route_needs(model, r))]
    if only and any(_matches(r, n) for r in routes for n in only):
        routes = [r for r in routes if any(_matches(r, n) for n in only)]
    return routes


def convert_by_routes(model: Model, target: Target, dest: Path, precision: str, ctx: ConvertContext,
                      check: Callable[[Path], str] | None = None,
                      only: tuple[str, ...] = ()) -> tuple[Path, list[str], list[dict]]:
    """Walk the target's routes that apply to this model (``only`` those named, where any is), in
    order, until one makes an artifact that passes ``check`` (parity: "pass", "fail" or "not_run").

    A route whose artifact fails parity is set aside and the next is tried; when every route
    made an artifact and all failed, the first route's is the one kept (its parity says fail).
    Returns the artifact, its notes, and every attempt (route, seconds, error, parity)."""
    from .._registry import backend_module

    module = backend_module(target, "convert")
    attempts: list[dict] = []
    first_error: Exception | None = None
    failed: list[tuple[Path, Path, list[str]]] = []  # artifacts that failed parity, set aside
    for route in _routes(model, target, precision, only):
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
        attempt = {"route": route.name, "seconds": round(time.perf_counter() - t0, 3), "error": None}
        attempts.append(attempt)
        attempt["parity"] = check(path) if check else None
        if attempt["parity"] != "fail":
            attempt["kept"] = True
            return path, _route_notes(notes, attempts), attempts
        failed.append((path, _set_aside(dest, ctx, len(attempts)), notes, attempt))
    if failed:  # every artifact made failed parity: keep the first (the preferred route's)
        path, kept, notes, attempt = failed[0]
        attempt["kept"] = True
        clear(dest)
        for item in kept.iterdir():
            shutil.move(str(item), dest / item.name)
        return path, _route_notes(notes, attempts), attempts
    if first_error is None:
        raise EdgekitError(f"no route to {target.name} can run here",
                           f"install a converter for it: pip install 'edgekit[{target.extra}]'")
    if isinstance(first_error, EdgekitError) and len(attempts) > 1:
        first_error.fix = (f"{first_error.fix or ''}\n  every route failed: "
                           + "; ".join(f"{a['route']} ({(a['error'] or 'parity ' + str(a.get('parity')))[:120]})"
                                       for a in attempts)).lstrip("\n ")
    raise first_error


def _set_aside(dest: Path, ctx: ConvertContext, n: int) -> Path:
    """Move a failed route's artifact out of ``dest`` (kept in case no route passes)."""
    kept = (ctx.workdir or dest.parent) / ".failed-routes" / f"{dest.name}-{n}"
    kept.mkdir(parents=True)
    for item in list(dest.iterdir()):
        shutil.move(str(item), kept / item.name)
    return kept


def _route_notes(notes: list[str], attempts: list[dict]) -> list[str]:
    if len(attempts) < 2:
        return notes
    why = "; ".join(f"{a['route']}: {(a['error'] or 'parity ' + str(a['parity']))[:200]}" for a in attempts[:-1])
    return [*notes, f"route {attempts[-1]['route']} after {len(attempts) - 1} other(s): {why}"]


def _moved(a: Artifact, tmp: Path, out: Path) -> Artifact:
    a.path = out / a.path.relative_to(tmp)
    return a
