"""Report: the manifest (DIR/manifest.json, schema 1) and the terminal table."""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path

from .._types import Artifact, Model
from .._version import __version__

SCHEMA = 1


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
    path.write_text(json.dumps(manifest_dict(root, model, artifacts, inputs_desc, notes), indent=2) + "\n")
    return path


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):  # decimal units, as in docs/benchmarks.md
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
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


# ---- compress: report.json (schema 1), table and plot ----------------------------------------

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


def compress_table(doc: dict):
    """One row per baseline and variant; the JSON has every figure (p90, top-1/5, cosine min...)."""
    from rich.table import Table

    one, many = str(min(doc["threads"])), str(max(doc["threads"]))
    table = Table(title=f"edgekit compress: {Path(doc['source']['spec']).name} ({doc['metric']}, fp32 "
                        f"{doc['baseline_value']:.2f})", title_justify="left")
    cols = ["target", "mode", "size", "smaller", doc["metric"], "drop", "cosine", f"p50 {one}t ms",
            f"p50 {many}t ms", "speed-up", "float", "status"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("target", "mode", "status") else "right", no_wrap=True)
    colors = {"pass": "green", "fail": "bold red", "not_run": "yellow", "baseline": "dim"}
    rows = [(t, "fp32", b, "baseline") for t, b in doc["baselines"].items()]
    rows += [(v["target"], v["mode"], v, v["status"]) for v in doc["variants"]]
    for target, mode, e, status in rows:
        lat = e.get("latency_ms") or {}
        table.add_row(
            target, mode, human_size(e["size_bytes"]), f"{e.get('size_ratio', 1.0):.2f}x",
            _fmt(e.get("value"), ".2f"), _fmt(e.get("drop"), ".2f"),
            _fmt((e.get("agreement") or {}).get("cosine_mean"), ".4f"),
            _fmt(lat.get(one, {}).get("p50"), ".2f"), _fmt(lat.get(many, {}).get("p50"), ".2f"),
            f"{e.get('speedup_1t', 1.0):.2f}x" if lat else "-", str(len(e.get("layers_kept_float", []))),
            f"[{colors.get(status, 'white')}]{status}{' (est.)' if e.get('quality_estimated') else ''}[/]")
    table.caption = _cpu_caption(doc)
    table.caption_justify = "left"
    return table


def _cpu_caption(doc: dict) -> str | None:
    """Which CPU the figures were taken on, and which the quantizers chose settings for."""
    host = (doc.get("host") or {}).get("cpu")
    if not host:
        return None
    text = f"measured on {host['model']} (int8: {host['int8_dot']}{', bf16' if host['bf16'] else ''})"
    target = doc.get("target_cpu")
    if target and (target.get("model"), target.get("features")) != (host["model"], host["features"]):
        text += (f"; quantized for {target.get('device') or target['model']} "
                 f"(int8: {target['int8_dot']}{', bf16' if target['bf16'] else ''})")
    return text


def compress_plot(doc: dict, path: Path) -> Path | None:
    """Quality against size and against latency (1 thread), one point per variant."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    one = str(min(doc["threads"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    from .._registry import TARGETS

    colors = {name: spec.colour for name, spec in TARGETS.items()}
    markers = {"fp32": "o", "fp16": "P", "dynamic-int8": "v", "static-int8": "s", "int8-weights": "^",
               "int4-weights": "D", "mixed": "X"}
    points = [(t, "fp32", b) for t, b in doc["baselines"].items()] + [(v["target"], v["mode"], v) for v in doc["variants"]]
    values = []
    for target, mode, e in points:
        if e.get("value") is None:
            continue
        values.append(e["value"])
        lat = (e.get("latency_ms") or {}).get(one, {}).get("p50")
        style = {"marker": markers.get(mode, "o"), "color": colors.get(target, "black"), "s": 70, "alpha": 0.85}
        axes[0].scatter(e["size_bytes"] / 1e6, e["value"], label=f"{target} {mode}", **style)
        if lat is not None:
            axes[1].scatter(lat, e["value"], **style)
    if values:
        low = min(min(values), doc["baseline_value"] - doc["max_drop"])
        for ax in axes:
            ax.set_ylim(low - 0.5, max(values) + 0.5)
    if axes[0].get_legend_handles_labels()[0]:  # nothing measured (e.g. Core ML off macOS): no legend
        axes[0].legend(fontsize=7, loc="lower right")
    axes[0].set_xlabel("size (MB)")
    axes[1].set_xlabel(f"latency p50, batch 1, {one} thread (ms)")
    for ax in axes:
        ax.set_ylabel(doc["metric"] + (" (%)" if doc["metric"] == "accuracy" else " x 100"))
        ax.axhline(doc["baseline_value"] - doc["max_drop"], color="grey", ls="--", lw=0.8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{Path(doc['source']['spec']).name}: quality vs size and latency (dashed: max drop)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
