"""The targets edgekit converts to: one folder each under ``backends/``, found by listing them.

Each folder's ``__init__`` holds its ``SPEC`` (backends/_spec.py); nothing here names a target.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

from ._data import load_toml
from ._errors import EdgekitError
from ._lazy import register_extras, version_of
from .backends._spec import TargetSpec

Target = TargetSpec  # the name earlier code and user scripts use


def _discover() -> dict[str, TargetSpec]:
    """Every ``backends/<folder>`` whose ``__init__`` defines a SPEC (light: no framework imports)."""
    from . import backends

    found = []
    for info in pkgutil.iter_modules(backends.__path__):
        if info.ispkg and not info.name.startswith("_"):
            spec = getattr(importlib.import_module(f"{backends.__name__}.{info.name}"), "SPEC", None)
            if isinstance(spec, TargetSpec):
                found.append(spec)
    return {s.name: s for s in sorted(found, key=lambda s: (s.order, s.name))}


TARGETS: dict[str, TargetSpec] = _discover()  # ONNX first: later targets reuse its export


def parse_targets(text: str | list[str]) -> list[TargetSpec]:
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not names:
        raise EdgekitError("no target given", f"use --to with some of {', '.join(TARGETS)}")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise EdgekitError(f"unknown target(s) {unknown}", f"use some of {', '.join(TARGETS)}")
    ordered = sorted(dict.fromkeys(names), key=list(TARGETS).index)  # ONNX first: others reuse it
    return [TARGETS[n] for n in ordered]


def check_path(source_format: str, target: TargetSpec) -> None:
    """Refuse up front a conversion there is no route for."""
    why = target.no_route.get(source_format)
    if why:
        raise EdgekitError(f"cannot convert a {source_format} model to {target.name}: {why}",
                           "give edgekit the PyTorch model (module:factory, .pt2 or a Hugging Face folder), or drop this target")


def backend_module(target: TargetSpec, part: str) -> ModuleType:
    """``backends/<target's folder>/<part>.py``: convert, runtime or quantize."""
    return importlib.import_module(f"edgekit.backends.{target.package}.{part}")


def runner_for(target: TargetSpec, path: Path, **kwargs):
    return getattr(backend_module(target, "runtime"), target.runner)(path, **kwargs)


def tool_versions(target: str) -> dict[str, str | None]:
    """Versions of the packages a target's toolchain uses (converters/toolchains.toml)."""
    chain = load_toml("converters", "toolchains.toml")[target]
    return {pkg: version_of(pkg) for pkg in chain["packages"] if version_of(pkg)}


def format_of_suffix() -> dict[str, str]:
    """Artifact suffix -> target name (.onnx -> onnx, .xml -> openvino, ...)."""
    return {s.suffix: s.name for s in TARGETS.values()}


def extras() -> dict[str, str]:
    """Module a target needs -> its pip extra (for the install hint of a missing backend)."""
    out = {}
    for s in TARGETS.values():
        for mod in (*s.needs, *(m for r in s.routes for m in r.needs)):
            out.setdefault(mod.split(".")[0], s.extra)
    return out


register_extras(extras())  # install hints name each target's extra, with no import back into the registry
