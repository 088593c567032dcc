"""The Ray Serve backend on a local Ray (2 CPUs): replicas, @serve.batch, the same HTTP API."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from benchmarks.serve_load import free_port, make_inputs, run_load, summarize
from tests.test_serve import FEATURES, TOKEN, _metric, classifier_onnx, npz, request

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory):
    ray = pytest.importorskip("ray")
    from ray import serve

    from edgekit.serve import ServeConfig
    from edgekit.serve._ray import APP_NAME, QUIET, build_app

    clf = classifier_onnx(tmp_path_factory.mktemp("ray") / "clf.onnx")
    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")  # never join another cluster
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        config = ServeConfig([clf], port=port, backend="ray", replicas=2, replica_cpus=1.0, max_batch_size=16,
                             batch_wait_ms=5, threads=1)
        serve.run(build_app(config, TOKEN), name=APP_NAME, route_prefix="/", blocking=False,
                  logging_config=QUIET)
        yield port, clf
    finally:
        serve.shutdown()
        ray.shutdown()


def test_ray_models_predict_and_refusals(ray_server):
    from edgekit.backends.onnxruntime.runtime import OrtRunner

    port, clf = ray_server
    status, body = request(port, "GET", "/v1/models")
    assert status == 200
    (m,) = json.loads(body)["models"]
    assert m["name"] == "clf" and m["batching"]["enabled"] and m["batching"]["max_batch_size"] == 16
    x = np.random.default_rng(0).random((3, FEATURES)).astype(np.float32)
    status, body = request(port, "POST", "/v1/models/clf:predict", json.dumps({"inputs": {"x": x.tolist()}}),
                           {"content-type": "application/json"})
    assert status == 200, body
    want = OrtRunner(clf).run({"x": x})[0]
    np.testing.assert_allclose(np.asarray(json.loads(body)["outputs"]["probs"], np.float32), want, atol=1e-5)
    bad = npz(x=np.zeros((1, FEATURES + 1), np.float32))
    assert request(port, "POST", "/v1/models/clf:predict", bad, {"content-type": "application/x-npz"})[0] == 422
    assert request(port, "POST", "/v1/models/clf:predict", bad, {"content-type": "application/x-npz"},
                   token="wrong")[0] == 401
    assert request(port, "POST", "/v1/models/other:predict", bad, {"content-type": "application/x-npz"})[0] == 404
    assert request(port, "GET", "/readyz", token=None)[0] == 200


def test_ray_load_batches_and_matches_local(ray_server):
    from edgekit.backends.onnxruntime.runtime import OrtRunner

    port, clf = ray_server
    runner = OrtRunner(clf)
    inputs = make_inputs(runner.signature, 600, seed=5)
    expected = [runner.run(x) for x in inputs]
    res = asyncio.run(run_load(f"http://127.0.0.1:{port}", "clf", inputs, 32, TOKEN))
    s = summarize(res, expected)
    print(f"\nray load: {s}")
    assert s["errors_5xx"] == 0 and s["lost"] == 0 and s["ok"] == 600 and s["mismatches"] == 0, res["errors"][:5]
    text = request(port, "GET", "/metrics")[1].decode()
    batches = _metric(text, 'edgekit_batch_size_count{model="clf"}')
    assert _metric(text, 'edgekit_batch_size_sum{model="clf"}') >= 600 > batches  # @serve.batch did batch
