"""`edgekit serve` batching by shape bucket: requests padded to the smallest bucket their length
fits, batched with the others of that bucket, outputs cut back to each request's length."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks.serve_load import free_port, run_load, start_server, stop_server
from tests.test_serve import TOKEN, request

VOCAB, WIDTH = 50, 4
BUCKETS = [8, 16, 32]


def token_model_onnx(path: Path) -> Path:
    """A masked mean-pooling 'encoder': ids -> embeddings * mask (batch, sequence, 4), and their
    mean over the real tokens (batch, 4). Padding with mask 0 changes neither on the real tokens."""
    from onnx import TensorProto, helper, numpy_helper, save

    emb = numpy_helper.from_array(np.random.default_rng(0).normal(size=(VOCAB, WIDTH)).astype(np.float32), "emb")
    one = numpy_helper.from_array(np.array([1], np.int64), "axis1")
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "minus1"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["tokens"]),
        helper.make_node("ReduceSum", ["tokens", "axis1"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["pooled"]),
    ]
    minus1 = numpy_helper.from_array(np.array([-1], np.int64), "minus1")
    graph = helper.make_graph(
        nodes, "pool",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "sequence", WIDTH]),
         helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", WIDTH])], [emb, one, minus1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, str(path))
    return path


def sentence(length: int, seed: int) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(seed).integers(1, VOCAB, (1, length)).astype(np.int64)
    return {"input_ids": ids, "attention_mask": np.ones((1, length), np.int64)}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return token_model_onnx(tmp_path_factory.mktemp("serve-buckets") / "pool.onnx")


def test_run_batch_groups_by_bucket_pads_and_cuts_back(model):
    """Lengths 5 and 7 share bucket 8, 12 and 16 bucket 16, 20 bucket 32: three calls, each
    padded only to its bucket; every answer equals the model run on the request alone."""
    from edgekit.backends.onnxruntime.runtime import OrtRunner
    from edgekit.serve._batching import Bucketing, run_batch

    runner = OrtRunner(model)
    calls, groups = [], []

    def run(feeds):
        calls.append(feeds["input_ids"].shape)
        return runner.run(feeds)

    lengths = [5, 12, 7, 20, 16]
    batch = [sentence(n, i) for i, n in enumerate(lengths)]
    bucketing = Bucketing({"sequence": BUCKETS}, runner.signature)
    out = run_batch(run, batch, bucketing, on_group=lambda key, n: groups.append((key, n)))
    assert sorted(calls) == [(1, 32), (2, 8), (2, 16)]
    assert sorted(groups) == [("sequence_16", 2), ("sequence_32", 1), ("sequence_8", 2)]
    for feeds, got in zip(batch, out, strict=True):
        want = runner.run(feeds)
        assert got[0].shape == want[0].shape == (1, feeds["input_ids"].shape[1], WIDTH)  # tokens cut back
        np.testing.assert_allclose(got[0], want[0], atol=1e-6)
        np.testing.assert_allclose(got[1], want[1], atol=1e-6)
    over = run_batch(run, [sentence(40, 0)], bucketing)
    assert isinstance(over[0], ValueError) and "over the largest bucket" in str(over[0])


def _metric(text: str, name: str, bucket: str) -> float:
    found = re.search(rf'^{name}\{{[^}}]*bucket="{bucket}"[^}}]*\}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_server_batches_by_bucket(model, tmp_path):
    """The real server with --shape-buckets under concurrent load: every answer equals local ONNX
    Runtime on the unpadded request; the bucket counts are in /metrics and in /v1/models."""
    from edgekit.backends.onnxruntime.runtime import OrtRunner

    port = free_port()
    proc = start_server(model, port, "--shape-buckets", "sequence=8,16,32", "--max-batch-size", "16",
                        "--batch-wait-ms", "5", token=TOKEN, log=tmp_path / "server.log")
    try:
        status, body = request(port, "GET", "/v1/models")
        info = json.loads(body)["models"][0]
        assert info["buckets"] == {"axes": {"sequence": BUCKETS}, "pad": {}} and info["limits"]["sequence"] == 32
        lengths = [int(n) for n in np.random.default_rng(3).integers(1, 33, 120)]
        inputs = [sentence(n, i) for i, n in enumerate(lengths)]
        result = asyncio.run(run_load(f"http://127.0.0.1:{port}", "pool", inputs, 24, token=TOKEN))
        assert result["errors"] == [] and set(result["status"]) == {200}
        runner = OrtRunner(model)
        for feeds, got in zip(inputs, result["outputs"], strict=True):
            want = runner.run(feeds)
            assert got[0].shape == want[0].shape
            np.testing.assert_allclose(got[0], want[0], atol=1e-6)
            np.testing.assert_allclose(got[1], want[1], atol=1e-6)
        text = request(port, "GET", "/metrics")[1].decode()
        counts = {b: _metric(text, "edgekit_bucket_requests_total", f"sequence_{b}") for b in BUCKETS}
        assert counts == {b: sum(1 for n in lengths if lo < n <= b) for lo, b in zip([0, *BUCKETS[:-1]], BUCKETS, strict=True)}
        calls = sum(_metric(text, "edgekit_bucket_calls_total", f"sequence_{b}") for b in BUCKETS)
        assert 3 <= calls < len(lengths)  # batched: fewer calls than requests
        status, body = request(port, "POST", "/v1/models/pool:predict", json.dumps(
            {"inputs": {k: v.tolist() for k, v in sentence(40, 0).items()}}), {"content-type": "application/json"})
        assert status == 422 and "sequence=40" in body.decode() and "1 to 32" in body.decode()
    finally:
        stop_server(proc)


def test_serve_refuses_buckets_on_an_axis_the_model_lacks(model, tmp_path):
    from tests.conftest import run_cli

    code, out, err = run_cli("serve", str(model), "--shape-buckets", "width=8,16", "--port", str(free_port()))
    assert code != 0 and "not a dynamic axis" in out + err and "['sequence']" in out + err
    code, out, err = run_cli("serve", str(model), "--shape-buckets", "sequence=auto", "--port", str(free_port()))
    assert code != 0 and "not auto" in out + err


@pytest.mark.integration
def test_serving_a_bucketed_convert_folder_uses_its_buckets(tiny_bert, tmp_path):
    """A folder from `convert --shape-buckets` is served with its manifest's buckets, no flag."""
    import edgekit

    out = tmp_path / "bert"
    edgekit.convert(edgekit.load(tiny_bert, dims={"sequence": 32}), targets=["onnx"], out=out,
                    shape_buckets={"sequence": [8, 16, 32]})
    from edgekit.serve._model import manifest_buckets

    axes, pad = manifest_buckets(out / "onnx" / "model.onnx")
    assert axes == {"sequence": [8, 16, 32]} and set(pad) == {"input_ids", "token_type_ids", "attention_mask"}
    port = free_port()
    proc = start_server(out, port, token=TOKEN, log=tmp_path / "server.log")
    try:
        info = json.loads(request(port, "GET", "/v1/models")[1])["models"][0]
        assert info["buckets"]["axes"] == {"sequence": [8, 16, 32]} and info["limits"]["sequence"] == 32
        ids = np.array([[2, 17, 99, 3]], np.int64)
        feeds = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)}
        status, body = request(port, "POST", f"/v1/models/{info['name']}:predict",
                               json.dumps({"inputs": {k: v.tolist() for k, v in feeds.items()}}),
                               {"content-type": "application/json"})
        assert status == 200, body
        got = np.asarray(json.loads(body)["outputs"]["last_hidden_state"], np.float32)
        from edgekit.backends.onnxruntime.runtime import OrtRunner

        want = OrtRunner(out / "onnx" / "model.onnx").run(feeds)[0]
        assert got.shape == want.shape == (1, 4, 64)
        np.testing.assert_allclose(got, want, atol=1e-5)
        text = request(port, "GET", "/metrics")[1].decode()
        assert _metric(text, "edgekit_bucket_requests_total", "sequence_8") == 1
    finally:
        stop_server(proc)
