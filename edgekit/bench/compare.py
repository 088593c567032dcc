"""`edgekit bench --compare OLD.json NEW.json`: what changed between two bench results.

Results are matched by (artifact, threads). A pair is a regression when its p50, p90, peak RSS,
size or (with ``--lengths``) mean latency over the real lengths grew by more than ``threshold``
(relative), or when it ran before and fails now.
"""

from __future__ import annotations

from ..present._format import fmt_ms, human_size

# row key -> where the figure sits in a result, and how the table shows it
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "p50_ms": (("latency_ms", "p50"), "p50 ms"),
    "p90_ms": (("latency_ms", "p90"), "p90 ms"),
    "peak_rss_mb": (("rss_mb", "peak"), "peak RSS MB"),
    "size_bytes": (("size_bytes",), "size"),
    "real_mean_ms": (("real_lengths", "latency_ms", "mean"), "real lengths mean ms"),  # bench --lengths
}
OPTIONAL = {"real_mean_ms"}  # a column only when a result has the figure


def _get(result: dict | None, path: tuple[str, ...]):
    v = result
    for k in path:
        if not isinstance(v, dict):
            return None
        v = v.get(k)
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _key(r: dict) -> tuple:
    return r.get("artifact"), r.get("threads")


def compare(old: dict, new: dict, threshold: float = 0.10) -> list[dict]:
    """One row per (artifact, threads) found in either result, old's order first.

    Each row: ``artifact``, ``threads``, ``status`` (``matched``, ``added``, ``removed``,
    ``error`` (fails in new only), ``fixed`` (failed in old only), ``still failing``,
    ``not run``), for each metric in METRICS a dict ``{"old", "new", "change"}`` (change
    relative to old, None when either is missing or old is 0), ``regressed`` (the metrics past
    the threshold, plus ``error``), ``regression``, ``threshold``, ``old_error`` and
    ``new_error``. Added and removed rows are never regressions.
    """
    if threshold < 0:
        raise ValueError(f"threshold must not be negative, got {threshold}")
    olds = {_key(r): r for r in reversed(old.get("results") or [])}
    news = {_key(r): r for r in reversed(new.get("results") or [])}
    keys = list(dict.fromkeys([_key(r) for r in old.get("results") or []] +
                              [_key(r) for r in new.get("results") or []]))
    rows = []
    for k in keys:
        a, b = olds.get(k), news.get(k)
        row: dict = {"artifact": k[0], "threads": k[1], "threshold": threshold, "regressed": [],
                     "old_error": a.get("error") if a else None, "new_error": b.get("error") if b else None}
        for name, (path, _) in METRICS.items():
            va, vb = _get(a, path), _get(b, path)
            change = (vb - va) / va if va and vb is not None else None
            row[name] = {"old": va, "new": vb, "change": change}
            if a and b and change is not None and change > threshold:
                row["regressed"].append(name)
        if a is None or b is None:
            row["status"], row["regressed"] = ("added" if a is None else "removed"), []
        elif b.get("error"):
            ran_before = not a.get("error")
            skipped = str(b["error"]).startswith("not run")
            row["status"] = "not run" if skipped else ("error" if ran_before else "still failing")
            if ran_before and not skipped:
                row["regressed"].append("error")
        else:
            row["status"] = "fixed" if a.get("error") else "matched"
        row["regression"] = bool(row["regressed"])
        rows.append(row)
    return rows


def _cell(m: dict, name: str, bad: bool) -> str:
    def fmt(v):
        if v is None:
            return "-"
        if name == "size_bytes":
            return human_size(v)
        return format(v, ".0f") if name == "peak_rss_mb" else fmt_ms(v)

    old, new = fmt(m["old"]), fmt(m["new"])
    if m["old"] is None and m["new"] is None:
        return "-"
    text = f"{old} → {new}"
    if m["change"] is not None:
        colour = "red" if bad else ("green" if m["change"] < 0 else "")
        pct = f"{m['change']:+.1%}"
        text += f" [{colour}]({pct})[/{colour}]" if colour else f" ({pct})"
    return text


def format_table(rows: list[dict]):
    """A rich Table of :func:`compare`'s rows, regressions in red."""
    from rich.markup import escape
    from rich.table import Table

    threshold = rows[0]["threshold"] if rows else None
    title = "edgekit bench: old → new" + (f" (regression: > {threshold:+.0%})" if threshold is not None else "")
    t = Table(title=title, title_justify="left")
    t.add_column("artifact", no_wrap=True)
    t.add_column("threads", justify="right")
    shown = [n for n in METRICS if n not in OPTIONAL or any(r[n]["old"] is not None or r[n]["new"] is not None
                                                            for r in rows)]
    for name in shown:
        t.add_column(METRICS[name][1], justify="right", no_wrap=True)
    t.add_column("status")
    for r in rows:
        cells = [_cell(r[name], name, name in r["regressed"]) for name in shown]
        status = r["status"]
        err = r.get("new_error") or r.get("old_error")
        if err and status in ("error", "fixed", "not run", "still failing"):
            status += f": {escape(str(err))}"
        if r["regression"]:
            what = ", ".join(METRICS[k][1] if k in METRICS else k for k in r["regressed"])
            status = f"[bold red]REGRESSION[/bold red]: {what}" + ("" if status == "matched" else f"; {status}")
        elif r["status"] in ("added", "removed"):
            status = f"[yellow]{status}[/yellow]"
        t.add_row(escape(str(r["artifact"])), "-" if r["threads"] is None else str(r["threads"]), *cells, status)
    return t
