"""`edgekit bench` reports: --compare's regression check, and the HTML report rendered in a real
headless Chromium (its DOM and a screenshot).

The bench documents are measured here for real: a small numpy MLP stands in for a model, timed
run by run, with its weights saved to a real file for the size and this process's RSS read from
/proc; the per-op figures time its matmuls, ReLUs and softmax separately.
"""

import copy
import datetime as dt
import os
import platform
import re
import resource
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from edgekit.bench.compare import compare, format_table
from edgekit.present._format import fmt_ms
from edgekit.present.bench_html import render_html

CHROMIUM = "/usr/bin/chromium"
ERROR = "RuntimeError: <script>alert('x')</script> & tensor arena too small"


def _rss_mb() -> tuple[float, float]:
    """(current, peak) RSS of this process in MB."""
    cur = peak = None
    if os.path.exists("/proc/self/status"):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return cur or ru, peak or ru


def _measure(folder: Path, artifact: str, fmt: str, threads: int, runs: int, hidden: int) -> dict:
    """One bench result measured for real on a numpy MLP (`threads` is only a label here)."""
    before, _ = _rss_mb()
    rng = np.random.default_rng(threads)
    path = folder / artifact
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # np.savez would add .npz to a path
        np.savez(fh, *[rng.standard_normal((hidden, hidden)).astype(np.float32) for _ in range(3)])
    t0 = time.perf_counter()
    with np.load(path) as z:
        weights = [z[k] for k in z.files]
    load_ms = (time.perf_counter() - t0) * 1000
    after_load, _ = _rss_mb()
    x = rng.standard_normal((32, hidden)).astype(np.float32)
    ops: dict[str, list] = {}

    def op(name, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        ms, n = ops.get(name, [0.0, 0])
        ops[name] = [ms + (time.perf_counter() - t) * 1000, n + 1]
        return out

    def infer():
        h = x
        for w in weights:
            h = op("ReLU", np.maximum, op("MatMul", np.matmul, h, w), 0)
        e = op("Exp", np.exp, h - h.max(axis=1, keepdims=True))
        return op("Div", np.divide, e, e.sum(axis=1, keepdims=True))

    t = time.perf_counter()
    infer()
    first_ms = (time.perf_counter() - t) * 1000
    for _ in range(3):
        infer()
    ops.clear()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        infer()
        samples.append((time.perf_counter() - t) * 1000)
    _, peak = _rss_mb()
    s = np.array(samples)
    total = sum(ms for ms, _ in ops.values())
    return {
        "artifact": artifact, "format": fmt, "size_bytes": path.stat().st_size, "threads": threads,
        "runtime": {"name": "numpy", "version": np.__version__},
        "load_ms": round(load_ms, 3), "first_inference_ms": round(first_ms, 3),
        "latency_ms": {"p50": float(np.percentile(s, 50)), "p90": float(np.percentile(s, 90)),
                       "p99": float(np.percentile(s, 99)), "min": float(s.min()), "max": float(s.max()),
                       "mean": float(s.mean()), "std": float(s.std())},
        "throughput_ips": 1000.0 / float(s.mean()), "samples_ms": [round(v, 4) for v in samples],
        "rss_mb": {"before_load": round(before, 1), "after_load": round(after_load, 1), "peak": round(peak, 1),
                   "growth_idle": round(max(0.0, _rss_mb()[0] - after_load), 1)},
        "ops": sorted(({"name": k, "ms": ms / runs, "share": ms / total, "count": n // runs}
                       for k, (ms, n) in ops.items()), key=lambda o: -o["share"]),
        "error": None,
    }


def _doc(results: list[dict], target: dict | None = None) -> dict:
    return {"schema": 1, "kind": "bench", "edgekit": "0.1.0",
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "device": {"spec": "local", "system": platform.system(), "machine": platform.machine(),
                       "python": platform.python_version(), "cpu_count": os.cpu_count()},
            "target": target, "settings": {"runs": 150, "warmup": 3, "batch": 1, "threads": [1, 2]},
            "results": results}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-report")
    results = [_measure(folder, "onnx/model.onnx", "onnx", 1, 150, 512),
               _measure(folder, "openvino/model.xml", "openvino", 2, 150, 320)]
    (folder / "tflite").mkdir()
    (folder / "tflite/model.tflite").write_bytes(np.zeros(50_000, np.float32).tobytes())
    results.append({"artifact": "tflite/model.tflite", "format": "tflite", "threads": 1,
                    "size_bytes": (folder / "tflite/model.tflite").stat().st_size, "error": ERROR})
    results.append({"artifact": "coreml/model.mlpackage", "format": "coreml", "threads": None,
                    "size_bytes": 1000, "error": "not run: the Core ML runtime needs macOS"})
    return _doc(results)


def _scaled(doc: dict, factor: float, key: str = "latency_ms") -> dict:
    """``doc`` with every result's ``key`` figures (and samples, for latency) times ``factor``."""
    out = copy.deepcopy(doc)
    for r in out["results"]:
        if r.get("error"):
            continue
        if key == "latency_ms":
            r["latency_ms"] = {k: v * factor if k != "count" else v for k, v in r["latency_ms"].items()}
            r["samples_ms"] = [v * factor for v in r.get("samples_ms") or []]
        elif key == "rss_mb":
            r["rss_mb"] = {k: v * factor for k, v in r["rss_mb"].items()}
        else:
            r[key] = int(r[key] * factor)
    return out


def _rows(rows):
    return {(r["artifact"], r["threads"]): r for r in rows}


def test_compare_flags_a_20_percent_slower_p50(measured):
    rows = _rows(compare(measured, _scaled(measured, 1.20), threshold=0.10))
    r = rows[("onnx/model.onnx", 1)]
    assert r["regression"] and r["regressed"] == ["p50_ms", "p90_ms"]
    assert r["p50_ms"]["change"] == pytest.approx(0.20)
    assert r["p50_ms"]["old"] == measured["results"][0]["latency_ms"]["p50"]
    assert r["peak_rss_mb"]["change"] == 0 and r["size_bytes"]["change"] == 0
    assert rows[("openvino/model.xml", 2)]["regression"]
    # the failing and the skipped results failed in both files: not regressions
    assert not rows[("tflite/model.tflite", 1)]["regression"]
    assert rows[("tflite/model.tflite", 1)]["status"] == "still failing"
    assert rows[("coreml/model.mlpackage", None)]["status"] == "not run"
    # the same change is within a looser threshold
    assert not any(r["regression"] for r in compare(measured, _scaled(measured, 1.20), threshold=0.25))


def test_compare_passes_5_percent_slower_and_faster(measured):
    for factor in (1.05, 0.80, 1.0):
        rows = compare(measured, _scaled(measured, factor), threshold=0.10)
        assert len(rows) == len(measured["results"])
        assert not any(r["regression"] for r in rows), factor
        onnx = _rows(rows)[("onnx/model.onnx", 1)]
        assert onnx["p50_ms"]["change"] == pytest.approx(factor - 1, abs=1e-12)
        assert onnx["status"] == "matched"


def test_compare_flags_memory_and_size_growth(measured):
    rss = _rows(compare(measured, _scaled(measured, 1.15, "rss_mb")))[("onnx/model.onnx", 1)]
    assert rss["regressed"] == ["peak_rss_mb"]
    assert rss["peak_rss_mb"]["change"] == pytest.approx(0.15, rel=1e-3)
    size = _rows(compare(measured, _scaled(measured, 1.5, "size_bytes")))[("openvino/model.xml", 2)]
    assert size["regressed"] == ["size_bytes"]
    assert not _rows(compare(measured, _scaled(measured, 1.05, "size_bytes")))[("openvino/model.xml", 2)][
        "regression"]


def test_compare_added_removed_and_newly_failing(measured):
    new = _scaled(measured, 1.5)  # slower everywhere: still only matched pairs can regress
    removed = new["results"].pop(0)
    added = {**copy.deepcopy(removed), "threads": 4}
    new["results"].append(added)
    rows = compare(measured, new)
    by = _rows(rows)
    assert len(rows) == len(measured["results"]) + 1
    assert by[("onnx/model.onnx", 1)]["status"] == "removed"
    assert by[("onnx/model.onnx", 4)]["status"] == "added"
    assert not by[("onnx/model.onnx", 1)]["regression"] and not by[("onnx/model.onnx", 4)]["regression"]
    assert by[("onnx/model.onnx", 4)]["p50_ms"]["old"] is None
    assert by[("onnx/model.onnx", 4)]["p50_ms"]["new"] == added["latency_ms"]["p50"]
    assert [r["artifact"] for r in rows][-1] == "onnx/model.onnx"  # new-only rows come last

    broken = copy.deepcopy(measured)
    ov = broken["results"][1]
    broken["results"][1] = {k: ov[k] for k in ("artifact", "format", "threads", "size_bytes")} | {"error": ERROR}
    row = _rows(compare(measured, broken))[("openvino/model.xml", 2)]
    assert row["regression"] and row["status"] == "error" and row["regressed"] == ["error"]
    back = _rows(compare(broken, measured))[("openvino/model.xml", 2)]
    assert back["status"] == "fixed" and not back["regression"]


def test_format_table_shows_the_changes(measured):
    from rich.console import Console

    rows = compare(measured, _scaled(measured, 1.20))
    console = Console(record=True, width=240, color_system=None)
    console.print(format_table(rows))
    text = console.export_text()
    assert "REGRESSION" in text and "+20.0%" in text
    assert "onnx/model.onnx" in text and "still failing" in text
    p50 = measured["results"][0]["latency_ms"]["p50"]
    assert f"{fmt_ms(p50)} → {fmt_ms(p50 * 1.2)}" in text
    assert "<script>" in text  # rich markup escaped, not eaten


def test_sparse_results_render_and_compare(measured, tmp_path):
    """A LiteRT result parsed from a recorded log has no samples, p90, p99 or RSS: shown as '–'."""
    from edgekit.bench.adb import parse_benchmark_model

    log = Path(__file__).parent / "data/benchmark_model/litert_benchmark_tiny_cnn_t1.txt"
    parsed = parse_benchmark_model(log.read_text())
    litert = {"artifact": "tflite/model.tflite", "format": "tflite", "threads": parsed["num_threads"],
              "size_bytes": int(parsed["model_size_mb"] * 1e6), "error": None,
              **{k: parsed[k] for k in ("load_ms", "first_inference_ms", "latency_ms", "throughput_ips", "ops")}}
    doc = {**measured, "results": [measured["results"][0], litert]}
    dom = _Dom()
    dom.feed(render_html(doc, tmp_path / "r.html").read_text())
    assert dom.count("tr") == 3 and dom.count("svg", "hist") == 1 and dom.count("svg", "ops") == 1
    assert fmt_ms(parsed["latency_ms"]["p50"]) in " ".join(dom.text)
    row = _rows(compare(doc, _scaled(doc, 1.3)))[("tflite/model.tflite", 1)]
    assert row["regressed"] == ["p50_ms"] and row["p90_ms"] == {"old": None, "new": None, "change": None}
    assert row["peak_rss_mb"]["change"] is None


class _Dom(HTMLParser):
    """Tags (with their class) and text of a DOM dump."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, str, list[str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a.get("class") or "", [n for n, _ in attrs]))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag, cls=None):
        return sum(1 for t, c, _ in self.tags if t == tag and (cls is None or cls in c.split()))


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp / 'profile'}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def report(measured, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    ok = [r for r in measured["results"] if not r.get("error")]
    budgets = {"memory_mb": ok[0]["rss_mb"]["peak"] / 2, "latency_ms": ok[0]["latency_ms"]["p50"] * 2}
    fits = [{"artifact": r["artifact"], "threads": r["threads"],
             "latency": r["latency_ms"]["p50"] <= budgets["latency_ms"],
             "memory": r["rss_mb"]["peak"] <= budgets["memory_mb"]} for r in ok]
    doc = {**measured, "target": {"name": "raspberry-pi-5", "budgets": budgets, "fits": fits}}
    path = render_html(doc, tmp / "out" / "report.html")
    return doc, path, tmp


def test_html_is_one_escaped_file(report):
    doc, path, _ = report
    page = path.read_text()
    dom = _Dom()
    dom.feed(page)
    assert dom.count("script") == 0 and "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; tensor arena" in page
    assert not [t for t, _, names in dom.tags if {"src", "href"} & set(names)]  # nothing loaded
    assert "http://" not in page and "https://" not in page and "@import" not in page
    assert dom.count("tr") == 1 + len(doc["results"])


@pytest.fixture(scope="module")
def rendered(report):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Chromium at {CHROMIUM} (`make system-deps` installs the Debian package chromium)")
    doc, path, tmp = report
    url = path.resolve().as_uri()
    dom = _chromium("--dump-dom", url, tmp=tmp).stdout
    shot = tmp / "shot.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", url, tmp=tmp)
    return doc, dom, shot


def test_chromium_dom_has_the_table_and_plots(rendered):
    doc, dump, _ = rendered
    dom = _Dom()
    dom.feed(dump)
    text = " ".join(dom.text)
    ok = [r for r in doc["results"] if not r.get("error")]
    assert dom.count("table", "summary") == 1
    assert dom.count("tr") == 1 + len(doc["results"])
    assert dom.count("svg", "hist") == len(ok)
    assert dom.count("svg", "ops") == len(ok)
    assert dom.count("line", "pct") == 3 * len(ok)
    assert dom.count("rect", "op") == sum(len(r["ops"]) for r in ok)
    # every run is drawn: the histogram bins' counts plus the "+K slower" notes add up to all samples
    assert dom.count("rect", "bin") >= len(ok)
    binned = sum(int(n) for n in re.findall(r"ms: (\d+) runs", text))
    slower = sum(int(n) for n in re.findall(r"\+(\d+) slower", text))
    assert binned + slower == sum(len(r["samples_ms"]) for r in ok)
    assert dom.count("script") == 0
    for r in ok:
        assert fmt_ms(r["latency_ms"]["p50"]) in text and fmt_ms(r["latency_ms"]["p99"]) in text
    assert "raspberry-pi-5" in text and "over: memory" in text
    assert "error: " + ERROR in text  # shown as text, not run
    assert "the Core ML runtime needs macOS" in text
    assert doc["device"]["machine"] in text


def test_chromium_screenshot_is_a_real_page(rendered):
    from PIL import Image

    _, _, shot = rendered
    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) one colour"
    counts = {c: n for n, c in colours}
    white = counts.get((255, 255, 255), 0)
    assert white < 0.97 * 1280 * 2000, "the screenshot is nearly blank"
    # the histogram and op bars are painted in the format's colour
    assert counts.get((0x2F, 0x6F, 0xB0), 0) > 2000, "no ONNX-coloured bars painted"
    assert counts.get((0x7A, 0x3F, 0xA8), 0) > 2000, "no OpenVINO-coloured bars painted"
