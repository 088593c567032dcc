"""The `edgekit` command: a thin layer over the Python API (no logic of its own)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ._errors import EdgekitError

app = typer.Typer(
    name="edgekit",
    help="Take a full model and ship it to the edge: convert, verify and profile for ONNX Runtime, OpenVINO, LiteRT and Core ML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_ERR_STREAM = None
_TRUST_REMOTE_CODE = "Allow a Hugging Face folder's own Python code (config auto_map) to run; read it first."


def _console(stderr: bool = True):
    """Console on a copy of stderr, so converters' native logs can be captured at fd 2."""
    global _ERR_STREAM
    from rich.console import Console

    if not stderr:
        return Console(width=None if sys.stdout.isatty() else 160)
    if _ERR_STREAM is None:
        _ERR_STREAM = os.fdopen(os.dup(2), "w", buffering=1)
    return Console(file=_ERR_STREAM, width=None if _ERR_STREAM.isatty() else 160)


def _stage(console):
    @contextlib.contextmanager
    def step(text: str):
        import time

        t0 = time.perf_counter()
        with console.status(f"{text}..."):
            yield
        console.print(f"[dim]{text}: {time.perf_counter() - t0:.1f} s[/dim]")

    return step


def _print_version(value: bool):
    if value:
        from ._version import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                                help="Print the version and exit.")] = False):
    """Take a full model and ship it to the edge."""


@app.command()
def convert(
    model: Annotated[str | None, typer.Argument(help="ONNX file, .pt2, TorchScript, package.module:factory, Hugging Face folder, .keras or .tflite.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Targets, comma-separated: onnx,openvino,tflite,coreml.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (replaced atomically on success).")] = None,
    recipe: Annotated[Path | None, typer.Option(help="A models/*.toml recipe holding every choice of the run.")] = None,
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="Input spec name:shape:dtype: the signature of a model without one (TorchScript, nn.Module); for others, the size of that input (repeat per input).")] = None,
    dim: Annotated[list[str] | None, typer.Option(help="Size of a dynamic axis for verification and static targets, e.g. sequence=128.")] = None,
    shape: Annotated[list[str] | None, typer.Option("--shape", help="Shape of one input, sizing its dynamic axes (named, ?, -1), e.g. images=1x3x640x640 (repeat per input).")] = None,
    route: Annotated[list[str] | None, typer.Option("--route", help="Use this conversion route where it applies (a route's name or tool, e.g. onnx2tf); see the manifest's attempts[].")] = None,
    task: Annotated[str | None, typer.Option(help="Hugging Face task (inferred when not given).")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 (default) or fp16.")] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help=".npz of verification inputs, keyed by input name; its arrays size the dynamic axes.")] = None,
    samples: Annotated[int | None, typer.Option(help="Generated verification samples (default 3).")] = None,
    atol: Annotated[float | None, typer.Option(help="Parity: absolute tolerance.")] = None,
    rtol: Annotated[float | None, typer.Option(help="Parity: tolerance relative to the largest source value.")] = None,
    min_cosine: Annotated[float | None, typer.Option(help="Parity: lowest cosine similarity allowed.")] = None,
    simplify: Annotated[bool, typer.Option(help="Simplify the ONNX graph with onnxsim.")] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow loading pickled torch models (runs code from the file).")] = False,
    trust_remote_code: Annotated[bool, typer.Option(help=_TRUST_REMOTE_CODE)] = False,
    force: Annotated[bool, typer.Option(help="Replace a non-empty --out folder edgekit did not write.")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Locate the first divergent op of every artifact (always done for one failing parity): parity.first_divergence.")] = False,
    shape_buckets: Annotated[list[str] | None, typer.Option("--shape-buckets", help="Sizes of a dynamic axis to serve, e.g. sequence=16,32,64,128 or sequence=auto (from --data): LiteRT gets one signature per bucket; each artifact is verified at every bucket (repeat per axis).")] = None,
    data: Annotated[str | None, typer.Option("--data", help="Real samples (.txt of sentences, .npz) for --shape-buckets: the lengths auto chooses from, and each bucket's verification samples.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON on stdout.")] = False,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
):
    """Convert a model to edge formats and verify each artifact against the source."""
    with _errors(debug):
        from . import convert as api_convert
        from . import load
        from ._recipe import load_recipe, resolve_convert
        from .present.tables import parity_table

        tol = {k: v for k, v in {"atol": atol, "rtol": rtol, "min_cosine": min_cosine}.items() if v is not None}
        load_kw, convert_kw = resolve_convert(load_recipe(recipe) if recipe else None, model, {
            "targets": to, "precision": precision, "inputs": inputs, "samples": samples, "routes": route,
            "tolerance": tol, "simplify": simplify or None, "force": force or None, "input": input, "dims": dim,
            "shapes": shape, "task": task, "trust_pickle": trust_pickle or None,
            "trust_remote_code": trust_remote_code or None, "shape_buckets": shape_buckets, "data": data})
        console = _console()
        step = _stage(console)
        with step("loading the model"):
            m = load(**load_kw)
        result = api_convert(m, out=out or Path("edgekit-out") / m.name, stage=step, explain=explain, **convert_kw)
        manifest = result.manifest
        table, reasons = parity_table(manifest)
        (console if as_json else _console(stderr=False)).print(table)
        for reason in reasons:
            console.print(f"  {reason}", highlight=False, markup=False)
        if as_json:
            sys.stdout.write(json.dumps(manifest, indent=2) + "\n")
        for note in result.notes:
            console.print(f"note: {note}", style="dim", markup=False)
        for a in result.artifacts:
            for note in a.notes:
                console.print(f"note ({a.target}): {note}", style="dim", markup=False)
            if a.buckets:
                console.print(f"buckets ({a.target}): " + ", ".join(
                    f"{p['bucket']} {p['status']}" + (f" (cosine {p['cosine']:.6f})" if p["cosine"] is not None else "")
                    for p in a.buckets["parity"]), markup=False)
        console.print(f"manifest: {result.manifest_path}")
        if not result.ok:
            worst = [a for a in result.artifacts if a.parity and a.parity.status == "fail"]
            names = ", ".join(f"{a.target} ({a.parity.worst_output}: {a.parity.reason})" for a in worst)
            from ._errors import ParityError

            raise ParityError(f"parity check failed for {names}",
                              "inspect the manifest; loosen with --atol/--rtol/--min-cosine only if the drift is acceptable")


@app.command()
def compress(
    model: Annotated[str | None, typer.Argument(help="The fp32 model (anything `convert` takes).")] = None,
    quantize: Annotated[str | None, typer.Option("--quantize", "-q", help="Modes, comma-separated: fp16, dynamic-int8, static-int8, int8-weights, int4-weights, mixed.")] = None,
    data: Annotated[str | None, typer.Option(help="Calibration/evaluation data: .npz/.npy, image folder, .txt of sentences, or module:callable.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Targets, comma-separated: onnx,openvino,tflite,coreml.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (replaced atomically on success).")] = None,
    recipe: Annotated[Path | None, typer.Option(help="A models/*.toml recipe with a [compress] section.")] = None,
    dump_recipe: Annotated[Path | None, typer.Option(help="Write the resolved recipe of this call to FILE (and run).")] = None,
    max_drop: Annotated[float | None, typer.Option(help="Largest quality drop allowed, in points (accuracy %, or cosine x 100). Default 1.0.")] = None,
    calibration_samples: Annotated[int | None, typer.Option(help="Calibration samples (default 300).")] = None,
    eval_samples: Annotated[int | None, typer.Option(help="Held-out evaluation samples (default 500).")] = None,
    keep_float: Annotated[list[str] | None, typer.Option(help="A layer (node) name to keep in float (repeat).")] = None,
    calibration_method: Annotated[str | None, typer.Option(help="minmax (default), entropy or percentile (ONNX Runtime).")] = None,
    threads: Annotated[str | None, typer.Option(help="Thread counts for latency, e.g. 1,all (default).")] = None,
    runs: Annotated[int | None, typer.Option(help="Timed runs per latency figure (default 50).")] = None,
    int8_io: Annotated[bool, typer.Option(help="TFLite full-integer models with int8 inputs and outputs.")] = False,
    keep_names: Annotated[bool, typer.Option(help="LiteRT: keep intermediate tensor names (dropped by default to save space).")] = False,
    skip_unsupported: Annotated[bool, typer.Option(help="Run the target/mode pairs that exist; list the others as skipped.")] = False,
    device: Annotated[str | None, typer.Option(help="A device profile in targets/: quantize for its CPU (default: this host's; EDGEKIT_CPU_FEATURES overrides).")] = None,
    target: Annotated[str | None, typer.Option(hidden=True, help="Deprecated: --device.")] = None,
    prune: Annotated[str | None, typer.Option(help="structured:RATIO (channels/neurons removed) or unstructured:RATIO.")] = None,
    student: Annotated[str | None, typer.Option(help="Student: layers:N (every k-th teacher layer) or module:factory.")] = None,
    distill: Annotated[bool | None, typer.Option("--distill/--no-distill", help="Train the student against the teacher (default: on with --student or --prune).")] = None,
    distill_loss: Annotated[str | None, typer.Option(help="auto, logits (temperature KD + labels) or embedding (cosine + MSE).")] = None,
    train_data: Annotated[str | None, typer.Option(help="Training data for distillation (default: --data minus its held-out split).")] = None,
    train_steps: Annotated[int | None, typer.Option(help="Training steps (default 1000).")] = None,
    train_minutes: Annotated[float | None, typer.Option(help="Training time budget in minutes.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default 1e-4).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size (default 32).")] = None,
    train_device: Annotated[str | None, typer.Option(help="Training device: auto (CUDA when present), cpu or cuda.")] = None,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: a local store in the run's cache folder).")] = None,
    backend: Annotated[str | None, typer.Option(help="Where training runs: local (default, in this process) or ray (Ray Train workers).")] = None,
    address: Annotated[str | None, typer.Option(help="--backend ray: the cluster (host:6379, ray://host:10001); default a local Ray.")] = None,
    workers: Annotated[int | None, typer.Option(help="--backend ray: training workers (default: the cluster's GPUs, else 2).")] = None,
    storage: Annotated[str | None, typer.Option(help="--backend ray: where checkpoints go, a path or URI (default: the run's cache folder).")] = None,
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="Input spec name:shape:dtype (models without a signature).")] = None,
    dim: Annotated[list[str] | None, typer.Option(help="Size of a dynamic axis, e.g. sequence=128.")] = None,
    task: Annotated[str | None, typer.Option(help="Hugging Face task (inferred when not given).")] = None,
    trust_remote_code: Annotated[bool, typer.Option(help=_TRUST_REMOTE_CODE)] = False,
    shape_buckets: Annotated[list[str] | None, typer.Option("--shape-buckets", help="Sizes of a dynamic axis, e.g. sequence=16,32,64,128 or sequence=auto (from --data): LiteRT gets one signature per bucket, calibrated per bucket; quality and latency at the data's real lengths, each padded to its bucket.")] = None,
    force: Annotated[bool, typer.Option(help="Replace a non-empty --out folder edgekit did not write.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print report.json on stdout.")] = False,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
):
    """Quantize a model with each target's own quantizer; judge quality, size and speed on held-out data."""
    with _errors(debug):
        from ._inputs import parse_dims
        from ._progress import Progress
        from ._recipe import dump_recipe as write_recipe
        from ._recipe import load_recipe, resolve_compress
        from .present.tables import compress_table, drift_lines
        from .steps.compress import compress_recipe

        device, train_device = _compress_devices(device, target, train_device)
        flags = dict(
            quantize=quantize.split(",") if quantize else None, data=data, prune=prune, student=student,
            distill=distill, distill_loss=distill_loss, train_data=train_data, targets=to.split(",") if to else None,
            max_drop=max_drop, calibration_samples=calibration_samples, eval_samples=eval_samples,
            keep_float=keep_float, calibration_method=calibration_method,
            threads=threads.split(",") if threads else None, runs=runs, int8_io=int8_io or None,
            keep_names=keep_names or None, skip_unsupported=skip_unsupported or None, device=device,
            train_steps=train_steps, lr=lr, batch_size=batch_size, train_minutes=train_minutes, train_device=train_device,
            tracking_uri=tracking_uri, backend=backend, address=address, workers=workers, storage=storage,
            task=task, inputs=input, dims=parse_dims(dim) if dim else None,
            trust_remote_code=trust_remote_code or None, shape_buckets=shape_buckets)
        resolved = resolve_compress(load_recipe(recipe) if recipe else None, model, flags)
        if dump_recipe:
            write_recipe(resolved, dump_recipe)
        console = _console()
        result = compress_recipe(resolved, out=out, force=force,
                                 progress=Progress(stage=_stage(console), training=_train_progress(console)))
        rc = resolved.compress
        doc = result.report
        (console if as_json else _console(stderr=False)).print(compress_table(doc))
        for line in drift_lines(doc):
            console.print(line, markup=False)
        for v in doc["variants"]:
            for note in v["notes"]:
                console.print(f"note ({v['target']} {v['mode']}): {note}", style="dim", markup=False)
        for sk in doc.get("skipped", []):
            console.print(f"skipped {sk['target']} {sk['mode']}: {sk['reason']}", style="yellow", markup=False)
        console.print(f"report: {result.report_path}")
        if as_json:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        failed = [v for v in doc["variants"] if v["status"] == "fail"]
        if failed:
            from ._errors import ParityError

            names = ", ".join(f"{v['target']} {v['mode']} (drop {v['drop']:.2f})" for v in failed)
            raise ParityError(f"quality drop over --max-drop {rc.max_drop} for {names}",
                              "keep layers in float (--keep-float), try another mode, or accept a larger --max-drop")


@app.command()
def check(
    model: Annotated[str, typer.Argument(help="ONNX file, .pt2, TorchScript, package.module:factory, Hugging Face folder, .keras or .tflite.")],
    to: Annotated[str, typer.Option("--to", help="Targets, comma-separated.")] = "onnx,openvino,tflite,coreml",
    inputs: Annotated[Path | None, typer.Option("--inputs", help=".npz keyed by input name; its arrays size the dynamic axes.")] = None,
    shape: Annotated[list[str] | None, typer.Option("--shape", help="Shape of one input, e.g. images=1x3x640x640 (repeat per input).")] = None,
    dim: Annotated[list[str] | None, typer.Option(help="Size of a dynamic axis, e.g. sequence=128.")] = None,
    precision: Annotated[str, typer.Option(help="fp32 or fp16: the routes that apply differ.")] = "fp32",
    trust_remote_code: Annotated[bool, typer.Option(help=_TRUST_REMOTE_CODE)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
):
    """Predict, in seconds and without converting, what `convert --to` will hit: per target and route,
    the ops its converter or runtime cannot take, with the fix. Exit 0: every target will convert;
    3: a target will fail (or an axis has no size); 2: bad input."""
    with _errors(debug):
        from . import check as api_check
        from . import load
        from ._inputs import parse_dims
        from .present.check_table import check_tables, source_lines

        console = _console()
        with _stage(console)("loading the model"):
            m = load(model, dims=parse_dims(dim), shapes=shape, sample=inputs, trust_remote_code=trust_remote_code)
        with _stage(console)("checking"):
            result = api_check(m, targets=to, precision=precision)
        doc = result.to_dict()
        out = console if as_json else _console(stderr=False)
        for table in check_tables(doc):
            out.print(table)
        for line in source_lines(doc):
            console.print(line, markup=False, highlight=False)
        if as_json:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        raise typer.Exit(result.exit_code)


@app.command()
def bench(
    path: Annotated[Path | None, typer.Argument(help="An artifact (.onnx, .xml, .tflite, .mlpackage) or a convert/compress output folder.")] = None,
    on: Annotated[str, typer.Option(help="Where it runs: local, ssh://user@host[:port], or adb://SERIAL.")] = "local",
    device: Annotated[str | None, typer.Option(help="A device profile in targets/ (threads, runtimes, budgets).")] = None,
    target: Annotated[str | None, typer.Option(hidden=True, help="Deprecated: --device.")] = None,
    threads: Annotated[str | None, typer.Option(help="Thread counts, e.g. 1,2,4 (default: the device profile's, else 1).")] = None,
    runs: Annotated[int, typer.Option(help="Timed runs.")] = 100,
    warmup: Annotated[int, typer.Option(help="Warm-up runs before timing.")] = 10,
    batch: Annotated[int, typer.Option(help="Batch size (dynamic-batch artifacts).")] = 1,
    cores: Annotated[str | None, typer.Option(help="local: pin to these cores (taskset list, e.g. 0 or 0-1).")] = None,
    memory_mb: Annotated[int | None, typer.Option(help="local: cap the runner's resident memory in MB; past it the runner is stopped, as a small device's OOM killer would.")] = None,
    python: Annotated[str | None, typer.Option(help="The device's Python (ssh default: the device profile's, else python3).")] = None,
    benchmark_binary: Annotated[Path | None, typer.Option(help="adb: LiteRT's benchmark_model binary for the device.")] = None,
    lengths: Annotated[Path | None, typer.Option("--lengths", help="A file of sentences (tokenized with the folder's tokenizer/) or of integer lengths, one a line: also time one run per real length, padded to its bucket or the static shape.")] = None,
    no_profile: Annotated[bool, typer.Option("--no-profile", help="Skip the per-op profile.")] = False,
    top: Annotated[int, typer.Option(help="Slowest ops shown per artifact.")] = 5,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result JSON here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a one-file HTML report with plots here.")] = None,
    compare: Annotated[tuple[Path, Path] | None, typer.Option(help="OLD.json NEW.json: show changes; exit 1 on a regression.")] = None,
    threshold: Annotated[float, typer.Option(help="--compare: relative growth counted as a regression.")] = 0.10,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
):
    """Benchmark artifacts: latency percentiles, memory and a per-op profile, locally or on a device."""
    with _errors(debug):
        if compare:
            from .bench.compare import compare as compare_docs
            from .bench.compare import format_table

            old, new = (json.loads(Path(p).read_text()) for p in compare)
            rows = compare_docs(old, new, threshold)
            _console(stderr=False).print(format_table(rows))
            bad = [r for r in rows if r.get("regression")]
            if bad:
                from ._errors import ParityError

                raise ParityError(f"{len(bad)} regression(s) beyond {threshold:.0%}",
                                  "see the table; raise --threshold only if the change is expected")
            return
        if path is None:
            raise EdgekitError("no artifact given", "pass PATH, or --compare OLD.json NEW.json")
        from .bench import BenchOptions
        from .bench import bench as api_bench
        from .present.tables import bench_table

        console = _console()
        on, device = _bench_place(on, device, target)
        counts = [int(t) for t in threads.split(",")] if threads else None
        options = BenchOptions(on=on, device=device, threads=counts, runs=runs, warmup=warmup, batch=batch,
                               profile=not no_profile, cores=cores, memory_mb=memory_mb, python=python,
                               benchmark_binary=benchmark_binary, lengths=lengths)
        result = api_bench(path, options, stage=_stage(console))
        result_doc = result.to_dict()
        _console(stderr=False).print(bench_table(result_doc, top))
        if json_out:
            Path(json_out).parent.mkdir(parents=True, exist_ok=True)
            Path(json_out).write_text(json.dumps(result_doc, indent=1) + "\n")
            console.print(f"result: {json_out}")
        if html:
            from .present.bench_html import render_html

            render_html(result_doc, Path(html))
            console.print(f"report: {html}")
        errors = [r for r in result_doc["results"] if r.get("error") and not r["error"].startswith("not run")]
        if errors:
            raise EdgekitError("; ".join(r["error"] for r in errors), "see the table; rerun with --debug for details")


@app.command()
def serve(
    paths: Annotated[list[Path], typer.Argument(help="An .onnx, an OpenVINO .xml or a convert output folder (several serve several models).")],
    host: Annotated[str, typer.Option(help="Address to listen on; non-loopback needs a token or --insecure.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    backend: Annotated[str, typer.Option(help="local (this process) or ray (Ray Serve replicas).")] = "local",
    token_file: Annotated[Path | None, typer.Option(help="File holding the bearer token (else $EDGEKIT_SERVE_TOKEN).")] = None,
    insecure: Annotated[bool, typer.Option(help="Allow a non-loopback address without a token.")] = False,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body, in MB (413 above).")] = 16.0,
    max_elements: Annotated[int, typer.Option(help="Most numbers one request may carry, all inputs together (413 above).")] = 4 * 2**20,
    max_batch_size: Annotated[int, typer.Option(help="Most requests run as one batch.")] = 32,
    batch_wait_ms: Annotated[float, typer.Option(help="How long an idle model waits for more requests to batch.")] = 2.0,
    no_batching: Annotated[bool, typer.Option("--no-batching", help="Run every request on its own.")] = False,
    threads: Annotated[int | None, typer.Option(help="Runtime threads per model (per replica on ray).")] = None,
    name: Annotated[list[str] | None, typer.Option(help="Model name in the URL (once per PATH; default from the path).")] = None,
    max_dim: Annotated[list[str] | None, typer.Option(help="Largest size of a dynamic axis, e.g. sequence=512 or batch=64.")] = None,
    shape_buckets: Annotated[list[str] | None, typer.Option("--shape-buckets", help="Batch by bucket: each request padded to the smallest of these sizes it fits, e.g. sequence=16,32,64,128 (repeat per axis; default: the manifest's buckets).")] = None,
    replicas: Annotated[int, typer.Option(help="ray: model replicas.")] = 1,
    replica_cpus: Annotated[float, typer.Option(help="ray: CPUs reserved per replica.")] = 1.0,
    address: Annotated[str | None, typer.Option(help="ray: an existing cluster (e.g. ray://head:10001); default: start a local Ray.")] = None,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
):
    """Serve a model over HTTP (ONNX Runtime or OpenVINO on this CPU), with batching, auth and metrics."""
    with _errors(debug):
        from ._inputs import parse_dims
        from .serve import serve as api_serve

        api_serve(paths, host=host, port=port, backend=backend, token_file=token_file, insecure=insecure,
                  max_body_mb=max_body_mb, max_elements=max_elements, max_batch_size=1 if no_batching else max_batch_size,
                  batch_wait_ms=batch_wait_ms, threads=threads, names=name, limits=parse_dims(max_dim),
                  replicas=replicas, replica_cpus=replica_cpus, address=address,
                  buckets=_serve_buckets(shape_buckets))


def _serve_buckets(spec: list[str] | None) -> dict[str, list[int]] | None:
    from ._buckets import is_auto, parse_buckets

    buckets = parse_buckets(spec)
    if any(is_auto(v) for v in buckets.values()):
        raise EdgekitError("edgekit serve --shape-buckets takes sizes, not auto (it has no data to choose from)",
                           "give the sizes, e.g. --shape-buckets sequence=16,32,64,128, or convert with auto "
                           "and serve the folder (its manifest's buckets are used)")
    return buckets or None


def _warn(text: str) -> None:
    _console().print(f"edgekit: warning: {text}", style="yellow", markup=False, highlight=False)


def _compress_devices(device: str | None, target: str | None, train_device: str | None):
    """The device profile and the training device, from today's flags and those of 0.1
    (``--target PROFILE``; ``--device auto|cpu|cuda`` for training), which warn."""
    from ._names import is_torch_device

    if device and is_torch_device(device):
        _warn(f"--device {device} as the training device is deprecated: use --train-device {device} "
              "(--device names a profile in targets/)")
        device, train_device = None, train_device or device
    if target:
        _warn(f"--target {target} is deprecated: use --device {target} (a profile in targets/)")
        device = device or target
    return device, train_device


def _bench_place(on: str, device: str | None, target: str | None):
    """Where the benchmark runs and the device profile, from today's flags and those of 0.1
    (``--device local|ssh://...|adb://...`` for where; ``--target PROFILE``), which warn."""
    from ._names import is_place

    if device and is_place(device):
        _warn(f"--device {device} for where it runs is deprecated: use --on {device} "
              "(--device names a profile in targets/)")
        on, device = device if on == "local" else on, None
    if target:
        _warn(f"--target {target} is deprecated: use --device {target} (a profile in targets/)")
        device = device or target
    return on, device


def _train_progress(console):
    """A progress line for training: step, loss, ETA (printed every 5% of the steps)."""
    state = {"last": -1}

    def report(step: int, total: int, loss: float, elapsed: float):
        pct = int(100 * step / total)
        if pct // 5 != state["last"] // 5 or step == total:
            state["last"] = pct
            eta = elapsed / step * (total - step)
            console.print(f"  training: step {step}/{total} ({pct}%), loss {loss:.4f}, "
                          f"{elapsed:.0f} s elapsed, ETA {eta:.0f} s", markup=False, highlight=False)

    report.note = lambda text: console.print(f"  {text}", markup=False, highlight=False)  # e.g. where Ray runs it
    return report


@contextlib.contextmanager
def _errors(debug: bool):
    if debug:
        os.environ["EDGEKIT_DEBUG"] = "1"
    from ._capture import quiet_environment

    quiet_environment()
    try:
        yield
    except EdgekitError as exc:
        if debug:
            raise
        err = _console()
        from rich.text import Text

        err.print(Text.assemble(("edgekit: error: ", "bold red"), exc.cause), soft_wrap=True)
        if exc.fix:
            err.print(Text.assemble(("  fix: ", "bold"), exc.fix), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
