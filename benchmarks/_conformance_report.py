"""`conformance.py report`: docs/conformance.md from a `nodes` JSON and a `zoo` JSON."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("onnx", "openvino", "tflite", "coreml")


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "0/0"


SHORT = {"pass": "pass", "fail": "**FAIL**", "error": "**ERROR**", "known-failure": "known failure",
         "no-route": "n/a", "not_run": "not run"}


def _short(answer: dict) -> str:
    status = answer["status"]
    text = SHORT.get(status, status)
    if status == "pass" and answer.get("validated_only"):
        text += " (validated, not run)"
    tried = len(answer.get("attempts") or [])
    return (text + (f" `{answer['route']}`" if answer.get("route") else "")
            + (f" ({tried} routes tried)" if tried > 1 else ""))


def zoo_cell(answer: dict | None) -> str:
    """Status and route; with what sizing the axes from the inputs (--dim) gave, where that ran."""
    if not answer:
        return ""
    if answer.get("with_dims"):
        return f"{_short(answer)}; with --dim: {_short(answer['with_dims'])}"
    return _short(answer)


def _reasons(models: list[dict], targets: list[str]) -> list[str]:
    """One line per model x target that did not pass: its message (the --dim run's where there was one)."""
    lines, no_route = [], {}
    for m in models:
        for t in targets:
            a = m["targets"].get(t)
            if not a:
                continue
            last = a.get("with_dims") or a
            if last["status"] == "no-route":
                no_route.setdefault(_cell(last.get("error") or "", 200), []).append(f"{m['name']} → {t}")
                continue
            if last["status"] in ("pass",):
                continue
            why = _cell(last.get("error") or "", 300)
            fix = f" — fix: {_cell(last['fix'], 200)}" if last.get("fix") else ""
            lines.append(f"- **{m['name']} → {t}** ({SHORT.get(last['status'], last['status']).strip('*')}): {why}{fix}")
    lines += [f"- n/a, {len(pairs)} pairs ({', '.join(pairs)}): {why}" for why, pairs in no_route.items()]
    return lines


def _zoo_section(zoo: dict) -> list[str]:
    targets = [t for t in TARGETS if t in zoo["meta"]["targets"]]
    lines = ["## Zoo: real models", "",
             "Each model converted by edgekit with a real-shaped sample input (`--inputs`, built from "
             "`benchmarks/zoo.toml`'s recipe); the route in backquotes produced the kept artifact (the "
             "manifest's `attempts[]`). Where `--inputs` alone stopped at an unsized dynamic axis, the model "
             "ran once more with each axis sized from those inputs (`--dim NAME=N`): *with --dim*. "
             "Core ML packages are validated (loaded, ops checked), not run, on Linux.", "",
             "| model | task | tags | " + " | ".join(targets) + " |", "|---|---|---|" + "---|" * len(targets)]
    for m in zoo["models"]:
        cells = [zoo_cell(m["targets"].get(t)) for t in targets]
        lines.append(f"| {m['name']} | {_cell(m['task'], 70)} | {', '.join(m.get('tags', []))} | "
                     + " | ".join(cells) + " |")
    lines += ["", "| target | pass | fail (parity) | known failure | error | n/a (no route) | pass rate | "
              "pass rate with --dim |", "|---|---|---|---|---|---|---|---|"]
    for t in targets:
        s = zoo["summary"][t]
        d = s.get("with_dims", {})
        d_app = sum(d.values()) - d.get("no-route", 0)
        lines.append(f"| {t} | {s.get('pass', 0)} | {s.get('fail', 0)} | {s.get('known-failure', 0)} | "
                     f"{s.get('error', 0)} | {s.get('no-route', 0)} | {_pct(s.get('pass', 0), s['applicable'])} | "
                     f"{_pct(d.get('pass', 0), d_app)} |")
    lines += ["", "Sources (package==version:path inside the wheel, sha256 in zoo.toml): "
              + "; ".join(f"{m['name']} `{m['source']}`" for m in zoo["models"]) + ".",
              "", "### Why each non-pass", "", *_reasons(zoo["models"], targets)]
    return lines


def _nodes_section(nodes: dict) -> list[str]:
    s, meta = nodes["summary"], nodes["meta"]
    k = s["ort_pass"]
    partial = (f" (the run was stopped after the first {s['cases']} of the {meta['limit']} drawn, in name order)"
               if meta.get("limit") and s["cases"] < meta["limit"] else "")
    lines = ["## ONNX backend node cases", "",
             f"A fixed-seed sample (seed {meta['seed']}, {s['cases']} of the cases "
             f"`onnx.backend.test.case.node.collect_testcases()` yields{partial}); "
             f"{s['skipped']} have sequence/optional inputs or outputs and are left out. Each case's inputs go "
             "to an .npz keyed by input name, given to edgekit as `inputs=`. Raw runtimes are compared to "
             "the case's expected outputs with its own rtol/atol; edgekit's figure is its own parity "
             "check of the artifact against the source run by ONNX Runtime.", "",
             "| runtime / route | pass | of |", "|---|---|---|",
             f"| raw ONNX Runtime | {_pct(k, s['ort_ran'])} | cases run |",
             f"| raw OpenVINO (CPU, f32 hint) | {_pct(s['ov_pass'], k)} | cases ORT passes |"]
    for t in meta["targets"]:
        lines.append(f"| edgekit → {t} | {_pct(s[t].get('pass', 0), s[t]['ran'])} | cases ORT passes |")
    for t in meta["targets"]:
        lost = s[t]["lost_where_raw_ov_passes"]
        lines += ["", f"### edgekit → {t}: commonest failures", "",
                  f"Cases raw OpenVINO passes but edgekit → {t} does not: {len(lost)}"
                  + (f" ({', '.join(lost[:12])}{', …' if len(lost) > 12 else ''})" if lost else "") + ".", "",
                  "| count | status: message (numbers, paths and quoted names blanked) |", "|---|---|"]
        lines += [f"| {n} | {_cell(msg, 200)} |" for msg, n in s[t]["errors"]]
    return lines


def _header(nodes: dict | None, zoo: dict | None) -> list[str]:
    meta = (zoo or nodes)["meta"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = ["# Conformance", "",
             "What edgekit converts, measured on models it was not built around: real models shipped inside "
             "PyPI packages, transformers architectures from small configs, and ONNX's own backend node "
             "cases. Generated by `benchmarks/conformance.py report`; do not edit by hand.", "",
             f"- date: {meta['date']}; commit {meta.get('commit', '')}",
             f"- CPU: {meta['cpu']} ({meta['cores']} cores visible)", f"- versions: {versions}", "- commands:"]
    for doc in (nodes, zoo):
        if doc:
            lines.append(f"  - `{doc['meta']['command']}` ({doc['meta']['date']}, commit {doc['meta'].get('commit', '')})")
    return lines


def _zoo_rate(zoo: dict, target: str, kind: str) -> str:
    """pass / (models of that kind with a route for the target), the --dim rerun counted where it ran."""
    answers = [m["targets"][target] for m in zoo["models"] if m["kind"] == kind and target in m["targets"]]
    final = [a.get("with_dims") or a for a in answers]
    applicable = [a for a in final if a["status"] != "no-route"]
    if not answers:
        return ""
    na = len(final) - len(applicable)
    return _pct(sum(a["status"] == "pass" for a in applicable), len(applicable)) + (f", {na} n/a" if na else "")


def _rates(nodes: dict | None, zoo: dict | None) -> list[str]:
    lines = ["## Pass rates", "",
             "| target | zoo: PyPI models | zoo: transformers archs | node cases (of those ORT passes) |",
             "|---|---|---|---|"]
    ns = nodes["summary"] if nodes else {}
    for t in TARGETS:
        n = ns.get(t)
        zp = _zoo_rate(zoo, t, "pypi") if zoo else ""
        za = _zoo_rate(zoo, t, "transformers") if zoo else ""
        if not (zp or za or n):
            continue
        nc = _pct(n.get("pass", 0), n["ran"]) if n else ""
        lines.append(f"| edgekit → {t} | {zp} | {za} | {nc} |")
    if nodes:
        lines.append(f"| raw ONNX Runtime | | | {_pct(ns['ort_pass'], ns['ort_ran'])} (of cases run) |")
        lines.append(f"| raw OpenVINO | | | {_pct(ns['ov_pass'], ns['ort_pass'])} |")
    return lines


def _failures(doc: dict) -> list[tuple[str, str, dict]]:
    """(case or model, target, answer) of every parity failure in a nodes or zoo result."""
    rows = [(c["name"], t, a) for c in doc.get("cases", []) for t, a in (c.get("edgekit") or {}).items()]
    rows += [(m["name"], t, a.get("with_dims") or a) for m in doc.get("models", [])
             for t, a in m["targets"].items()]
    return [r for r in rows if r[2].get("status") == "fail"]


def _divergence_cell(fd: dict | None) -> str:
    if not fd:
        return "not recorded"
    if not fd.get("node"):
        return f"not located: {fd.get('error') or 'no compared tensor out of tolerance'}"
    how = "exposed" if fd.get("exposed") else (fd.get("method") or "inferred")
    err = fd.get("max_abs_err")
    return (f"`{fd['op_type']}` {_cell(fd['node'], 60)} ({how}; "
            f"{'max abs err ' + format(err, '.3g') if err is not None else 'inf or NaN, a wrong shape, or no output'})")


def _short_match(command: str) -> str:
    """A command with its --match list of names shown as their count."""
    import re

    return re.sub(r"--match (\S+)", lambda m: f"--match <{m.group(1).count(',') + 1} names>", command)


def _located_section(docs: list[dict]) -> list[str]:
    """Every parity failure of the given runs with the op its first_divergence names."""
    rows = [r for d in docs for r in _failures(d)]
    located = sum(bool((a.get("first_divergence") or {}).get("node")) for _, _, a in rows)
    commands = "; ".join(f"`{_short_match(d['meta']['command'])}` (commit {d['meta'].get('commit', '')})" for d in docs)
    lines = ["## Where each parity failure drifts", "",
             f"Each artifact that converted but failed parity, with `parity.first_divergence` (edgekit/steps/"
             f"locate.py; docs/verification.md): the first op of the ONNX graph whose output is out of "
             f"tolerance while its inputs are not. Located: **{_pct(located, len(rows))}**. "
             f"Runs: {commands}.", "",
             "| case / model | target | parity failure | first divergence |", "|---|---|---|---|"]
    lines += [f"| {_cell(name, 70)} | {t} | {_cell(a.get('error') or '', 90)} | "
              f"{_divergence_cell(a.get('first_divergence'))} |" for name, t, a in rows]
    return lines


def _predictions_section(runs: list[tuple[str, list[dict]]]) -> list[str]:
    """How well `edgekit check` predicted the conversions (rows of benchmarks/check_predictions.py --json)."""
    from check_predictions import summary

    lines = ["## `edgekit check`: predicted before converting", "",
             "`edgekit check` run on each model with the same inputs before the conversion is known "
             "(`benchmarks/check_predictions.py RESULTS.json --json ROWS.json`); a conversion failure is an "
             "error, a known failure or no route (a parity failure is not: the artifact was made). "
             "docs/check.md explains the verdicts.", "",
             "| run | target | conversion failures | predicted (will fail + may fail) | converted | "
             "flagged among them |", "|---|---|---|---|---|---|"]
    total = [0, 0, 0, 0]
    for label, rows in runs:
        for target, s in summary(rows).items():
            hit, flagged = s["predicted_fail"] + s["predicted_risk"], s["false_fail"] + s["false_risk"]
            total = [total[0] + s["failures"], total[1] + hit, total[2] + s["converted"], total[3] + flagged]
            lines.append(f"| {label} | {target} | {s['failures']} | {_pct(hit, s['failures'])} "
                         f"({s['predicted_fail']} + {s['predicted_risk']}) | {s['converted']} | "
                         f"{_pct(flagged, s['converted'])} |")
    lines += ["", f"In all: **{_pct(total[1], total[0])}** of the conversion failures predicted; "
                  f"**{_pct(total[3], total[2])}** of the conversions that succeeded flagged."]
    return lines


def render(nodes: dict | None, zoo: dict | None, located: list[dict] | None = None,
           predictions: list[tuple[str, list[dict]]] | None = None) -> str:
    parts = [_header(nodes, zoo), _rates(nodes, zoo)]
    if zoo:
        parts.append(_zoo_section(zoo))
    if nodes:
        parts.append(_nodes_section(nodes))
    if predictions:
        parts.append(_predictions_section(predictions))
    if located:
        parts.append(_located_section(located))
    return "\n\n".join("\n".join(p) for p in parts) + "\n"


def cmd_report(args) -> int:
    nodes = json.loads(Path(args.nodes).read_text()) if args.nodes else None
    zoo = json.loads(Path(args.zoo).read_text()) if args.zoo else None
    if not nodes and not zoo:
        raise SystemExit("give --nodes and/or --zoo")
    out = Path(args.out)
    located = [json.loads(Path(f).read_text()) for f in args.located or []]
    predictions = [(label, json.loads(Path(f).read_text()))
                   for label, _, f in (p.partition("=") for p in args.predictions or [])]
    out.write_text(render(nodes, zoo, located, predictions))
    print(f"wrote {out}")
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("report", help="write docs/conformance.md from nodes/zoo JSON")
    p.add_argument("--nodes", help="JSON from `conformance.py nodes --json`")
    p.add_argument("--zoo", help="JSON from `conformance.py zoo --json`")
    p.add_argument("--located", action="append", help="JSON of a run of the parity failures (nodes --match, zoo "
                   "--only) whose first divergences are listed; repeat")
    p.add_argument("--predictions", action="append", help="LABEL=ROWS.json of benchmarks/check_predictions.py "
                   "--json: how well edgekit check predicted that run; repeat")
    p.add_argument("--out", default=str(ROOT / "docs" / "conformance.md"))
    p.set_defaults(func=cmd_report)
