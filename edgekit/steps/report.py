"""Report: the manifest (DIR/manifest.json, schema 1) and the terminal table."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

from .._types import Artifact, Model
from .._version import __version__

SCHEMA = 1


def manifest_dict(root: Path, model: Model, artifacts: list[Artifact], inputs_desc: str, notes: list[str]) -> dict:
    return {
        "schema": SCHEMA,
        "edgekit": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": {"system": platform.system(), "machine": platform.machine(), "python": platform.python_version()},
        "source": model.source_dict(),
        "verification_inputs": inputs_desc,
        "notes": notes,
        "artifacts": [a.to_dict(root) for a in artifacts],
    }


def write_manifest(root: Path, model: Model, artifacts: list[Artifact], inputs_desc: str, notes: list[str]) -> Path:
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest_dict(root, model, artifacts, inputs_desc, notes), indent=2) + "\n")
    return path


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def parity_table(manifest: dict):
    """A rich Table of the manifest's artifacts: the same figures as the JSON."""
    from rich.table import Table

    table = Table(title=f"edgekit convert: {Path(manifest['source']['spec']).name}", title_justify="left")
    for col, just in (("target", "left"), ("precision", "left"), ("size", "right"), ("convert s", "right"),
                      ("max abs err", "right"), ("mean abs err", "right"), ("cosine", "right"),
                      ("top-1", "right"), ("status", "left")):
        table.add_column(col, justify=just)
    colors = {"pass": "green", "fail": "bold red", "not_run": "yellow"}
    for a in manifest["artifacts"]:
        p = a["parity"] or {}
        status = p.get("status", "-")
        shown = status
        table.add_row(a["target"], a["precision"], human_size(a["size_bytes"]), f"{a['convert_seconds']:.1f}",
                      _fmt(p.get("max_abs_err"), ".2e"), _fmt(p.get("mean_abs_err"), ".2e"),
                      _fmt(p.get("cosine"), ".6f"), _fmt(p.get("top1_agreement"), ".3f"),
                      f"[{colors.get(status, 'white')}]{shown}[/]")
    reasons = [f"{a['target']}: {a['parity']['reason']}" for a in manifest["artifacts"]
               if a.get("parity") and a["parity"].get("reason")]
    return table, reasons
