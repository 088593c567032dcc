"""Torch sources: nn.Module factories, torch.export programs (.pt2), TorchScript, pickles."""

from __future__ import annotations

import importlib
import inspect
import keyword
import sys
import zipfile
from pathlib import Path
from typing import Any

from ..._errors import EdgekitError
from ..._lazy import require
from ..._types import Model, Signature, TensorSpec


def torch_dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def flatten_outputs(out: Any) -> tuple[list[str] | None, list]:
    """A model's output as (names or None, tensors), for tensors, tuples, lists and dicts."""
    torch = require("torch")
    if isinstance(out, torch.Tensor):
        return None, [out]
    if isinstance(out, dict):  # includes transformers' ModelOutput
        items = [(k, v) for k, v in out.items() if isinstance(v, torch.Tensor)]
        return [k for k, _ in items], [v for _, v in items]
    if isinstance(out, list | tuple):
        tensors = [t for t in out if isinstance(t, torch.Tensor)]
        if len(tensors) != len(out):
            raise EdgekitError(
                "the model returns something other than tensors",
                "wrap it so that forward returns a tensor, a tuple of tensors or a dict of tensors",
            )
        return None, tensors
    raise EdgekitError(f"the model returns a {type(out).__name__}, not tensors",
                       "wrap it so that forward returns a tensor or a tuple of tensors")


def with_named_inputs(cls: type, names: list[str]) -> type:
    """A subclass of ``cls`` whose forward takes ``names`` as parameters.

    Exporters (torch.export, coremltools, litert-torch) name a graph's inputs after
    forward's parameters; a ``*args`` forward would give args_0, args_1, ...
    """
    params = [n if n.isidentifier() and not keyword.iskeyword(n) else f"input_{i}" for i, n in enumerate(names)]
    ns: dict = {}
    exec(f"def forward(self, {', '.join(params)}):\n    return self.call({', '.join(params)})", ns)  # noqa: S102
    return type(cls.__name__, (cls,), {"forward": ns["forward"]})


def make_normalized(module: Any, names: list[str]) -> Any:
    """An nn.Module whose forward(<names>) returns a tuple of tensors."""
    torch = require("torch")

    class Normalized(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, *args):
            return tuple(flatten_outputs(self.inner(*args))[1])

    wrapped = with_named_inputs(Normalized, names)(module)
    try:
        return wrapped.eval()
    except NotImplementedError:  # an ExportedProgram's module() is already in eval mode and refuses train()
        wrapped.training = False
        return wrapped


def signature_from_run(module: Any, names: list[str], example: list, axes: list[dict[int, str]] | None = None) -> Signature:
    """Run the module once on the example inputs to learn its outputs."""
    torch = require("torch")
    axes = axes or [{} for _ in example]
    inputs = [
        TensorSpec(n, tuple(axes[i].get(d, s) for d, s in enumerate(t.shape)), torch_dtype_name(t.dtype))
        for i, (n, t) in enumerate(zip(names, example, strict=True))
    ]
    with torch.no_grad():
        out = module(*example)
    out_names, tensors = flatten_outputs(out)
    if out_names is None:
        out_names = ["output"] if len(tensors) == 1 else [f"output_{i}" for i in range(len(tensors))]
    outputs = [TensorSpec(n, tuple(t.shape), torch_dtype_name(t.dtype)) for n, t in zip(out_names, tensors, strict=True)]
    return Signature(inputs, outputs)


def forward_arg_names(module: Any, count: int) -> list[str]:
    try:
        params = [
            p.name for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= count:
        return params[:count]
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def from_module(spec: str, module: Any, example: Any, input_specs: list[TensorSpec] | None, dims: dict[str, int]) -> Model:
    """A Model from an nn.Module plus example inputs (tuple or dict) or input specs."""
    torch = require("torch")
    from ..._inputs import generate_inputs, resolve_dims

    if not isinstance(module, torch.nn.Module):
        raise EdgekitError(f"{spec} gives a {type(module).__name__}, not a torch nn.Module",
                           "make the factory return an nn.Module, or (module, example_inputs)")
    module = module.eval()
    if input_specs:
        sig_in = Signature(list(input_specs), [])
        dims, _ = resolve_dims(sig_in, dims, {})
        arrays = generate_inputs(sig_in, dims, {})
        example = [torch.from_numpy(arrays[s.name]) for s in input_specs]
        names = [s.name for s in input_specs]
        axes = [s.dynamic_axes for s in input_specs]
    elif example is not None:
        if isinstance(example, torch.Tensor):
            example = (example,)
        if isinstance(example, dict):
            names, example = list(example), list(example.values())
        else:
            example = list(example)
            names = forward_arg_names(module, len(example))
        axes = None
    else:
        raise EdgekitError(
            f"cannot tell the inputs of {spec}: an nn.Module carries no input shapes",
            "pass --input name:shape:dtype for each input, or make the factory return (module, example_inputs)",
        )
    wrapped = make_normalized(module, names)
    try:
        signature = signature_from_run(wrapped, names, example, axes)
    except EdgekitError:
        raise
    except Exception as exc:
        raise EdgekitError(f"running {spec} on inputs {names} failed: {exc}",
                           "check the --input shapes and dtypes against what the model's forward expects") from exc
    return Model(spec=spec, format="torch", signature=signature, dims=dims, module=wrapped,
                 meta={"example": [t.detach() for t in example]})


def load_factory(spec: str, input_specs, dims, load_path) -> Model:
    """``package.module:factory``; the factory returns a module, (module, example), or a path."""
    mod_name, _, attr = spec.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise EdgekitError(f"cannot import {mod_name!r} for model {spec!r}: {exc}",
                           "check the module path; it must be importable from the current folder or the environment") from exc
    factory = mod
    for part in attr.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise EdgekitError(f"{mod_name!r} has no attribute {attr!r}", f"name a function defined in {mod_name}")
    result = factory() if callable(factory) else factory
    if isinstance(result, str | Path):
        model = load_path(Path(result))
        model.spec = spec
        return model
    example = None
    if isinstance(result, tuple) and len(result) == 2:
        result, example = result
    model = from_module(spec, result, example, input_specs, dims)
    return model


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.endswith("constants.pkl") for n in zf.namelist())


def load_exported_program(path: Path, dims: dict[str, int]) -> Model:
    torch = require("torch")
    try:
        ep = torch.export.load(str(path))
    except Exception as exc:
        raise EdgekitError(f"{path} is not a loadable torch.export program ({exc})",
                           "save it with torch.export.save(torch.export.export(model, args), 'model.pt2')") from exc
    user_inputs = list(ep.graph_signature.user_inputs)
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    example, axes = [], []
    for name in user_inputs:
        val = placeholders[name].meta.get("val")
        shape = []
        ax = {}
        for i, d in enumerate(val.shape):
            if isinstance(d, torch.SymInt):
                axis = "batch" if i == 0 else ("sequence" if i == 1 else f"dim{i}")
                ax[i] = axis
                shape.append(dims.get(axis, {"batch": 1, "sequence": 128}.get(axis, 8)))
            else:
                shape.append(int(d))
        axes.append(ax)
        example.append(torch.zeros(shape, dtype=val.dtype) if val.dtype.is_floating_point
                       else torch.ones(shape, dtype=val.dtype))
    ep_example = getattr(ep, "example_inputs", None)
    if ep_example and ep_example[0] and not any(axes):
        example = list(ep_example[0])
    module = make_normalized(ep.module(), user_inputs)
    signature = signature_from_run(module, user_inputs, example, axes)
    model = Model(spec=str(path), format="exported-program", signature=signature, module=module, path=path,
                  meta={"example": example, "exported_program": ep})
    return model


def load_torch_file(path: Path, input_specs, dims, trust_pickle: bool) -> Model:
    torch = require("torch")
    if _is_torchscript(path):
        try:
            module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise EdgekitError(f"{path} looks like TorchScript but does not load ({exc})",
                               "re-save it with torch.jit.save, or export a .pt2 with torch.export") from exc
        model = from_module(str(path), module, None, input_specs, dims)
        model.format, model.path = "torchscript", path
        model.meta["scripted"] = module
        return model
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        if not trust_pickle and "weights_only" in str(exc):
            raise EdgekitError(
                f"{path} is a pickled Python object; loading it would run code from the file",
                "if you trust the file, pass --trust-pickle; better, save the model as TorchScript or a torch.export .pt2",
            ) from exc
        raise EdgekitError(f"{path} is not a torch file edgekit can read ({exc})",
                           "give an ONNX, .pt2, TorchScript or a module:factory") from exc
    if isinstance(obj, dict):
        raise EdgekitError(f"{path} holds weights only (a state_dict), not a model",
                           "give a module:factory that builds the model and loads these weights")
    model = from_module(str(path), obj, None, input_specs, dims)
    model.path = path
    return model
