"""How well `edgekit check` predicts the conversions `benchmarks/conformance.py` recorded.

    python benchmarks/check_predictions.py /tmp/conformance-nodes.json [--json out.json] [-v]
    PYTHONPATH=benchmarks python benchmarks/check_predictions.py /tmp/conformance-zoo.json

For each case (a node case's ``build/conformance/nodes/cases/<name>/model.onnx``, or a zoo model's
``spec``) and each target the results name, ``edgekit.check`` is run on the same file with the same
``inputs.npz``, and its verdict is set beside the recorded outcome. A conversion failure is an
error, a known failure or no route; a parity failure is not (the artifact was made). Prints, per
target: failures predicted (will fail / may fail), missed, and false alarms among the conversions
that succeeded. The figures in docs/check.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAILED = {"error", "known-failure", "no-route"}


def _cases(doc: dict):
    """(name, model path, inputs .npz or None, {target: recorded result}) for every case."""
    for case in doc.get("cases", []):  # node cases
        folder = ROOT / "build" / "conformance" / "nodes" / "cases" / case["name"]
        if case.get("edgekit") and (folder / "model.onnx").exists():
            npz = folder / "inputs.npz"
            yield case["name"], str(folder / "model.onnx"), str(npz) if npz.exists() else None, case["edgekit"]
    for model in doc.get("models", []):  # the zoo
        recorded = model.get("edgekit") or model.get("targets")
        spec = model.get("spec")
        if isinstance(recorded, dict) and spec and (Path(spec).exists() or ":" in spec):
            npz = model.get("inputs")
            yield model["name"], spec, npz if npz and Path(npz).exists() else None, recorded


def predict(doc: dict) -> list[dict]:
    import edgekit

    rows = []
    for name, spec, npz, recorded in _cases(doc):
        t0 = time.perf_counter()
        try:
            result = edgekit.check(spec, targets=list(recorded), inputs=npz)
            predicted = {t.target: (t.status, t.verdict) for t in result.targets}
            unsized = bool(result.unsized)
        except edgekit.EdgekitError as exc:  # bad input: check exits 2, as convert would fail
            predicted = dict.fromkeys(recorded, ("fail", f"error: {exc.cause[:120]}"))
            unsized = False
        for target, r in recorded.items():
            status = "fail" if unsized else predicted[target][0]
            rows.append({"case": name, "target": target, "actual": r["status"], "error": (r.get("error") or "")[:160],
                         "predicted": status, "verdict": predicted[target][1],
                         "seconds": round(time.perf_counter() - t0, 2)})
    return rows


def summary(rows: list[dict]) -> dict:
    """Per target: failures, those predicted (will fail / may fail), conversions made, those flagged."""
    out = {}
    for target in sorted({r["target"] for r in rows}):
        mine = [r for r in rows if r["target"] == target]
        failed = [r for r in mine if r["actual"] in FAILED]
        made = [r for r in mine if r["actual"] not in FAILED]
        out[target] = {"cases": len(mine), "failures": len(failed),
                       "predicted_fail": sum(r["predicted"] == "fail" for r in failed),
                       "predicted_risk": sum(r["predicted"] == "risk" for r in failed),
                       "converted": len(made), "false_fail": sum(r["predicted"] == "fail" for r in made),
                       "false_risk": sum(r["predicted"] == "risk" for r in made)}
    return out


def score(rows: list[dict], verbose: bool = False) -> dict:
    out = summary(rows)
    for target in out:
        mine = [r for r in rows if r["target"] == target]
        failed = [r for r in mine if r["actual"] in FAILED]
        print(f"{target}: {out[target]}")
        for r in mine if verbose else []:
            if (r in failed) != (r["predicted"] in ("fail", "risk")):
                print(f"  {'missed' if r in failed else 'false alarm'}: {r['case']}: {r['verdict'][:80]} | "
                      f"{r['error'][:100]}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="a results JSON of benchmarks/conformance.py (nodes or zoo)")
    p.add_argument("--json", help="write the per-case rows here")
    p.add_argument("-v", "--verbose", action="store_true", help="list the misses and false alarms")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    rows = predict(json.loads(Path(args.results).read_text()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    score(rows, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
