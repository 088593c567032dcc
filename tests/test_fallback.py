"""FallbackModel against a real `edgekit serve` on loopback: routing, retries, the circuit."""

from __future__ import annotations

import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from benchmarks.serve_load import free_port, start_server, stop_server
from edgekit import FallbackError, FallbackModel, FallbackPolicy
from edgekit.fallback import CircuitBreaker
from tests.test_serve import FEATURES, classifier_onnx

TOKEN = "fallback-token"


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    return classifier_onnx(tmp_path_factory.mktemp("fb") / "clf.onnx")


@pytest.fixture(scope="module")
def server(clf):
    port = free_port()
    proc = start_server(clf, port, token=TOKEN)
    yield f"http://127.0.0.1:{port}"
    stop_server(proc)


def _x(n: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, FEATURES)).astype(np.float32)


def _local(clf, x):
    from edgekit.backends.onnxruntime.runtime import OrtRunner

    return OrtRunner(clf).run({"x": x})[0]


def test_device_first_and_confidence_cascade(clf, server):
    fm = FallbackModel(clf, server, FallbackPolicy(min_confidence=0.9), token=TOKEN)
    seen = set()
    for seed in range(40):
        x = _x(seed=seed)
        r = fm(x)  # a bare array: the model has one input
        want = _local(clf, x)
        assert r.names == ["probs"] and r.outputs[0].shape == want.shape
        np.testing.assert_allclose(r[0], want, atol=1e-5)
        if r.confidence >= 0.9:
            assert (r.path, r.reason) == ("local", "ok")
        else:
            assert (r.path, r.reason) == ("cloud", "low_confidence") and "confidence" in r.detail
        seen.add(r.path)
    assert seen == {"local", "cloud"}  # both branches were exercised
    assert fm.circuit.state == "closed"


def test_local_that_cannot_load_goes_to_the_server(clf, server, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    fm = FallbackModel(broken, server, token=TOKEN, model="clf")
    assert fm.runner is None and fm.local_error
    x = _x(3)
    r = fm({"x": x})
    assert (r.path, r.reason) == ("cloud", "local_unavailable")
    np.testing.assert_allclose(r[0], _local(clf, x), atol=1e-5)
    # and with no server either: one clear error naming both causes
    dead = FallbackModel(broken, f"http://127.0.0.1:{free_port()}", FallbackPolicy(retries=0), model="clf")
    with pytest.raises(FallbackError, match=r"the device cannot \(the local model did not load.*server failed"):
        dead({"x": x})


def test_input_beyond_local_limits_goes_to_the_server(clf, server, tmp_path):
    fm = FallbackModel(clf, server, FallbackPolicy(max_dims={"batch": 2}), token=TOKEN)
    small, big = _x(2), _x(5)
    assert fm(small).path == "local"
    r = fm(big)
    assert (r.path, r.reason) == ("cloud", "beyond_local_limits") and "at most 2" in r.detail
    assert r[0].shape == (5, 4)
    np.testing.assert_allclose(r[0], _local(clf, big), atol=1e-5)
    static = classifier_onnx(tmp_path / "static.onnx", static_batch=True)  # the device's model takes batch 1 only
    fm = FallbackModel(static, server, token=TOKEN, model="clf")
    assert fm(_x(1)).path == "local"
    r = fm(_x(3))
    assert (r.path, r.reason) == ("cloud", "beyond_local_limits") and r[0].shape == (3, 4)


def test_latency_over_budget_moves_to_the_server_and_back(clf, server):
    fm = FallbackModel(clf, server, FallbackPolicy(latency_budget_ms=1e-6, latency_window=2, latency_recheck_s=0.3),
                       token=TOKEN)
    assert [fm(_x()).path for _ in range(2)] == ["local", "local"]  # the window fills
    r = fm(_x())
    assert (r.path, r.reason) == ("cloud", "latency_budget")
    time.sleep(0.35)
    assert fm(_x()).path == "local"  # rechecked on the device
    # over budget and the server is down: the device still answers, and says why
    fm.url = f"http://127.0.0.1:{free_port()}/v1/models/clf:predict"
    fm.policy.retries = 0
    fm(_x())
    r = fm(_x())
    assert (r.path, r.reason) == ("local", "cloud_failed") and "ConnectionRefusedError" in r.detail


def test_timeout_retries_with_backoff(clf):
    """A server that accepts and never answers: each attempt times out, then the device answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    try:
        policy = FallbackPolicy(min_confidence=1.01, timeout_s=0.2, retries=2, backoff_s=0.1, failure_threshold=2)
        fm = FallbackModel(clf, f"http://127.0.0.1:{port}", policy, model="clf")
        t0 = time.monotonic()
        r = fm(_x())
        elapsed = time.monotonic() - t0
        assert (r.path, r.reason) == ("local", "cloud_failed")
        assert "after 3 attempts" in r.detail and "timed out" in r.detail
        assert elapsed >= 3 * 0.2 + 0.05 + 0.1  # three timeouts plus two backoffs (with jitter >= half)
        assert fm.circuit.state == "closed"
        fm(_x())
        assert fm.circuit.state == "open"  # 2 consecutive failed calls
        t0 = time.monotonic()
        r = fm(_x())
        assert (r.path, r.reason) == ("local", "circuit_open") and time.monotonic() - t0 < 0.1  # no waiting now
    finally:
        sock.close()


def test_circuit_breaker_states():
    now = [0.0]
    cb = CircuitBreaker(threshold=2, cooldown_s=5, clock=lambda: now[0])
    assert cb.allow() and cb.state == "closed"
    cb.failure()
    assert cb.state == "closed"
    cb.failure()
    assert cb.state == "open" and not cb.allow()
    now[0] = 5.0
    assert cb.state == "half_open" and cb.allow() and not cb.allow()  # one trial call only
    cb.failure()
    assert cb.state == "open"  # the trial failed: open again, for a new cool-down
    now[0] = 10.0
    assert cb.allow()
    cb.success()
    assert cb.state == "closed" and cb.allow() and cb.failures == 0


def test_server_killed_mid_load_device_answers_circuit_opens_and_closes(clf):
    """Every request wants the server (cascade with min_confidence > 1). The server is
    SIGKILLed a third of the way in: nothing is lost, the device answers and says so, the
    circuit opens; the server comes back on the same port and the circuit closes."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(clf, port, token=TOKEN)
    policy = FallbackPolicy(min_confidence=1.01, timeout_s=1.0, retries=1, backoff_s=0.01, failure_threshold=3,
                            cooldown_s=1.0)
    fm = FallbackModel(clf, url, policy, token=TOKEN)
    n, killed = 300, threading.Event()
    inputs = [_x(seed=i) for i in range(n)]
    done = [0]
    lock = threading.Lock()

    def one(i):
        r = fm(inputs[i])
        with lock:
            done[0] += 1
            if done[0] == n // 3 and not killed.is_set():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed.set()
        return i, r

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(n)))
        assert killed.is_set() and len(results) == n
        paths = [(r.path, r.reason) for _, r in results]
        for i, r in results:
            np.testing.assert_allclose(r[0], _local(clf, inputs[i]), atol=1e-5)
        assert ("cloud", "low_confidence") in paths
        assert ("local", "cloud_failed") in paths and ("local", "circuit_open") in paths
        assert paths.count(("local", "cloud_failed")) <= 3 + 8  # the circuit stopped the attempts early
        assert fm.circuit.state in ("open", "half_open")
        assert fm.counts["local:circuit_open"] > 0
        proc = start_server(clf, port, token=TOKEN)  # the server returns
        time.sleep(policy.cooldown_s)
        assert fm.circuit.state == "half_open"
        r = fm(_x(seed=1000))
        assert (r.path, r.reason) == ("cloud", "low_confidence")
        assert fm.circuit.state == "closed"
    finally:
        if proc.poll() is None:
            stop_server(proc)


class _FakeServer:
    """A real HTTP server on loopback that answers every predict with 200: first with
    garbage (``bodies`` in turn), then, once ``fixed``, with the model's real outputs."""

    def __init__(self, clf, bodies: list[bytes]):
        import io
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from edgekit.backends.onnxruntime.runtime import OrtRunner

        runner, fake = OrtRunner(clf), self
        self.bodies, self.fixed, self.calls = bodies, False, 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                data = self.rfile.read(int(self.headers["content-length"]))
                with fake.lock:
                    fake.calls += 1
                    body = fake.bodies[(fake.calls - 1) % len(fake.bodies)]
                    if fake.fixed:
                        with np.load(io.BytesIO(data)) as z:
                            buf = io.BytesIO()
                            np.savez(buf, probs=runner.run({"x": z["x"]})[0])
                            body = buf.getvalue()
                self.send_response(200)
                self.send_header("content-type", "application/x-npz")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _garbage_bodies() -> list[bytes]:
    import io
    import zipfile

    def npz(**arrays):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    good = npz(probs=np.full((1, 4), 0.25, np.float32))
    not_npy = io.BytesIO()
    with zipfile.ZipFile(not_npy, "w") as zf:
        zf.writestr("probs.npy", b"not an array")
    return [
        b"",  # EOFError in np.load
        b"\x00garbage\xff" * 10,  # not a zip
        good[: len(good) // 2],  # truncated: BadZipFile
        not_npy.getvalue(),  # a zip without an .npy in it
        npz(probs=np.array([{"a": 1}], dtype=object)),  # needs pickle
        npz(other=np.zeros((1, 7), np.float32)),  # wrong key and shape
        npz(probs=np.zeros((1, 5), np.float32)),  # wrong shape
        b"PK\x05\x06" + bytes(18),  # an empty zip: no arrays
    ]


def test_garbage_200_device_answers_every_call_and_the_circuit_recovers(clf):
    """A server that answers 200 with broken bodies: every call is answered by the device
    (nothing escapes predict), each is a counted failure, the half-open trial on garbage
    opens the circuit again, and once the server is fixed the circuit closes."""
    bodies = _garbage_bodies()
    fake = _FakeServer(clf, bodies)
    policy = FallbackPolicy(min_confidence=1.01, retries=0, failure_threshold=2, cooldown_s=0.3)
    fm = FallbackModel(clf, fake.url, policy, model="clf")
    try:
        for seed in range(len(bodies)):  # every garbage body reaches the model: the circuit is closed for each
            fm.circuit.success()
            x = _x(seed=seed)
            r = fm(x)
            assert (r.path, r.reason) == ("local", "cloud_failed"), r
            assert "server" in r.detail
            np.testing.assert_allclose(r[0], _local(clf, x), atol=1e-5)
        assert fake.calls == len(bodies)
        fm(_x())
        fm(_x())
        assert fm.circuit.state == "open"
        time.sleep(policy.cooldown_s + 0.05)
        assert fm.circuit.state == "half_open"
        r = fm(_x())  # the trial gets garbage: open again, not stuck half-open
        assert (r.path, r.reason) == ("local", "cloud_failed") and fm.circuit.state == "open"
        fake.fixed = True
        time.sleep(policy.cooldown_s + 0.05)
        x = _x(seed=99)
        r = fm(x)
        assert (r.path, r.reason) == ("cloud", "low_confidence")
        np.testing.assert_allclose(r[0], _local(clf, x), atol=1e-5)
        assert fm.circuit.state == "closed"
    finally:
        fake.close()


def test_half_open_trial_interrupted_still_settles(clf):
    """A trial call cut short by an exception that is not the server's (KeyboardInterrupt):
    the circuit opens again instead of waiting on a trial that never ends."""
    now = [0.0]
    fm = FallbackModel(clf, "http://127.0.0.1:9", FallbackPolicy(failure_threshold=1, cooldown_s=5), model="clf")
    fm.circuit.clock = lambda: now[0]
    fm.circuit.failure()
    now[0] = 5.0
    assert fm.circuit.state == "half_open"

    def interrupted(feeds):
        raise KeyboardInterrupt

    fm._post = interrupted
    with pytest.raises(KeyboardInterrupt):
        fm._cloud({"x": _x()})
    assert fm.circuit.state == "open"
    now[0] = 10.0
    assert fm.circuit.allow()  # a new trial is let through after the next cool-down
