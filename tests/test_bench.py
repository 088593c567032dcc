"""`edgekit bench`: real runtimes, locally and through a real sshd on loopback."""

import json
import os
import shutil
import sys

import pytest

import edgekit
from edgekit import EdgekitError
from edgekit.bench import bench
from tests import sshd
from tests.conftest import run_cli

needs_sshd = pytest.mark.skipif(not os.path.exists(sshd.SSHD) or shutil.which("ssh") is None,
                                reason="needs OpenSSH (make system-deps installs openssh-server)")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "cnn"
    edgekit.convert("tests.fixtures:tiny_cnn", targets=["onnx", "openvino", "tflite"], out=out)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.path.exists(sshd.SSHD):
        pytest.skip("needs OpenSSH's sshd (make system-deps installs openssh-server)")
    srv = sshd.start(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()


def _check(result_doc, formats):
    got = {(r["format"], r["threads"]) for r in result_doc["results"] if not r.get("error")}
    assert got == formats, result_doc["results"]
    for r in result_doc["results"]:
        lat = r["latency_ms"]
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert len(r["samples_ms"]) == result_doc["settings"]["runs"]
        assert r["rss_mb"]["peak"] >= r["rss_mb"]["after_load"] > 0
        assert r["load_ms"] > 0 and r["first_inference_ms"] > 0 and r["size_bytes"] > 10_000
    ops = {r["format"]: r["ops"] for r in result_doc["results"]}
    assert ops["onnx"] and {"Conv"} <= {o["name"] for o in ops["onnx"]}
    assert ops["openvino"] and abs(sum(o["share"] for o in ops["openvino"]) - 1) < 0.01
    # LiteRT's own profiler (through libLiteRt's C API): XNNPACK's convolution kernels by name
    assert ops["tflite"] and any("Convolution" in o["name"] for o in ops["tflite"]), ops["tflite"]


def test_local_folder_all_artifacts(converted, tmp_path):
    rc, out, err = run_cli("bench", str(converted), "--runs", "20", "--warmup", "2", "--threads", "1,2",
                           "--json", str(tmp_path / "r.json"))
    assert rc == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema"] == 1 and doc["kind"] == "bench" and doc["device"]["spec"] == "local"
    from edgekit._cpu import detect

    assert doc["device"]["cpu"]["model"] == detect().model and doc["device"]["cpu"]["arch"] == detect().arch
    _check(doc, {(f, t) for f in ("onnx", "openvino", "tflite") for t in (1, 2)})
    assert "p50 ms" in out and "slowest ops" in out


def test_target_budgets_and_pinned_core(converted):
    result = bench(converted / "onnx" / "model.onnx", device="raspberry-pi-5", runs=10, warmup=1, cores="0")
    assert result.settings["threads"] == [4]  # the profile's threads
    assert result.target["name"] == "raspberry-pi-5"
    assert result.target["cpu"]["features"] == ["asimddp"] and result.target["cpu"]["int8_dot"] == "dotprod"
    fit = result.target["fits"][0]
    assert fit["latency"] is True and fit["memory"] is True  # a 30 kB CNN fits a Pi's budgets


def test_the_names_of_0_1_still_work_and_warn(converted):
    """target= was the profile and device= where it ran: both still work for one release, with a warning."""
    with pytest.warns(FutureWarning, match="target= is deprecated"):
        old = bench(converted / "onnx" / "model.onnx", target="raspberry-pi-5", device="local", runs=2, warmup=0,
                    profile=False)
    assert old.target["name"] == "raspberry-pi-5" and old.device["spec"] == "local"
    rc, _, err = run_cli("bench", str(converted / "onnx" / "model.onnx"), "--target", "raspberry-pi-5",
                         "--device", "local", "--runs", "2", "--warmup", "0", "--no-profile")
    assert rc == 0, err
    assert "--target raspberry-pi-5 is deprecated: use --device raspberry-pi-5" in err
    assert "--device local for where it runs is deprecated: use --on local" in err


def test_bad_input(converted):
    with pytest.raises(EdgekitError, match="does not exist"):
        bench("nope.onnx")
    with pytest.raises(EdgekitError, match="unknown place to run 'bluetooth://x'"):
        bench(converted / "onnx" / "model.onnx", on="bluetooth://x")
    with pytest.raises(EdgekitError, match="unknown device profile 'toaster'"):
        bench(converted / "onnx" / "model.onnx", device="toaster")
    with pytest.raises(EdgekitError, match="unknown bench option colour"):
        bench(converted / "onnx" / "model.onnx", colour="red")
    with pytest.raises(EdgekitError, match="not an artifact"):
        bench(sys.executable)


@needs_sshd
def test_ssh_device_same_table(converted, server, tmp_path):
    env = server.env()
    rc, out, err = run_cli("bench", str(converted), "--on", server.url, "--python", sys.executable,
                           "--runs", "10", "--warmup", "1", "--json", str(tmp_path / "r.json"), env=env)
    assert rc == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["device"]["spec"] == server.url
    assert doc["device"]["cpu"]["features"] is not None  # read on the device by the _cpu.py pushed with the runner
    _check(doc, {("onnx", 1), ("openvino", 1), ("tflite", 1)})
    leftovers = [p for p in os.listdir("/tmp") if p.startswith("edgekit-bench.")]
    assert not leftovers, leftovers  # the device's work folder is removed


@needs_sshd
def test_ssh_faults_name_the_device(converted, server, tmp_path):
    # a refusing device: nothing listens on that port
    url = server.url.rsplit(":", 1)[0] + ":1"
    rc, _, err = run_cli("bench", str(converted / "onnx" / "model.onnx"), "--on", url, env=server.env())
    assert rc == 2 and url in err and "cannot connect" in err
    # a device without the runtime: a Python that has no onnxruntime
    rc, _, err = run_cli("bench", str(converted / "onnx" / "model.onnx"), "--on", server.url,
                         "--python", "/usr/bin/python3", env=server.env())
    assert rc == 2 and "onnxruntime" in err and "is missing" in err


def test_memory_cap_stops_the_runner_like_an_oom_killer(converted):
    # the runner (Python + numpy + ONNX Runtime) holds far more than 30 MB resident: stopped, and said so
    capped = bench(converted / "onnx" / "model.onnx", runs=5, warmup=1, profile=False, memory_mb=30)
    assert not capped.ok
    assert "cap" in capped.results[0]["error"] and "30 MB" in capped.results[0]["error"]
    # a cap it fits under: OpenVINO runs (an address-space limit made its thread pool hang)
    roomy = bench(converted / "openvino" / "model.xml", runs=5, warmup=1, profile=False, memory_mb=4000)
    assert roomy.ok, roomy.results
    assert roomy.results[0]["rss_mb"]["peak"] < 4000
    with pytest.raises(EdgekitError, match="positive"):
        bench(converted / "onnx" / "model.onnx", memory_mb=0)


def _kill_runner_when_it_starts(pattern: str, timeout: float = 60) -> bool:
    import signal
    import subprocess
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        if pids:
            time.sleep(1.0)  # mid-run: past loading, inside the timed loop
            for pid in pids:
                os.kill(int(pid), signal.SIGKILL)
            return True
        time.sleep(0.05)
    return False


def _bench_killed_mid_run(path, **kwargs):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(bench, path, runs=10**6, warmup=1, profile=False, **kwargs)
        assert _kill_runner_when_it_starts(r"runner\.py --artifact .*model\.onnx")
        return future.result(timeout=120)


def test_runner_killed_mid_run_locally(converted):
    result = _bench_killed_mid_run(converted / "onnx" / "model.onnx")
    assert not result.ok
    error = result.results[0]["error"]
    assert "killed on local" in error and "signal 9" in error


@needs_sshd
def test_runner_killed_mid_run_over_ssh(converted, server, monkeypatch):
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    result = _bench_killed_mid_run(converted / "onnx" / "model.onnx", on=server.url, python=sys.executable)
    assert not result.ok
    error = result.results[0]["error"]
    assert server.url in error and "killed" in error
    leftovers = [p for p in os.listdir("/tmp") if p.startswith("edgekit-bench.")]
    assert not leftovers, leftovers  # the device's work folder is removed all the same


@needs_sshd
def test_artifact_the_runtime_cannot_load(converted, tmp_path, server, monkeypatch):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 this is not a protobuf of a model")
    local = bench(broken, runs=2, warmup=0, profile=False)
    assert not local.ok and "broken.onnx cannot be loaded on this host" in local.results[0]["error"]
    assert "Protobuf" in local.results[0]["error"]
    # a folder whose manifest gives the signature: the host never loads it, the device's runtime fails
    folder = tmp_path / "cnn"
    shutil.copytree(converted, folder)
    (folder / "onnx" / "model.onnx").write_bytes(broken.read_bytes())
    for k, v in server.env().items():
        monkeypatch.setenv(k, v)
    remote = bench(folder, on=server.url, python=sys.executable, runs=2, warmup=0, profile=False)
    error = next(r["error"] for r in remote.results if r["format"] == "onnx")
    assert f"onnx/model.onnx failed on {server.url}" in error and "Protobuf" in error, error
    assert [r for r in remote.results if r["format"] == "openvino" and not r.get("error")]  # the others still ran
    assert not [p for p in os.listdir("/tmp") if p.startswith("edgekit-bench.")]


def test_one_artifact_of_a_folder_gets_the_manifests_inputs(tmp_path, tiny_bert):
    """A transformer's runtime signature has unnamed dynamic axes and (TFLite) args_0..: the manifest
    beside the artifact says sequence=24 and which input holds token ids."""
    out = tmp_path / "bert"
    edgekit.convert(edgekit.load(tiny_bert, dims={"sequence": 24}), targets=["openvino", "tflite"], out=out)
    for artifact in (out / "openvino" / "model.xml", out / "tflite" / "model.tflite"):
        result = bench(artifact, runs=3, warmup=1, profile=False)
        assert result.ok, result.results
        shapes = result.results[0]["input_shapes"]
        assert shapes and all(s == [1, 24] for s in shapes.values()), shapes
