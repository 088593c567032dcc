"""The HTTP API, one FastAPI app for both backends.

    POST /v1/models/{name}:predict   JSON {"inputs": {...}} or an .npz body (application/x-npz)
    GET  /v1/models                  names, versions, signatures, limits, batching
    GET  /v1/models/{name}           one of them
    GET  /healthz  /readyz           liveness (process up) and readiness (models loaded)
    GET  /metrics                    Prometheus

Requests are decoded and validated here, against the model's signature; only valid
feeds reach the predictor (the local batcher, or a Ray Serve deployment handle).
"""

# no `from __future__ import annotations`: FastAPI must see the Request annotation of a
# route defined inside _predict_route, where fastapi is a local name
import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Protocol

import numpy as np

from .._lazy import require
from ._decode import DEFAULT_MAX_ELEMENTS, finite_or_none, read_json, read_npz
from ._metrics import Metrics
from ._model import NPZ_TYPES, ModelInfo, RequestError, encode_npz, validate
from ._security import BodyTooLarge, GuardMiddleware

log = logging.getLogger("edgekit.serve")


class Predictor(Protocol):
    """Runs validated feeds: the local batcher or a Ray Serve handle."""

    on_batch: object  # callable(model, size), set by the app for the batch-size metric

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def ready(self) -> bool: ...
    async def predict(self, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def decode_request(info: ModelInfo, body: bytes, npz: bool, max_elements: int) -> dict[str, np.ndarray]:
    """Validated feeds from a body, within the limits; run in a worker thread, off the event loop."""
    specs = {s.name: s for s in info.signature.inputs}
    try:
        raw = read_npz(body, specs, info.limits, max_elements) if npz else read_json(body, max_elements)
        return validate(info, raw, from_json=not npz, max_elements=max_elements)
    except RequestError:
        raise
    except Exception as exc:  # a body no check foresaw: still the client's, and still a 4xx
        log.warning("undecodable body for %s: %s: %s", info.name, type(exc).__name__, exc)
        raise RequestError(400, f"the body cannot be decoded ({type(exc).__name__}: {exc})") from None


class _Served:
    """What the routes share: the models, the predictor, the metrics and the limits."""

    def __init__(self, models: list[ModelInfo], predictor: Predictor, max_batch_size: int, max_elements: int):
        self.models, self.by_name = models, {m.name: m for m in models}
        self.predictor, self.metrics = predictor, Metrics()
        self.max_batch_size, self.max_elements = max_batch_size, max_elements
        self.Response = require("fastapi.responses", "serving").Response

    def error(self, status: int, detail: str, kind: str, model: str = "-"):
        self.metrics.errors.labels(kind).inc()
        self.metrics.requests.labels(model, str(status)).inc()
        return self.Response(json.dumps({"detail": detail}), status, media_type="application/json")

    def not_found(self, name: str):
        return self.error(404, f"no model named {name!r}; this server has {sorted(self.by_name)}", "not_found")

    def lifespan(self):
        @asynccontextmanager
        async def lifespan(app):
            await self.predictor.start()
            for m in self.models:
                log.info("serving %s (version %s, %s) from %s; %s", m.name, m.version, m.format, m.path,
                         f"batching up to {self.max_batch_size}" if m.batchable and self.max_batch_size > 1
                         else "one request at a time" + ("" if m.batchable else " (axis 0 is not dynamic)"))
            yield
            await self.predictor.stop()

        return lifespan

    def respond(self, info: ModelInfo, outs: list[np.ndarray], npz: bool, accept: str):
        """The outputs as an .npz (asked for, or an .npz request not asking for JSON), else as JSON."""
        names = [s.name for s in info.signature.outputs]
        if (npz and "application/json" not in accept) or "application/x-npz" in accept:
            resp = self.Response(encode_npz(dict(zip(names, outs, strict=True))), media_type="application/x-npz")
        else:
            doc = {"model": info.name, "version": info.version,
                   "outputs": {n: finite_or_none(o) for n, o in zip(names, outs, strict=True)},
                   "dtypes": {n: o.dtype.name for n, o in zip(names, outs, strict=True)}}
            resp = self.Response(json.dumps(doc, allow_nan=False), media_type="application/json")
        resp.headers["x-edgekit-model-version"] = info.version
        return resp


def create_app(models: list[ModelInfo], predictor: Predictor, *, token: str | None = None,
               max_body_mb: float = 16.0, max_batch_size: int = 32, max_elements: int = DEFAULT_MAX_ELEMENTS):
    """The ASGI app serving ``models`` through ``predictor``."""
    fastapi = require("fastapi", "serving")
    served = _Served(models, predictor, max_batch_size, max_elements)
    predictor.on_batch = lambda model, size: served.metrics.batch_size.labels(model).observe(size)
    if hasattr(predictor, "on_bucket"):
        predictor.on_bucket = served.metrics.bucket
    app = fastapi.FastAPI(title="edgekit serve", lifespan=served.lifespan(), docs_url=None, redoc_url=None,
                          openapi_url=None)
    _info_routes(app, served)
    _predict_route(app, served, fastapi)
    max_body = int(max_body_mb * 2**20)
    return GuardMiddleware(app, token, max_body, on_reject=served.metrics.reject)


def _info_routes(app, served: _Served) -> None:
    Response = served.Response

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        ok = served.predictor.ready()
        return Response(json.dumps({"ready": ok}), 200 if ok else 503, media_type="application/json")

    @app.get("/metrics")
    async def metrics_route():
        body, ctype = served.metrics.render()
        return Response(body, media_type=ctype)

    @app.get("/v1/models")
    async def list_models():
        return {"models": [m.to_dict(served.max_batch_size) for m in served.models]}

    @app.get("/v1/models/{name}")
    async def one_model(name: str):
        if name not in served.by_name:
            return served.not_found(name)
        return served.by_name[name].to_dict(served.max_batch_size)


def _predict_route(app, served: _Served, fastapi) -> None:
    metrics, error = served.metrics, served.error

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: fastapi.Request):
        t0 = time.perf_counter()
        info = served.by_name.get(name)
        if info is None:
            return served.not_found(name)
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype not in (*NPZ_TYPES, "application/json"):
            return error(415, f"unsupported content type {ctype!r}; send application/json or application/x-npz",
                         "bad_request", name)
        metrics.inflight.inc()
        try:
            try:
                body = await request.body()
            except BodyTooLarge as exc:
                return error(413, str(exc), "too_large", name)
            npz = ctype in NPZ_TYPES
            feeds = await asyncio.to_thread(decode_request, info, body, npz, served.max_elements)
            try:
                outs = await served.predictor.predict(name, feeds)
            except Exception as exc:  # noqa: BLE001 - reported as a 500 that names the cause
                log.exception("inference failed for %s", name)
                return error(500, f"inference failed: {type(exc).__name__}: {exc}", "internal", name)
            resp = served.respond(info, outs, npz, request.headers.get("accept", ""))
            metrics.requests.labels(name, "200").inc()
            metrics.latency.labels(name).observe(time.perf_counter() - t0)
            return resp
        except RequestError as exc:
            kind = {422: "validation", 413: "too_large"}.get(exc.status, "bad_request")
            return error(exc.status, exc.detail, kind, name)
        finally:
            metrics.inflight.dec()


class LocalPredictor:
    """Each model's runtime in this process, behind its own LocalBatcher."""

    def __init__(self, runners: dict[str, object], infos: list[ModelInfo], max_batch_size: int, wait_s: float):
        from ._batching import Bucketing, LocalBatcher

        self.on_batch = self.on_bucket = None
        self.batchers = {}
        for info in infos:
            size = max_batch_size if info.batchable else 1
            bucketing = Bucketing(info.buckets, info.signature, info.pad) if info.buckets else None
            self.batchers[info.name] = LocalBatcher(runners[info.name].run, size, wait_s,
                                                    on_batch=self._counter(info.name), bucketing=bucketing,
                                                    on_group=self._bucket_counter(info.name))

    def _counter(self, name: str):
        return lambda size: self.on_batch and self.on_batch(name, size)

    def _bucket_counter(self, name: str):
        return lambda bucket, size: self.on_bucket and bucket and self.on_bucket(name, bucket, size)

    async def start(self) -> None:
        for b in self.batchers.values():
            await b.start()

    async def stop(self) -> None:
        for b in self.batchers.values():
            await b.stop()

    def ready(self) -> bool:
        return all(b.running for b in self.batchers.values())

    async def predict(self, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return await self.batchers[model].submit(feeds)
