"""The compress report's PNG plot (matplotlib, when installed)."""

from __future__ import annotations

from pathlib import Path


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
