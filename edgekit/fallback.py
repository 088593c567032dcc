"""Device first, server when it must: ``edgekit.FallbackModel``.

    model = edgekit.FallbackModel(local="build/digits/onnx/model.onnx", cloud="http://10.0.0.5:8000",
                                  policy=edgekit.FallbackPolicy(min_confidence=0.8, latency_budget_ms=20))
    r = model({"image": x})
    r.outputs, r.path, r.reason        # path: "local" | "cloud"

The local artifact answers unless it cannot: it did not load on this device, the input is
beyond its limits (a static shape, or ``max_dims``), its recent latency is over budget,
or (a cascade) its confidence is under ``min_confidence``. The server (`edgekit serve`,
same model) is called with a timeout and retries with backoff, behind a circuit breaker,
so a dead server costs one fast check per request, not a timeout each. When the server
fails and the device can answer, the device answers and the result says so; when
neither can, a ``FallbackError`` names both causes.
"""

from __future__ import annotations

import http.client
import io
import random
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._errors import EdgekitError

LOCAL, CLOUD = "local", "cloud"


@dataclass
class FallbackPolicy:
    """When to leave the device, and how hard to try the server."""

    timeout_s: float = 2.0  # per HTTP attempt
    retries: int = 2  # extra attempts after the first, for connection errors, timeouts, 429 and 5xx
    backoff_s: float = 0.05  # first retry delay; doubles per retry (with jitter), up to backoff_max_s
    backoff_max_s: float = 1.0
    failure_threshold: int = 3  # consecutive failed calls that open the circuit
    cooldown_s: float = 10.0  # open -> half-open: one trial call after this
    latency_budget_ms: float | None = None  # mean of the last latency_window local runs over this -> server
    latency_window: int = 5
    latency_recheck_s: float = 30.0  # after leaving the device for latency, try it again after this
    min_confidence: float | None = None  # classifiers: max softmax prob under this -> ask the server
    max_response_mb: float = 64.0  # a server's answer larger than this is a failed call, never read whole
    max_response_elements: int = 16 * 2**20  # numbers in a server's answer (its .npz is checked before inflating)
    max_dims: dict[str, int] = field(default_factory=dict)  # local limits on named axes, e.g. {"sequence": 128}


@dataclass
class FallbackResult:
    """The outputs (in the local model's output order) and which path served them, and why.

    ``reason``: for ``path == "cloud"`` why the device did not answer (local_unavailable,
    beyond_local_limits, latency_budget, low_confidence); for ``path == "local"`` "ok", or
    cloud_failed / circuit_open when the server was wanted but the device answered instead.
    """

    outputs: list[np.ndarray]
    names: list[str]
    path: str
    reason: str
    latency_ms: float
    confidence: float | None = None
    detail: str | None = None

    def __getitem__(self, i: int) -> np.ndarray:
        return self.outputs[i]

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.outputs, strict=True))


class FallbackError(EdgekitError):
    """Neither the device nor the server could answer."""


class CloudError(Exception):
    """One call to the server failed (after its retries); ``retryable`` says if it was the server's fault."""

    def __init__(self, message: str, counts: bool = True):
        super().__init__(message)
        self.counts = counts  # a failure of the server (not of this request): counts toward opening the circuit


class CircuitBreaker:
    """closed -> open after ``threshold`` consecutive failures; half-open after ``cooldown_s``,
    when one trial call is let through; closed again on a success, open again on a failure."""

    def __init__(self, threshold: int = 3, cooldown_s: float = 10.0, clock=time.monotonic):
        self.threshold, self.cooldown_s, self.clock = threshold, cooldown_s, clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        with self._lock:
            state = self.state
            if state == "closed":
                return True
            if state == "half_open" and not self._trial:
                self._trial = True
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.failures, self.opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self._trial or self.failures >= self.threshold:
                self.opened_at = self.clock()
            self._trial = False


class FallbackModel:
    """An artifact on this device with an `edgekit serve` endpoint behind it.

    ``local``: an .onnx, OpenVINO .xml or convert output folder; ``cloud``: the server's base
    URL (``http://host:8000``, the model named by ``model`` or after the local artifact) or
    the model's URL (``http://host:8000/v1/models/NAME``); ``token``: its bearer token.
    """

    def __init__(self, local, cloud: str | None, policy: FallbackPolicy | None = None, *, model: str | None = None,
                 token: str | None = None, threads: int | None = None):
        self.policy = policy or FallbackPolicy()
        self.token = token
        self.circuit = CircuitBreaker(self.policy.failure_threshold, self.policy.cooldown_s)
        self.runner, self.signature, self.local_error = None, None, None
        self._latencies: deque[float] = deque(maxlen=max(1, self.policy.latency_window))
        self._slow_since: float | None = None
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        name = model
        try:
            from .serve._model import default_name, locate, open_runner

            path, fmt = locate(Path(local))
            name = name or default_name(path)
            self.runner = open_runner(path, fmt, threads)
            self.signature = self.runner.signature
        except Exception as exc:  # noqa: BLE001 - any failure to load here means: use the server
            self.local_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            name = name or Path(local).stem
        self.url = _predict_url(cloud, name) if cloud else None

    # ---- the call ----------------------------------------------------------------------

    def __call__(self, inputs) -> FallbackResult:
        return self.predict(inputs)

    def predict(self, inputs) -> FallbackResult:
        t0 = time.perf_counter()
        feeds = self._feeds(inputs)
        route = self._route(feeds)
        if route is not None:  # the device cannot or should not: the server, or nothing
            reason, why = route
            try:
                outs, names = self._cloud(feeds)
                return self._done(CLOUD, reason, outs, names, t0, detail=why)
            except CloudError as exc:
                if reason != "latency_budget":
                    raise FallbackError(f"no path can answer: the device cannot ({why}) and the server failed ({exc})",
                                        "check the server (URL, token, /readyz) or the local artifact") from None
                return self._local(feeds, t0, *self._cloud_failed_reason(exc))
        return self._local(feeds, t0)

    def _local(self, feeds: dict, t0: float, reason: str = "ok", detail: str | None = None) -> FallbackResult:
        t1 = time.perf_counter()
        outs = [np.asarray(o) for o in self.runner.run(feeds)]
        ms = (time.perf_counter() - t1) * 1000
        self._note_latency(ms)
        names = [s.name for s in self.signature.outputs]
        conf = _confidence(outs[0]) if self.policy.min_confidence is not None and outs else None
        if reason == "ok" and conf is not None and conf < self.policy.min_confidence:
            why = f"confidence {conf:.3f} < {self.policy.min_confidence}"
            try:
                cloud_outs, _ = self._cloud(feeds, like=outs)
                return self._done(CLOUD, "low_confidence", cloud_outs, names, t0, conf, why)
            except CloudError as exc:
                reason, detail = self._cloud_failed_reason(exc)
                detail = f"{why}; {detail}"
        return self._done(LOCAL, reason, outs, names, t0, conf, detail)

    def _done(self, path, reason, outs, names, t0, conf=None, detail=None) -> FallbackResult:
        key = f"{path}:{reason}"
        with self._lock:  # callers may share one FallbackModel across threads
            self.counts[key] = self.counts.get(key, 0) + 1
        return FallbackResult(outs, names, path, reason, (time.perf_counter() - t0) * 1000, conf, detail)

    # ---- routing -----------------------------------------------------------------------

    def _route(self, feeds: dict) -> tuple[str, str] | None:
        """(reason, detail) when the device should not answer; None when it should."""
        if self.runner is None:
            return "local_unavailable", f"the local model did not load: {self.local_error}"
        beyond = self._beyond_limits(feeds)
        if beyond:
            return "beyond_local_limits", beyond
        if self._slow_since is not None:
            if time.monotonic() - self._slow_since < self.policy.latency_recheck_s:
                mean = sum(self._latencies) / len(self._latencies)
                return "latency_budget", f"local mean latency {mean:.1f} ms > budget {self.policy.latency_budget_ms} ms"
            self._slow_since = None  # time to give the device another chance
            self._latencies.clear()
        return None

    def _beyond_limits(self, feeds: dict) -> str | None:
        for spec in self.signature.inputs:
            arr = feeds.get(spec.name)
            if arr is None:
                raise EdgekitError(f"input {spec.name!r} is missing", f"pass {[s.name for s in self.signature.inputs]}")
            if arr.ndim != len(spec.shape):
                raise EdgekitError(f"input {spec.name!r} has rank {arr.ndim}; the model takes {len(spec.shape)}",
                                   f"give it shape {spec}")
            for axis, (got, dim) in enumerate(zip(arr.shape, spec.shape, strict=True)):
                top = dim if isinstance(dim, int) else self.policy.max_dims.get(dim)
                if top is not None and got > top:
                    return f"input {spec.name!r} has {got} on axis {axis} ({dim}); the device takes at most {top}"
                if isinstance(dim, int) and got != dim:
                    return f"input {spec.name!r} has {got} on axis {axis}; the device's model is fixed at {dim}"
        return None

    def _note_latency(self, ms: float) -> None:
        budget = self.policy.latency_budget_ms
        self._latencies.append(ms)
        if budget is not None and len(self._latencies) == self._latencies.maxlen:
            if sum(self._latencies) / len(self._latencies) > budget and self._slow_since is None:
                self._slow_since = time.monotonic()

    def _cloud_failed_reason(self, exc: CloudError) -> tuple[str, str]:
        if "circuit open" in str(exc):
            return "circuit_open", str(exc)
        return "cloud_failed", f"the server failed: {exc}"

    def _feeds(self, inputs) -> dict[str, np.ndarray]:
        if isinstance(inputs, dict):
            return {k: np.asarray(v) for k, v in inputs.items()}
        if self.signature is None or len(self.signature.inputs) != 1:
            raise EdgekitError("pass the inputs as a dict keyed by input name",
                               "a bare array works only for a model with one input, loaded on the device")
        return {self.signature.inputs[0].name: np.asarray(inputs)}

    # ---- the server --------------------------------------------------------------------

    def _cloud(self, feeds: dict, like: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], list[str]]:
        if self.url is None:
            raise CloudError("no server configured (cloud=None)", counts=False)
        if not self.circuit.allow():
            raise CloudError(f"circuit open after {self.circuit.failures} consecutive failures; "
                             f"next try within {self.policy.cooldown_s:g} s")
        try:  # every way out settles the call, so a half-open trial ends in closed or open
            try:
                outs, names = self._post(feeds)
                outs, names = self._conform(outs, names, like)
            except CloudError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever the server's bytes did, the device answers
                raise CloudError(f"the server's answer cannot be used: {type(exc).__name__}: {exc}") from None
        except CloudError as exc:
            if exc.counts:
                self.circuit.failure()
            else:
                self.circuit.success()  # the server answered: it is up
            raise
        except BaseException:  # interrupted mid-call (KeyboardInterrupt...): counted as a failure
            self.circuit.failure()
            raise
        self.circuit.success()
        return outs, names

    def _post(self, feeds: dict) -> tuple[list[np.ndarray], list[str]]:
        buf = io.BytesIO()
        np.savez(buf, **feeds)
        headers = {"content-type": "application/x-npz", "accept": "application/x-npz"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        p = self.policy
        last = ""
        for attempt in range(p.retries + 1):
            if attempt:
                time.sleep(min(p.backoff_max_s, p.backoff_s * 2 ** (attempt - 1)) * (0.5 + random.random() / 2))
            req = urllib.request.Request(self.url, data=buf.getvalue(), headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=p.timeout_s) as resp:
                    body = resp.read(int(p.max_response_mb * 2**20) + 1)
                return self._decode(body)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {exc.code}: {detail}"
                if exc.code != 429 and exc.code < 500:  # this request is wrong; retrying will not help
                    raise CloudError(last, counts=False) from None
            except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut off
                cause = exc.reason if isinstance(getattr(exc, "reason", None), BaseException) else exc
                last = f"{type(cause).__name__}: {cause}"
        raise CloudError(f"{last} (after {p.retries + 1} attempts)")

    def _decode(self, body: bytes) -> tuple[list[np.ndarray], list[str]]:
        """The arrays of a 200's .npz body, read within limits; a CloudError (counted) if it is not one."""
        from .serve._decode import read_npz
        from .serve._model import RequestError

        limit = int(self.policy.max_response_mb * 2**20)
        if len(body) > limit:
            raise CloudError(f"the server answered 200 with more than {limit} bytes (max_response_mb)")
        if not body:
            raise CloudError("the server answered 200 with an empty body")
        try:
            arrays = read_npz(body, max_elements=self.policy.max_response_elements,
                              limit_name="FallbackPolicy.max_response_elements")
        except RequestError as exc:
            raise CloudError(f"the server answered 200 with a body that is not a usable .npz: {exc.detail}") from None
        bad = [k for k, a in arrays.items() if a.dtype.kind not in "biuf"]
        if not arrays or bad:
            raise CloudError(f"the server's .npz holds {'no arrays' if not arrays else f'non-numeric {bad}'}")
        return list(arrays.values()), list(arrays)

    def _conform(self, outs, names, like) -> tuple[list[np.ndarray], list[str]]:
        """The server's outputs in the local order and shapes, or a CloudError saying how they differ."""
        if self.signature is not None:
            want = [s.name for s in self.signature.outputs]
            if set(want) <= set(names):
                outs = [outs[names.index(n)] for n in want]
                names = want
            specs = self.signature.outputs
            # same count and ranks; fixed sizes past axis 0 (axis 0 follows the request's batch,
            # which may be past the device's own fixed batch: that is why the server was asked)
            bad = len(outs) != len(specs) or any(
                o.ndim != len(s.shape) or any(isinstance(d, int) and d != g
                                              for d, g in zip(s.shape[1:], o.shape[1:], strict=True))
                for o, s in zip(outs, specs, strict=False))
            if like is not None:
                bad = bad or [o.shape for o in outs] != [o.shape for o in like]
            if bad:
                raise CloudError(f"the server's outputs {[list(o.shape) for o in outs]} do not match the local "
                                 f"model's ({[str(s) for s in specs]}): is it the same model?")
        return outs, names

    def __repr__(self) -> str:
        return (f"FallbackModel(local={'loaded' if self.runner else self.local_error!r}, cloud={self.url!r}, "
                f"circuit={self.circuit.state})")


def _predict_url(cloud: str, name: str) -> str:
    cloud = cloud.rstrip("/")
    if "/v1/models/" in cloud:
        return cloud if cloud.endswith(":predict") else cloud + ":predict"
    return f"{cloud}/v1/models/{name}:predict"


def _confidence(out: np.ndarray) -> float:
    """The lowest over the batch of the top class probability (softmax applied unless it already is one)."""
    x = np.asarray(out, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 2:
        return 1.0
    x = x.reshape(-1, x.shape[-1])
    is_prob = np.all(x >= 0) and np.allclose(x.sum(-1), 1.0, atol=1e-3)
    if not is_prob:
        x = np.exp(x - x.max(-1, keepdims=True))
        x /= x.sum(-1, keepdims=True)
    return float(x.max(-1).min())
