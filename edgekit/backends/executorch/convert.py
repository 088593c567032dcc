"""torch (torch.export) to an ExecuTorch program (.pte), lowered to the XNNPACK delegate.

    torch.export.export(module, example)
      -> executorch.exir.to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
      -> .to_executorch().buffer -> model.pte

Shapes are static: dynamic axes are fixed at the run's sizes (a note says so), unless shape
buckets are asked for (``ctx.buckets``, buckets.py: a dynamic program or a method per bucket). What XNNPACK
does not take stays on ExecuTorch's portable CPU kernels; a note counts both. The inputs'
and outputs' names go into the program as the constant method ``edgekit_io`` (device.py).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path
from typing import Any

from ..._errors import ConversionError
from ..._types import Model, Signature
from .._common import ConvertContext, fixed_axes_note, static_example
from ._deps import need
from .device import IO_METHOD
from .spec import ARTIFACT as PTE
from .spec import SPEC


def check_source(model: Model) -> None:
    """Refuse a source ExecuTorch cannot start from, naming the fix."""
    why = SPEC.no_route.get(model.format)
    if model.module is None or why:
        raise ConversionError(
            "executorch", f"no path from a {model.format} source to ExecuTorch: "
            f"{why or 'it converts from a torch module and this source has none'}",
            "give edgekit the PyTorch model (module:factory, .pt2 or a Hugging Face folder), or drop this target")


def example_inputs(model: Model) -> tuple:
    """The example inputs at the run's static shapes (dynamic axes at ``model.dims``)."""
    return static_example(model)


def fixed_note(model: Model) -> list[str]:
    return fixed_axes_note(model, "the .pte has static shapes")


@contextlib.contextmanager
def quiet():
    """torch.export and EXIR warn at length about things edgekit does not use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def io_json(signature: Signature, extra: dict | None = None) -> str:
    """``edgekit_io``: names, and where buckets were asked for, ``dynamic`` or ``methods`` (buckets.py)."""
    doc = {"inputs": [s.name for s in signature.inputs], "outputs": [s.name for s in signature.outputs]}
    return json.dumps({**doc, **(extra or {})})


def delegation_note(graph_module: Any) -> str:
    """How many op nodes XNNPACK took, and which ops stayed on the portable CPU kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    ops = {k: v for k, v in info.delegation_by_operator.items() if k != "getitem"}
    delegated = sum(v.delegated for v in ops.values())
    left = {k: v.non_delegated for k, v in ops.items() if v.non_delegated}
    total = delegated + sum(left.values())
    text = (f"XNNPACK delegate: {delegated} of {total} op nodes in {info.num_delegated_subgraphs} "
            f"subgraph{'s' if info.num_delegated_subgraphs != 1 else ''}")
    if not left:
        return text + "; none left on the portable CPU kernels"
    listed = ", ".join(f"{k.removeprefix('aten_')} x{n}" for k, n in sorted(left.items(), key=lambda kv: -kv[1]))
    return text + f"; {sum(left.values())} on the portable CPU kernels ({listed})"


def lower(exported: Any, signature: Signature, dest: Path, io_extra: dict | None = None) -> list[str]:
    """Lower an ExportedProgram (or a dict of them: one method each) to XNNPACK (portable
    kernels for the rest) and write ``dest``."""
    need("executorch", "ExecuTorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with quiet():
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()],
                                           constant_methods={IO_METHOD: io_json(signature, io_extra)})
        first = next(iter(exported)) if isinstance(exported, dict) else "forward"
        note = delegation_note(edge.exported_program(first).graph_module)
        program = edge.to_executorch()
    dest.write_bytes(program.buffer)
    return [note]


def export(module: Any, example: tuple) -> Any:
    torch = need("torch")
    with quiet():
        return torch.export.export(module, example)


def from_torch(model: Model, dest_dir: Path, precision: str, ctx: ConvertContext) -> tuple[Path, list[str]]:
    """Route: torch.export, lowered to XNNPACK (fp32)."""
    check_source(model)
    if precision not in SPEC.precisions:
        raise ConversionError("executorch", f"precision {precision!r} is not available for ExecuTorch",
                              "use --precision fp32; int8 is `edgekit compress --quantize static-int8`")
    dest = dest_dir / PTE
    if getattr(ctx, "buckets", None):
        from . import buckets

        return dest, buckets.convert(model, dest, ctx)
    notes = fixed_note(model)
    exported = export(model.module, example_inputs(model))
    notes += lower(exported, model.signature, dest)
    return dest, notes


convert = from_torch  # the backend contract's name (backends/__init__.py)
