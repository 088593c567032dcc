"""`edgekit serve`: the same artifact the device runs, behind HTTP on a server's CPU.

    import edgekit
    edgekit.serve("build/digits", port=8000)                     # local backend, blocks
    edgekit.serve("build/digits", backend="ray", replicas=2)    # Ray Serve replicas

The module is callable (``edgekit.serve(...)`` is ``edgekit.serve.serve(...)``) and imports
neither FastAPI nor a runtime until it is used. See docs/serve.md.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import EdgekitError

BACKENDS = ("local", "ray")


@dataclass
class ServeConfig:
    """Every choice of a server; the CLI fills it from flags, the Ray app builder from args."""

    paths: list[Path]
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "local"
    token: str | None = None
    insecure: bool = False
    max_body_mb: float = 16.0
    max_elements: int = 4 * 2**20  # numbers one request may carry, all inputs together (413 above)
    max_batch_size: int = 32  # 1 turns batching off
    batch_wait_ms: float = 2.0
    threads: int | None = None  # runtime threads per model (per replica on Ray)
    names: list[str] | None = None
    limits: dict[str, int] = field(default_factory=dict)  # axis -> largest size, e.g. {"sequence": 512}
    # shape buckets, e.g. {"sequence": [16, 32, 64, 128]}: requests padded to their bucket and batched by it;
    # None: the artifact's manifest's buckets where it has some, else exact shapes
    buckets: dict[str, list[int]] | None = None
    replicas: int = 1  # ray
    replica_cpus: float = 1.0  # ray: CPUs reserved per replica
    address: str | None = None  # ray: an existing cluster; None starts a local Ray

    def __post_init__(self):
        self.paths = [Path(p) for p in ([self.paths] if isinstance(self.paths, str | Path) else self.paths)]
        if not self.paths:
            raise EdgekitError("no model to serve", "pass a .onnx, an OpenVINO .xml or a convert output folder")
        if self.backend not in BACKENDS:
            raise EdgekitError(f"unknown backend {self.backend!r}", f"use one of {', '.join(BACKENDS)}")
        if self.names and len(self.names) != len(self.paths):
            raise EdgekitError(f"{len(self.names)} --name for {len(self.paths)} models", "give one name per PATH")
        if self.max_batch_size < 1 or self.max_body_mb <= 0 or self.replicas < 1 or self.max_elements < 1:
            raise EdgekitError("--max-batch-size, --max-body-mb, --max-elements and --replicas must be positive",
                               "e.g. --max-batch-size 32 --max-body-mb 16 --max-elements 4194304 --replicas 2")


def load_models(config: ServeConfig, open_runtimes: bool = True):
    """(infos, runners by name): every model located, opened once and described."""
    from ._model import describe, locate, manifest_buckets, open_runner, with_buckets

    infos, runners = [], {}
    for i, p in enumerate(config.paths):
        path, fmt = locate(p)
        runner = open_runner(path, fmt, config.threads)
        info = describe(path, runner, fmt, config.names[i] if config.names else None, dict(config.limits))
        axes, pad = manifest_buckets(path)
        info = with_buckets(info, config.buckets or axes, pad)
        if info.name in runners:
            raise EdgekitError(f"two models are named {info.name!r}", "name them with --name, once per PATH")
        infos.append(info)
        runners[info.name] = runner if open_runtimes else None
    return infos, runners


def build_local_app(config: ServeConfig):
    """The ASGI app of the local backend: runtimes in this process, batching in its event loop."""
    from ._app import LocalPredictor, create_app

    infos, runners = load_models(config)
    predictor = LocalPredictor(runners, infos, config.max_batch_size, config.batch_wait_ms / 1000)
    return create_app(infos, predictor, token=config.token, max_body_mb=config.max_body_mb,
                      max_batch_size=config.max_batch_size, max_elements=config.max_elements)


def serve(paths, **options) -> None:
    """Serve ``paths`` (one or a list) until interrupted. Options: the ServeConfig fields."""
    from .._lazy import require
    from ._security import check_bind, read_token

    token_file = options.pop("token_file", None)
    config = ServeConfig(paths, **options)
    if config.token is None:
        config.token = read_token(token_file)
    elif not config.token.strip():
        raise EdgekitError("the token is empty or white space", "pass the token, or token=None for none")
    else:
        config.token = config.token.strip()
    check_bind(config.host, config.token, config.insecure)
    if config.backend == "ray":
        from ._ray import run_ray

        return run_ray(config)
    uvicorn = require("uvicorn", "serving")
    _logging()
    app = build_local_app(config)
    uvicorn.run(app, host=config.host, port=config.port, log_level="info", access_log=False,
                timeout_graceful_shutdown=5)


def _logging() -> None:
    import logging

    log = logging.getLogger("edgekit.serve")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


class _CallableModule(types.ModuleType):
    """Lets ``edgekit.serve(...)`` call the function while ``edgekit.serve.X`` stays the package."""

    def __call__(self, paths, **options):
        return serve(paths, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["BACKENDS", "ServeConfig", "build_local_app", "load_models", "serve"]
