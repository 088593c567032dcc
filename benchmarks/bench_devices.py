# Run: .venv/bin/python benchmarks/bench_devices.py [FOLDER] [--threads 1 2] [--runs 100]
"""`edgekit bench` on one convert output folder, locally and through ssh:// to a real OpenSSH
server started on loopback (throwaway keys, a free port; the tests' `tests/sshd.py`).

Writes build/benchmarks/bench-devices/{local,ssh}.{json,html} and prints a markdown table with
both devices' p50/p90/p99, peak RSS and size per artifact and thread count. FOLDER defaults
to build/demo/minilm-l6 (what `make demo` writes).

Both devices are this machine: the ssh figures measure the harness's remote path (copy,
run with the device's Python, pull the result back), not a second device, and should agree
with the local ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "build" / "benchmarks" / "bench-devices"


def run(folder: Path, device: str, threads: list[int], runs: int, env: dict | None = None) -> dict:
    import os

    name = "local" if device == "local" else "ssh"
    cmd = [str(Path(sys.executable).parent / "edgekit"), "bench", str(folder), "--on", device,
           "--threads", ",".join(map(str, threads)), "--runs", str(runs), "--json", str(OUT / f"{name}.json"),
           "--html", str(OUT / f"{name}.html")]
    if device != "local":
        cmd += ["--python", sys.executable]
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, env={**os.environ, **(env or {})}, text=True, capture_output=True)
    sys.stderr.write(proc.stdout[-3000:])
    if proc.returncode != 0:  # Core ML "not run" off macOS is no error; anything else is
        raise SystemExit(f"edgekit bench failed: {proc.stderr[-2000:]}")
    return json.loads((OUT / f"{name}.json").read_text())


def table(local: dict, ssh: dict) -> str:
    rows = ["| artifact | threads | device | p50 ms | p90 ms | p99 ms | peak RSS MB | size MB |", "|---" * 8 + "|"]
    for a in local["results"]:
        for name, doc in (("local", local), ("ssh", ssh)):
            r = next((x for x in doc["results"] if x["artifact"] == a["artifact"]
                      and (x["threads"] == a["threads"] or a.get("error"))), None)
            if r is None:
                continue
            if r.get("error"):
                rows.append(f"| {r['artifact']} | {r['threads'] or '-'} | {name} | {r['error'][:60]} | | | | "
                            f"{r['size_bytes'] / 1e6:.1f} |")
                continue
            lat = r["latency_ms"]
            rows.append(f"| {r['artifact']} | {r['threads']} | {name} | {lat['p50']:.2f} | {lat['p90']:.2f} | "
                        f"{lat['p99']:.2f} | {r['rss_mb']['peak']:.0f} | {r['size_bytes'] / 1e6:.1f} |")
    return "\n".join(rows)


def main() -> int:
    from tests import sshd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=lambda p: Path(p).resolve(), nargs="?", default=REPO / "build" / "demo" / "minilm-l6")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--runs", type=int, default=100)
    args = ap.parse_args()
    if not (args.folder / "manifest.json").is_file():
        raise SystemExit(f"{args.folder} is not a convert output folder (make demo writes build/demo/minilm-l6)")
    OUT.mkdir(parents=True, exist_ok=True)
    local = run(args.folder, "local", args.threads, args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        server = sshd.start(Path(tmp) / "sshd")
        try:
            remote = run(args.folder, server.url, args.threads, args.runs, server.env())
        finally:
            server.stop()
    print(f"\n`edgekit bench {args.folder.relative_to(REPO)}`, {args.runs} runs, threads {args.threads}: "
          f"local vs {remote['device']['spec']} (loopback)\n")
    print(table(local, remote))
    print(f"\nHTML: {OUT / 'local.html'}, {OUT / 'ssh.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
