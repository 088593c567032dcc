"""Match a converter's or runtime's exception against converters/known_failures.toml.

``[[failure]]`` entries explain a failure (op, node, target, the route and the versions it was
seen with, and the fix); those with ``custom = true`` are custom (vendor) ops, and take their
library and fix from the ``[[custom_op]]`` table (by op name, else by ONNX domain).
"""

from __future__ import annotations

import re

from ._data import load_toml
from ._errors import ConversionError

GENERIC_CUSTOM_FIX = (
    "register the library that defines it with the runtime (ONNX Runtime: "
    "SessionOptions.register_custom_ops_library(path); OpenVINO: Core.add_extension(path) or "
    "convert_model(..., extension=...); LiteRT: an OpResolver with the op), or replace the op with standard "
    "ones (for ONNX, a FunctionProto in the model with that domain and name: runtimes inline it), or export "
    "the model without it")


def custom_op_library(op: str, domain: str = "") -> dict:
    """The [[custom_op]] entry of an op (by name, else by its ONNX domain): library and fix; {} if unknown."""
    for entry in load_toml("converters", "known_failures.toml").get("custom_op", []):
        if op in entry.get("ops", []) or (domain and domain == entry.get("domain")):
            return entry
    return {}


def _fields(entry: dict, m: re.Match) -> dict[str, str]:
    fields = {k: (v or "") for k, v in m.groupdict().items()}
    fields.setdefault("op", "?")
    fields.setdefault("node", "?")
    fields.setdefault("domain", "")
    if entry.get("custom"):
        lib = custom_op_library(fields["op"], fields["domain"])
        fields["library"] = f" from {lib['library']}" if lib.get("library") else " from a vendor library edgekit does not know"
        fields["custom_fix"] = lib.get("fix", GENERIC_CUSTOM_FIX)
        fields["qualified"] = f"{fields['domain']}:{fields['op']}" if fields["domain"] else fields["op"]
    return fields


def _converter_frame(exc: BaseException) -> str:
    """`` [in onnx2tf/ops/Add.py]``: the converter module the exception came from, where a converter
    keeps one module per op (onnx2tf), so that an internal error can still name the op."""
    tb, found = exc.__traceback__, ""
    while tb is not None:
        m = re.search(r"(onnx2tf/ops/\w+\.py)$", tb.tb_frame.f_code.co_filename.replace("\\", "/"))
        found = f" [in {m.group(1)}]" if m else found
        tb = tb.tb_next
    return found


def known(target: str, exc: BaseException, where: str | None = None, route: str | None = None) -> ConversionError | None:
    """The known failure ``exc`` is, as a ConversionError naming the op and the fix; None if unknown.
    ``route``: a part of the route that raised it (e.g. ``onnx2torch``); entries of other routes are
    passed over (two converters can raise the same words: onnx2tf's and onnx2torch's "Converter")."""
    text = f"{type(exc).__name__}: {exc}{_converter_frame(exc)}"
    for entry in load_toml("converters", "known_failures.toml").get("failure", []):
        if entry["target"] != target or (route and route not in entry.get("route", route)):
            continue
        m = re.search(entry["match"], text)
        if m:
            fields = _fields(entry, m)
            seen = f" (known: seen with {entry['seen_with']}, route {entry.get('route', '?')})" \
                if entry.get("seen_with") else ""
            return ConversionError(target, f"{where or target}: " + entry["cause"].format(**fields) + seen,
                                   entry["fix"].format(**fields))
    return None


def explain(target: str, exc: BaseException, where: str | None = None) -> ConversionError:
    """A ConversionError naming the op, node, target and known fix, where the table knows it."""
    found = known(target, exc, where)
    if found is not None:
        return found
    first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    return ConversionError(target, f"{where or target}: conversion failed: {type(exc).__name__}: {first[:500]}",
                           "this failure is not in converters/known_failures.toml; rerun with --debug for the traceback and report it")
