"""Quality of a compressed Core ML package where the Core ML runtime does not exist (Linux).

coremltools.optimize compresses weights only (linear int8, palettization); the package's
compute stays at the source's precision. So the error it adds is the error of its weights:
decompress them (``coremltools.optimize.coreml.decompress_weights``), put them into a copy of
the source PyTorch module, and run that. This measures the compression exactly and the Core
ML runtime not at all (kernels, and the Neural Engine's fp16 where a device picks it), which
is why the report marks such figures as estimated.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path

from ..._errors import EdgekitError
from ..._lazy import require
from ..._types import Model

_SUFFIX = re.compile(r"(_quantized|_palettized|_sparsified)+$")
METHOD = ("estimated off macOS: the package's weights, decompressed, run in PyTorch at the package's fp32 "
          "compute precision; the Core ML runtime itself was not run")


@dataclasses.dataclass
class PackageWeights:
    model: Model  # a copy of the source whose module carries the package's decompressed weights
    replaced: list[str]  # the package's compressed weights put into it
    unmatched: list[str]  # compressed weights with no counterpart in the source (fused, sliced...)
    unmatched_share: float  # their share of the compressed parameters

    @property
    def usable(self) -> bool:
        """Whether the copy stands for the package: (nearly) all its compressed weights are in it."""
        return bool(self.replaced) and self.unmatched_share <= 0.01


def with_package_weights(model: Model, package: Path) -> PackageWeights:
    """Put the package's compressed weights, decompressed, into a copy of the source module.

    Weights are matched by name (torch.export names a parameter ``p_`` + its path with ``_``
    for ``.``) and shape. A compressed weight the converter derived from others (batch norm
    fused into a convolution, a sliced table) has no counterpart: it is listed as unmatched,
    and the copy keeps the source's value there, so with too many of them it is no estimate.
    A matched weight farther than 50% (relative norm) from the source's means a wrong match.
    """
    if model.module is None:
        raise EdgekitError("a Core ML quality estimate needs the PyTorch source module", "run on macOS to measure")
    ct = require("coremltools", "Core ML")
    torch = require("torch")
    import coremltools.optimize.coreml as cto

    package_model = ct.models.MLModel(str(package), skip_model_load=True)
    weights = cto.get_weights_metadata(cto.decompress_weights(package_model), weight_threshold=1)
    module = copy.deepcopy(model.module)
    state = module.state_dict()
    by_export_name = {"p_" + key.replace(".", "_"): key for key in state}
    replaced, unmatched, unmatched_params, total = [], [], 0, 0
    for name, meta in weights.items():
        if not _SUFFIX.search(name):
            continue  # not a compressed weight: identical to the source's
        total += meta.val.size
        key = by_export_name.get(_SUFFIX.sub("", name))
        if key is None or tuple(meta.val.shape) != tuple(state[key].shape):
            unmatched.append(name)
            unmatched_params += meta.val.size
            continue
        value = torch.from_numpy(meta.val.astype("float32"))
        ref = state[key].float()
        if float((value - ref).norm() / (ref.norm() + 1e-12)) > 0.5:
            raise EdgekitError(f"{package}: weight {name} does not match {key} of the source",
                               "the quality of this Core ML package can only be measured on macOS")
        with torch.no_grad():
            state[key].copy_(value.to(state[key].dtype))
        replaced.append(name)
    module.load_state_dict(state)
    module.eval()
    return PackageWeights(dataclasses.replace(model, module=module), replaced, unmatched,
                          unmatched_params / total if total else 0.0)


def outputs(model: Model, package: Path, mode: str, samples: list[dict], run_source) -> tuple[list | None, list[str]]:
    """The estimated package's outputs on ``samples`` (None where it cannot stand for the package),
    and notes saying how they were had; ``run_source(model, samples)`` runs a PyTorch model.
    compress scores them like any runtime's outputs."""
    validated = "(the package was validated)"
    if mode == "fp16" or model.module is None:
        return None, [f"quality not measured: the Core ML runtime needs macOS {validated}"]
    weights = with_package_weights(model, package)
    if not weights.usable:
        return None, [f"quality not estimated: {len(weights.unmatched)} compressed weights "
                      f"({weights.unmatched_share:.0%} of the compressed parameters) have no counterpart in "
                      "the source (the converter fused or sliced them); it needs the Core ML runtime, i.e. macOS"]
    notes = []
    if weights.unmatched:
        notes.append(f"estimate: {len(weights.unmatched)} small compressed weights ({weights.unmatched_share:.2%}) "
                     f"have no counterpart in the source and stay fp32 in it: {', '.join(weights.unmatched[:3])}")
    return run_source(weights.model, samples), [*notes, f"quality {METHOD}; latency needs macOS {validated}"]
