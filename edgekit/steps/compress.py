"""Compress: quantize a model with each target's own quantizer, judged on quality, size and speed.

Layout of ``out``: ``fp32/`` (the verified fp32 conversion and its manifest), one
folder per variant (``onnx-static-int8/``...), ``report.json``, ``report.html``,
``report.png`` and ``logs/``. Written to a temporary folder and moved into place on success
(``_atomic.atomic_folder``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._atomic import atomic_folder, check_out
from .._capture import capture_output
from .._cpu import for_device, openvino_precision
from .._cpu import host as host_cpu
from .._datasets import Data, load_data
from .._errors import EdgekitError
from .._inputs import size_axes
from .._progress import Progress
from .._registry import TARGETS, backend_module, parse_targets, runner_for
from .._types import Model, size_of
from ..backends._common import ConvertContext
from ..schema import check
from . import export, profile, report
from .evaluate import Quality, evaluate, run_source
from .quantize import QuantOptions, RepairJob, check_support, parse_modes, quantize_with_repair
from .verify import adapt_feeds

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


@dataclass
class CompressOptions:
    """Every choice of a compress run besides the model, its targets and modes, the data and ``out``."""

    max_drop: float = 1.0  # largest quality drop allowed, in points
    calibration: int = 300  # calibration samples (the last quarter, 8 to 100, tune the repair)
    evaluation: int = 500  # held-out evaluation samples
    keep_float: list[str] = field(default_factory=list)  # layer (node) names kept in float
    calibration_method: str = "minmax"  # minmax | entropy | percentile (ONNX Runtime)
    threads: str | list | None = None  # thread counts for latency ("1,all" by default)
    runs: int = 50  # timed runs per latency figure
    int8_io: bool = False  # TFLite full-integer models with int8 inputs and outputs
    keep_names: bool = False  # LiteRT: keep intermediate tensor names
    skip_unsupported: bool = False  # run the (target, mode) pairs that exist; report the others as skipped
    device: str | None = None  # a profile in targets/: quantizer settings for its CPU (None: this host)
    force: bool = False  # replace a non-empty out folder edgekit did not write
    plan: Any = None  # a steps.student.StudentPlan: prune and/or distill a student first
    train_data: Any = None  # the student's training data (default: data minus its held-out split)
    locate: bool = True  # locate each quantized or failing variant's drift (steps/locate.py)
    shape_buckets: Any = None  # ["sequence=16,32"] or {"sequence": [16, 32] | "auto"}: see edgekit._buckets

    @classmethod
    def from_kwargs(cls, options: dict) -> CompressOptions:
        """The options named as keywords (``edgekit.compress(..., max_drop=0.5)``); an unknown name is an error."""
        options = dict(options)
        if "target_device" in options:  # the name before "device" meant a profile everywhere
            warnings.warn("compress: target_device= is deprecated, use device= (a profile in targets/)",
                          FutureWarning, stacklevel=3)
            options.setdefault("device", options.pop("target_device"))
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise EdgekitError(f"unknown compress option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                               f"use some of: {', '.join(names)}")
        opts = cls(**options)
        opts.keep_float = list(opts.keep_float or [])
        return opts


@dataclass
class CompressResult:
    out: Path
    report_path: Path
    variants: list[dict]
    baselines: dict[str, dict]
    notes: list[str] = field(default_factory=list)

    @functools.cached_property
    def report(self) -> dict:
        return json.loads(self.report_path.read_text())


@dataclass
class RunContext:
    """One compress run as its stages share it: where it writes, its data splits, the source's
    reference outputs and values, the fp32 baselines, and how latency is measured."""

    tmp: Path  # the run's folder; it replaces ``out`` on success
    options: CompressOptions
    cpu: Any  # the _cpu.CpuInfo the variants are made for
    data: Data  # calibration and held-out evaluation splits
    calib: list[dict]  # calibration samples (the tuning ones held back)
    tune: list[dict]  # tuning samples: the repair is judged on them
    tune_labels: Any
    counts: list[int]  # thread counts for latency
    progress: Progress
    quant: QuantOptions | None = None  # the quantizers' settings
    convert: ConvertContext | None = None  # for conversions of variants (fp16)
    eval_refs: list = field(default_factory=list)  # the source's outputs on the evaluation split
    tune_refs: list = field(default_factory=list)  # ... and on the tuning split
    source_q: float = 0.0  # the source's value on the evaluation split (accuracy, or cosine x 100)
    tune_base: float = 0.0  # the value a variant's tuning value is compared with
    baselines: dict[str, dict] = field(default_factory=dict)  # per target: the fp32 artifact's entry
    buckets: dict | None = None  # shape buckets (the fp32 manifest's axes, pad): evaluated at real lengths
    eval_real: list = field(default_factory=list)  # with buckets: the evaluation samples at their real lengths

    @property
    def stage(self):
        return self.progress.stage

    def bucketed(self, model: Model, target: str, path: Path, fp32: bool, threads: int | None = None):
        from .buckets import BucketedRunner

        runner = runner_for(TARGETS[target], path, source=model.signature,
                            **({"threads": threads} if threads else {}), **_runner_kwargs(target, fp32, self.cpu))
        return BucketedRunner(model, runner, self.buckets["axes"], self.buckets["pad"])

    @property
    def feeds(self) -> dict:
        """The sample latency is measured on."""
        return self.data.evaluation.samples[0]

    def quality(self, model: Model, target: str, path: Path, fp32: bool) -> Quality | None:
        """``path``'s quality on the evaluation split; None where this host cannot run it."""
        if TARGETS[target].cannot_run():
            return None
        if self.buckets:  # each sample at its real length, padded to its bucket
            from .evaluate import score

            run = self.bucketed(model, target, path, fp32)
            return score(model, self.eval_refs, [run.run(s) for s in self.eval_real], self.data.evaluation.labels)
        return evaluate(model, target, path, self.data.evaluation.samples, self.eval_refs, self.data.evaluation.labels,
                        **_runner_kwargs(target, fp32, self.cpu))

    def latency(self, model: Model, target: str, path: Path, fp32: bool) -> dict:
        if TARGETS[target].cannot_run():
            return {}
        runs = self.options.runs
        if self.buckets:  # over the evaluation samples' real lengths (the first ``runs`` x 2)
            from .buckets import measure

            return {str(t): measure(self.bucketed(model, target, path, fp32, t), self.eval_real[:2 * runs], t)
                    for t in self.counts}
        return {str(t): profile.measure(target, path, self.feeds, model.signature, t, runs=runs,
                                        warmup=max(3, runs // 10), **_runner_kwargs(target, fp32, self.cpu)).to_dict()
                for t in self.counts}


def _kind(model: Model) -> str:
    return "transformer" if model.format == "hf" or "attention_mask" in [s.name for s in model.signature.inputs] else "conv"


def _runner_kwargs(target: str, fp32: bool, cpu=None) -> dict:
    """OpenVINO: true f32 for the fp32 baseline; for variants the precision the device's CPU runs
    by default (bf16 only with AMX or AVX512_BF16), as far as this host can run it."""
    if not TARGETS[target].precision_hint:
        return {}
    return {"precision_hint": "f32" if fp32 else openvino_precision(cpu or host_cpu())[0]}


def _offhost_quality(run: RunContext, model: Model, target: str, path: Path, mode: str
                     ) -> tuple[Quality | None, bool, list[str]]:
    """The quality of a variant whose runtime cannot run here (Core ML off macOS), whether it is an
    estimate, and how it was had: the target folder's ``estimate.outputs`` where it has one."""
    import importlib.util

    spec = TARGETS[target]
    why = spec.cannot_run()
    if importlib.util.find_spec(f"edgekit.backends.{spec.package}.estimate") is None:
        return None, False, [f"quality not measured: {why}"]
    outputs, notes = backend_module(spec, "estimate").outputs(model, path, mode, run.data.evaluation.samples,
                                                               run_source)
    if outputs is None:
        return None, False, notes
    from .evaluate import score

    return score(model, run.eval_refs, outputs, run.data.evaluation.labels), True, notes


def _quality_entry(q: Quality | None, baseline: float) -> dict:
    if q is None:
        return {"value": None, "drop": None, "agreement": None}
    return {"value": round(q.value, 4), "drop": round(baseline - q.value, 4), "agreement": q.to_dict()}


def compress(model: Model, *, targets: str | list[str], modes: str | list[str] | None, data, out: str | Path,
             options: CompressOptions | None = None, progress: Progress | None = None) -> CompressResult:
    """Quantize (``modes``) and/or shrink (``options.plan``: a StudentPlan to prune and distill)
    ``model``, convert every result to ``targets``, and evaluate it against the fp32 source on
    held-out ``data``.

    Quantizer settings are chosen for the CPU of ``options.device`` (a profile in ``targets/``),
    else for this host (``EDGEKIT_CPU_FEATURES`` overrides its detection)."""
    opts, progress = options or CompressOptions(), progress or Progress()
    size_axes(model)  # every dynamic axis needs a size before data is read at it
    _largest_bucket_dims(model, opts)
    cpu = for_device(opts.device)
    out = Path(out).resolve()  # backends resolve their paths; relative_to(tmp) needs the same form
    chosen, todo, skipped = _pairs(targets, modes, opts)
    check_out(out, opts.force)
    with progress.stage("loading data"):
        ds = load_data(data, model, calibration=opts.calibration, evaluation=opts.evaluation)
        # training sees everything but the held-out split (same seed and size: the same evaluation samples)
        train_ds = load_data(opts.train_data or data, model, calibration=10**9,
                             evaluation=opts.evaluation) if opts.plan else None
    student, student_info = _train_student(model, opts.plan, train_ds, progress)
    with atomic_folder(out) as tmp:
        (tmp / "logs").mkdir()
        run = _context(model, ds, tmp, opts, progress, cpu)
        with run.stage("converting the fp32 baselines"):
            fp32 = export.convert(model, chosen, tmp / "fp32", stage=run.stage, **_bucket_args(opts, data))
            _use_buckets(run, model, fp32.artifacts)
        with capture_output(tmp / "logs" / "compress.log"):
            _references(run, model)
            _measure_baselines(run, model, fp32.artifacts)
            sources, work, variants = fp32.artifacts, model, []
            if student is not None:
                sources, work, variants = _student_variants(run, student, student_info, chosen, bool(todo))
            run.convert = ConvertContext(workdir=tmp, onnx_path=next((a.path for a in sources if a.target == "onnx"),
                                                                     None))
            for art in sources:
                for mode in (m for t, m in todo if t == art.target):
                    with run.stage(f"{art.target}: {mode}"), _explained(art.target, mode):
                        variants.append(_variant(run, work, art, mode))
        _write_report(run, model, variants, {"skipped": skipped, "student": student_info})
    return CompressResult(out, out / "report.json", variants, run.baselines)


def _bucket_args(opts: CompressOptions, data) -> dict:
    """export.convert's shape-bucket keywords: the buckets, and the data when it is a file."""
    if not opts.shape_buckets:
        return {}
    return {"shape_buckets": opts.shape_buckets, "data": data if isinstance(data, str | Path) else None}


def _largest_bucket_dims(model: Model, opts: CompressOptions) -> None:
    """With shape buckets, a bucketed axis's size is its largest bucket: the data is read (and cut)
    at it, and the fp32 baselines and the tuning samples run at it, as a device runs what is longest."""
    from .._buckets import is_auto, parse_buckets

    for axis, sizes in parse_buckets(opts.shape_buckets).items():
        if not is_auto(sizes) and model.dims.get(axis) != sizes[-1]:
            model.notes.append(f"{axis} set to {sizes[-1]}, the largest shape bucket (was {model.dims.get(axis)})")
            model.dims[axis] = sizes[-1]
            model.meta.setdefault("dim_sources", {})[axis] = "the largest --shape-buckets size"


def _use_buckets(run: RunContext, model: Model, artifacts) -> None:
    """With shape buckets: evaluation samples at their real lengths (the source's references too,
    unpadded), each padded to its bucket when an artifact runs it."""
    record = next((a.buckets for a in artifacts if a.buckets), None)
    if record is None:
        return
    from .buckets import real_lengths

    run.buckets = {"axes": record["axes"], "pad": record["pad"]}
    run.eval_real = real_lengths(model, run.data.evaluation.samples, record["axes"])


def _pairs(targets, modes, opts: CompressOptions) -> tuple[list[str], list[tuple[str, str]], list[dict]]:
    """The targets to convert to, the (target, mode) pairs to make, and those skipped (with why)."""
    chosen = [t.name for t in parse_targets(targets)]
    pairs = parse_modes(modes, chosen) if modes else []
    if not pairs and opts.plan is None:
        raise EdgekitError("nothing to do: no --quantize mode, no --prune, no --distill", "give at least one")
    skipped = check_support(pairs, opts.skip_unsupported)
    todo = [p for p in pairs if p not in {(r["target"], r["mode"]) for r in skipped}]
    if opts.plan is None:
        chosen = [t for t in chosen if any(t == pt for pt, _ in todo)]
    if opts.calibration_method not in CALIBRATION_METHODS:
        raise EdgekitError(f"unknown calibration method {opts.calibration_method!r}",
                           "use minmax, entropy or percentile")
    return chosen, todo, skipped


def _train_student(model: Model, plan, train_ds: Data | None, progress: Progress) -> tuple[Model | None, dict | None]:
    if plan is None:
        return None, None
    from .student import train_student

    with progress.stage("building and training the student"):
        student, info = train_student(model, plan, train_ds.calibration.samples, train_ds.calibration.labels,
                                      train_ds.description, progress.training)
        info["training_data"] = f"{len(train_ds.calibration)} samples: every one outside the held-out split"
    return student, info


def _context(model: Model, ds: Data, tmp: Path, opts: CompressOptions, progress: Progress, cpu) -> RunContext:
    """The run's splits: the last calibration samples (a quarter, 8 to 100) tune the repair."""
    n_tune = min(100, max(8, len(ds.calibration) // 4))
    labels = ds.calibration.labels
    quant = QuantOptions(keep_float=list(opts.keep_float or []), calibration_method=opts.calibration_method,
                         transformer=_kind(model) == "transformer", int8_io=opts.int8_io, keep_names=opts.keep_names,
                         cpu=cpu)
    return RunContext(tmp=tmp, options=opts, cpu=cpu, data=ds, calib=ds.calibration.samples[:-n_tune],
                      tune=ds.calibration.samples[-n_tune:], tune_labels=labels[-n_tune:] if labels is not None else None,
                      counts=profile.thread_counts(opts.threads), progress=progress, quant=quant)


def _references(run: RunContext, model: Model) -> None:
    """The source's outputs on the evaluation and tuning splits, and its values there."""
    with run.stage("running the source on the evaluation and tuning data"):
        run.eval_refs = run_source(model, run.eval_real or run.data.evaluation.samples)
        run.tune_refs = run_source(model, run.tune)
    run.source_q = _source_value(model, run.eval_refs, run.data.evaluation.labels)
    run.tune_base = _source_value(model, run.tune_refs, run.tune_labels)


def _measure_baselines(run: RunContext, model: Model, artifacts) -> None:
    for art in artifacts:
        with run.stage(f"measuring the fp32 {art.target} baseline"):
            q = run.quality(model, art.target, art.path, fp32=True)
            run.baselines[art.target] = {"path": str(art.path.relative_to(run.tmp)), "size_bytes": art.size_bytes,
                                         **_quality_entry(q, run.source_q),
                                         "latency_ms": run.latency(model, art.target, art.path, fp32=True)}


@contextlib.contextmanager
def _explained(target: str, mode: str):
    """A quantizer's own exception as an EdgekitError naming the variant (EDGEKIT_DEBUG: as it is)."""
    try:
        yield
    except EdgekitError:
        raise
    except Exception as exc:
        if os.environ.get("EDGEKIT_DEBUG"):
            raise
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise EdgekitError(f"{target} {mode}: quantization failed: {type(exc).__name__}: {first[:400]}",
                           "rerun with --debug for the traceback; try another mode for this target") from exc


def _write_report(run: RunContext, model: Model, variants: list[dict], extra: dict) -> None:
    """report.json (checked against its schema), report.png and report.html, into the run's folder."""
    for scratch in (".onnx-fp32", ".keras-savedmodel"):
        shutil.rmtree(run.tmp / scratch, ignore_errors=True)
    opts = run.options
    doc = report.compress_report(model, run.data.description, run.source_q, opts.max_drop, run.baselines, variants,
                                 run.counts)
    doc["skipped"] = extra["skipped"]
    doc["target_cpu"] = {**run.cpu.to_dict(), **({"device": opts.device} if opts.device else {})}
    if extra.get("student"):
        doc["student"] = extra["student"]
    (run.tmp / "report.json").write_text(json.dumps(check("compress-report", doc), indent=2) + "\n")
    from ..present.compress_html import render_compress_html
    from ..present.plots import compress_plot

    compress_plot(doc, run.tmp / "report.png")
    render_compress_html(doc, run.tmp / "report.html")


def score_of(model: Model, samples, refs, labels) -> float:
    """The value of ``model`` (a student) against the teacher's outputs ``refs``."""
    from .evaluate import score

    return score(model, refs, run_source(model, samples), labels).value


def _source_value(model: Model, refs, labels) -> float:
    from .evaluate import score

    return score(model, refs, refs, labels).value


def _entry(run: RunContext, target: str, mode: str, path: Path, size: int, q: Quality | None) -> dict:
    """What every variant's entry starts with: where it is, its size and quality against the baseline."""
    base = run.baselines[target]
    return {"target": target, "mode": mode, "path": str(path.relative_to(run.tmp)), "size_bytes": size,
            "baseline_size_bytes": base["size_bytes"], "size_ratio": round(base["size_bytes"] / size, 3),
            "metric": q.metric if q else None, "baseline_value": round(run.source_q, 4),
            **_quality_entry(q, run.source_q)}


def _judge(run: RunContext, entry: dict, q: Quality | None) -> float | None:
    """Set the entry's status and 1-thread speedup over its fp32 baseline; return the speedup."""
    entry["status"] = "not_run" if q is None else ("pass" if entry["drop"] <= run.options.max_drop else "fail")
    one = str(min(run.counts))
    base = run.baselines[entry["target"]]
    if not (entry["latency_ms"] and base["latency_ms"]):
        return None
    speedup = base["latency_ms"][one]["p50"] / entry["latency_ms"][one]["p50"]
    entry["speedup_1t"] = round(speedup, 3)
    return speedup


def _student_variants(run: RunContext, student: Model, info: dict, chosen: list[str], quantize_too: bool):
    """Convert the student and measure it; the student's artifacts and model are the sources of
    any quantization that follows, judged against the student, not the teacher."""
    with run.stage("converting the student"):
        sfp32 = export.convert(student, chosen, run.tmp / "student", stage=run.stage)
    label = "+".join(k for k in ("prune", "student") if info.get(k)) or "distilled"
    variants = [_student_entry(run, student, info, art, label) for art in sfp32.artifacts]
    if quantize_too:
        run.tune_base = score_of(student, run.tune, run.tune_refs, run.tune_labels)
    return sfp32.artifacts, student, variants


def _student_entry(run: RunContext, student: Model, info: dict, art, label: str) -> dict:
    q = run.quality(student, art.target, art.path, fp32=True)
    entry = {**_entry(run, art.target, label, art.path, art.size_bytes, q),
             "latency_ms": run.latency(student, art.target, art.path, fp32=True), "layers_kept_float": [],
             "params": info["params_student"], "baseline_params": info["params_teacher"],
             "notes": [f"fp32 {label} of the source, trained against it"]}
    if isinstance(info.get("prune"), dict) and info["prune"].get("note"):
        entry["notes"].append(info["prune"]["note"])
    _judge(run, entry, q)
    return entry


def _quantize(run: RunContext, model: Model, art, mode: str, dest: Path):
    """``art`` quantized to ``mode`` in ``dest`` by its target's quantizer, repaired if over --max-drop."""
    target = art.target
    here = not TARGETS[target].cannot_run()
    runtime_sig = runner_for(TARGETS[target], art.path, source=model.signature).signature if here else None
    adapt = (lambda s: adapt_feeds(s, model.signature, runtime_sig)) if runtime_sig else (lambda s: s)

    def value_of(path: Path) -> float:
        return evaluate(model, target, path, run.tune, run.tune_refs, run.tune_labels,
                        **_runner_kwargs(target, False, run.cpu)).value

    def ov_validate(compiled, items) -> float:
        from .evaluate import score

        outs = [[r[o] for o in compiled.outputs] for r in (compiled(item) for item in items)]
        labels = run.tune_labels[:len(outs)] if run.tune_labels is not None else None
        return score(model, run.tune_refs[:len(outs)], outs, labels).value

    if run.buckets and target == "tflite":  # one signature per bucket: calibration samples per signature
        calib = _calibration_per_signature(run, model, art.path)
    else:
        calib = [adapt(s) for s in run.calib]
    job = RepairJob(src=art.path, dest_dir=dest, mode=mode, calib=calib,
                    tune=[adapt(s) for s in run.tune], value_of=value_of, baseline=run.tune_base,
                    max_drop=run.options.max_drop)
    result, _ = quantize_with_repair(target, job, replace(run.quant, model=model), ov_validate=ov_validate)
    return result


def _calibration_per_signature(run: RunContext, model: Model, path: Path) -> dict[str, list[dict]]:
    """Signature key -> calibration samples at real lengths padded to that bucket, fed as the
    signature takes them."""
    from .buckets import per_signature, real_lengths

    axes = run.buckets["axes"]
    rows = real_lengths(model, run.calib, axes)
    by_key = per_signature(model, rows, axes, run.buckets["pad"], 8)  # a bucket with fewer real rows: topped up
    runner = runner_for(TARGETS["tflite"], path, source=model.signature)
    out = {}
    for k, samples in by_key.items():
        runner.use(k)
        out[k] = [adapt_feeds(s, model.signature, runner.signature) for s in samples]
    return out


def _variant(run: RunContext, model: Model, art, mode: str) -> dict:
    target = art.target
    spec = TARGETS[target]
    dest = run.tmp / f"{target}-{mode}"
    dest.mkdir()
    kept: list[str] = []
    if mode == "fp16":
        path, notes, _ = export.convert_by_routes(model, spec, dest, "fp16", run.convert)
    else:
        result = _quantize(run, model, art, mode, dest)
        path, notes, kept = result.path, result.notes, result.kept_float
    estimated = None
    if spec.cannot_run():
        q, estimated, more = _offhost_quality(run, model, target, path, mode)
        notes = [*notes, *more]
    else:
        q = run.quality(model, target, path, fp32=False)
    if spec.precision_hint:
        notes = [*notes, openvino_precision(run.cpu)[1]]
    entry = {**_entry(run, target, mode, path, size_of(dest), q), "latency_ms": run.latency(model, target, path, False),
             "layers_kept_float": kept, "notes": list(notes)}
    if spec.cannot_run():  # validated here (it loads; inputs and outputs right), run elsewhere
        entry["quality_estimated"] = estimated
        runner = runner_for(spec, path)
        entry["validation"] = runner.validate(model.signature) if hasattr(runner, "validate") else None
    speedup = _judge(run, entry, q)
    entry["drift"] = _drift(run, model, target, path, entry)
    if speedup is not None and speedup <= 1.0 and mode != "fp16":
        reasons = spec.slow_reasons
        why = reasons.get((mode, _kind(model))) or reasons.get((mode, None))
        entry["notes"].append(f"not faster than fp32 in {target} on this machine ({speedup:.2f}x at "
                              f"{min(run.counts)} thread)" + (f": {why}" if why else ""))
    return entry


def _drift(run: RunContext, model: Model, target: str, path: Path, entry: dict) -> dict | None:
    """Where a variant drifts from the fp32 ONNX graph (steps/locate.py): the first divergent op of a
    failing variant, and for a quantized one the layers that add the most error (what ``--keep-float``
    takes). Not located: fp16 variants that pass, and what this host cannot run (Core ML) or locate."""
    from . import locate
    from .verify import default_tolerance

    quantized = entry["mode"] != "fp16"
    if not (quantized or entry["status"] == "fail") or TARGETS[target].cannot_run() \
            or target not in locate.LOCATABLE or not run.options.locate:
        return None
    tol = default_tolerance("int8" if quantized else entry["mode"])
    with run.stage(f"{target}: {entry['mode']}: locating the drift"):
        return locate.for_artifact(model, run.convert, target, path, run.data.evaluation.samples, tol,
                                   layers=quantized)


def compress_recipe(recipe, *, out: str | Path | None = None, force: bool = False,
                    progress: Progress | None = None) -> CompressResult:
    """Run a resolved recipe (``_recipe.resolve_compress``): load its model, build its student
    plan, and compress. What `edgekit compress` and ``edgekit.compress(recipe=...)`` both call."""
    from .ingest import load

    progress = progress or Progress()
    rc, ms = recipe.compress, recipe.model
    with progress.stage("loading the model"):
        model = load(ms.source, inputs=ms.inputs or None, dims=ms.dims, task=ms.task, trust_pickle=ms.trust_pickle,
                     trust_remote_code=ms.trust_remote_code)
    plan = _student_plan(rc)
    if rc.train.backend == "ray" and (plan is None or not plan.distill):
        raise EdgekitError("--backend ray runs a training job, and this run trains nothing",
                           "add --student or --prune (with distillation), or drop --backend ray")
    options = CompressOptions(max_drop=rc.max_drop, calibration=rc.calibration_samples, evaluation=rc.eval_samples,
                              keep_float=list(rc.keep_float), calibration_method=rc.calibration_method,
                              threads=rc.threads, runs=rc.runs, int8_io=rc.int8_io, keep_names=rc.keep_names,
                              skip_unsupported=rc.skip_unsupported, device=rc.device, force=force, plan=plan,
                              train_data=rc.train_data, shape_buckets=ms.shape_buckets)
    return compress(model, targets=rc.targets, modes=rc.quantize or None, data=rc.data,
                    out=out or Path("edgekit-out") / f"{model.name}-compressed", options=options, progress=progress)


def _student_plan(rc):
    """The recipe's prune/student/distill choices as a StudentPlan (None: nothing to train)."""
    if not (rc.prune or rc.student or rc.distill):
        return None
    from .student import StudentPlan
    from .train import TrainConfig

    tr = rc.train
    return StudentPlan(prune=rc.prune, student=rc.student, distill=rc.distill is not False, loss=rc.distill_loss,
                       batch_size=tr.batch_size,
                       train=TrainConfig(steps=tr.steps, lr=tr.lr, seed=tr.seed, checkpoint_every=tr.checkpoint_every,
                                         device=tr.device, tracking_uri=tr.tracking_uri, backend=tr.backend,
                                         address=tr.address, workers=tr.workers, storage=tr.storage,
                                         time_budget_s=tr.minutes * 60 if tr.minutes else None))
