"""Load and run a .pte with ExecuTorch's Python runtime, with numpy in and out.

Self-contained: the standard library and numpy at import, ``executorch`` (whose Python
bindings load libtorch, so torch comes with it) when used, and nothing from edgekit. The
bench host copies this file beside ``runner.py`` on a device; edgekit's own runner
(``runtime.py``) uses it too, so both read a .pte the same way.

    run, handle, info = load("model.pte", threads=1)
    outputs = run({"image": array})   # list of numpy arrays, in the program's output order

Input and output names: a .pte has none of its own. edgekit's converter writes them into
the program as a constant method, ``edgekit_io``, returning a JSON string
``{"inputs": [...], "outputs": [...]}``. Programs without it get ``input_0``,
``output_0``... and are fed by position. With shape buckets the document also has
``dynamic`` (``forward`` runs at any size of the named axes, up to the largest bucket) or
``methods`` (bucket key -> method, one static method per bucket and no ``forward``).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

IO_METHOD = "edgekit_io"
METHOD = "forward"
# c10::ScalarType codes, as MethodMeta's TensorInfo.dtype() gives them
SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                7: "float64", 11: "bool"}

_POOL = {"threads": None, "generation": 0}  # ExecuTorch's one process-wide thread pool
_LOCK = threading.Lock()


def set_threads(threads: int | None) -> int:
    """Size ExecuTorch's process-wide thread pool (XNNPACK runs on it); returns its generation.

    XNNPACK takes the pool when a method is loaded, so resizing it leaves methods loaded
    before dangling (they crash if run): the generation goes up, and holders of a method
    loaded under an older generation must load their program again (``Program`` caches
    its methods, so the program itself). None leaves the pool as it is.
    """
    from executorch.extension.pybindings import portable_lib

    with _LOCK:
        if threads and portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(int(threads))
            _POOL["generation"] += 1
        _POOL["threads"] = portable_lib._threadpool_get_thread_count()
        return int(_POOL["generation"])


def generation() -> int:
    return int(_POOL["generation"])


def load_program(path: str):
    """The ExecuTorch Program of a .pte file."""
    from executorch.runtime import Runtime

    return Runtime.get().load_program(str(path))


def io_doc(program) -> dict:
    """The program's ``edgekit_io`` document (names; ``dynamic`` or ``methods`` for shape
    buckets), or {} where it has none."""
    if IO_METHOD not in program.method_names:
        return {}
    try:
        doc = json.loads(program.load_method(IO_METHOD).execute([])[0])
    except (ValueError, TypeError, IndexError):
        return {}
    return doc if isinstance(doc, dict) else {}


def methods(program, doc: dict | None = None) -> dict[str, str]:
    """Bucket key -> method name of a program with one method per shape bucket; {} otherwise."""
    doc = io_doc(program) if doc is None else doc
    found = doc.get("methods") or {}
    return {str(k): str(v) for k, v in found.items() if v in program.method_names}


def main_method(program, doc: dict | None = None) -> str:
    """``forward``, or (one method per bucket) the first bucket's method."""
    if METHOD in program.method_names:
        return METHOD
    found = methods(program, doc)
    if not found:
        raise ValueError(f"the program has no {METHOD!r} method (it has {sorted(program.method_names)})")
    return next(iter(found.values()))


def io_names(program, method: str | None = None, doc: dict | None = None) -> tuple[list[str], list[str]]:
    """(input names, output names) of ``method`` (default: ``main_method``): from ``edgekit_io``
    where the program has it."""
    doc = io_doc(program) if doc is None else doc
    meta = program.metadata(method or main_method(program, doc))
    n_in, n_out = meta.num_inputs(), meta.num_outputs()
    ins, outs = [f"input_{i}" for i in range(n_in)], [f"output_{i}" for i in range(n_out)]
    if len(doc.get("inputs", [])) == n_in:
        ins = [str(n) for n in doc["inputs"]]
    if len(doc.get("outputs", [])) == n_out:
        outs = [str(n) for n in doc["outputs"]]
    return ins, outs


def tensor_infos(program, inputs: bool, method: str | None = None) -> list[tuple[tuple[int, ...], str]]:
    """(shape, numpy dtype name) of each input (or output) of ``method`` (default: ``main_method``);
    a dynamic program gives its largest shape."""
    meta = program.metadata(method or main_method(program))
    count = meta.num_inputs() if inputs else meta.num_outputs()
    get = meta.input_tensor_meta if inputs else meta.output_tensor_meta
    out = []
    for i in range(count):
        info = get(i)
        out.append((tuple(int(d) for d in info.sizes()), SCALAR_TYPES.get(int(info.dtype()), "float32")))
    return out


def make_call(method, names: list[str], dtypes: list[str]):
    """feeds (by name, else by position) -> list of numpy outputs. Arrays are cast to the
    program's input dtype (int64 ids into an int32 input and the like) and made contiguous."""
    import torch

    def call(feeds: dict[str, Any]) -> list[np.ndarray]:
        values = list(feeds.values())
        args = []
        for i, (name, dtype) in enumerate(zip(names, dtypes, strict=True)):
            arr = feeds[name] if name in feeds else values[i]
            arr = np.ascontiguousarray(np.asarray(arr).astype(dtype, copy=False))
            args.append(torch.from_numpy(arr))
        with _LOCK:  # one method runs one call at a time
            result = method.execute(args)
        return [r.detach().numpy() if hasattr(r, "detach") else np.asarray(r) for r in result]

    return call


def make_dispatch(program, names: list[str], dtypes: list[str], by_shape: dict[tuple, str]):
    """One method per bucket: feeds -> the method whose input shapes they have."""
    calls: dict[str, Any] = {}

    def call(feeds: dict[str, Any]) -> list[np.ndarray]:
        values = list(feeds.values())
        shapes = tuple(tuple(np.shape(feeds[n] if n in feeds else values[i])) for i, n in enumerate(names))
        method = by_shape.get(shapes)
        if method is None:
            raise ValueError(f"no method of the program takes inputs of shapes {[list(s) for s in shapes]} "
                             f"(its buckets: {[[list(s) for s in k] for k in by_shape]}): pad to a bucket")
        if method not in calls:
            calls[method] = make_call(program.load_method(method), names, dtypes)
        return calls[method](feeds)

    return call


def shapes_of(program, method: str) -> tuple:
    return tuple(shape for shape, _ in tensor_infos(program, True, method))


def load(path: str, threads: int | None = None):
    """The bench runner's loader contract: ``(run, handle, runtime_info)``. A program with one
    method per shape bucket runs the method whose input shapes the feeds have."""
    from importlib.metadata import version

    set_threads(threads)
    program = load_program(path)
    doc = io_doc(program)
    names, _ = io_names(program, doc=doc)
    dtypes = [d for _, d in tensor_infos(program, inputs=True)]
    info = {"name": "executorch", "version": version("executorch"),
            "threads": _POOL["threads"], "backends": sorted(_registered_backends())}
    per_bucket = methods(program, doc)
    if per_bucket and METHOD not in program.method_names:
        info["methods"] = list(per_bucket)
        by_shape = {shapes_of(program, m): m for m in per_bucket.values()}
        return make_dispatch(program, names, dtypes, by_shape), program, info
    return make_call(program.load_method(METHOD), names, dtypes), program, info


def _registered_backends() -> list[str]:
    try:
        from executorch.extension.pybindings import portable_lib

        return list(portable_lib._get_registered_backend_names())
    except (ImportError, AttributeError):
        return []
