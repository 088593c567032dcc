"""edgekit.bench.adb: the adb argv, the benchmark_model log parser, and run_adb's errors.

The logs under tests/data/benchmark_model/ are recordings (see the README there): real output
of LiteRT's Python benchmark tool and of LiteRT's own op profiler on edgekit-made .tflite files,
plus one hand-written file in benchmark_model's layout (named *_SYNTHETIC), because no
benchmark_model binary can be had on this machine. run_adb is exercised through real
subprocesses: a PATH without adb, and small stand-in `adb` executables that record their argv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekit._errors import EdgekitError
from edgekit.bench.adb import (
    AdbBench,
    adb_commands,
    parse_benchmark_model,
    parse_op_profile,
    run_adb,
)

DATA = Path(__file__).parent / "data" / "benchmark_model"
ROOT = Path(__file__).resolve().parents[1]


def _read(name: str) -> str:
    return (DATA / name).read_text()


def _check_latency(lat: dict) -> None:
    assert lat["min"] <= lat["mean"] <= lat["max"]
    if "p50" in lat:
        assert lat["min"] <= lat["p5"] <= lat["p50"] <= lat["p95"] <= lat["max"]
    assert lat["std"] >= 0


# --------------------------------------------------------------------------- adb_commands


def test_adb_commands_exact_argv():
    cmds = adb_commands(AdbBench("emulator-5554", Path("/tmp/w/cnn/tflite/model.tflite"),
                                 Path("/opt/litert/android_aarch64_benchmark_model"), threads=2, runs=50, warmup=5),
                        workdir="/data/local/tmp/edgekit-test")
    dev = ["adb", "-s", "emulator-5554"]
    assert cmds == [
        [*dev, "shell", "mkdir", "-p", "/data/local/tmp/edgekit-test"],
        [*dev, "push", "/tmp/w/cnn/tflite/model.tflite", "/data/local/tmp/edgekit-test/model.tflite"],
        [*dev, "push", "/opt/litert/android_aarch64_benchmark_model", "/data/local/tmp/edgekit-test/benchmark_model"],
        [*dev, "shell", "chmod", "+x", "/data/local/tmp/edgekit-test/benchmark_model"],
        [*dev, "shell", "/data/local/tmp/edgekit-test/benchmark_model",
         "--graph=/data/local/tmp/edgekit-test/model.tflite", "--num_threads=2", "--num_runs=50",
         "--warmup_runs=5", "--min_secs=0", "--warmup_min_secs=0", "--enable_op_profiling=true",
         "--report_peak_memory_footprint=true"],
        [*dev, "shell", "rm", "-rf", "/data/local/tmp/edgekit-test"],
    ]


def test_adb_commands_local_names_never_reach_the_device_shell():
    cmds = adb_commands(AdbBench("R5CT", Path("/tmp/my models/a;rm -rf x.tflite"), Path("/tmp/bm"), 1, 10, 0),
                        workdir="/data/local/tmp/e")
    assert cmds[1][-2:] == ["/tmp/my models/a;rm -rf x.tflite", "/data/local/tmp/e/model.tflite"]
    assert all("my models" not in a for c in cmds[3:] for a in c)
    no_peak = adb_commands(AdbBench("R5CT", Path("m.tflite"), Path("bm"), 1, 10, 0, peak_memory=False),
                           workdir="/data/local/tmp/e")
    assert "--report_peak_memory_footprint=true" not in no_peak[4]


def test_adb_commands_default_workdir_is_random_and_cleaned_up():
    a = adb_commands(AdbBench("s", Path("m.tflite"), Path("bm"), 1, 10, 1))
    b = adb_commands(AdbBench("s", Path("m.tflite"), Path("bm"), 1, 10, 1))
    workdir = a[0][-1]
    assert workdir.startswith("/data/local/tmp/edgekit-") and len(workdir) == len("/data/local/tmp/edgekit-") + 8
    assert a[-1] == ["adb", "-s", "s", "shell", "rm", "-rf", workdir]
    assert b[0][-1] != workdir


@pytest.mark.parametrize("workdir", ["/", "/data/local/tmp", "/data/local/tmp/", "/sdcard/x",
                                     "/data/local/tmp/../../system", "/data/local/tmp/a b", "data/local/tmp/x",
                                     "/data/local/tmp/x;reboot"])
def test_adb_commands_refuses_unsafe_workdir(workdir):
    with pytest.raises(ValueError, match="workdir"):
        adb_commands(AdbBench("s", Path("m.tflite"), Path("bm"), 1, 10, 1), workdir=workdir)


@pytest.mark.parametrize("threads,runs,warmup", [(0, 10, 1), (1, 0, 1), (1, 10, -1)])
def test_adb_commands_refuses_bad_counts(threads, runs, warmup):
    with pytest.raises(ValueError, match="threads and runs"):
        adb_commands(AdbBench("s", Path("m.tflite"), Path("bm"), threads, runs, warmup))


# --------------------------------------------------------------------------- recorded logs


def test_parse_real_litert_benchmark_tiny_cnn():
    r = parse_benchmark_model(_read("litert_benchmark_tiny_cnn_t1.txt"))
    assert r["tool"] == "litert-benchmark" and r["num_threads"] == 1
    lat = r["latency_ms"]
    assert lat["count"] == 100 and r["warmup_ms"]["count"] == 10
    _check_latency(lat)
    assert 0 < lat["mean"] < 5  # a 12 kB CNN
    assert r["load_ms"] > 0 and r["first_inference_ms"] >= lat["min"]
    assert r["throughput_ips"] == pytest.approx(1000.0 / lat["mean"])
    assert r["ops"] == [] and r["memory_mb"]["peak"] is None  # this tool prints neither


def test_parse_real_litert_benchmark_minilm():
    r = parse_benchmark_model(_read("litert_benchmark_minilm_t2.txt"))
    assert r["num_threads"] == 2 and r["latency_ms"]["count"] == 50 and r["warmup_ms"]["count"] == 5
    _check_latency(r["latency_ms"])
    assert 80 < r["model_size_mb"] < 90  # fp32 all-MiniLM-L6-v2
    assert r["latency_ms"]["mean"] > 1.0
    assert r["load_ms"] > 0


def test_real_tool_failure_is_a_value_error_naming_the_cause():
    # LiteRT's tool fills int32 inputs from -128..127: a negative token id fails EMBEDDING_LOOKUP.
    with pytest.raises(ValueError) as err:
        parse_benchmark_model(_read("litert_benchmark_minilm_t2_tool_inputs_fail.txt"))
    assert "no steady-state timing line" in str(err.value)
    assert "Embedding Lookup: index out of bounds" in str(err.value)


def _check_ops(ops: list[dict]) -> None:
    assert ops, "no ops parsed"
    assert sum(o["share"] for o in ops) == pytest.approx(1.0, abs=2e-3)
    shares = [o["share"] for o in ops]
    assert shares == sorted(shares, reverse=True)
    assert all(o["ms"] >= 0 and o["count"] >= 1 and set(o) == {"name", "ms", "share", "count", "calls"} for o in ops)


def test_parse_real_litert_profile_tiny_cnn():
    prof = parse_op_profile(_read("litert_profile_tiny_cnn.txt"))
    ops = prof["ops"]
    _check_ops(ops)
    names = [o["name"] for o in ops]
    # LiteRT's CPU accelerator is XNNPACK: its op names, one table row per op type
    assert any("Convolution" in n and "IGEMM" in n for n in names)  # the 3x3 stem conv
    assert any("DWConv" in n for n in names)  # the depthwise conv
    assert any("Fully Connected" in n for n in names)  # pointwise conv + classifier
    assert len(names) == len(set(names)) == 5
    by = {o["name"]: o for o in ops}
    assert by["Delegate/Fully Connected (NC, F32) GEMM"]["count"] == 2
    assert by["Delegate/Convolution (NHWC, F32) IGEMM"]["count"] == 1
    assert all(o["calls"] == o["count"] * 50 for o in ops)  # 50 profiled runs: calls are totals here
    assert prof["delegate_ops"] is None
    with pytest.raises(ValueError, match="not a benchmark_model log"):
        parse_benchmark_model(_read("litert_profile_tiny_cnn.txt"))  # a profile alone has no timings


def test_parse_real_litert_profile_minilm():
    ops = parse_op_profile(_read("litert_profile_minilm.txt"))["ops"]
    _check_ops(ops)
    by = {o["name"]: o for o in ops}
    fc = by["Delegate/Fully Connected (NC, F32) GEMM"]
    assert ops[0] is fc and fc["share"] > 0.5  # the 36 linear layers dominate a BERT
    assert fc["count"] == 36  # 6 layers x (q, k, v, out, ff1, ff2)
    assert "EMBEDDING_LOOKUP" in by  # not delegated to XNNPACK: a TFLite builtin name
    assert all(o["calls"] == o["count"] * 20 for o in ops)


# --------------------------------------------------------------------------- benchmark_model layout


def test_parse_benchmark_model_layout_synthetic():
    r = parse_benchmark_model(_read("benchmark_model_format_SYNTHETIC.txt"))
    assert r["tool"] == "benchmark_model" and r["num_threads"] == 2
    assert r["load_ms"] == pytest.approx(3.161)
    assert r["first_inference_ms"] == pytest.approx(0.412)
    assert r["warmup_ms"] == {"mean": pytest.approx(0.0985), "count": 10}
    lat = r["latency_ms"]
    assert lat == {"mean": pytest.approx(0.05834), "std": pytest.approx(0.007), "min": pytest.approx(0.052),
                   "max": pytest.approx(0.097), "count": 50, "p5": pytest.approx(0.053),
                   "p50": pytest.approx(0.056), "p95": pytest.approx(0.074)}
    _check_latency(lat)
    assert r["throughput_ips"] == pytest.approx(1000 / 0.05834)
    assert r["memory_mb"] == {"init_delta": pytest.approx(1.61719), "overall_delta": pytest.approx(1.98828),
                              "peak": pytest.approx(6.38281), "rss_end": 7.0}
    assert r["model_size_mb"] == pytest.approx(0.012068)
    # the regular-runs table, not the initialization one (ModifyGraphWithDelegate, AllocateTensors)
    assert [o["name"] for o in r["ops"]] == ["TfLiteXNNPackDelegate", "RESHAPE"]
    _check_ops(r["ops"])
    _check_ops(r["delegate_ops"])
    assert [o["name"] for o in r["delegate_ops"]][:2] == ["Convolution (NHWC, F32) IGEMM",
                                                           "Fully Connected (NC, F32) GEMM"]
    assert r["delegate_ops"][1] == {"name": "Fully Connected (NC, F32) GEMM", "ms": 0.013, "share": 0.25,
                                    "count": 2, "calls": 2}


def test_parse_microseconds_in_scientific_notation_and_older_lines():
    text = textwrap.dedent("""\
        Num threads: [4]
        Initialized session in 812.5ms.
        Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
        count=1 first=2514000 curr=2514000 min=2514000 max=2514000 avg=2.514e+06 std=0

        Running benchmark for at least 5 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
        count=5 first=2301000 curr=2298000 min=2290000 max=2310000 avg=2.29902e+06 std=7000

        Peak memory footprint (MB): init=120.5 overall=310.25
        """)
    r = parse_benchmark_model(text)
    assert r["load_ms"] == pytest.approx(812.5)
    assert r["latency_ms"]["mean"] == pytest.approx(2299.02)
    assert r["latency_ms"]["max"] == pytest.approx(2310.0) and "p50" not in r["latency_ms"]
    assert r["first_inference_ms"] == pytest.approx(2514.0)
    assert r["memory_mb"]["overall_delta"] == pytest.approx(310.25) and r["memory_mb"]["peak"] is None
    assert r["num_threads"] == 4 and r["ops"] == []


def test_parse_csv_op_summary():
    text = textwrap.dedent("""\
        Operator-wise Profiling Info for Regular Benchmark Runs:
        Number of nodes executed: 3
        ============================== Summary by node type ==============================
        node type, count, avg_ms, avg %, cdf %, mem KB, times called
        FULLY_CONNECTED, 2, 0.3, 25%, 100%, 0, 2
        CONV_2D, 1, 0.9, 75%, 75%, 0, 1

        """)
    ops = parse_op_profile(text)["ops"]
    assert ops == [{"name": "CONV_2D", "ms": 0.9, "share": 0.75, "count": 1, "calls": 1},
                   {"name": "FULLY_CONNECTED", "ms": 0.3, "share": 0.25, "count": 2, "calls": 2}]


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("hello world\nnothing here\n", "no steady-state timing line"),
    ("count=5 first=10 curr=10 min=9 max=12 avg=10.2 std=1\n", "no initialization time"),
    ("BENCHMARK RESULTS\nInference (avg):       1.00 ms (5 runs)\n", "missing: Inference (min)"),
])
def test_not_a_benchmark_log_raises_naming_what_is_missing(text, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        parse_benchmark_model(text)


# --------------------------------------------------------------------------- run_adb


def _files(tmp_path: Path) -> tuple[Path, Path]:
    model, binary = tmp_path / "model.tflite", tmp_path / "benchmark_model"
    model.write_bytes(b"TFL3 not really")
    binary.write_bytes(b"\x7fELF not really")
    return model, binary


def test_run_adb_without_adb_on_path_real_subprocess(tmp_path):
    """A real child process whose PATH holds no adb: the error names the device and the cause."""
    model, binary = _files(tmp_path)
    empty = tmp_path / "bin"
    empty.mkdir()
    code = ("from pathlib import Path\nfrom edgekit.bench.adb import AdbBench, run_adb\n"
            f"run_adb(AdbBench('R5CT10ABCD', Path({str(model)!r}), Path({str(binary)!r}), threads=1, runs=5, warmup=1))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": str(empty), "PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0
    assert "EdgekitError" in proc.stderr
    assert "adb://R5CT10ABCD" in proc.stderr and "adb client ('adb') is not on PATH" in proc.stderr
    assert "platform-tools" in proc.stderr  # the fix


def _fake_adb(folder: Path, script: str) -> Path:
    """An `adb` executable that appends its argv (JSON) to $FAKE_ADB_LOG, then runs ``script``."""
    folder.mkdir(exist_ok=True)
    exe = folder / "adb"
    exe.write_text(f"#!{sys.executable}\nimport json, os, sys\nargv = sys.argv[1:]\n"
                   "with open(os.environ['FAKE_ADB_LOG'], 'a') as fh:\n    fh.write(json.dumps(argv) + '\\n')\n"
                   + textwrap.dedent(script))
    exe.chmod(0o755)
    return exe


def _calls(log: Path) -> list[list[str]]:
    return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    log = tmp_path / "adb-calls.jsonl"
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return log


def test_run_adb_unreachable_device_still_cleans_up(tmp_path, fake_env):
    _fake_adb(tmp_path / "bin", """\
        print(f"adb: device '{argv[1]}' not found", file=sys.stderr)
        sys.exit(1)
        """)
    model, binary = _files(tmp_path)
    with pytest.raises(EdgekitError) as err:
        run_adb(AdbBench("emulator-5554", model, binary, threads=1, runs=5, warmup=1), "/data/local/tmp/edgekit-t")
    msg = str(err.value)
    assert "device adb://emulator-5554 is unreachable" in msg and "not found" in msg and "adb devices" in msg
    calls = _calls(fake_env)
    assert calls[0][3:5] == ["mkdir", "-p"]  # failed at the first step ...
    assert calls[-1] == ["-s", "emulator-5554", "shell", "rm", "-rf", "/data/local/tmp/edgekit-t"]  # ... cleaned
    assert len(calls) == 2


def test_run_adb_binary_failure_names_device_and_cause(tmp_path, fake_env):
    _fake_adb(tmp_path / "bin", """\
        if argv[2:3] == ["shell"] and argv[3].endswith("/benchmark_model"):
            print("INFO: Loaded model /data/local/tmp/edgekit-t/model.tflite")
            print("ERROR: Didn't find op for builtin opcode 'STABLEHLO_COMPOSITE' version '1'.")
            print("ERROR: Failed to initialize the interpreter")
            sys.exit(1)
        """)
    model, binary = _files(tmp_path)
    with pytest.raises(EdgekitError) as err:
        run_adb(AdbBench("R5CT", model, binary), "/data/local/tmp/edgekit-t")
    msg = str(err.value)
    assert "benchmark_model failed on adb://R5CT (exit status 1)" in msg
    assert "STABLEHLO_COMPOSITE" in msg and "ABI" in msg
    assert "Failed to initialize the interpreter" in err.value.log
    assert _calls(fake_env)[-1][2:] == ["shell", "rm", "-rf", "/data/local/tmp/edgekit-t"]


def _fake_adb_playing_the_log(tmp_path, monkeypatch):
    """A stand-in adb whose benchmark_model prints the recorded benchmark_model log."""
    monkeypatch.setenv("FAKE_ADB_OUTPUT", str(DATA / "benchmark_model_format_SYNTHETIC.txt"))
    _fake_adb(tmp_path / "bin", """\
        if argv[2:3] == ["shell"] and argv[3].endswith("/benchmark_model"):
            sys.stdout.write(open(os.environ["FAKE_ADB_OUTPUT"]).read())
        """)


def test_run_adb_runs_exactly_adb_commands_and_parses(tmp_path, fake_env, monkeypatch):
    _fake_adb_playing_the_log(tmp_path, monkeypatch)
    model, binary = _files(tmp_path)
    job = AdbBench("R5CT", model, binary, threads=2, runs=50, warmup=10)
    r = run_adb(job, "/data/local/tmp/edgekit-t")
    want = adb_commands(job, workdir="/data/local/tmp/edgekit-t")
    assert _calls(fake_env) == [c[1:] for c in want]
    assert r["device"] == "adb://R5CT" and r["threads"] == 2 and r["cleanup_error"] is None
    assert r["latency_ms"]["p50"] == pytest.approx(0.056) and r["delegate_ops"]
    assert "Inference timings in us" in r["log"]


def test_run_adb_garbage_output_is_an_error(tmp_path, fake_env):
    _fake_adb(tmp_path / "bin", """\
        if argv[2:3] == ["shell"] and argv[3].endswith("/benchmark_model"):
            print("/system/bin/sh: /data/local/tmp/edgekit-t/benchmark_model: not executable: 64-bit ELF file")
        """)
    model, binary = _files(tmp_path)
    with pytest.raises(EdgekitError, match="printed no usable results: not a benchmark_model log"):
        run_adb(AdbBench("R5CT", model, binary), "/data/local/tmp/edgekit-t")
    assert _calls(fake_env)[-1][-3:] == ["rm", "-rf", "/data/local/tmp/edgekit-t"]


def test_run_adb_missing_local_files(tmp_path, fake_env):
    _fake_adb(tmp_path / "bin", "")
    with pytest.raises(EdgekitError, match=r"adb://R5CT: the benchmark_model binary .* does not exist"):
        run_adb(AdbBench("R5CT", _files(tmp_path)[0], tmp_path / "nope"))
    assert _calls(fake_env) == []


def test_cli_bench_adb_device_table_json_and_cleanup(tmp_path, fake_env, monkeypatch):
    """`edgekit bench --on adb://SERIAL`: the real CLI, a stand-in adb that plays a recorded log."""
    from tests.conftest import run_cli

    _fake_adb_playing_the_log(tmp_path, monkeypatch)
    model, binary = _files(tmp_path)
    out = tmp_path / "r.json"
    rc, stdout, err = run_cli("bench", str(model), "--on", "adb://R5CT", "--benchmark-binary", str(binary),
                              "--threads", "1,2", "--runs", "50", "--json", str(out), "--html", str(tmp_path / "r.html"))
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert doc["device"]["spec"] == "adb://R5CT" and doc["device"]["tool"] == "benchmark_model"
    assert [r["threads"] for r in doc["results"]] == [1, 2]
    r = doc["results"][0]
    assert r["latency_ms"]["p50"] == pytest.approx(0.056) and r["latency_ms"]["p99"] is None  # not invented
    assert r["ops"] and abs(sum(o["share"] for o in r["ops"]) - 1) < 0.05
    assert "p50 ms" in stdout and "R5CT" in stdout
    pushes = [c for c in _calls(fake_env) if c[2] == "push"]
    assert len(pushes) == 4  # model and binary, once per thread count
    removes = [c for c in _calls(fake_env) if c[3:5] == ["rm", "-rf"]]
    assert len(removes) == 2  # the work folder is removed after each run
    # no binary given: refused up front, naming the fix
    rc, _, err = run_cli("bench", str(model), "--on", "adb://R5CT")
    assert rc == 2 and "--benchmark-binary" in err
