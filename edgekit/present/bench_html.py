"""A one-file HTML report of an `edgekit bench` result: a summary table, a latency
histogram per result and the slowest ops, drawn as inline SVG (no scripts, no network)."""

from __future__ import annotations

import datetime as _dt
import math
from html import escape
from pathlib import Path

from ._format import colour as _colour
from ._format import fmt_ms, human_size

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1180px;
 color:#1d232b;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2e8}
h3{font-size:14px;margin:0 0 4px}.meta{color:#59636e;margin:2px 0}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 7px;border-bottom:1px solid #e6e9ee;text-align:right;white-space:nowrap}
th{background:#f3f5f8;font-weight:600;white-space:normal;vertical-align:bottom}
.wide{overflow-x:auto}td.l,th.l{text-align:left}
.err{color:#b3261e;white-space:normal;text-align:left}.skip{color:#6b7480;white-space:normal;text-align:left}
.ok{color:#1e7b34;font-weight:600}.bad{color:#b3261e;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:18px}.card{border:1px solid #e6e9ee;border-radius:6px;padding:10px 12px}
svg text{font:11px system-ui,sans-serif;fill:#3a434d}
"""


def _num(v, spec: str = ".2f") -> str:
    return "–" if v is None else format(v, spec)


def _ms(v) -> str:
    return "–" if v is None else fmt_ms(v)


def _size(n) -> str:
    return "–" if n is None else human_size(n)  # decimal units, as the CLI's table


def _when(created: str | None) -> str:
    try:
        return _dt.datetime.fromisoformat(created).strftime("%Y-%m-%d %H:%M %Z").strip()
    except (TypeError, ValueError):
        return created or "unknown date"


def _device(d: dict) -> str:
    bits = [d.get("system"), d.get("machine"), d.get("cpu_count") and f"{d['cpu_count']} CPUs",
            d.get("python") and f"Python {d['python']}"]
    extra = ", ".join(str(b) for b in bits if b)
    return f"{d.get('spec', 'unknown device')}" + (f" ({extra})" if extra else "")


def _label(r: dict) -> str:
    t = r.get("threads")
    return f"{r.get('artifact', '?')} · {t} thread{'s' if t != 1 else ''}" if t else str(r.get("artifact", "?"))


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    step = (hi - lo) / n if hi > lo else 1.0
    mag = 10 ** math.floor(math.log10(step))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= step)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def histogram_svg(samples: list[float], lat: dict, colour: str, w: int = 540, h: int = 200) -> str:
    """A histogram of ``samples`` (ms) with the p50/p90/p99 of ``lat`` marked.

    The x axis stops just past the 99th percentile; slower runs are counted in a note.
    """
    left, right, top, bottom = 40, 12, 30, 30
    ordered = sorted(samples)
    lo, q99 = ordered[0], ordered[math.ceil(0.99 * (len(ordered) - 1))]
    hi = min(ordered[-1], q99 + 0.25 * (q99 - lo))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    nbins = max(5, min(40, round(2 * len(samples) ** 0.5)))
    width = (hi - lo) / nbins
    counts = [0] * nbins
    for s in ordered:
        if s <= hi:
            counts[min(nbins - 1, int((s - lo) / width))] += 1
    cmax, beyond = max(counts), sum(1 for s in ordered if s > hi)
    pw, ph = w - left - right, h - top - bottom

    def x(v):
        return left + (v - lo) / (hi - lo) * pw

    out = [f'<svg class="hist" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">']
    for i, c in enumerate(counts):
        if c:
            bh = c / cmax * ph
            out.append(f'<rect class="bin" x="{left + i * pw / nbins + 0.5:.1f}" y="{top + ph - bh:.1f}" '
                       f'width="{max(pw / nbins - 1, 1):.1f}" height="{bh:.1f}" fill="{colour}">'
                       f'<title>{lo + i * width:.3f}–{lo + (i + 1) * width:.3f} ms: {c} runs</title></rect>')
    out.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#8a939d"/>')
    for t in _ticks(lo, hi):
        out.append(f'<line x1="{x(t):.1f}" y1="{top + ph}" x2="{x(t):.1f}" y2="{top + ph + 4}" stroke="#8a939d"/>'
                   f'<text x="{x(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}</text>')
    out.append(f'<text x="{left + pw}" y="{h - 1}" text-anchor="end">ms</text>'
               f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">{cmax}</text>'
               f'<text x="{left - 6}" y="{top + ph}" text-anchor="end">0</text>')
    if beyond:
        out.append(f'<text x="{left + pw}" y="{top - 4}" text-anchor="end">+{beyond} slower, up to '
                   f'{ordered[-1]:.3g} ms →</text>')
    lx = left
    for k, dash in (("p50", ""), ("p90", "5 3"), ("p99", "2 2")):
        v = lat.get(k)
        if v is None:
            continue
        out.append(f'<line x1="{lx}" y1="8" x2="{lx + 18}" y2="8" stroke="#1d232b" stroke-dasharray="{dash}"/>'
                   f'<text x="{lx + 22}" y="12">{k} {v:.3g} ms</text>')
        lx += 112
        if lo <= v <= hi:
            out.append(f'<line class="pct" x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{top + ph}" '
                       f'stroke="#1d232b" stroke-dasharray="{dash}"><title>{k} {v:.3f} ms</title></line>')
    out.append("</svg>")
    return "".join(out)


def ops_svg(ops: list[dict], colour: str, top: int = 10, w: int = 540) -> str:
    """Horizontal bars of the ``top`` ops by share of the run time."""
    ops = sorted(ops, key=lambda o: -(o.get("share") or 0))[:top]
    name_w, bar_h, gap = 150, 16, 5
    h = len(ops) * (bar_h + gap) + 6
    smax = max((o.get("share") or 0) for o in ops) or 1.0
    pw = w - name_w - 150
    out = [f'<svg class="ops" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">']
    for i, o in enumerate(ops):
        y, share = 3 + i * (bar_h + gap), o.get("share") or 0
        name = str(o.get("name", "?"))
        name = name if len(name) <= 24 else name[:23] + "…"
        bw = max(share / smax * pw, 1)
        count = f" · ×{o['count']}" if o.get("count") is not None else ""
        out.append(f'<text x="{name_w - 6}" y="{y + 12}" text-anchor="end">{escape(name)}</text>'
                   f'<rect class="op" x="{name_w}" y="{y}" width="{bw:.1f}" height="{bar_h}" fill="{colour}" '
                   f'rx="2"><title>{escape(str(o.get("name")))}</title></rect>'
                   f'<text x="{name_w + bw + 6:.1f}" y="{y + 12}">{share:.1%} · {_num(o.get("ms"), ".3g")} ms'
                   f'{escape(count)}</text>')
    out.append("</svg>")
    return "".join(out)


def _budget(key: str, v) -> str:
    name, _, unit = key.rpartition("_")
    units = {"mb": "MB", "ms": "ms"}
    value = format(v, ".4g") if isinstance(v, int | float) else str(v)
    return f"{name} ≤ {value} {units[unit]}" if name and unit in units else f"{key} {value}"


def _fit_cell(fit: dict | None) -> str:
    if fit is None:
        return '<td class="skip">–</td>'
    over = [k for k in ("latency", "memory") if not fit.get(k)]
    return '<td class="ok">fits</td>' if not over else f'<td class="bad">over: {escape(", ".join(over))}</td>'


def _table(doc: dict) -> str:
    target = doc.get("target") or {}
    fits = {(f.get("artifact"), f.get("threads")): f for f in target.get("fits") or []}
    cols = ["artifact", "format", "threads", "size", "load ms", "first inference ms", "p50 ms", "p90 ms",
            "p99 ms", "inf/s", "peak RSS MB", "RSS growth MB"]
    if target:
        cols.append(f"fits {target.get('name', 'target')}")
    head = "".join(f'<th{" class=l" if c in ("artifact", "format") else ""}>{escape(c)}</th>' for c in cols)
    rows = []
    for r in doc.get("results") or []:
        first = (f'<td class="l">{escape(str(r.get("artifact", "?")))}</td>'
                 f'<td class="l">{escape(str(r.get("format", "?")))}</td>'
                 f'<td>{escape(str(r.get("threads") or "–"))}</td><td>{_size(r.get("size_bytes"))}</td>')
        if r.get("error"):
            err = str(r["error"])
            cls = "skip" if err.startswith("not run") else "err"
            rows.append(f'<tr class="error">{first}<td class="{cls}" colspan="{len(cols) - 4}">'
                        f'{"" if cls == "skip" else "error: "}{escape(err)}</td></tr>')
            continue
        lat, rss = r.get("latency_ms") or {}, r.get("rss_mb") or {}
        cells = [_ms(r.get("load_ms")), _ms(r.get("first_inference_ms")), _ms(lat.get("p50")),
                 _ms(lat.get("p90")), _ms(lat.get("p99")), _num(r.get("throughput_ips"), ".1f"),
                 _num(rss.get("peak"), ".0f"), _num(rss.get("growth_idle"), ".1f")]
        fit = _fit_cell(fits.get((r.get("artifact"), r.get("threads")))) if target else ""
        rows.append(f"<tr>{first}{''.join(f'<td>{c}</td>' for c in cells)}{fit}</tr>")
    return (f'<div class="wide"><table class="summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _lengths_table(doc: dict) -> str:
    """``bench --lengths``: latency over the real length distribution, beside the fixed shape."""
    rows = []
    for r in doc.get("results") or []:
        real = r.get("real_lengths")
        if r.get("error") or not real:
            continue
        lat, fixed = real.get("latency_ms") or {}, (r.get("latency_ms") or {}).get("p50")
        by_size = ", ".join(f"{k}: {v}" for k, v in (real.get("by_size") or {}).items())
        cells = [escape(str(real.get("count"))), _num(real.get("mean_length"), ".1f"),
                 escape(f"{real.get('run_at')} (mean {real.get('mean_run_length')}; {by_size})"),
                 escape(str(real.get("truncated", 0))), _ms(lat.get("p50")), _ms(lat.get("p90")), _ms(lat.get("mean")),
                 _ms(fixed), _num(fixed / lat["mean"] if fixed and lat.get("mean") else None, ".2f")]
        rows.append(f'<tr><td class="l">{escape(_label(r))}</td>{"".join(f"<td>{c}</td>" for c in cells)}</tr>')
    if not rows:
        return ""
    cols = ["artifact", "inputs", "mean length", "run at (size: inputs)", "cut", "p50 ms", "p90 ms", "mean ms",
            "fixed shape p50 ms", "fixed p50 / mean"]
    head = "".join(f'<th{" class=l" if c == "artifact" else ""}>{escape(c)}</th>' for c in cols)
    source = next(r["real_lengths"].get("source", "") for r in doc["results"] if r.get("real_lengths"))
    return (f'<h2>Real lengths</h2><p class="meta">{escape(str(source))}: one run per input, at the shape the '
            f'artifact runs it at</p><div class="wide"><table class="summary"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def render_html(doc: dict, path: Path) -> Path:
    """Write ``doc`` (an `edgekit bench` result, schema 1) as one self-contained HTML file."""
    device, settings = doc.get("device") or {}, doc.get("settings") or {}
    title = f"edgekit bench on {device.get('spec', 'unknown device')}, {_when(doc.get('created'))}"
    meta = [f"Device: {_device(device)}",
            "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()),
            f"edgekit {doc.get('edgekit', '?')}, result schema {doc.get('schema', '?')}"]
    target = doc.get("target")
    if target:
        budgets = ", ".join(_budget(k, v) for k, v in (target.get("budgets") or {}).items())
        meta.append(f"Target: {target.get('name', '?')}" + (f" (budgets: {budgets})" if budgets else ""))
    parts = [f"<h1>{escape(title)}</h1>", *(f'<p class="meta">{escape(m)}</p>' for m in meta),
             "<h2>Summary</h2>", _table(doc), _lengths_table(doc)]
    ok = [r for r in doc.get("results") or [] if not r.get("error")]
    hists = [f'<div class="card"><h3>{escape(_label(r))}</h3>'
             f'{histogram_svg(r["samples_ms"], r.get("latency_ms") or {}, _colour(r.get("format")))}'
             f'<p class="meta">{len(r["samples_ms"])} timed runs</p></div>' for r in ok if r.get("samples_ms")]
    if hists:
        parts += ["<h2>Latency distribution</h2>", f'<div class="grid">{"".join(hists)}</div>']
    ops = [f'<div class="card"><h3>{escape(_label(r))}</h3>'
           f'{ops_svg(r["ops"], _colour(r.get("format")))}</div>' for r in ok if r.get("ops")]
    if ops:
        parts += ["<h2>Slowest ops (share of run time)</h2>", f'<div class="grid">{"".join(ops)}</div>']
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
            f'<body>{"".join(parts)}</body></html>\n')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
