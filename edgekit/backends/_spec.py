"""What a target declares: its spec, its conversion routes, and the interfaces of its parts.

Each ``backends/<folder>/__init__.py`` defines ``SPEC`` (a :class:`TargetSpec`) and nothing
heavy: importing it imports no framework. edgekit finds targets by listing this package's
folders, so adding a target is adding a folder (plus its extra and ``converters/`` entries).

A target's folder holds, by convention:
- ``convert.py``: the route functions its ``routes`` name (:class:`RouteFn`);
- ``runtime.py``: the runner class its ``runner`` names (:class:`Runner`);
- ``quantize.py``: ``quantize(...)`` (:class:`Quantizer`) for the modes in ``quantization``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .._types import Model, Signature
    from ._common import ConvertContext

# a model form a route starts from -> whether the loaded model has it
SOURCES: dict[str, Callable[[Any], bool]] = {
    "torch": lambda m: m.module is not None and m.format != "torchscript",  # torch.export-able
    "torch-any": lambda m: m.module is not None,  # TorchScript too
    "onnx-file": lambda m: m.onnx_path is not None,
    "onnx": lambda m: m.onnx_path is not None or m.module is not None,  # an ONNX file, or one exported
    "tflite": lambda m: m.format == "tflite",
    "keras": lambda m: m.format == "keras",
}


@dataclass(frozen=True)
class Route:
    """One way to make a target's artifact: the model form it starts from, the tool, and the
    function in the target's ``convert.py`` that runs it (``fn(model, dest_dir, precision, ctx)
    -> (path, notes)``). Routes are tried in order; the first that produces an artifact wins."""

    source: str  # a key of SOURCES
    tool: str  # what converts, as users know it (litert-torch, onnx2tf, ...)
    fn: str  # function name in the target's convert.py
    precisions: tuple[str, ...] = ("fp32", "fp16")
    needs: tuple[str, ...] = ()  # modules this route imports (checked before any work)
    options: Mapping[str, Any] = field(default_factory=dict)  # passed to fn as keyword arguments

    def applies(self, model: Model, precision: str) -> bool:
        return precision in self.precisions and SOURCES[self.source](model)

    @property
    def name(self) -> str:
        return f"{self.source} -> {self.tool}"


@dataclass(frozen=True)
class TargetSpec:
    """Everything edgekit knows about a target, as data."""

    name: str  # the --to name
    package: str  # folder under edgekit/backends
    runner: str  # class in runtime.py
    suffix: str  # the artifact's file (or package folder) suffix: .onnx, .xml, .pte
    extra: str  # pip extra: edgekit[<extra>]
    needs: tuple[str, ...]  # modules needed to run and verify the artifact
    routes: tuple[Route, ...]
    order: int = 50  # conversion order (ONNX first: later targets reuse its export)
    runtime_module: str = ""  # what a device needs to run the artifact (besides numpy)
    companions: tuple[str, ...] = ()  # globs of files beside the artifact: "{stem}.bin", "{name}.data"
    precisions: tuple[str, ...] = ("fp32", "fp16")
    quantization: Mapping[str, str | None] = field(default_factory=dict)  # mode -> None (ok) or why not
    static_shapes: bool = False
    colour: str = "#555555"  # plots and the HTML report
    runs_here: Callable[[], str | None] | None = None  # why this host cannot run the artifact (None: it can)
    no_route: Mapping[str, str] = field(default_factory=dict)  # source format -> why there is no route
    slow_reasons: Mapping[tuple[str, str | None], str] = field(default_factory=dict)  # (mode, kind) -> why
    servable: bool = False  # edgekit serve can load it (dynamic batch, runs on a server CPU)
    precision_hint: bool = False  # the runner takes precision_hint (OpenVINO: f32 for parity, bf16 where the CPU has it)
    keep_float_by_node: bool = False  # --keep-float takes ONNX node names (the names a drift's ranking gives)

    def files(self, artifact: Path) -> list[Path]:
        """The artifact and the files it needs beside it (weights, external data)."""
        extra = [p for g in self.companions
                 for p in sorted(artifact.parent.glob(g.format(stem=artifact.stem, name=artifact.name)))]
        return [artifact, *dict.fromkeys(p for p in extra if p != artifact)]

    def cannot_run(self) -> str | None:
        return self.runs_here() if self.runs_here else None

    def routes_for(self, model: Model, precision: str) -> list[Route]:
        return [r for r in self.routes if r.applies(model, precision)]


@runtime_checkable
class Runner(Protocol):
    """Runs an artifact: ``runtime.py``'s ``SPEC.runner`` class, built as
    ``Runner(path, threads=None, source=None, **options)``."""

    signature: Signature

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class RouteFn(Protocol):
    def __call__(self, model: Model, dest_dir: Path, precision: str, ctx: ConvertContext,
                 **options: Any) -> tuple[Path, list[str]]: ...


class Quantizer(Protocol):
    """``quantize.py``'s ``quantize``: one mode of SPEC.quantization, from the fp32 artifact ``src``."""

    def __call__(self, src: Path, dest_dir: Path, mode: str, calib: list[dict[str, Any]] | None,
                 opts: Any) -> Any: ...
