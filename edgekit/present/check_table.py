"""`edgekit check`'s terminal output: a table of verdicts, then one table per target of its routes."""

from __future__ import annotations

from pathlib import Path

_COLOURS = {"ok": "green", "route": "yellow", "risk": "yellow", "fail": "bold red", "unchecked": "dim"}


def check_tables(doc: dict) -> list:
    """Rich renderables for a ``CheckResult.to_dict()``: the summary, each target's routes, then
    the source's facts (unsized axes, quantization, custom ops)."""
    from rich.table import Table

    summary = Table(title=f"edgekit check: {Path(doc['source']['spec']).name} ({doc['seconds']:.1f} s)",
                    title_justify="left")
    for col in ("target", "verdict", "route", "fix"):
        summary.add_column(col, overflow="fold")
    for t in doc["targets"]:
        summary.add_row(t["target"], f"[{_COLOURS.get(t['status'], 'white')}]{t['verdict']}[/]", t["route"] or "-",
                        t["fix"] or "")
    out = [summary]
    for t in doc["targets"]:
        if t["routes"] and t["status"] != "ok" or any(r["findings"] for r in t["routes"]):
            out.append(_routes_table(t))
    return out


def _routes_table(target: dict):
    from rich.table import Table

    table = Table(title=f"{target['target']}: routes, in the order convert tries them", title_justify="left")
    for col in ("route", "status", "op", "why", "nodes"):
        table.add_column(col, overflow="fold")
    for r in target["routes"]:
        style = _COLOURS.get(r["status"], "white")
        if not r["findings"]:
            table.add_row(r["route"], f"[{style}]{r['status']}[/]", "-", r.get("note") or "", "")
        for i, f in enumerate(r["findings"]):
            table.add_row(r["route"] if i == 0 else "", f"[{_COLOURS[f['severity']]}]{f['severity']}[/]", f["op"],
                          f["cause"], ", ".join(f["nodes"][:3]))
    return table


def source_lines(doc: dict) -> list[str]:
    """Plain lines about the source: axes that need a size, quantization, custom ops, notes."""
    lines = []
    for u in doc["unsized"]:
        lines.append(f"axis '{u['axis']}' of input '{u['input']}' has no size: convert will refuse it; {u['fix']}")
    q = doc["source"].get("quantized")
    if q:
        lines.append(f"already quantized ({q.get('summary') or q.get('kind')}): verified at int8 tolerances")
    for c in doc["source"].get("custom_ops") or []:
        name = f"{c['domain']}:{c['op']}" if c["domain"] else c["op"]
        lines.append(f"custom op {name} ({len(c['nodes'])} node(s)){'; from ' + c['library'] if c.get('library') else ''}")
    for t in doc["targets"]:
        lines.extend(f"note ({t['target']}): {n}" for n in t["notes"])
    return lines
