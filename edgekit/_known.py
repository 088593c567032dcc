"""Match a converter's exception against converters/known_failures.toml."""

from __future__ import annotations

import re

from ._data import load_toml
from ._errors import ConversionError


def explain(target: str, exc: BaseException) -> ConversionError:
    """A ConversionError naming the op, node, target and known fix, where the table knows it."""
    text = f"{type(exc).__name__}: {exc}"
    for entry in load_toml("converters", "known_failures.toml").get("failure", []):
        if entry["target"] != target:
            continue
        m = re.search(entry["match"], text)
        if m:
            fields = {k: (v or "") for k, v in m.groupdict().items()}
            fields.setdefault("op", "?")
            fields.setdefault("node", "?")
            return ConversionError(target, f"{target}: " + entry["cause"].format(**fields),
                                   entry["fix"].format(**fields))
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return ConversionError(target, f"{target}: conversion failed: {type(exc).__name__}: {first[:500]}",
                           "this failure is not in converters/known_failures.toml; rerun with --debug for the traceback and report it")
