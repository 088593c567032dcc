"""Adaptive batching: requests that arrive while the model is busy (or within a short window)
run as one call, stacked on axis 0, then split back. The grouping is shared by the local
backend's event-loop batcher and the Ray Serve replicas (`@serve.batch`).

With shape buckets (``Bucketing``: ``edgekit serve --shape-buckets sequence=16,32,64,128``, or
the buckets in the artifact's manifest) each request is padded to the smallest bucket its
lengths fit, so requests of different lengths in one bucket share a call, each padded only to
its bucket; outputs are cut back to each request's real lengths.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

Feeds = dict[str, np.ndarray]


@dataclass
class Bucketing:
    """Shape buckets: axis name -> ascending sizes; the signature names each input's and
    output's axes; ``pad_values``: each input's fill (0 unless given)."""

    axes: dict[str, list[int]]
    signature: object  # a Signature whose dynamic axes are named (e.g. input_ids ["batch", "sequence"])
    pad_values: dict[str, float] = field(default_factory=dict)

    def fit(self, feeds: Feeds) -> tuple[Feeds, dict[str, int], str]:
        """(feeds padded to their bucket, the real sizes, the bucket's key such as ``sequence_32``)."""
        from ..runtime import axis_sizes, pad, pick_bucket

        real = axis_sizes(feeds, self.signature.inputs, self.axes)
        dims = pick_bucket(self.axes, real)
        if dims is None:
            raise ValueError(f"lengths {real} are over the largest bucket {({a: s[-1] for a, s in self.axes.items()})}")
        key = "_".join(f"{a}_{n}" for a, n in dims.items())
        return pad(feeds, self.signature.inputs, dims, self.pad_values), real, key

    def cut(self, outs: list[np.ndarray], real: dict[str, int]) -> list[np.ndarray]:
        """One request's outputs (in the signature's order) cut back to its real sizes."""
        from ..runtime import unpad

        names = [s.name for s in self.signature.outputs]
        cut = unpad(dict(zip(names, outs, strict=False)), self.signature.outputs, real)
        return [np.ascontiguousarray(cut[n]) if n in cut else o for n, o in zip(names, outs, strict=False)]


def run_batch(run: Callable[[Feeds], list[np.ndarray]], batch: list[Feeds], bucketing: Bucketing | None = None,
              on_group: Callable[[str, int], None] | None = None) -> list[list[np.ndarray] | Exception]:
    """Run ``batch`` (one feeds dict per request) with as few calls as shapes allow.

    Only requests whose inputs agree on every axis but the first can be stacked (a
    sequence of 12 tokens cannot share a tensor with one of 40), so the batch is grouped
    by those shapes; each group is one call. A failing group fails only its requests.
    With ``bucketing`` each request is first padded to its bucket (and its outputs cut back
    after); ``on_group(bucket key, requests)`` is told of each call.
    """
    results: list = [None] * len(batch)
    fitted: dict[int, tuple[Feeds, dict[str, int], str]] = {}
    for i, feeds in enumerate(batch):
        try:
            fitted[i] = bucketing.fit(feeds) if bucketing else (feeds, {}, "")
        except Exception as exc:  # noqa: BLE001 - handed back to its caller
            results[i] = exc
    groups: dict[tuple, list[int]] = {}
    for i, (feeds, _, bucket) in fitted.items():
        key = (bucket, *((n, a.shape[1:], a.dtype.str) for n, a in feeds.items()))
        groups.setdefault(key, []).append(i)
    for key, idx in groups.items():
        if on_group:
            on_group(key[0], len(idx))
        try:
            outs = _run_group(run, [fitted[i][0] for i in idx])
            if bucketing:
                outs = [bucketing.cut(o, fitted[i][1]) for i, o in zip(idx, outs, strict=True)]
        except Exception as exc:  # noqa: BLE001 - handed back to each caller
            outs = [exc] * len(idx)
        for i, o in zip(idx, outs, strict=True):
            results[i] = o
    return results


def _run_group(run, group: list[Feeds]) -> list[list[np.ndarray]]:
    if len(group) == 1:
        return [run(group[0])]
    rows = [next(iter(f.values())).shape[0] for f in group]
    stacked = {n: np.concatenate([f[n] for f in group]) for n in group[0]}
    outs = run(stacked)
    total = sum(rows)
    for o in outs:
        if o.ndim == 0 or o.shape[0] != total:
            raise RuntimeError(f"an output has shape {list(o.shape)}, not {total} rows: cannot split a batch")
    cuts = np.cumsum(rows)[:-1]
    per_output = [np.split(o, cuts) for o in outs]
    return [[np.ascontiguousarray(p[i]) for p in per_output] for i in range(len(group))]


class LocalBatcher:
    """Batches in the server's event loop; inference runs on one worker thread per model.

    Adaptive without tuning: while a batch runs, new requests queue up and the next
    batch takes all of them (up to ``max_batch_size``); an idle model waits at most
    ``wait_s`` for company before it runs what it has.
    """

    def __init__(self, run: Callable[[Feeds], list[np.ndarray]], max_batch_size: int = 32, wait_s: float = 0.002,
                 on_batch: Callable[[int], None] | None = None, bucketing: Bucketing | None = None,
                 on_group: Callable[[str, int], None] | None = None):
        self.run, self.max_batch_size, self.wait_s = run, max(1, max_batch_size), wait_s
        self.on_batch, self.bucketing, self.on_group = on_batch, bucketing, on_group
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgekit-infer")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def submit(self, feeds: Feeds) -> list[np.ndarray]:
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((feeds, fut))
        return await fut

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), left))
                except TimeoutError:
                    break
            batch = [(f, fut) for f, fut in batch if not fut.done()]  # callers that gave up
            if not batch:
                continue
            if self.on_batch:
                self.on_batch(len(batch))
            try:
                results = await loop.run_in_executor(self._pool, run_batch, self.run, [f for f, _ in batch],
                                                     self.bucketing, self.on_group)
            except Exception as exc:  # noqa: BLE001 - the pool itself failed
                results = [exc] * len(batch)
            for (_, fut), res in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, Exception):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
