"""The Ray Serve backend: the same HTTP app as an ingress deployment, the models as
replicated deployments that batch with ``@serve.batch``.

    edgekit serve build/digits --backend ray --replicas 2          # a local Ray, started here
    edgekit serve build/digits --backend ray --address ray://head:10001

On Kubernetes (KubeRay RayService) the application comes from ``app_builder``:
``import_path: edgekit.serve._ray:app_builder`` with ``args: {paths: [...], replicas: 2}``;
see docs/serve.md.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from .._errors import EdgekitError
from .._lazy import require
from . import ServeConfig, load_models
from ._batching import run_batch

serve = require("ray.serve", "Ray Serve")
log = logging.getLogger("edgekit.serve")
APP_NAME = "edgekit"
QUIET = {"enable_access_log": False, "log_level": "WARNING"}  # a log line per request costs throughput


class ModelReplica:
    """One replica: the artifact's runtime, fed batches by Ray Serve."""

    def __init__(self, path: str, fmt: str, threads: int | None, max_batch_size: int, wait_s: float,
                 buckets: dict | None = None, pad: dict | None = None):
        from ._batching import Bucketing
        from ._model import open_runner

        self.runner = open_runner(Path(path), fmt, threads)
        self.bucketing = Bucketing(buckets, self.runner.signature, pad or {}) if buckets else None
        self.predict.set_max_batch_size(max_batch_size)
        self.predict.set_batch_wait_timeout_s(wait_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def predict(self, batch: list[dict]) -> list[tuple]:
        """Each request gets (outputs, batch size, first in its batch?, error or None)."""
        results = await asyncio.to_thread(run_batch, self.runner.run, batch, self.bucketing)
        return [(None, len(batch), i == 0, f"{type(r).__name__}: {r}") if isinstance(r, Exception)
                else (r, len(batch), i == 0, None) for i, r in enumerate(results)]


class RayPredictor:
    """The app's predictor on Ray: a deployment handle per model."""

    def __init__(self, handles: dict):
        self.handles, self.on_batch = handles, None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    async def predict(self, model: str, feeds: dict):
        outs, size, first, err = await self.handles[model].predict.remote(feeds)
        if first and self.on_batch:  # count each batch once
            self.on_batch(model, size)
        if err:
            raise RuntimeError(err)
        return outs


@serve.ingress()
class Ingress:
    """The HTTP front: validation, auth, metrics; built on the replica by Serve."""

    def __init__(self, infos: list, handles: list, options: dict):
        from ._security import read_token

        self.infos = infos
        self.predictor = RayPredictor({i.name: h for i, h in zip(infos, handles, strict=True)})
        self.options = options
        self.token = options.get("token") or read_token()  # KubeRay: EDGEKIT_SERVE_TOKEN from a Secret

    def __serve_build_asgi_app__(self):
        from ._app import create_app
        from ._decode import DEFAULT_MAX_ELEMENTS

        return create_app(self.infos, self.predictor, token=self.token, max_body_mb=self.options["max_body_mb"],
                          max_batch_size=self.options["max_batch_size"],
                          max_elements=self.options.get("max_elements", DEFAULT_MAX_ELEMENTS))


def build_app(config: ServeConfig, token: str | None = None):
    """The Serve application: one model deployment per PATH (``replicas`` each), one ingress."""
    infos, _ = load_models(config)  # opened once here for the signatures, then dropped
    handles = []
    for info in infos:
        size = config.max_batch_size if info.batchable else 1
        dep = serve.deployment(ModelReplica, name=f"model-{info.name}", num_replicas=config.replicas,
                               ray_actor_options={"num_cpus": config.replica_cpus},
                               max_ongoing_requests=max(2 * size, 8))
        handles.append(dep.bind(str(info.path), info.format, config.threads, size, config.batch_wait_ms / 1000,
                                info.buckets, info.pad))
        if not info.batchable:
            log.info("%s: axis 0 is not dynamic: one request at a time", info.name)
    ingress = serve.deployment(Ingress, name="ingress", ray_actor_options={"num_cpus": 0},
                               max_ongoing_requests=1000)
    options = {"max_body_mb": config.max_body_mb, "max_batch_size": config.max_batch_size,
               "max_elements": config.max_elements, "token": token}
    return ingress.bind(infos, handles, options)


def app_builder(args: dict):
    """For `serve run` / KubeRay: ``args`` are ServeConfig fields (``paths`` required); the
    token comes from ``EDGEKIT_SERVE_TOKEN`` in the replicas' environment (a Secret)."""
    from ._security import read_token

    fields = {k: v for k, v in args.items() if k in ServeConfig.__dataclass_fields__ and k != "token"}
    config = ServeConfig(**fields)
    if not read_token() and not config.insecure:
        raise EdgekitError("no EDGEKIT_SERVE_TOKEN in the environment: the cluster's proxy listens on every address",
                           "set it from a Kubernetes Secret (see docs/serve.md), or pass insecure: true in args")
    return build_app(config)


def run_ray(config: ServeConfig) -> None:
    """Start (or join) Ray, deploy, and block until SIGINT/SIGTERM; then take it down."""
    ray = require("ray", "Ray Serve")
    from . import _logging

    _logging()
    started_ray = not ray.is_initialized()
    if started_ray:
        if config.address:
            ray.init(address=config.address, logging_level=logging.WARNING)
        else:
            # "local": a new Ray for this server, never someone else's cluster found on the machine
            ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    serve.start(http_options={"host": config.host, "port": config.port})
    serve.run(build_app(config, config.token), name=APP_NAME, route_prefix="/", blocking=False,
              logging_config=QUIET)
    log.info("Ray Serve app %r on http://%s:%d (%d replica(s) per model%s)", APP_NAME, config.host, config.port,
             config.replicas, f", cluster {config.address}" if config.address else ", local Ray")
    stop = {"now": False}

    def _stop(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop["now"]:
            time.sleep(0.2)
    finally:
        if config.address:
            serve.delete(APP_NAME)  # leave the cluster's Serve running for others
        else:
            serve.shutdown()
        if started_ray:
            ray.shutdown()

