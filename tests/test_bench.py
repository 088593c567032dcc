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


def test_local_folder_all_artifacts(converted, tmp_path):
    rc, out, err = run_cli("bench", str(converted), "--runs", "20", "--warmup", "2", "--threads", "1,2",
                           "--json", str(tmp_path / "r.json"))
    assert rc == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema"] == 1 and doc["kind"] == "bench" and doc["device"]["spec"] == "local"
    _check(doc, {(f, t) for f in ("onnx", "openvino", "tflite") for t in (1, 2)})
    assert "p50 ms" in out and "slowest ops" in out


def test_target_budgets_and_pinned_core(converted):
    result = bench(converted / "onnx" / "model.onnx", target="raspberry-pi-5", runs=10, warmup=1, cores="0")
    assert result.settings["threads"] == [4]  # the profile's threads
    assert result.target["name"] == "raspberry-pi-5"
    fit = result.target["fits"][0]
    assert fit["latency"] is True and fit["memory"] is True  # a 30 kB CNN fits a Pi's budgets


def test_bad_input(converted):
    with pytest.raises(EdgekitError, match="does not exist"):
        bench("nope.onnx")
    with pytest.raises(EdgekitError, match="unknown device"):
        bench(converted / "onnx" / "model.onnx", device="bluetooth://x")
    with pytest.raises(EdgekitError, match="unknown target"):
        bench(converted / "onnx" / "model.onnx", target="toaster")
    with pytest.raises(EdgekitError, match="not an artifact"):
        bench(sys.executable)


@needs_sshd
def test_ssh_device_same_table(converted, server, tmp_path):
    env = server.env()
    rc, out, err = run_cli("bench", str(converted), "--device", server.url, "--python", sys.executable,
                           "--runs", "10", "--warmup", "1", "--json", str(tmp_path / "r.json"), env=env)
    assert rc == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["device"]["spec"] == server.url
    _check(doc, {("onnx", 1), ("openvino", 1), ("tflite", 1)})
    leftovers = [p for p in os.listdir("/tmp") if p.startswith("edgekit-bench.")]
    assert not leftovers, leftovers  # the device's work folder is removed


@needs_sshd
def test_ssh_faults_name_the_device(converted, server, tmp_path):
    # a refusing device: nothing listens on that port
    url = server.url.rsplit(":", 1)[0] + ":1"
    rc, _, err = run_cli("bench", str(converted / "onnx" / "model.onnx"), "--device", url, env=server.env())
    assert rc == 2 and url in err and "cannot connect" in err
    # a device without the runtime: a Python that has no onnxruntime
    rc, _, err = run_cli("bench", str(converted / "onnx" / "model.onnx"), "--device", server.url,
                         "--python", "/usr/bin/python3", env=server.env())
    assert rc == 2 and "onnxruntime" in err and "is missing" in err
