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


def _console(stderr: bool = True):
    """Console on a copy of stderr, so converters' native logs can be captured at fd 2."""
    global _ERR_STREAM
    from rich.console import Console

    if not stderr:
        return Console(width=None if sys.stdout.isatty() else 120)
    if _ERR_STREAM is None:
        _ERR_STREAM = os.fdopen(os.dup(2), "w", buffering=1)
    return Console(file=_ERR_STREAM, width=None if _ERR_STREAM.isatty() else 120)


def _step(console):
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
    input: Annotated[list[str] | None, typer.Option("--input", "-i", help="Input spec name:shape:dtype, for models without a signature (repeat per input).")] = None,
    dim: Annotated[list[str] | None, typer.Option(help="Size of a dynamic axis for verification and static targets, e.g. sequence=128.")] = None,
    task: Annotated[str | None, typer.Option(help="Hugging Face task (inferred when not given).")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32 (default) or fp16.")] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help=".npz of verification inputs, keyed by input name.")] = None,
    samples: Annotated[int | None, typer.Option(help="Generated verification samples (default 3).")] = None,
    atol: Annotated[float | None, typer.Option(help="Parity: absolute tolerance.")] = None,
    rtol: Annotated[float | None, typer.Option(help="Parity: tolerance relative to the largest source value.")] = None,
    min_cosine: Annotated[float | None, typer.Option(help="Parity: lowest cosine similarity allowed.")] = None,
    simplify: Annotated[bool, typer.Option(help="Simplify the ONNX graph with onnxsim.")] = False,
    trust_pickle: Annotated[bool, typer.Option(help="Allow loading pickled torch models (runs code from the file).")] = False,
    force: Annotated[bool, typer.Option(help="Replace a non-empty --out folder edgekit did not write.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON on stdout.")] = False,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks.")] = False,
):
    """Convert a model to edge formats and verify each artifact against the source."""
    with _errors(debug):
        from ._capture import quiet_environment

        quiet_environment()
        from . import convert as api_convert
        from . import load
        from ._recipe import load_recipe
        from .steps.report import parity_table

        r = load_recipe(recipe) if recipe else None
        source = model or (r.model.source if r else None)
        if source is None:
            raise EdgekitError("no model given", "pass MODEL, or --recipe models/NAME.toml")
        dims = {**(r.model.dims if r else {})}
        from ._inputs import parse_dims

        dims.update(parse_dims(dim))
        console = _console()
        step = _step(console)
        with step("loading the model"):
            m = load(source, inputs=input or (r.model.inputs if r else None), dims=dims,
                     task=task or (r.model.task if r else None),
                     trust_pickle=trust_pickle or (r.model.trust_pickle if r else False))
        tol = dict(r.verify.tolerance) if r else {}
        tol.update({k: v for k, v in {"atol": atol, "rtol": rtol, "min_cosine": min_cosine}.items() if v is not None})
        result = api_convert(
            m,
            targets=to or (",".join(r.convert.targets) if r else "onnx,openvino,tflite,coreml"),
            out=out or Path("edgekit-out") / m.name,
            precision=precision or (r.convert.precision if r else "fp32"),
            inputs=inputs or (Path(r.verify.inputs) if r and r.verify.inputs else None),
            samples=samples or (r.verify.samples if r else 3),
            tolerance=tol, simplify=simplify or (r.convert.simplify if r else False), force=force, step=step,
        )
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
        console.print(f"manifest: {result.manifest_path}")
        if not result.ok:
            worst = [a for a in result.artifacts if a.parity and a.parity.status == "fail"]
            names = ", ".join(f"{a.target} ({a.parity.worst_output}: {a.parity.reason})" for a in worst)
            from ._errors import ParityError

            raise ParityError(f"parity check failed for {names}",
                              "inspect the manifest; loosen with --atol/--rtol/--min-cosine only if the drift is acceptable")


@contextlib.contextmanager
def _errors(debug: bool):
    if debug:
        os.environ["EDGEKIT_DEBUG"] = "1"
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
