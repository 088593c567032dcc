"""Ingest: turn what the user gives (a path or `package.module:factory`) into a Model."""

from __future__ import annotations

import re
from pathlib import Path

from ..._errors import EdgekitError
from ..._inputs import parse_dims, parse_input_spec, parse_shapes, resolve_dims
from ..._types import Model, TensorSpec, sha256_of

FORMATS = "an ONNX file, a .pt2 (torch.export), TorchScript, package.module:factory, a Hugging Face folder, a .keras file or a .tflite file"
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load(spec: str | Path, *, inputs: list[str] | None = None, dims: list[str] | dict | None = None,
         task: str | None = None, trust_pickle: bool = False, trust_remote_code: bool = False,
         shapes: list[str] | dict | None = None, sample: str | Path | None = None) -> Model:
    """Load a model from a path or ``package.module:factory``.

    ``inputs`` are ``name:shape:dtype`` specs for sources that carry no signature
    (TorchScript, bare nn.Modules); for a source with a signature they size its inputs, like
    ``shapes``. Dynamic axes get their sizes (used to verify, and by static-shape targets) from
    ``dims`` (``{"sequence": 64}``), ``shapes`` (``{"images": (1, 3, 640, 640)}`` or
    ``["images=1x3x640x640"]``) and the arrays of ``sample`` (an .npz keyed by input name);
    ``model.meta["dim_sources"]`` says which gave each. ``trust_pickle`` lets a pickled torch
    file load and ``trust_remote_code`` a Hugging Face folder with its own Python code
    (``auto_map``): both run code from the model, so both are off unless asked for.
    """
    input_specs: list[TensorSpec] | None = [parse_input_spec(s) for s in inputs] if inputs else None
    given = dict(dims) if isinstance(dims, dict) else parse_dims(dims)

    def load_path(path: Path) -> Model:
        model = _load_path(path, input_specs, given, task, trust_pickle, trust_remote_code)
        model.sha256 = model.sha256 or sha256_of(path)
        return model

    text = str(spec)
    if _FACTORY.match(text) and not Path(text).exists():
        from ._torch import load_factory

        model = load_factory(text, input_specs, given, load_path)
    else:
        model = load_path(Path(text).expanduser())
    _size_axes(model, given, parse_shapes(shapes), input_specs, sample)
    return model


def _size_axes(model: Model, given: dict[str, int], shapes: dict, input_specs: list[TensorSpec] | None,
               sample: str | Path | None) -> None:
    """Give every dynamic axis its size and record where it came from."""
    if input_specs and model.format not in ("torch", "torchscript"):
        for s in input_specs:  # --input on a model with a signature: its shape sizes that input
            if s.name not in {i.name for i in model.signature.inputs}:
                raise EdgekitError(f"--input names {s.name!r}, which the model does not have",
                                   f"its inputs are {[i.name for i in model.signature.inputs]}")
            if any(isinstance(d, str) for d in s.shape):
                continue  # names only: the model's own axes stay
            shapes.setdefault(s.name, tuple(int(d) for d in s.shape))
    arrays = None
    if sample is not None:
        from ..._inputs import read_npz

        arrays = read_npz(Path(sample))
    dims, sources = resolve_dims(model.signature, given, model.dims, shapes=shapes, arrays=arrays,
                                 arrays_from=f"--inputs {Path(sample).name}" if sample else "--inputs", strict=False)
    model.dims = {**model.dims, **dims}
    model.meta["dim_sources"] = sources  # an axis left unsized is sized by convert's inputs, or refused there


def _load_path(path: Path, input_specs, dims, task, trust_pickle, trust_remote_code=False) -> Model:
    if not path.exists():
        raise EdgekitError(f"model {str(path)!r} does not exist", f"give a path to {FORMATS}")
    if path.is_dir():
        if (path / "config.json").is_file():
            from ._hf import load_hf_folder

            return load_hf_folder(path, task, dims, trust_remote_code)
        if (path / "saved_model.pb").is_file():
            from ._tf import load_keras

            return load_keras(path)
        raise EdgekitError(f"{path} is a folder but not a Hugging Face model (no config.json) nor a SavedModel",
                           f"give {FORMATS}")
    if path.stat().st_size == 0:
        raise EdgekitError(f"{path} is empty", "export the model again")
    suffix = path.suffix.lower()
    with open(path, "rb") as fh:
        head = fh.read(8)
    if suffix == ".onnx":
        from ._onnx import load_onnx

        return load_onnx(path)
    if suffix == ".pt2":
        from ._torch import load_exported_program

        return load_exported_program(path, dims)
    if suffix in (".pt", ".pth", ".ts", ".torchscript", ".jit"):
        from ._torch import load_torch_file

        return load_torch_file(path, input_specs, dims, trust_pickle)
    if suffix == ".keras":
        from ._tf import load_keras

        return load_keras(path)
    if suffix == ".tflite" or head[4:8] == b"TFL3":
        from ._tf import load_tflite

        return load_tflite(path)
    raise EdgekitError(f"{path} is not a model file edgekit recognises (suffix {suffix or 'none'!r})",
                       f"give {FORMATS}")
