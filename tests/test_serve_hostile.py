"""`edgekit serve` under hostile input: the real server (the CLI, a subprocess on loopback).

A compressed-bomb .npz, JSON nested 5,000 deep, NaN and 1e400, padded and short tokens,
two compress folders, ONNX external data outside the model's folder.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchmarks.serve_load import free_port, start_server, stop_server
from tests.conftest import ROOT, run_cli
from tests.test_serve import FEATURES, _metric, classifier_onnx, npz
from tests.test_serve import request as _request

TOKEN = "hostile-token-0123456789"
NPZ = {"content-type": "application/x-npz"}
JSON = {"content-type": "application/json"}
BOMB_SHAPE = (4194304, 1, 8, 8)  # 1 GiB of float32 zeros, about 1 MiB deflated


def request(port: int, method: str, path: str, body=None, headers: dict | None = None, token: str | None = TOKEN):
    return _request(port, method, path, body, headers, token=token)


def image_onnx(path: Path) -> Path:
    """The digits model's interface: image (batch, 1, 8, 8) -> probs (batch, 10)."""
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(64, 10)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["image", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["z"]),
         helper.make_node("Softmax", ["z"], ["probs"], axis=-1)],
        "digits", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))
    return path


def log_onnx(path: Path) -> Path:
    """y = log(x): finite inputs that give -inf (x = 0) and NaN (x < 0)."""
    from onnx import TensorProto, helper, save

    graph = helper.make_graph([helper.make_node("Log", ["x"], ["y"])], "log",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    save(model, str(path))
    return path


def deflated_zeros_npz(name: str, shape: tuple[int, ...], dtype=np.float32) -> bytes:
    """``np.savez_compressed`` of zeros of ``shape``, streamed: the bomb is never held inflated here."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(f"{name}.npy", "w", force_zip64=True) as fp:
        fp.write(header.getvalue())
        chunk = bytes(2**22)
        left = int(np.prod(shape)) * np.dtype(dtype).itemsize
        while left:
            fp.write(chunk[:min(left, len(chunk))])
            left -= min(left, len(chunk))
    return buf.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile-models")
    return {"digits": image_onnx(folder / "digits.onnx"), "clf": classifier_onnx(folder / "clf.onnx"),
            "log": log_onnx(folder / "log.onnx")}


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("hostile-log") / "server.log"
    proc = start_server(models["digits"], port, str(models["clf"]), str(models["log"]), "--max-elements", "8192",
                        token=TOKEN + "  ", log=log)  # padded in the environment: trimmed
    yield port, proc
    stop_server(proc)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    body = deflated_zeros_npz("image", BOMB_SHAPE)
    assert len(body) < 1.5 * 2**20  # 1 GiB inflated from about 1 MiB
    return body


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_compressed_bomb_is_refused_fast_small_and_off_the_loop(server, bomb):
    """1 GiB of zeros deflated to 1 MiB: refused from its header in < 1 s, with the server's
    peak RSS up < 100 MB, while /healthz keeps answering in < 200 ms."""
    port, proc = server
    pid = proc.pid
    _ok(port)
    rss_before = _rss_kb(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # restart the peak (VmHWM) from the current RSS
    health, done = [], threading.Event()

    def probe():
        while not done.is_set():
            t0 = time.perf_counter()
            status, _ = request(port, "GET", "/healthz", token=None)
            health.append((status, time.perf_counter() - t0))
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.1)
    t0 = time.perf_counter()
    status, detail = request(port, "POST", "/v1/models/digits:predict", bomb, NPZ)
    took = time.perf_counter() - t0
    time.sleep(0.1)
    done.set()
    prober.join()
    growth_mb = (_rss_kb(pid, "VmHWM") - rss_before) / 1024
    worst = max(s for _, s in health)
    print(f"\nbomb: {status} in {took * 1000:.0f} ms, RSS growth {growth_mb:.1f} MB, healthz worst "
          f"{worst * 1000:.1f} ms over {len(health)} probes")
    assert status == 422 and "image" in json.loads(detail)["detail"], detail
    assert took < 1.0
    assert growth_mb < 100
    assert all(s == 200 for s, _ in health) and worst < 0.2
    _ok(port)


def test_bombs_within_the_axis_limits_hit_the_element_cap_or_the_size_check(server):
    port = server[0]
    # 200 x 1 x 8 x 8 = 12,800 numbers: within batch <= 256, over --max-elements 8192 -> 413
    status, detail = request(port, "POST", "/v1/models/digits:predict", deflated_zeros_npz("image", (200, 1, 8, 8)),
                             NPZ)
    assert status == 413 and "--max-elements" in json.loads(detail)["detail"]
    # a small header over a member that declares 1 GiB: refused from the zip directory
    liar = _member_with_declared_size(np.zeros((1, 1, 8, 8), np.float32), 2**30)
    status, detail = request(port, "POST", "/v1/models/digits:predict", liar, NPZ)
    assert status == 400 and "declares" in json.loads(detail)["detail"], detail
    _, body = request(port, "GET", "/metrics")
    assert _metric(body.decode(), 'edgekit_errors_total{kind="too_large"}') >= 1
    _ok(port)


def _member_with_declared_size(arr: np.ndarray, declared: int) -> bytes:
    """A stored .npz whose directory says ``declared`` bytes for image.npy (the data is ``arr``)."""
    body = bytearray(npz(image=arr))
    at = body.rfind(b"PK\x01\x02")  # the central directory entry: uncompressed size at +24 (zip64: extra field)
    size = struct.unpack_from("<I", body, at + 24)[0]
    if size == 0xFFFFFFFF:
        extra_at = at + 46 + struct.unpack_from("<H", body, at + 28)[0]
        struct.pack_into("<Q", body, extra_at + 4, declared)
    else:
        struct.pack_into("<I", body, at + 24, declared)
    return bytes(body)


def test_json_nested_5000_deep_is_a_counted_400(server):
    port = server[0]
    _, before = request(port, "GET", "/metrics")
    deep = b'{"inputs": {"x": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}}"
    status, detail = request(port, "POST", "/v1/models/clf:predict", deep, JSON)
    assert status == 400, detail
    assert "nests 5002 levels" in json.loads(detail)["detail"]
    _, after = request(port, "GET", "/metrics")
    key = 'edgekit_errors_total{kind="bad_request"}'
    assert _metric(after.decode(), key) == _metric_or_0(before.decode(), key) + 1
    assert _metric(after.decode(), 'edgekit_requests_total{code="400",model="clf"}') >= 1
    # brackets inside strings (escaped quotes and backslashes too) do not count; a tensor's own nesting is fine
    ok = json.dumps({"inputs": {"x": [[0.5] * FEATURES]}, "note": "[" * 100 + '\\"[\\\\'}).encode()
    assert request(port, "POST", "/v1/models/clf:predict", ok, JSON)[0] == 200
    # the depth scan is linear: 4 MB of escaped quotes in an unterminated string is a quick 400
    t0 = time.perf_counter()
    status, _ = request(port, "POST", "/v1/models/clf:predict", b'{"inputs": "' + b'\\"' * 2**21, JSON)
    assert status == 400 and time.perf_counter() - t0 < 3


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1e39"])
def test_non_finite_json_inputs_are_refused(server, value):
    port = server[0]
    row = b"[" + b", ".join([value] + [b"0.5"] * (FEATURES - 1)) + b"]"
    status, detail = request(port, "POST", "/v1/models/clf:predict", b'{"inputs": {"x": [' + row + b"]}}", JSON)
    assert status == 400, detail
    assert "finite" in json.loads(detail)["detail"]


def test_non_finite_outputs_are_null_in_strict_json(server):
    port = server[0]
    x = [[1.0, 0.0, -1.0, np.e]]
    status, body = request(port, "POST", "/v1/models/log:predict", json.dumps({"inputs": {"x": x}}), JSON)
    assert status == 200

    def strict(name):
        raise AssertionError(f"the response holds {name}, which strict JSON parsers refuse")

    doc = json.loads(body, parse_constant=strict)
    y = doc["outputs"]["y"][0]
    assert y[0] == 0.0 and y[1] is None and y[2] is None and abs(y[3] - 1.0) < 1e-6
    # an .npz answer carries them as they are
    status, body = request(port, "POST", "/v1/models/log:predict", npz(x=np.asarray(x, np.float32)), NPZ)
    import io

    with np.load(io.BytesIO(body)) as z:
        assert np.isneginf(z["y"][0, 1]) and np.isnan(z["y"][0, 2])


def test_padded_token_in_the_environment_still_matches(server):
    """The server's token came from the environment with two trailing spaces."""
    port = server[0]
    assert request(port, "GET", "/v1/models", token=TOKEN)[0] == 200
    assert request(port, "GET", "/v1/models", token=TOKEN + "x")[0] == 401


def _serve_cli(*args: str, env: dict, timeout: float = 60) -> tuple[int, str]:
    """The CLI that should refuse to start; one that starts anyway is stopped after ``timeout``."""
    import os

    try:
        proc = subprocess.run([sys.executable, "-m", "edgekit", "serve", *args], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, **env}, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "the server started"
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("token,words", [("x", "at least 16"), ("short-token ", "at least 16"),
                                         ("   ", "white space")])
def test_short_or_blank_token_refused_for_a_public_bind(models, token, words):
    rc, err = _serve_cli(str(models["clf"]), "--host", "0.0.0.0", "--port", str(free_port()),
                         env={"EDGEKIT_SERVE_TOKEN": token}, timeout=30)
    assert rc == 2, err
    assert words in err and "Traceback" not in err


def _fake_compress_folder(root: Path) -> Path:
    """The layout `edgekit compress` writes: fp32/onnx/model.onnx with its manifest, a variant, report.json."""
    import edgekit

    src = classifier_onnx(root.parent / f"{root.name}-src.onnx")
    manifest = edgekit.convert(str(src), targets=["onnx"], out=root / "fp32").manifest  # a real manifest
    classifier_onnx(root / "onnx-dynamic-int8" / "model.onnx", seed=1)
    size = (root / "onnx-dynamic-int8" / "model.onnx").stat().st_size
    variant = {"target": "onnx", "mode": "dynamic-int8", "path": "onnx-dynamic-int8/model.onnx", "size_bytes": size,
               "baseline_size_bytes": size, "size_ratio": 1.0, "baseline_value": 1.0, "status": "pass"}
    (root / "report.json").write_text(json.dumps(  # what the bench and serve readers need of a report
        {"schema": 1, "kind": "compress", "edgekit": manifest["edgekit"], "created": manifest["created"],
         "host": manifest["host"], "source": manifest["source"], "data": "none", "metric": "cosine",
         "baseline_value": 1.0, "max_drop": 1.0, "threads": [1], "baselines": {}, "variants": [variant]}))
    return root


def test_two_compress_folders_get_unique_default_names(tmp_path):
    a = _fake_compress_folder(tmp_path / "mlp-small")
    b = _fake_compress_folder(tmp_path / "mlp-large")
    port = free_port()
    proc = start_server(a, port, str(b), str(a / "onnx-dynamic-int8" / "model.onnx"), token=TOKEN,
                        log=tmp_path / "server.log")
    try:
        status, body = request(port, "GET", "/v1/models")
        names = sorted(m["name"] for m in json.loads(body)["models"])
        assert names == ["mlp-large-fp32", "mlp-small-fp32", "mlp-small-onnx-dynamic-int8"]
        x = np.ones((1, FEATURES), np.float32)
        assert request(port, "POST", "/v1/models/mlp-large-fp32:predict", npz(x=x), NPZ)[0] == 200
    finally:
        stop_server(proc)


def _outside_data_onnx(folder: Path) -> tuple[Path, str]:
    """A classifier whose weight points at ../secret.bin (a file that exists, outside the folder)."""
    from onnx import TensorProto, load, save

    path = classifier_onnx(folder / "model" / "model.onnx")
    model = load(str(path))
    w = next(t for t in model.graph.initializer if t.name == "w")
    (folder / "secret.bin").write_bytes(w.raw_data or np.asarray(w.float_data, np.float32).tobytes())
    w.ClearField("raw_data")
    w.ClearField("float_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", str(FEATURES * 4 * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    save(model, str(path))
    return path, "../secret.bin"


def test_external_data_outside_the_folder_is_named_in_serve_and_convert(tmp_path):
    path, location = _outside_data_onnx(tmp_path)
    rc, err = _serve_cli(str(path), "--port", str(free_port()), env={"EDGEKIT_SERVE_TOKEN": ""}, timeout=60)
    assert rc == 2, err
    assert location in err and "outside the model's folder" in err and "Traceback" not in err
    rc, _, err = run_cli("convert", str(path), "--to", "onnx", "--out", str(tmp_path / "out"))
    assert rc == 2, err
    assert location in err and "outside the model's folder" in err
    assert "truncated or corrupt" not in err and "Traceback" not in err


def _metric_or_0(text: str, key: str) -> float:
    return _metric(text, key) if any(line.startswith(key + " ") for line in text.splitlines()) else 0.0


def _ok(port: int) -> None:
    x = np.zeros((1, 1, 8, 8), np.float32)
    status, _ = request(port, "POST", "/v1/models/digits:predict", npz(image=x), NPZ)
    assert status == 200
