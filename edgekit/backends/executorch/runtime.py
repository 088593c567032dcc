"""Run a .pte with ExecuTorch's Python runtime (the XNNPACK delegate and portable kernels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._errors import EdgekitError
from ..._types import Signature
from .._common import pick, spec_from_runtime
from . import device
from ._deps import need


class ExecuTorchRunner:
    """``signature`` (names from the program's ``edgekit_io``, else the source's by position)
    and ``run(feeds) -> list[np.ndarray]``.

    ``threads`` sizes ExecuTorch's one process-wide thread pool (None: as it is, by default
    one thread per core). Runners with different counts in one process take turns: each
    reloads its program when another has resized the pool since it loaded.

    Shape buckets: a dynamic program's bucketed axes are named in ``signature`` (any size up
    to the largest bucket runs). A program with one method per bucket lists them in
    ``signature_keys``; ``use(key)`` picks one, else ``run`` takes the method whose input
    shapes the feeds have.
    """

    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None,
                 profile: bool = False):
        need("executorch", "the ExecuTorch runtime")
        self.path = Path(path)
        self.threads = threads
        self._load()
        self.doc = device.io_doc(self.program)
        self.signature_keys = list(device.methods(self.program, self.doc))
        self._key: str | None = None
        names_in, names_out = device.io_names(self.program, doc=self.doc)
        if source is not None and names_in[:1] == ["input_0"] and len(source.inputs) == len(names_in):
            names_in = [s.name for s in source.inputs]  # a program without edgekit_io: the source's, by position
        if source is not None and names_out[:1] == ["output_0"] and len(source.outputs) == len(names_out):
            names_out = [s.name for s in source.outputs]
        self.signature = Signature(self._specs(names_in, True, source), self._specs(names_out, False, source))
        self._call = self._make_call()

    def _specs(self, names: list[str], inputs: bool, source: Signature | None) -> list:
        """Tensor specs of the main method, with the bucketed axes (dynamic, or differing from
        method to method) as -1, so that they are named as in the source."""
        infos = device.tensor_infos(self.program, inputs)
        varying = _varying_axes(self.program, self.signature_keys, inputs, self.doc)
        named = self.doc.get("dynamic") or {}
        src = (source.inputs if inputs else source.outputs) if source else []
        specs = []
        for i, (n, (shape, dtype)) in enumerate(zip(names, infos, strict=True)):
            axes = {int(a) for a in (named.get(n) or {})} | varying.get(i, set())
            shape = tuple(-1 if a in axes else d for a, d in enumerate(shape))
            specs.append(spec_from_runtime(n, shape, dtype, pick(src, i)))
        return specs

    def _make_call(self):
        names, dtypes = [s.name for s in self.signature.inputs], [s.dtype for s in self.signature.inputs]
        if not self.signature_keys:
            return device.make_call(self.method, names, dtypes)
        methods = device.methods(self.program, self.doc)
        if self._key is not None:
            return device.make_call(self.program.load_method(methods[self._key]), names, dtypes)
        by_shape = {device.shapes_of(self.program, m): m for m in methods.values()}
        return device.make_dispatch(self.program, names, dtypes, by_shape)

    def use(self, key: str | None) -> None:
        """Run the method of bucket ``key`` from now on (None: the one the feeds' shapes name)."""
        if key is not None and key not in self.signature_keys:
            raise EdgekitError(f"{self.path.name} has no method for bucket {key!r}",
                               f"use one of {self.signature_keys or ['(a dynamic program: no methods)']}")
        self._key = key
        self._call = self._make_call()

    def _load(self) -> None:
        self._generation = device.set_threads(self.threads)
        try:
            self.program = device.load_program(str(self.path))
            self.method = self.program.load_method(device.main_method(self.program))
        except Exception as exc:
            raise EdgekitError(f"ExecuTorch cannot load {self.path} ({type(exc).__name__}: {exc})",
                               "the file may be truncated or not a .pte, or need a backend or kernels this "
                               "runtime lacks (edgekit writes XNNPACK and portable ops only)") from exc

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.threads:
            device.set_threads(self.threads)  # another runner may have resized the pool
        if device.generation() != self._generation:
            self._load()  # the pool was resized since this method loaded: its XNNPACK runtime points at the old one
            self._call = self._make_call()
        return self._call(feeds)


def _varying_axes(program, keys: list[str], inputs: bool, doc: dict) -> dict[int, set[int]]:
    """Tensor index -> the axes whose size differs between the per-bucket methods."""
    if not keys:
        return {}
    methods = device.methods(program, doc)
    shapes = [[shape for shape, _ in device.tensor_infos(program, inputs, methods[k])] for k in keys]
    out: dict[int, set[int]] = {}
    for i, first in enumerate(shapes[0]):
        out[i] = {a for a, d in enumerate(first) if any(s[i][a] != d for s in shapes[1:])}
    return out
