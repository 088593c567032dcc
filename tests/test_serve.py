"""`edgekit serve`: a real server (the CLI, in a subprocess on loopback) under load and abuse."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.serve_load import (
    free_port,
    make_inputs,
    run_load,
    start_server,
    stop_server,
    summarize,
)
from tests.conftest import run_cli

TOKEN = "test-token-0123456789"
FEATURES, CLASSES = 16, 4


def classifier_onnx(path: Path, static_batch: bool = False, seed: int = 0) -> Path:
    """A softmax classifier (MatMul + Add + Softmax), dynamic batch unless ``static_batch``."""
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(FEATURES, CLASSES)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(CLASSES,)).astype(np.float32), "b")
    batch = 1 if static_batch else "batch"
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "clf", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, FEATURES])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, CLASSES])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))
    return path


def request(port: int, method: str, path: str, body=None, headers: dict | None = None, token: str | None = TOKEN,
            chunked: bool = False) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = dict(headers or {})
    if token:
        h["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=h, encode_chunked=chunked)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("serve-models")
    clf = classifier_onnx(folder / "clf.onnx")
    static = classifier_onnx(folder / "clf-static.onnx", static_batch=True)
    import openvino as ov

    xml = folder / "ov" / "clf-ov.xml"
    ov.save_model(ov.convert_model(str(clf)), str(xml), compress_to_fp16=False)
    return {"clf": clf, "static": static, "ov": xml}


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "server.log"
    proc = start_server(models["clf"], port, str(models["static"]), str(models["ov"]), "--max-body-mb", "0.25",
                        "--max-batch-size", "16", token=TOKEN, log=log)
    yield port, proc, log
    stop_server(proc)


def test_health_models_and_metrics(server):
    port, _, log = server
    assert request(port, "GET", "/healthz", token=None)[0] == 200
    assert request(port, "GET", "/readyz", token=None)[0] == 200
    status, body = request(port, "GET", "/v1/models")
    assert status == 200
    by_name = {m["name"]: m for m in json.loads(body)["models"]}
    assert set(by_name) == {"clf", "clf-static", "clf-ov"}
    clf = by_name["clf"]
    assert clf["signature"]["inputs"] == [{"name": "x", "shape": ["batch", FEATURES], "dtype": "float32"}]
    assert len(clf["version"]) == 12 and clf["batching"] == {"enabled": True, "max_batch_size": 16, "reason": None}
    assert by_name["clf-ov"]["format"] == "openvino"
    static = by_name["clf-static"]["batching"]
    assert not static["enabled"] and "not dynamic" in static["reason"]
    assert "one request at a time (axis 0 is not dynamic)" in log.read_text()
    assert request(port, "GET", "/metrics", token=None)[0] == 401  # metrics are behind the token too
    status, body = request(port, "GET", "/metrics")
    assert status == 200 and b"edgekit_requests_total" in body


def test_every_format_matches_local_inference(server, models):
    from edgekit.backends.onnxruntime.runtime import OrtRunner

    port = server[0]
    x = np.random.default_rng(1).random((3, FEATURES)).astype(np.float32)
    want = OrtRunner(models["clf"]).run({"x": x})[0]
    for name in ("clf", "clf-ov"):
        status, body = request(port, "POST", f"/v1/models/{name}:predict", json.dumps({"inputs": {"x": x.tolist()}}),
                               {"content-type": "application/json"})
        assert status == 200, body
        doc = json.loads(body)
        assert doc["dtypes"] == {"probs": "float32"}
        np.testing.assert_allclose(np.asarray(doc["outputs"]["probs"], np.float32), want, atol=1e-5)
        status, body = request(port, "POST", f"/v1/models/{name}:predict", npz(x=x), {"content-type": "application/x-npz"})
        assert status == 200
        with np.load(io.BytesIO(body), allow_pickle=False) as z:
            assert z.files == ["probs"]
            np.testing.assert_allclose(z["probs"], want, atol=1e-5)
    status, body = request(port, "POST", "/v1/models/clf-static:predict", npz(x=x[:1]), {"content-type": "application/x-npz"})
    assert status == 200


def test_load_no_errors_nothing_lost_outputs_exact(server, models):
    """2,000 requests at concurrency 32: zero 5xx, every answer there and equal to local ORT."""
    from edgekit.backends.onnxruntime.runtime import OrtRunner

    port = server[0]
    runner = OrtRunner(models["clf"])
    inputs = make_inputs(runner.signature, 2000, seed=3)
    expected = [runner.run(x) for x in inputs]
    res = asyncio.run(run_load(f"http://127.0.0.1:{port}", "clf", inputs, 32, TOKEN))
    s = summarize(res, expected)
    print(f"\nload: {s}")
    assert s["errors_5xx"] == 0 and s["errors_4xx"] == 0 and s["lost"] == 0, res["errors"][:5]
    assert s["ok"] == 2000 and s["mismatches"] == 0
    assert s["throughput_rps"] > 0 and s["p99_ms"] is not None
    status, body = request(port, "GET", "/metrics")
    text = body.decode()
    count = _metric(text, 'edgekit_batch_size_count{model="clf"}')
    total = _metric(text, 'edgekit_batch_size_sum{model="clf"}')
    assert total >= 2000 and count < total  # some requests did share a batch
    assert _metric(text, 'edgekit_requests_total{code="200",model="clf"}') >= 2000


def _metric(text: str, key: str) -> float:
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{key} not in /metrics")


BAD = [
    # (label, path, body, headers, token, expected status, words in the detail)
    ("malformed JSON", "clf", b'{"inputs": {"x": [1, 2', "json", TOKEN, 400, "not valid JSON"),
    ("JSON without inputs", "clf", b'{"x": [1]}', "json", TOKEN, 400, '{"inputs"'),
    ("wrong dtype (npz)", "clf", npz(x=np.zeros((1, FEATURES))), "npz", TOKEN, 422, "float64"),
    ("strings (JSON)", "clf", json.dumps({"inputs": {"x": [["a"] * FEATURES]}}).encode(), "json", TOKEN, 422, "float32"),
    ("wrong shape", "clf", npz(x=np.zeros((1, FEATURES + 1), np.float32)), "npz", TOKEN, 422, "axis 1"),
    ("wrong rank", "clf", npz(x=np.zeros((FEATURES,), np.float32)), "npz", TOKEN, 422, "rank 1"),
    ("too many rows", "clf", npz(x=np.zeros((300, FEATURES), np.float32)), "npz", TOKEN, 422, "batch=300"),
    ("static batch", "clf-static", npz(x=np.zeros((2, FEATURES), np.float32)), "npz", TOKEN, 422, "axis 0"),
    ("missing input", "clf", npz(y=np.zeros((1, FEATURES), np.float32)), "npz", TOKEN, 422, "missing ['x']"),
    ("ragged JSON", "clf", b'{"inputs": {"x": [[1, 2], [3]]}}', "json", TOKEN, 422, "rectangular"),
    ("pickled object array", "clf", npz(x=np.array([{"a": 1}], dtype=object)), "npz", TOKEN, 400, "pickle"),
    ("not an npz", "clf", b"PK\x03\x04 garbage", "npz", TOKEN, 400, "not a readable .npz"),
    ("unsupported type", "clf", b"x", "text/plain", TOKEN, 415, "content type"),
    ("no token", "clf", npz(x=np.zeros((1, FEATURES), np.float32)), "npz", None, 401, "no bearer token"),
    ("wrong token", "clf", npz(x=np.zeros((1, FEATURES), np.float32)), "npz", "nope", 401, "wrong"),
    ("unknown model", "nosuch", npz(x=np.zeros((1, FEATURES), np.float32)), "npz", TOKEN, 404, "no model named 'nosuch'"),
    ("oversized body", "clf", b"0" * 300_000, "json", TOKEN, 413, "over the limit"),
]
_TYPES = {"json": "application/json", "npz": "application/x-npz"}


@pytest.mark.parametrize("label,model,body,kind,token,status,words", BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_the_right_4xx(server, label, model, body, kind, token, status, words):
    port = server[0]
    got, detail = request(port, "POST", f"/v1/models/{model}:predict", body,
                          {"content-type": _TYPES.get(kind, kind)}, token=token)
    assert got == status, (label, detail)
    assert words in json.loads(detail)["detail"], detail
    _still_serving(port)


def test_oversized_chunked_body_is_cut_off(server):
    port = server[0]
    chunks = (b"1" * 65536 for _ in range(8))  # no Content-Length: counted as it streams
    got, detail = request(port, "POST", "/v1/models/clf:predict", chunks, {"content-type": "application/json"},
                          chunked=True)
    assert got == 413 and b"over the limit" in detail
    _still_serving(port)
    status, body = request(port, "GET", "/metrics")
    assert _metric(body.decode(), 'edgekit_errors_total{kind="too_large"}') >= 1


def _still_serving(port: int) -> None:
    x = np.ones((1, FEATURES), np.float32)
    status, _ = request(port, "POST", "/v1/models/clf:predict", npz(x=x), {"content-type": "application/x-npz"})
    assert status == 200


def test_refuses_public_address_without_token(models, tmp_path):
    rc, _, err = run_cli("serve", str(models["clf"]), "--host", "0.0.0.0", "--port", str(free_port()),
                         env={"EDGEKIT_SERVE_TOKEN": ""})
    assert rc == 2 and "without a token" in err and "--insecure" in err
    empty = tmp_path / "token"
    empty.write_text("\n")
    rc, _, err = run_cli("serve", str(models["clf"]), "--token-file", str(empty))
    assert rc == 2 and "is empty" in err


def test_token_file_and_bind_rules(tmp_path, monkeypatch):
    from edgekit import EdgekitError
    from edgekit.serve._security import check_bind, is_loopback, read_token, token_ok

    f = tmp_path / "tok"
    f.write_text("s3cret\n")
    monkeypatch.setenv("EDGEKIT_SERVE_TOKEN", "from-env")
    assert read_token(f) == "s3cret" and read_token() == "from-env"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    check_bind("0.0.0.0", "t" * 16, False)
    check_bind("127.0.0.1", "tok", False)  # loopback: any token
    check_bind("0.0.0.0", None, True)
    with pytest.raises(EdgekitError, match="at least 16"):
        check_bind("0.0.0.0", "tok", False)
    with pytest.raises(EdgekitError):
        check_bind("0.0.0.0", None, False)
    assert token_ok("Bearer s3cret", "s3cret") and not token_ok("Bearer s3cre", "s3cret")
    assert not token_ok(None, "s3cret") and not token_ok("Basic s3cret", "s3cret")


def test_batches_split_back_by_shape():
    """Requests with different non-batch shapes never share a call; a bad group fails alone."""
    from edgekit.serve._batching import run_batch

    calls = []

    def run(feeds):
        calls.append(feeds["x"].shape)
        if feeds["x"].shape[1] == 3:
            raise ValueError("no threes")
        return [feeds["x"] * 2]

    batch = [{"x": np.full((1, 2), i, np.float32)} for i in range(3)] + [{"x": np.ones((2, 3), np.float32)}]
    out = run_batch(run, batch)
    assert calls == [(3, 2), (2, 3)]
    for i in range(3):
        np.testing.assert_array_equal(out[i][0], np.full((1, 2), 2 * i))
    assert isinstance(out[3], ValueError)
