# Run: .venv/bin/python benchmarks/ov_bucket_switching.py MODEL.xml [--length 27] [--other 36] [--copies 8]
"""Why OpenVINO loses speed when shape buckets switch: one static int8 MiniLM compiled ``--copies``
times at one length, called round-robin over k of them (k = 1, 2, ... copies), batch 1, one
thread; and the same IR compiled dynamic, called at that one length, then at ``--length`` and
``--other`` in turn (what bucketed inputs do to one dynamic model).

Each compiled model holds its own repacked weights (the CPU plugin's weights cache is per compiled
model), so calling k >= 2 of them in turn reads their weights from memory rather than from cache;
the same shape and the same work otherwise. A dynamic model shares one copy of the weights but
pays shape inference and parameter updates on every call, and more each time the length changes. CPU time of the process per call
(``time.process_time``: other processes on the machine weigh less than on the wall clock),
median of 5 rounds of 120 calls. Writes one JSON line per measurement and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}


def per_call_ms(calls, rounds: int = 5, n: int = 120) -> float:
    import numpy as np

    for i in range(10):
        calls[i % len(calls)]()
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        for i in range(n):
            calls[i % len(calls)]()
        times.append((time.process_time() - t0) * 1e3 / n)
    return round(float(np.median(times)), 3)


def compiled_at(core, path: Path, length: int | None):
    model = core.read_model(str(path))
    names = [p.get_any_name() for p in model.inputs]
    if length is not None:
        model.reshape({n: [1, length] for n in names})
    return core.compile_model(model, "CPU", CONFIG).create_infer_request(), names


def control_rows(core, copies: int) -> list[dict]:
    """The control: a chain of 36 float32 MatMuls (27 rows, as MiniLM's 36 FullyConnected layers at
    27 tokens) with 0.6, 21 or 85 MB of weights, compiled ``copies`` times and called in turn. The
    switch costs nothing where the weights of every copy stay in cache (0.6 MB) or none do (85 MB):
    what it costs in between is the cache, not a call's overhead."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rows = []
    for dim in (64, 384, 768):
        x = ops.parameter([27, dim], np.float32, name="x")
        h, rng = x, np.random.default_rng(0)
        for _ in range(36):
            w = ops.constant((rng.standard_normal((dim, dim)) * 0.05).astype(np.float32))
            h = ops.relu(ops.matmul(h, w, False, True))
        reqs = [core.compile_model(ov.Model([h], [x]), "CPU", CONFIG).create_infer_request() for _ in range(copies)]
        feed = [np.ones((27, dim), np.float32)]
        calls = [lambda r=r, f=feed: r.infer(f, share_inputs=True, share_outputs=True) for r in reqs]
        mb = round(36 * dim * dim * 4 / 1e6, 1)
        rows += [{"control": f"{mb} MB of weights", "compiled models called in turn": k,
                  "ms per call": per_call_ms(calls[:k])} for k in (1, copies)]
    return rows


def main() -> int:
    import numpy as np
    import openvino as ov

    from edgekit._cpu import host

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="an OpenVINO IR with [batch, sequence] inputs (MiniLM int8)")
    ap.add_argument("--length", type=int, default=27)
    ap.add_argument("--other", type=int, default=36, help="a second length, for the dynamic model in turn")
    ap.add_argument("--copies", type=int, default=8)
    args = ap.parse_args()
    core = ov.Core()
    requests = [compiled_at(core, args.model, args.length)[0] for _ in range(args.copies)]
    dynamic, names = compiled_at(core, args.model, None)
    feeds = {n: np.ones((1, args.length), np.int64) for n in names}

    def call(req):
        return lambda: req.infer(feeds, share_inputs=True, share_outputs=True)

    rows = [{"compiled models called in turn": k, "ms per call": per_call_ms([call(r) for r in requests[:k]])}
            for k in sorted({1, 2, 3, 4, args.copies})]
    rows.append({"compiled models called in turn": "1 dynamic", "ms per call": per_call_ms([call(dynamic)])})
    other = {n: np.ones((1, args.other), np.int64) for n in names}
    alone = per_call_ms([lambda: dynamic.infer(other, share_inputs=True, share_outputs=True)])
    both = per_call_ms([call(dynamic), lambda: dynamic.infer(other, share_inputs=True, share_outputs=True)])
    rows.append({"compiled models called in turn": f"1 dynamic, {args.other} tokens alone", "ms per call": alone})
    rows.append({"compiled models called in turn": f"1 dynamic, {args.length} and {args.other} tokens in turn",
                 "ms per call": both})
    rows += control_rows(core, args.copies)
    for r in rows:
        print(json.dumps(r), file=sys.stderr)
    print(f"CPU: {host().model}; {args.model}; length {args.length}; batch 1, 1 thread; process CPU ms per call\n")
    print("| compiled models called in turn | ms per call |\n|---|---|")
    for r in rows:
        print(f"| {r.get('control', 'MiniLM')}: {r['compiled models called in turn']} | {r['ms per call']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
