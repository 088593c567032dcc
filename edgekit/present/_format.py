"""Number formats shared by the terminal tables and the HTML pages."""

from __future__ import annotations


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):  # decimal units, as in docs/benchmarks.md
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def fmt_ms(v: float) -> str:
    """Milliseconds with precision to show a change: 26.41, 180, 0.0345."""
    return format(v, ".0f" if abs(v) >= 100 else ".2f" if abs(v) >= 1 else ".3g")


def colour(target: str | None) -> str:
    """A target's colour in plots (its spec's), grey for what has none."""
    from .._registry import TARGETS

    spec = TARGETS.get(target or "")
    return spec.colour if spec else "#4a6d8c"
