"""Report: the manifest (DIR/manifest.json, schema 1) and the compress report (report.json).

How they are shown (terminal tables, HTML, plots) is in ``edgekit.present``."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

from .._types import Artifact, Model
from .._version import __version__
from ..schema import SCHEMA, check


def host_dict() -> dict:
    """The build machine, with its CPU (model, int8/bf16 features; EDGEKIT_CPU_FEATURES overrides)."""
    from .._cpu import host

    return {"system": platform.system(), "machine": platform.machine(), "python": platform.python_version(),
            "cpu": host().to_dict()}


def manifest_dict(root: Path, model: Model, artifacts: list[Artifact], inputs_desc: str, notes: list[str]) -> dict:
    return {
        "schema": SCHEMA,
        "edgekit": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": host_dict(),
        "source": model.source_dict(),
        "verification_inputs": inputs_desc,
        "notes": notes,
        "artifacts": [a.to_dict(root) for a in artifacts],
    }


def write_manifest(root: Path, model: Model, artifacts: list[Artifact], inputs_desc: str, notes: list[str]) -> Path:
    path = root / "manifest.json"
    doc = check("manifest", manifest_dict(root, model, artifacts, inputs_desc, notes))
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


# ---- compress: report.json (schema 1) ---------------------------------------------------------

def compress_report(model: Model, data_desc: str, baseline_value: float, max_drop: float, baselines: dict,
                    variants: list[dict], threads: list[int]) -> dict:
    return {
        "schema": SCHEMA,
        "kind": "compress",
        "edgekit": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": host_dict(),
        "source": model.source_dict(),
        "data": data_desc,
        "metric": next((v["metric"] for v in variants if v.get("metric")), "cosine"),
        "baseline_value": round(baseline_value, 4),
        "max_drop": max_drop,
        "threads": threads,
        "baselines": baselines,
        "variants": variants,
    }
