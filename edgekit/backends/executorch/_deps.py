"""Lazy imports for the ExecuTorch target, failing with the extra that installs it."""

from __future__ import annotations

from types import ModuleType

from ..._errors import BackendMissing
from ..._lazy import require

INSTALL = "pip install 'edgekit[executorch]' -c converters/constraints.txt"


def need(module: str, purpose: str = "") -> ModuleType:
    """``require`` with this target's extra in the fix (edgekit._lazy does not list it yet)."""
    try:
        return require(module, purpose)
    except BackendMissing as exc:
        if module.split(".")[0] in ("executorch", "torchao"):
            exc.fix = INSTALL
        raise
