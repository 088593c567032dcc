"""Terminal tables (rich): convert's parity table, compress's table, bench's table."""

from __future__ import annotations

from pathlib import Path

from ._format import _fmt, human_size


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
    reasons += [line for a in manifest["artifacts"] if (a.get("parity") or {}).get("first_divergence")
                for line in divergence_lines(a["target"], a["parity"]["first_divergence"])]
    return table, reasons


def divergence_lines(target: str, fd: dict) -> list[str]:
    """parity.first_divergence in words: the node, its error, its inputs' errors, the known entry."""
    if fd.get("node") is None:
        if fd.get("error"):
            return [f"{target}: first divergence not located: {fd['error']}"]
        lines = [f"{target}: no op out of tolerance ({fd.get('compared', '?')} compared; intermediates at "
                 "rtol >= 1e-3)"]
        top = (fd.get("ranking") or [None])[0]
        if top:
            lines.append(f"  most error added at {top['op_type']} node {top['node']!r} (output {top['tensor']}): "
                         f"max abs err {_fmt(top.get('max_abs_err'), '.3g')}, cosine {_fmt(top.get('cosine'), '.6f')}")
        return lines
    err = (f"max abs err {_fmt(fd.get('max_abs_err'), '.3g')}, cosine {_fmt(fd.get('cosine'), '.6f')}"
           if fd.get("max_abs_err") is not None or fd.get("cosine") is not None else "not exposed")
    shown = f" = {fd['target_tensor']}" if fd.get("target_tensor") and fd["target_tensor"] != fd.get("tensor") else ""
    lines = [f"{target}: first divergence at {fd['op_type']} node {fd['node']!r} (output {fd.get('tensor')}{shown}): "
             f"{err} [{fd.get('method', '?')}; {fd.get('seconds', '?')} s]"]
    ins = [f"{i['name']}: {_fmt(i.get('max_abs_err'), '.2g')}" if i.get("kind") == "tensor"
           else f"{i['name']}: {i.get('kind')}" for i in fd.get("inputs", [])]
    if ins:
        lines.append(f"  its inputs: {'; '.join(ins)}")
    if fd.get("evidence"):
        ev = fd["evidence"]
        lines.append(f"  evidence: {ev['tensor']} after it, max abs err {_fmt(ev.get('max_abs_err'), '.3g')}")
    if fd.get("known"):
        lines.append(f"  known: {fd['known']['cause']}; fix: {fd['known']['fix']}")
    return lines


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


def keeps_float_by_node(target: str) -> bool:
    """Whether ``target``'s --keep-float takes the ONNX node names a drift's ranking gives (its spec)."""
    from .._registry import TARGETS

    spec = TARGETS.get(target)
    return bool(spec and spec.keep_float_by_node)


def drift_lines(doc: dict) -> list[str]:
    """Per variant with a located drift (``variants[].drift``): a failing one's first divergence, and
    the layers that add the most error, with the flag that keeps them in float."""
    lines = []
    for v in doc["variants"]:
        fd, label = v.get("drift"), f"{v['target']} {v['mode']}"
        if not fd:
            continue
        if v["status"] == "fail" or fd.get("error"):
            lines += divergence_lines(label, fd)
        ranked = [r for r in fd.get("ranking") or [] if r.get("node")]
        if ranked and v["mode"] != "fp16":
            lines.append(f"{label}: layers adding the most error: " + "; ".join(
                f"{r['node']} ({r['op_type']}, cosine {_fmt(r.get('cosine'), '.4f')})" for r in ranked[:3]))
            if keeps_float_by_node(v["target"]):
                lines.append(f"  to keep them in float: {' '.join('--keep-float ' + r['node'] for r in ranked[:3])}")
    return lines


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


def bench_table(doc: dict, top: int):
    """The bench result as a table, then each result's error or slowest ops."""
    from rich.console import Group
    from rich.table import Table

    t = Table(title=f"edgekit bench on {doc['device'].get('spec')}", title_justify="left")
    cols = ["artifact", "threads", "size", "load ms", "first ms", "p50 ms", "p90 ms", "p99 ms", "std", "inf/s",
            "peak RSS MB", "RSS growth"]
    fits = {(f["artifact"], f["threads"]): f for f in (doc.get("target") or {}).get("fits", [])}
    if fits:
        cols.append(f"fits {doc['target']['name']}")
    for c in cols:
        t.add_column(c, justify="left" if c == "artifact" else "right", no_wrap=True)
    parts = [t]
    for r in doc["results"]:
        if r.get("error"):
            t.add_row(r["artifact"], str(r.get("threads") or "-"), human_size(r["size_bytes"]),
                      *["-"] * (len(cols) - 3 - (1 if fits else 0)), *(["-"] if fits else []))
            continue
        lat, rss = r["latency_ms"], r["rss_mb"]

        def f(x, digits=2):  # benchmark_model (adb) gives no p90/p99 or idle growth: shown as "-"
            return "-" if x is None else f"{x:.{digits}f}"

        row = [r["artifact"], str(r["threads"]), human_size(r["size_bytes"]), f(r["load_ms"], 0),
               f(r["first_inference_ms"]), f(lat["p50"]), f(lat["p90"]), f(lat["p99"]), f(lat["std"]),
               f(r["throughput_ips"], 1), f(rss["peak"], 0), f(rss["growth_idle"], 1)]
        if fits:
            f = fits.get((r["artifact"], r["threads"]))
            row.append("-" if f is None else ("yes" if f["latency"] and f["memory"] else
                                              "no: " + ", ".join(k for k in ("latency", "memory") if not f[k])))
        t.add_row(*row)
    for r in doc["results"]:
        if r.get("error"):
            parts.append(f"{r['artifact']}: {r['error']}")
        elif r.get("ops") and top:
            ops = ", ".join(f"{o['name']} {o['share']:.0%}" for o in r["ops"][:top])
            parts.append(f"{r['artifact']} ({r['threads']}t) slowest ops: {ops}")
    parts += [real_lengths_line(r) for r in doc["results"] if r.get("real_lengths") and not r.get("error")]
    return Group(*parts)


def real_lengths_line(r: dict) -> str:
    """``bench --lengths``: latency over the real lengths, beside the fixed shape's p50."""
    real, lat = r["real_lengths"], r["real_lengths"]["latency_ms"]
    cut = f", {real['truncated']} cut to the largest" if real.get("truncated") else ""
    return (f"{r['artifact']} ({r['threads']}t) real lengths ({real['count']}, mean {real['mean_length']:.1f} "
            f"{real['axis']}, run at {real['run_at']}: mean {real['mean_run_length']:.1f}{cut}): p50 {lat['p50']:.2f} "
            f"ms, p90 {lat['p90']:.2f} ms, mean {lat['mean']:.2f} ms; fixed shape {_first_shape(r)} p50 "
            f"{r['latency_ms']['p50']:.2f} ms")


def _first_shape(r: dict) -> str:
    shapes = list((r.get("input_shapes") or {}).values())
    return "x".join(map(str, shapes[0])) if shapes else "?"
