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
    """

    def __init__(self, path: Path, threads: int | None = None, source: Signature | None = None,
                 profile: bool = False):
        need("executorch", "the ExecuTorch runtime")
        self.path = Path(path)
        self.threads = threads
        self._load()
        names_in, names_out = device.io_names(self.program)
        if source is not None and names_in[:1] == ["input_0"] and len(source.inputs) == len(names_in):
            names_in = [s.name for s in source.inputs]  # a program without edgekit_io: the source's, by position
        if source is not None and names_out[:1] == ["output_0"] and len(source.outputs) == len(names_out):
            names_out = [s.name for s in source.outputs]
        ins, outs = device.tensor_infos(self.program, True), device.tensor_infos(self.program, False)
        src_in = source.inputs if source else []
        src_out = source.outputs if source else []
        self.signature = Signature(
            [spec_from_runtime(n, shape, dtype, pick(src_in, i)) for i, (n, (shape, dtype)) in enumerate(zip(names_in, ins, strict=True))],
            [spec_from_runtime(n, shape, dtype, pick(src_out, i)) for i, (n, (shape, dtype)) in enumerate(zip(names_out, outs, strict=True))],
        )
        self._call = device.make_call(self.method, names_in, [d for _, d in ins])

    def _load(self) -> None:
        self._generation = device.set_threads(self.threads)
        try:
            self.program = device.load_program(str(self.path))
            self.method = self.program.load_method(device.METHOD)
        except Exception as exc:
            raise EdgekitError(f"ExecuTorch cannot load {self.path} ({type(exc).__name__}: {exc})",
                               "the file may be truncated or not a .pte, or need a backend or kernels this "
                               "runtime lacks (edgekit writes XNNPACK and portable ops only)") from exc

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if self.threads:
            device.set_threads(self.threads)  # another runner may have resized the pool
        if device.generation() != self._generation:
            self._load()  # the pool was resized since this method loaded: its XNNPACK runtime points at the old one
            self._call = device.make_call(self.method, [s.name for s in self.signature.inputs],
                                          [s.dtype for s in self.signature.inputs])
        return self._call(feeds)
