"""`report.html` of `edgekit compress`: one self-contained file (no scripts, no network) with
the variants' table and quality plotted against size and against latency, as inline SVG.

It is drawn from ``report.json`` alone, so ``render_compress_html(json.load(...), path)``
re-renders any earlier report.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from ._format import colour as _colour
from ._format import human_size
from .bench_html import _CSS, _num, _ticks, _when
from .tables import keeps_float_by_node

_MARKS = {"fp32": "circle", "fp16": "plus", "dynamic-int8": "tri-down", "static-int8": "square",
          "int8-weights": "tri-up", "int4-weights": "diamond", "mixed": "cross"}
_EXTRA_CSS = "td.notes{white-space:normal;text-align:left;min-width:320px;color:#59636e;font-size:12px}"
_STATUS = {"pass": "ok", "fail": "bad", "baseline": "meta"}


def _rows(doc: dict) -> list[tuple[str, str, dict, str]]:
    rows = [(t, "fp32", b, "baseline") for t, b in (doc.get("baselines") or {}).items()]
    return rows + [(v["target"], v["mode"], v, v.get("status", "?")) for v in doc.get("variants") or []]


def _marker(kind: str, x: float, y: float, colour: str) -> str:
    r = 6
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}"/>'
    if kind == "square":
        return f'<rect x="{x - r:.1f}" y="{y - r:.1f}" width="{2 * r}" height="{2 * r}" fill="{colour}"/>'
    if kind in ("tri-up", "tri-down", "diamond"):
        pts = {"tri-up": [(0, -r), (r, r), (-r, r)], "tri-down": [(0, r), (r, -r), (-r, -r)],
               "diamond": [(0, -r), (r, 0), (0, r), (-r, 0)]}[kind]
        return f'<polygon points="{" ".join(f"{x + a:.1f},{y + b:.1f}" for a, b in pts)}" fill="{colour}"/>'
    d = r if kind == "plus" else r * 0.8  # plus / cross
    lines = ([(x - d, y, x + d, y), (x, y - d, x, y + d)] if kind == "plus"
             else [(x - d, y - d, x + d, y + d), (x - d, y + d, x + d, y - d)])
    return "".join(f'<line x1="{a:.1f}" y1="{b:.1f}" x2="{c:.1f}" y2="{e:.1f}" stroke="{colour}" stroke-width="3"/>'
                   for a, b, c, e in lines)


def scatter_svg(points: list[tuple[float, float, str, str, str]], xlabel: str, ylabel: str, floor: float | None,
                w: int = 540, h: int = 300) -> str:
    """Points (x, y, target, mode, label); a dashed line at ``floor`` (the largest drop allowed)."""
    if not points:
        return '<p class="meta">no figures to plot</p>'
    left, right, top, bottom = 56, 14, 12, 42
    xs, ys = [p[0] for p in points], [p[1] for p in points] + ([floor] if floor is not None else [])
    x0, x1 = 0.0, max(xs) * 1.08
    y1 = max(ys)
    # a failed variant far below the line would squash every useful point into one row: the axis
    # stops a few "allowed drops" below the line and such points sit on its edge, hollow, with a note
    y0 = min(ys) if floor is None else max(min(ys), floor - 3 * max(y1 - floor, 0.1))
    pad = max(0.05, (y1 - y0) * 0.12)
    y0, y1 = y0 - pad, y1 + pad
    below = [p for p in points if p[1] < y0]
    sx = lambda v: left + (v - x0) / (x1 - x0 or 1) * (w - left - right)  # noqa: E731
    sy = lambda v: h - bottom - (v - y0) / (y1 - y0 or 1) * (h - top - bottom)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
           f'aria-label="{escape(ylabel)} against {escape(xlabel)}">',
           f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" fill="#fbfcfd" '
           'stroke="#dde2e8"/>']
    for t in _ticks(x0, x1):
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{h - bottom}" stroke="#eef1f4"/>'
                   f'<text x="{sx(t):.1f}" y="{h - bottom + 14}" text-anchor="middle">{t:g}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{w - right}" y2="{sy(t):.1f}" stroke="#eef1f4"/>'
                   f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    if floor is not None:
        out.append(f'<line x1="{left}" y1="{sy(floor):.1f}" x2="{w - right}" y2="{sy(floor):.1f}" stroke="#b3261e" '
                   'stroke-dasharray="5 3"/>'
                   f'<text x="{w - right - 4}" y="{sy(floor) - 4:.1f}" text-anchor="end" style="fill:#b3261e">'
                   'largest drop allowed</text>')
    for x, y, target, mode, label in points:
        colour = _colour(target)
        mark = _marker(_MARKS.get(mode, "circle"), sx(x), sy(max(y, y0)), colour)
        if y < y0:
            mark = mark.replace(f'fill="{colour}"', f'fill="#fff" stroke="{colour}" stroke-width="2"')
        out.append(f"<g><title>{escape(label)}</title>{mark}</g>")
    if below:
        note = "below the axis: " + "; ".join(f"{t} {m} {y:.2f}" for _, y, t, m, _ in below)
        out.append(f'<text x="{left + 6}" y="{h - bottom - 8}" style="fill:#b3261e">{escape(note)}</text>')
    out.append(f'<text x="{(left + w - right) / 2:.0f}" y="{h - 8}" text-anchor="middle">{escape(xlabel)}</text>'
               f'<text transform="translate(14 {(top + h - bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}</text></svg>')
    return "".join(out)


def _legend(rows) -> str:
    targets = dict.fromkeys(t for t, *_ in rows)
    modes = dict.fromkeys(m for _, m, *_ in rows)
    items = [f'<svg width="14" height="14">{_marker("circle", 7, 7, _colour(t))}</svg> {escape(t)}'
             for t in targets]
    items += [f'<svg width="14" height="14">{_marker(_MARKS.get(m, "circle"), 7, 7, "#3a434d")}</svg> {escape(m)}'
              for m in modes]
    return '<p class="meta">' + " &nbsp; ".join(items) + "</p>"


def _table(doc: dict, rows) -> str:
    one, many = str(min(doc["threads"])), str(max(doc["threads"]))
    metric = doc.get("metric", "metric")
    head = ["target", "mode", "size", "smaller", metric, "drop", "cosine mean", "cosine min", "top-1",
            f"p50 {one}t ms", f"p90 {one}t ms", f"p50 {many}t ms", "speed-up", "kept float", "status", "notes"]
    html = ["<div class=\"wide\"><table><tr>",
            *(f'<th class="{"l" if c in ("target", "mode", "status", "notes") else ""}">{escape(c)}</th>' for c in head),
            "</tr>"]
    for target, mode, e, status in rows:
        lat, agree = e.get("latency_ms") or {}, e.get("agreement") or {}
        kept = e.get("layers_kept_float") or []
        notes = "; ".join(e.get("notes") or [])
        cells = [escape(target), escape(mode), escape(human_size(e["size_bytes"])),
                 f"{e.get('size_ratio', 1.0):.2f}x", _num(e.get("value")), _num(e.get("drop")),
                 _num(agree.get("cosine_mean"), ".4f"), _num(agree.get("cosine_min"), ".4f"),
                 _num(agree.get("top1"), ".3f"), _num(lat.get(one, {}).get("p50")), _num(lat.get(one, {}).get("p90")),
                 _num(lat.get(many, {}).get("p50")), f"{e.get('speedup_1t', 1.0):.2f}x" if lat else "–",
                 f'<span title="{escape(", ".join(kept))}">{len(kept)}</span>',
                 f'<span class="{_STATUS.get(status, "meta")}">{escape(status)}</span>'
                 + (" (estimated)" if e.get("quality_estimated") else ""), escape(notes)]
        html.append("<tr>" + "".join(f'<td class="{"l" if i in (0, 1, 14) else ("notes" if i == 15 else "")}">{c}</td>'
                                     for i, c in enumerate(cells)) + "</tr>")
    html.append("</table></div>")
    return "".join(html)


def _drift_section(doc: dict) -> list[str]:
    """Where each located variant drifts: the first divergent op (with its inputs' errors) and the
    per-layer ranking of the error added, as a table per variant."""
    parts = []
    for v in doc["variants"]:
        fd = v.get("drift")
        if not fd:
            continue
        label = f"{v['target']} {v['mode']}"
        if fd.get("error"):
            parts.append(f'<p class="meta">{escape(label)}: not located: {escape(fd["error"])}</p>')
            continue
        first = (f"first divergence at <b>{escape(str(fd['op_type']))}</b> node <code>{escape(fd['node'])}</code>"
                 f" (output {escape(str(fd.get('tensor')))}): max abs err {_num(fd.get('max_abs_err'), '.3g')}, "
                 f"cosine {_num(fd.get('cosine'), '.6f')}; {escape(str(fd.get('method', '')))}"
                 if fd.get("node") else "no op out of tolerance")
        ins = "; ".join(f"{i['name']}: {_num(i.get('max_abs_err'), '.2g')}" if i.get("kind") == "tensor"
                        else f"{i['name']}: {i.get('kind')}" for i in fd.get("inputs") or [])
        parts.append(f"<h3>{escape(label)} ({escape(v['status'])})</h3><p>{first}</p>"
                     + (f'<p class="meta">its inputs: {escape(ins)}</p>' if ins else "")
                     + (f'<p class="meta">known: {escape(fd["known"]["cause"])}; fix: {escape(fd["known"]["fix"])}</p>'
                        if fd.get("known") else ""))
        ranked = fd.get("ranking") or []
        if ranked:
            rows = "".join(f'<tr><td class="l"><code>{escape(r["node"])}</code></td><td class="l">'
                           f'{escape(r["op_type"])}</td><td>{_num(r.get("added"), ".3g")}</td>'
                           f'<td>{_num(r.get("max_abs_err"), ".3g")}</td><td>{_num(r.get("cosine"), ".5f")}</td></tr>'
                           for r in ranked)
            hint = " (keep float: --keep-float NAME)" if keeps_float_by_node(v["target"]) else ""
            parts.append(f'<table><tr><th class="l">layer{hint}</th><th class="l">op</th>'
                         "<th>error added (x tolerance)</th><th>max abs err</th><th>cosine</th></tr>"
                         f"{rows}</table>")
    if parts:
        parts.insert(0, "<h2>Where the variants drift</h2><p class=\"meta\">Intermediate tensors of each variant "
                        "compared with the fp32 ONNX graph on held-out samples (int8 variants at int8 tolerances)."
                        "</p>")
    return parts


def render_compress_html(doc: dict, path: Path) -> Path:
    """Write ``doc`` (a compress report.json, schema 1) as one self-contained HTML file."""
    rows = _rows(doc)
    one = str(min(doc["threads"]))
    name = Path(doc["source"]["spec"]).name
    title = f"edgekit compress: {name}, {_when(doc.get('created'))}"
    unit = " (%)" if doc.get("metric") == "accuracy" else " × 100"
    ylabel = f"{doc.get('metric', 'quality')}{unit}"
    floor = doc["baseline_value"] - doc["max_drop"]
    label = lambda t, m, e: (f"{t} {m}: {human_size(e['size_bytes'])}, {doc.get('metric')} "  # noqa: E731
                             f"{_num(e.get('value'))}")
    by_size = [(e["size_bytes"] / 1e6, e["value"], t, m, label(t, m, e)) for t, m, e, _ in rows
               if e.get("value") is not None]
    by_speed = [(e["latency_ms"][one]["p50"], e["value"], t, m, label(t, m, e)) for t, m, e, _ in rows
                if e.get("value") is not None and (e.get("latency_ms") or {}).get(one, {}).get("p50") is not None]
    meta = [f"Source: {doc['source']['spec']} ({doc['source'].get('format', '?')})",
            f"Data: {doc.get('data', '?')}",
            f"Metric: {doc.get('metric')}, fp32 {doc['baseline_value']:.2f}; largest drop allowed "
            f"{doc['max_drop']} points; latency at batch 1, threads {', '.join(map(str, doc['threads']))}",
            f"Host: {', '.join(str(v) for v in (doc.get('host') or {}).values())}; edgekit {doc.get('edgekit', '?')}, "
            f"report schema {doc.get('schema', '?')}"]
    parts = [f"<h1>{escape(title)}</h1>", *(f'<p class="meta">{escape(m)}</p>' for m in meta),
             "<h2>Variants</h2>", _table(doc, rows)]
    skipped = doc.get("skipped") or []
    if skipped:
        parts.append('<p class="skip">Skipped: ' + escape("; ".join(f"{s['target']} {s['mode']}: {s['reason']}"
                                                                   for s in skipped)) + "</p>")
    parts += _drift_section(doc)
    parts += ["<h2>Quality against size and latency</h2>", _legend(rows),
              '<div class="grid"><div class="card"><h3>against size</h3>'
              f'{scatter_svg(by_size, "size (MB)", ylabel, floor)}</div>'
              f'<div class="card"><h3>against latency ({one} thread)</h3>'
              f'{scatter_svg(by_speed, f"p50 latency, batch 1, {one} thread (ms)", ylabel, floor)}</div></div>']
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}{_EXTRA_CSS}</style></head>'
            f'<body>{"".join(parts)}</body></html>\n')
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
