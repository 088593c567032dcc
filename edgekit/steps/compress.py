"""Compress: quantize a model with each target's own quantizer, judged on quality, size and speed.

Layout of ``out``: ``fp32/`` (the verified fp32 conversion and its manifest), one
folder per variant (``onnx-static-int8/``...), ``report.json``, ``report.html``,
``report.png`` and ``logs/``. Written to a temporary folder and moved into place on success.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from .._capture import capture_output
from .._cpu import for_device, openvino_precision
from .._cpu import host as host_cpu
from .._datasets import load_data
from .._errors import EdgekitError
from .._registry import TARGETS, backend_module, parse_targets, runner_for
from .._types import Model, size_of
from ..backends._common import ConvertContext
from ..schema import check
from . import export, profile, report
from .evaluate import Quality, evaluate, run_source
from .quantize import QuantOptions, check_support, parse_modes, quantize_with_repair
from .verify import adapt_feeds


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


def _kind(model: Model) -> str:
    return "transformer" if model.format == "hf" or "attention_mask" in [s.name for s in model.signature.inputs] else "conv"


def _runner_kwargs(target: str, fp32: bool, cpu=None) -> dict:
    """OpenVINO: true f32 for the fp32 baseline; for variants the precision the device's CPU runs
    by default (bf16 only with AMX or AVX512_BF16), as far as this host can run it."""
    if not TARGETS[target].precision_hint:
        return {}
    return {"precision_hint": "f32" if fp32 else openvino_precision(cpu or host_cpu())[0]}


def _latency(model: Model, target: str, path: Path, feeds: dict, threads: list[int], runs: int, fp32: bool,
             cpu=None) -> dict:
    if TARGETS[target].cannot_run():
        return {}
    return {str(t): profile.measure(target, path, feeds, model.signature, t, runs=runs, warmup=max(3, runs // 10),
                                    **_runner_kwargs(target, fp32, cpu)).to_dict() for t in threads}


def _offhost_quality(model: Model, target: str, path: Path, mode: str, ds, eval_refs
                     ) -> tuple[Quality | None, bool, list[str]]:
    """The quality of a variant whose runtime cannot run here (Core ML off macOS), whether it is an
    estimate, and how it was had: the target folder's ``estimate.outputs`` where it has one."""
    import importlib.util

    spec = TARGETS[target]
    why = spec.cannot_run()
    if importlib.util.find_spec(f"edgekit.backends.{spec.package}.estimate") is None:
        return None, False, [f"quality not measured: {why}"]
    outputs, notes = backend_module(spec, "estimate").outputs(model, path, mode, ds.evaluation.samples,
                                                               run_source)
    if outputs is None:
        return None, False, notes
    from .evaluate import score

    return score(model, eval_refs, outputs, ds.evaluation.labels), True, notes


def _quality_entry(q: Quality | None, baseline: float) -> dict:
    if q is None:
        return {"value": None, "drop": None, "agreement": None}
    return {"value": round(q.value, 4), "drop": round(baseline - q.value, 4), "agreement": q.to_dict()}


def compress(model: Model, *, targets: str | list[str], modes: str | list[str] | None, data, out: str | Path,
             max_drop: float = 1.0, calibration: int = 300, evaluation: int = 500, keep_float: list[str] | None = None,
             calibration_method: str = "minmax", threads: str | list | None = None, runs: int = 50,
             int8_io: bool = False, keep_names: bool = False, skip_unsupported: bool = False, plan=None, train_data=None,
             force: bool = False, step=None, progress=None, target_device: str | None = None) -> CompressResult:
    """Quantize (``modes``) and/or shrink (``plan``: a StudentPlan to prune and distill) ``model``,
    convert every result to ``targets``, and evaluate it against the fp32 source on held-out data.

    Quantizer settings are chosen for the CPU of ``target_device`` (a profile in ``targets/``),
    else for this host (``EDGEKIT_CPU_FEATURES`` overrides its detection)."""
    cpu = for_device(target_device)
    step = step or (lambda _text: contextlib.nullcontext())
    out = Path(out).resolve()  # backends resolve their paths; relative_to(tmp) needs the same form
    chosen = [t.name for t in parse_targets(targets)]
    pairs = parse_modes(modes, chosen) if modes else []
    if not pairs and plan is None:
        raise EdgekitError("nothing to do: no --quantize mode, no --prune, no --distill", "give at least one")
    skipped = check_support(pairs, skip_unsupported)
    todo = [p for p in pairs if p not in {(r["target"], r["mode"]) for r in skipped}]
    if plan is None:
        chosen = [t for t in chosen if any(t == pt for pt, _ in todo)]
    if calibration_method not in ("minmax", "entropy", "percentile"):
        raise EdgekitError(f"unknown calibration method {calibration_method!r}", "use minmax, entropy or percentile")
    export._prepare_out(out, force)
    with step("loading data"):
        ds = load_data(data, model, calibration=calibration, evaluation=evaluation)
        # training sees everything but the held-out split (same seed and size: the same evaluation samples)
        train_ds = load_data(train_data or data, model, calibration=10**9, evaluation=evaluation) if plan else None
    student, student_info = None, None
    if plan is not None:
        from .student import train_student

        with step("building and training the student"):
            student, student_info = train_student(model, plan, train_ds.calibration.samples,
                                                  train_ds.calibration.labels, train_ds.description, progress)
            student_info["training_data"] = f"{len(train_ds.calibration)} samples: every one outside the held-out split"
    n_tune = min(100, max(8, len(ds.calibration) // 4))
    calib, tune = ds.calibration.samples[:-n_tune], ds.calibration.samples[-n_tune:]
    tune_labels = ds.calibration.labels[-n_tune:] if ds.calibration.labels is not None else None
    counts = profile.thread_counts(threads)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    (tmp / "logs").mkdir()
    log = tmp / "logs" / "compress.log"
    try:
        with step("converting the fp32 baselines"):
            fp32 = export.convert(model, chosen, tmp / "fp32", step=step)
        with capture_output(log):
            with step("running the source on the evaluation and tuning data"):
                eval_refs = run_source(model, ds.evaluation.samples)
                tune_refs = run_source(model, tune)
            source_q = _source_value(model, eval_refs, ds.evaluation.labels)
            tune_base = _source_value(model, tune_refs, tune_labels)
            feeds = ds.evaluation.samples[0]
            baselines, variants = {}, []
            for art in fp32.artifacts:
                with step(f"measuring the fp32 {art.target} baseline"):
                    q = None if TARGETS[art.target].cannot_run() else evaluate(
                        model, art.target, art.path, ds.evaluation.samples, eval_refs, ds.evaluation.labels,
                        **_runner_kwargs(art.target, True))
                    baselines[art.target] = {"path": str(art.path.relative_to(tmp)), "size_bytes": art.size_bytes,
                                             **_quality_entry(q, source_q), "latency_ms": _latency(
                                                 model, art.target, art.path, feeds, counts, runs, True)}
            opts = QuantOptions(keep_float=list(keep_float or []), calibration_method=calibration_method,
                                transformer=_kind(model) == "transformer", int8_io=int8_io, keep_names=keep_names,
                                cpu=cpu)
            sources, work = fp32.artifacts, model
            if student is not None:
                with step("converting the student"):
                    sfp32 = export.convert(student, chosen, tmp / "student", step=step)
                label = "+".join(k for k in ("prune", "student") if student_info.get(k)) or "distilled"
                for art in sfp32.artifacts:
                    variants.append(_student_entry(model, student, student_info, art, tmp, label, ds, eval_refs,
                                                   source_q, baselines, feeds, counts, runs, max_drop))
                sources, work = sfp32.artifacts, student
                if todo:  # quantization of the student: repair judged against the student, not the teacher
                    tune_base = score_of(work, tune, tune_refs, tune_labels)
            ctx = ConvertContext(workdir=tmp, onnx_path=next((a.path for a in sources if a.target == "onnx"), None))
            for art in sources:
                for mode in (m for t, m in todo if t == art.target):
                    with step(f"{art.target}: {mode}"):
                        try:
                            variants.append(_variant(work, art, mode, tmp, ctx, calib, tune, tune_refs, tune_labels,
                                                     tune_base, opts, max_drop, ds, eval_refs, source_q, baselines,
                                                     feeds, counts, runs))
                        except EdgekitError:
                            raise
                        except Exception as exc:
                            if os.environ.get("EDGEKIT_DEBUG"):
                                raise
                            first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
                            raise EdgekitError(f"{art.target} {mode}: quantization failed: {type(exc).__name__}: {first[:400]}",
                                               "rerun with --debug for the traceback; try another mode for this target") from exc
        for scratch in (".onnx-fp32", ".keras-savedmodel"):
            shutil.rmtree(tmp / scratch, ignore_errors=True)
        doc = report.compress_report(model, ds.description, source_q, max_drop, baselines, variants, counts)
        doc["skipped"] = skipped
        doc["target_cpu"] = {**cpu.to_dict(), **({"device": target_device} if target_device else {})}
        if student_info:
            doc["student"] = student_info
        (tmp / "report.json").write_text(json.dumps(check("compress-report", doc), indent=2) + "\n")
        from ..present.compress_html import render_compress_html
        from ..present.plots import compress_plot

        compress_plot(doc, tmp / "report.png")
        render_compress_html(doc, tmp / "report.html")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CompressResult(out, out / "report.json", variants, baselines)


def score_of(model: Model, samples, refs, labels) -> float:
    """The value of ``model`` (a student) against the teacher's outputs ``refs``."""
    from .evaluate import score

    return score(model, refs, run_source(model, samples), labels).value


def _student_entry(teacher, student, info, art, tmp, label, ds, eval_refs, source_q, baselines, feeds, counts, runs,
                   max_drop) -> dict:
    q = None if TARGETS[art.target].cannot_run() else evaluate(student, art.target, art.path, ds.evaluation.samples, eval_refs,
                                                      ds.evaluation.labels, **_runner_kwargs(art.target, True))
    base = baselines[art.target]
    lat = _latency(student, art.target, art.path, feeds, counts, runs, True)
    entry = {"target": art.target, "mode": label, "path": str(art.path.relative_to(tmp)), "size_bytes": art.size_bytes,
             "baseline_size_bytes": base["size_bytes"], "size_ratio": round(base["size_bytes"] / art.size_bytes, 3),
             "metric": q.metric if q else None, "baseline_value": round(source_q, 4), **_quality_entry(q, source_q),
             "latency_ms": lat, "layers_kept_float": [], "params": info["params_student"],
             "baseline_params": info["params_teacher"], "notes": [f"fp32 {label} of the source, trained against it"]}
    if isinstance(info.get("prune"), dict) and info["prune"].get("note"):
        entry["notes"].append(info["prune"]["note"])
    entry["status"] = "not_run" if q is None else ("pass" if entry["drop"] <= max_drop else "fail")
    one = str(min(counts))
    if lat and base["latency_ms"]:
        entry["speedup_1t"] = round(base["latency_ms"][one]["p50"] / lat[one]["p50"], 3)
    return entry


def _source_value(model: Model, refs, labels) -> float:
    from .evaluate import score

    return score(model, refs, refs, labels).value


def _variant(model, art, mode, tmp, ctx, calib, tune, tune_refs, tune_labels, tune_base, opts, max_drop, ds,
             eval_refs, source_q, baselines, feeds, counts, runs) -> dict:
    target = art.target
    dest = tmp / f"{target}-{mode}"
    dest.mkdir()
    kept: list[str] = []
    if mode == "fp16":
        path, notes, _ = export.convert_by_routes(model, TARGETS[target], dest, "fp16", ctx)
    else:
        here = not TARGETS[target].cannot_run()
        runtime_sig = runner_for(TARGETS[target], art.path, source=model.signature).signature if here else None
        adapt = (lambda s: adapt_feeds(s, model.signature, runtime_sig)) if runtime_sig else (lambda s: s)

        def value_of(path: Path) -> float:
            return evaluate(model, target, path, tune, tune_refs, tune_labels,
                            **_runner_kwargs(target, False, opts.cpu)).value

        def ov_validate(compiled, items) -> float:
            from .evaluate import score

            outs = [[r[o] for o in compiled.outputs] for r in (compiled(item) for item in items)]
            return score(model, tune_refs[:len(outs)], outs, tune_labels[:len(outs)] if tune_labels is not None else None).value

        result, _ = quantize_with_repair(target, art.path, dest, mode, [adapt(s) for s in calib],
                                         [adapt(s) for s in tune], replace(opts, model=model), value_of=value_of, baseline=tune_base,
                                         max_drop=max_drop, ov_validate=ov_validate)
        path, notes, kept = result.path, result.notes, result.kept_float
    estimated = None
    if TARGETS[target].cannot_run():
        q, estimated, more = _offhost_quality(model, target, path, mode, ds, eval_refs)
        notes = [*notes, *more]
    else:
        q = evaluate(model, target, path, ds.evaluation.samples, eval_refs, ds.evaluation.labels,
                     **_runner_kwargs(target, False, opts.cpu))
    if TARGETS[target].precision_hint:
        notes = [*notes, openvino_precision(opts.cpu)[1]]
    lat = _latency(model, target, path, feeds, counts, runs, False, opts.cpu)
    base = baselines[target]
    size = size_of(dest)
    entry = {"target": target, "mode": mode, "path": str(path.relative_to(tmp)), "size_bytes": size,
             "baseline_size_bytes": base["size_bytes"], "size_ratio": round(base["size_bytes"] / size, 3),
             "metric": q.metric if q else None, "baseline_value": round(source_q, 4), **_quality_entry(q, source_q),
             "latency_ms": lat, "layers_kept_float": kept, "notes": list(notes)}
    if TARGETS[target].cannot_run():  # validated here (it loads; inputs and outputs right), run elsewhere
        entry["quality_estimated"] = estimated
        runner = runner_for(TARGETS[target], path)
        entry["validation"] = runner.validate(model.signature) if hasattr(runner, "validate") else None
    entry["status"] = "not_run" if q is None else ("pass" if entry["drop"] <= max_drop else "fail")
    one = str(min(counts))
    if lat and base["latency_ms"]:
        speedup = base["latency_ms"][one]["p50"] / lat[one]["p50"]
        entry["speedup_1t"] = round(speedup, 3)
        if speedup <= 1.0 and mode != "fp16":
            reasons = TARGETS[target].slow_reasons
            why = reasons.get((mode, _kind(model))) or reasons.get((mode, None))
            entry["notes"].append(f"not faster than fp32 in {target} on this machine ({speedup:.2f}x at {one} thread)"
                                  + (f": {why}" if why else ""))
    return entry


def compress_recipe(recipe, *, out: str | Path | None = None, force: bool = False, step=None,
                    progress=None) -> CompressResult:
    """Run a resolved recipe (``_recipe.resolve_compress``): load its model, build its student
    plan, and compress. What `edgekit compress` and ``edgekit.compress(recipe=...)`` both call."""
    from .ingest import load

    step = step or (lambda _text: contextlib.nullcontext())
    rc, ms = recipe.compress, recipe.model
    with step("loading the model"):
        model = load(ms.source, inputs=ms.inputs or None, dims=ms.dims, task=ms.task, trust_pickle=ms.trust_pickle,
                     trust_remote_code=ms.trust_remote_code)
    plan = _student_plan(rc)
    if rc.train.backend == "ray" and (plan is None or not plan.distill):
        raise EdgekitError("--backend ray runs a training job, and this run trains nothing",
                           "add --student or --prune (with distillation), or drop --backend ray")
    return compress(model, targets=rc.targets, modes=rc.quantize or None, data=rc.data, plan=plan,
                    train_data=rc.train_data, progress=progress,
                    out=out or Path("edgekit-out") / f"{model.name}-compressed", max_drop=rc.max_drop,
                    calibration=rc.calibration_samples, evaluation=rc.eval_samples, keep_float=rc.keep_float,
                    calibration_method=rc.calibration_method, threads=rc.threads, runs=rc.runs, int8_io=rc.int8_io,
                    keep_names=rc.keep_names, skip_unsupported=rc.skip_unsupported, target_device=rc.target_device,
                    force=force, step=step)


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
