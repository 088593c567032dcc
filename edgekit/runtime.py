"""Run an edgekit artifact from Python, with one API for every target: ``edgekit.runtime``.

    from edgekit import runtime
    rt = runtime.load("build/minilm", target="tflite")   # the folder `edgekit convert` wrote
    out = rt.run({"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    out["last_hidden_state"]                              # (1, len(ids[0]), 384): un-padded

``load`` reads ``DIR/manifest.json``, opens the artifact in its own runtime (ONNX Runtime,
OpenVINO in f32, LiteRT, ExecuTorch, Core ML on macOS) and feeds it by the source model's
input names. Inputs are given at their real size: with shape buckets (``convert
--shape-buckets``) the smallest bucket that fits is picked, the inputs are padded to it (the
manifest's pad values), that bucket's signature runs and outputs are cut back to the real size.
A static-shape artifact without buckets is padded to its static size when pad values are known
(the manifest's, or ``load(..., pad_values=...)``), else run as given.

Self-contained: numpy and the artifact's runtime, nothing else of edgekit (its errors when it is
installed). Copy this file beside an output folder on a device and ``import runtime`` there.
The pure helpers ``pick_bucket``, ``axis_sizes``, ``pad`` and ``unpad`` are the padding rules
edgekit's own converters and benchmarks use.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np

try:  # inside edgekit: its own error (cause + fix), which the CLI prints
    from edgekit._errors import EdgekitError
except ImportError:  # copied alone to a device
    class EdgekitError(Exception):  # type: ignore[no-redef]
        """A failure the user can act on: ``cause`` and ``fix``."""

        def __init__(self, cause: str, fix: str | None = None):
            super().__init__(cause)
            self.cause, self.fix = cause, fix

        def __str__(self) -> str:
            return self.cause if not self.fix else f"{self.cause}\n  fix: {self.fix}"

__all__ = ["EdgekitError", "Runtime", "axis_sizes", "load", "pad", "pick_bucket", "unpad"]


# ---- pure helpers: bucket choice, padding, un-padding -----------------------------------------

def _name(spec) -> str:
    return spec["name"] if isinstance(spec, dict) else spec.name


def _shape(spec) -> list:
    return list(spec["shape"] if isinstance(spec, dict) else spec.shape)


def pick_bucket(axes: dict[str, list[int]], sizes: dict[str, int]) -> dict[str, int] | None:
    """The smallest bucket that holds ``sizes``: for each axis of ``axes`` (name -> bucket sizes),
    the smallest size >= the real one. An axis missing from ``sizes`` takes its smallest size.
    None when a real size is over the axis's largest bucket.

    >>> pick_bucket({"sequence": [16, 32, 64]}, {"sequence": 20})
    {'sequence': 32}
    """
    chosen = {}
    for axis, options in axes.items():
        real = sizes.get(axis, 0)
        fits = [int(s) for s in sorted(options) if int(s) >= real]
        if not fits:
            return None
        chosen[axis] = fits[0]
    return chosen


def axis_sizes(feeds: dict[str, np.ndarray], signature_inputs, axes=None) -> dict[str, int]:
    """The real size of each named (dynamic) axis of ``signature_inputs`` (specs with ``name`` and
    ``shape``, dicts or objects) in ``feeds``; only the axes in ``axes`` when given. Inputs that
    disagree on one axis are an error."""
    sizes: dict[str, int] = {}
    for spec in signature_inputs:
        arr = feeds.get(_name(spec))
        if arr is None:
            continue
        for i, dim in enumerate(_shape(spec)):
            if not isinstance(dim, str) or (axes is not None and dim not in axes) or i >= np.ndim(arr):
                continue
            size = int(np.shape(arr)[i])
            if sizes.setdefault(dim, size) != size:
                raise EdgekitError(f"inputs disagree on axis {dim!r}: {_name(spec)} has {size}, another {sizes[dim]}",
                                   f"give every input the same {dim} length")
    return sizes


def pad(feeds: dict[str, np.ndarray], signature_inputs, dims: dict[str, int],
        pad_values: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """``feeds`` padded at the end of each axis named in ``dims`` up to that size.

    ``signature_inputs`` names each input's axes (``["batch", "sequence"]``); ``pad_values``
    gives each input's fill value (the pad token id for ids, 0 for masks; default 0). Inputs not
    in the signature pass as they are; one larger than ``dims`` is a ValueError."""
    pad_values = pad_values or {}
    out = dict(feeds)
    for spec in signature_inputs:
        name = _name(spec)
        if name not in feeds:
            continue
        arr = np.asarray(feeds[name])
        widths = [(0, 0)] * arr.ndim
        for i, dim in enumerate(_shape(spec)[:arr.ndim]):
            if isinstance(dim, str) and dim in dims:
                extra = int(dims[dim]) - arr.shape[i]
                if extra < 0:
                    raise ValueError(f"{name} has {arr.shape[i]} along {dim}, more than {dims[dim]}")
                widths[i] = (0, extra)
        if any(w for _, w in widths):  # filled, then the values copied in: np.pad costs ~30 us an input
            filled = np.full(tuple(s + w for s, (_, w) in zip(arr.shape, widths, strict=True)),
                             pad_values.get(name, 0), dtype=arr.dtype)
            filled[tuple(slice(0, s) for s in arr.shape)] = arr
            arr = filled
        out[name] = arr
    return out


def unpad(outputs: dict[str, np.ndarray], signature_outputs, real_sizes: dict[str, int]) -> dict[str, np.ndarray]:
    """``outputs`` cut back along each axis named in ``real_sizes`` (by ``signature_outputs``'
    axis names, e.g. last_hidden_state ``["batch", "sequence", 384]``) to that real size."""
    out = dict(outputs)
    for spec in signature_outputs:
        name = _name(spec)
        if name not in outputs:
            continue
        arr = outputs[name]
        index = tuple(slice(0, real_sizes[d]) if isinstance(d, str) and d in real_sizes else slice(None)
                      for d in _shape(spec)[:np.ndim(arr)])
        if any(s != slice(None) for s in index):
            out[name] = arr[index]
    return out


# ---- the runtimes: open an artifact, run positional arrays -------------------------------------

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
              "tensor(bool)": "bool"}


class _Engine:
    """One opened artifact: ``signatures`` (None: one graph), each run as ``run(arrays, key)``."""

    signatures: list[str] | None = None
    info: dict = {}

    def dtypes(self, key: str | None) -> list[str | None]:
        raise NotImplementedError

    def run(self, arrays: list[np.ndarray], key: str | None) -> list[np.ndarray]:
        raise NotImplementedError


class _OnnxEngine(_Engine):
    def __init__(self, path: Path, threads: int | None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.sess.get_inputs()]
        self.types = [_ORT_TYPES.get(i.type) for i in self.sess.get_inputs()]
        self.info = {"name": "onnxruntime", "version": ort.__version__}

    def dtypes(self, key):
        return self.types

    def run(self, arrays, key):
        return self.sess.run(None, dict(zip(self.names, arrays, strict=True)))


class _OpenVINOEngine(_Engine):
    """The IR compiled once, dynamic; with shape buckets (``per_bucket``) also once per bucket at that
    static shape, on first use: a dynamic model pays a reshape each time the shape changes (~2 ms
    for MiniLM int8 at one thread, as much as a 16-token run), and bucketed inputs change shape often."""

    def __init__(self, path: Path, threads: int | None):
        import openvino as ov

        self.config = {"INFERENCE_PRECISION_HINT": "f32"}  # AMX CPUs infer in bf16 unless told (see module doc)
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.core, self.path = ov.Core(), path
        self.compiled = self.core.compile_model(str(path), "CPU", self.config)
        self.request = self.compiled.create_infer_request()
        self.types = [np.dtype(p.get_element_type().to_dtype()).name for p in self.compiled.inputs]
        self.info = {"name": "openvino", "version": ov.__version__.split("-")[0]}
        self.per_bucket = False  # set by Runtime when the manifest has shape buckets
        self._static: dict[tuple, tuple] = {}

    def dtypes(self, key):
        return self.types

    def _for(self, arrays) -> tuple:
        if not self.per_bucket:
            return self.compiled, self.request
        shapes = tuple(tuple(int(d) for d in a.shape) for a in arrays)
        if shapes not in self._static:
            model = self.core.read_model(str(self.path))
            model.reshape({i: list(s) for i, s in enumerate(shapes)})
            compiled = self.core.compile_model(model, "CPU", self.config)
            self._static[shapes] = (compiled, compiled.create_infer_request())
        return self._static[shapes]

    def run(self, arrays, key):
        import openvino as ov

        compiled, request = self._for(arrays)
        for i, a in enumerate(arrays):  # wrapped, not copied (~10 us against ~50 for infer(dict)'s copy)
            request.set_input_tensor(i, ov.Tensor(np.ascontiguousarray(a), shared_memory=True))
        request.infer()
        return [request.get_output_tensor(i).data.copy() for i in range(len(compiled.outputs))]


class _LiteRTEngine(_Engine):
    def __init__(self, path: Path, threads: int | None):
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=threads or None)
        self.sigs = self.interp.get_signature_list()
        self.signatures = list(self.sigs)
        self.runners: dict[str, object] = {}
        self.info = {"name": "ai-edge-litert", "signatures": self.signatures}

    def _runner(self, key):
        key = key if key is not None else self.signatures[0]
        if key not in self.sigs:
            raise EdgekitError(f"the .tflite has no signature {key!r} (it has {self.signatures})",
                               "convert it again: its manifest and file disagree")
        if key not in self.runners:
            self.runners[key] = self.interp.get_signature_runner(key)
        return key, self.runners[key]

    def dtypes(self, key):
        key, runner = self._runner(key)
        details = runner.get_input_details()
        return [np.dtype(details[n]["dtype"]).name for n in self.sigs[key]["inputs"]]

    def run(self, arrays, key):
        key, runner = self._runner(key)
        result = runner(**dict(zip(self.sigs[key]["inputs"], arrays, strict=True)))
        return [np.asarray(result[n]) for n in self.sigs[key]["outputs"]]


class _ExecuTorchEngine(_Engine):
    """A .pte: ``forward``, or one method per bucket; torch comes with ExecuTorch's bindings."""

    CODES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16", 6: "float32", 7: "float64",
             11: "bool"}

    def __init__(self, path: Path, threads: int | None):
        from executorch.runtime import Runtime as _ETRuntime

        if threads:  # one process-wide pool: resizing it strands methods loaded before (load those again)
            from executorch.extension.pybindings import portable_lib

            if portable_lib._threadpool_get_thread_count() != threads:
                portable_lib._unsafe_reset_threadpool(int(threads))
        self.program = _ETRuntime.get().load_program(str(path))
        self.methods: dict[str, object] = {}
        self.signatures = [m for m in self.program.method_names if m != "edgekit_io"]
        self.info = {"name": "executorch", "methods": self.signatures}

    def _method(self, key):
        key = key or ("forward" if "forward" in self.signatures else self.signatures[0])
        if key not in self.methods:
            self.methods[key] = self.program.load_method(key)
        return key

    def dtypes(self, key):
        meta = self.program.metadata(self._method(key))
        return [self.CODES.get(int(meta.input_tensor_meta(i).dtype())) for i in range(meta.num_inputs())]

    def run(self, arrays, key):
        import torch

        method = self.methods[self._method(key)]
        result = method.execute([torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
        return [r.detach().numpy() if hasattr(r, "detach") else np.asarray(r) for r in result]


class _CoreMLEngine(_Engine):
    def __init__(self, path: Path, threads: int | None):
        if platform.system() != "Darwin":
            raise EdgekitError(f"{path.name}: the Core ML runtime runs on macOS only (this is {platform.system()})",
                               "run it on a Mac or an iPhone, or load another target of the folder")
        import coremltools as ct

        self.model = ct.models.MLModel(str(path))
        spec = self.model.get_spec().description
        self.in_names = [i.name for i in spec.input]
        self.out_names = [o.name for o in spec.output]
        self.info = {"name": "coremltools", "version": ct.__version__}

    def dtypes(self, key):
        return [None] * len(self.in_names)

    def run(self, arrays, key):
        result = self.model.predict(dict(zip(self.in_names, arrays, strict=True)))
        return [np.asarray(result[n]) for n in self.out_names]


ENGINES = {"onnx": _OnnxEngine, "openvino": _OpenVINOEngine, "tflite": _LiteRTEngine,
           "executorch": _ExecuTorchEngine, "coreml": _CoreMLEngine}
_MODULES = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "ai_edge_litert",
            "executorch": "executorch", "coreml": "coremltools"}


# ---- the runtime: names, buckets, padding ------------------------------------------------------

def _bucket_key(dims: dict[str, int]) -> str:
    """edgekit._buckets.key: ``sequence_16``, ``height_32_width_100``."""
    return "_".join(f"{axis}_{size}" for axis, size in dims.items())


class Runtime:
    """An artifact opened in its runtime; ``run(feeds)`` (or calling it) -> {output name: array}.

    ``inputs``/``outputs``: the names it takes and gives (the source model's, where the artifact
    has as many; else the artifact's own). ``buckets``: axis -> bucket sizes, or None."""

    def __init__(self, engine: _Engine, entry: dict, source: dict | None, path: Path,
                 pad_values: dict[str, float] | None = None):
        self.engine, self.path, self.target = engine, path, entry["target"]
        self.precision = entry.get("precision")
        art, src = entry["signature"], (source or {}).get("signature") or entry["signature"]
        same = [len(src[k]) == len(art[k]) for k in ("inputs", "outputs")]
        self._in = src["inputs"] if same[0] else art["inputs"]
        self._out = src["outputs"] if same[1] else art["outputs"]
        self._alias = {a["name"]: s["name"] for a, s in zip(art["inputs"], self._in, strict=True)}
        self.inputs = [s["name"] for s in self._in]
        self.outputs = [s["name"] for s in self._out]
        spec = entry.get("buckets") or {}
        self.buckets: dict[str, list[int]] | None = {k: sorted(int(s) for s in v)
                                                      for k, v in (spec.get("axes") or {}).items()} or None
        self._signatures = spec.get("signatures") or None
        self.pad_values = {**(spec.get("pad") or {}), **(pad_values or {})}
        # a static-shape artifact: the size each named axis of the source is fixed at
        self.static = {d: a for s, t in zip(self._in, art["inputs"], strict=True) if same[0]
                       for d, a in zip(_shape(s), _shape(t), strict=False) if isinstance(d, str) and isinstance(a, int)}

    def __repr__(self) -> str:
        extra = f", buckets={self.buckets}" if self.buckets else (f", static={self.static}" if self.static else "")
        return f"Runtime({self.target}: {self.path.name}, inputs={self.inputs}{extra})"

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run(feeds)

    def _named(self, feeds: dict) -> dict[str, np.ndarray]:
        named = {}
        for k, v in feeds.items():
            name = self._alias.get(k, k)
            if name not in self.inputs:
                raise EdgekitError(f"{self.target} artifact has no input {k!r}", f"feed {self.inputs}")
            named[name] = np.asarray(v)
        missing = [n for n in self.inputs if n not in named]
        if missing:
            raise EdgekitError(f"no value for input(s) {missing} of the {self.target} artifact", f"feed {self.inputs}")
        return named

    def plan(self, feeds: dict[str, np.ndarray]) -> tuple[dict[str, int], dict[str, int], str | None]:
        """(real sizes, sizes run at, signature/method) for these feeds: the bucket, or the static size."""
        if self.buckets:
            real = axis_sizes(feeds, self._in, self.buckets)
            dims = pick_bucket(self.buckets, real)
            if dims is None:
                over = {a: s for a, s in real.items() if s > self.buckets[a][-1]}
                raise EdgekitError(
                    f"input length {over} is over the largest bucket {({a: self.buckets[a][-1] for a in over})} "
                    f"of the {self.target} artifact", "truncate the input to the largest bucket, or convert again "
                    "with a larger bucket (--shape-buckets)")
            if not self._signatures:
                return real, dims, None
            key = _bucket_key(dims)
            sig = self._signatures.get(key) or self._signatures.get(_bucket_key(dict(sorted(dims.items()))))
            if sig is None:
                raise EdgekitError(f"the manifest names no signature for bucket {key}", "convert the artifact again")
            return real, dims, sig
        if self.static and self.pad_values:
            real = axis_sizes(feeds, self._in, self.static)
            over = {a: s for a, s in real.items() if s > self.static[a]}
            if over:
                raise EdgekitError(f"input size {over} is over the {self.target} artifact's static shape "
                                   f"{({a: self.static[a] for a in over})}", "truncate the input, or convert with a "
                                   "larger --dim, or with --shape-buckets")
            return real, {a: self.static[a] for a in real}, None
        return {}, {}, None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``feeds`` (by input name, at their real size): padded to the bucket, run, un-padded."""
        feeds = self._named(feeds)
        real, dims, key = self.plan(feeds)
        feeds = pad(feeds, self._in, dims, self.pad_values) if dims else feeds
        arrays = []
        for name, dtype in zip(self.inputs, self.engine.dtypes(key), strict=True):
            arr = feeds[name]
            arrays.append(arr.astype(dtype) if dtype and arr.dtype != np.dtype(dtype) else arr)
        results = self.engine.run(arrays, key)
        outputs = dict(zip(self.outputs, results, strict=False))
        cut = {a: s for a, s in real.items() if s != dims.get(a)}
        return unpad(outputs, self._out, cut) if cut else outputs


# ---- load: a folder's manifest -> one artifact ------------------------------------------------

def _entries(folder: Path) -> tuple[list[tuple[Path, dict]], dict | None]:
    """Every artifact of a convert folder (manifest.json) or a compress folder (fp32/ and the
    variants of report.json), as (path, manifest entry); and the source."""
    manifest = folder / "manifest.json"
    if not manifest.is_file() and (folder / "fp32" / "manifest.json").is_file():
        manifest = folder / "fp32" / "manifest.json"
    if not manifest.is_file():
        raise EdgekitError(f"{folder} holds no manifest.json", "give the folder `edgekit convert` (or compress) wrote")
    doc = json.loads(manifest.read_text())
    entries = [(manifest.parent / a["path"], a) for a in doc.get("artifacts", [])]
    report = folder / "report.json"
    if report.is_file():
        base = {a["target"]: a for _, a in entries}
        for v in json.loads(report.read_text()).get("variants", []):
            if v.get("target") in base and (folder / v["path"]).exists():
                entries.append((folder / v["path"], {**base[v["target"]], **{k: v[k] for k in v if k in
                                                                                ("path", "buckets", "precision")},
                                                       "mode": v.get("mode")}))
    return entries, doc.get("source")


def _runnable(target: str) -> bool:
    import importlib.util

    if target == "coreml" and platform.system() != "Darwin":
        return False
    module = _MODULES.get(target)
    return module is not None and importlib.util.find_spec(module) is not None


def _choose(entries: list[tuple[Path, dict]], target: str | None, folder: Path) -> tuple[Path, dict]:
    """The entry ``target`` names (a target, or an artifact's folder such as onnx-static-int8);
    None: the first this host can run."""
    names = [f"{p.parent.name} ({e['target']})" for p, e in entries]
    if target is None:
        for p, e in entries:
            if _runnable(e["target"]):
                return p, e
        raise EdgekitError(f"{folder}: no artifact this host can run (it has {names})",
                           f"install the runtime of one: {sorted({_MODULES.get(e['target'], e['target']) for _, e in entries})}")
    exact = [(p, e) for p, e in entries if p.parent.name == target or str(p) == target]
    found = exact or [(p, e) for p, e in entries if e["target"] == target]
    if not found:
        raise EdgekitError(f"{folder} has no {target!r} artifact (it has {names})", "pass target= one of those")
    if len(found) > 1:
        raise EdgekitError(f"{folder} has several {target!r} artifacts: {[p.parent.name for p, _ in found]}",
                           "pass target= the artifact's folder name")
    return found[0]


def load(folder: str | os.PathLike, target: str | None = None, *, threads: int | None = None,
         pad_values: dict[str, float] | None = None) -> Runtime:
    """Open the ``target`` artifact of an edgekit output ``folder`` (``target``: onnx, openvino,
    tflite, executorch, coreml, or an artifact's folder name; default: the first this host can run).

    ``threads``: the runtime's intra-op threads (default: the runtime's own). ``pad_values``: input
    name -> fill value, over the manifest's (lets a static-shape artifact take shorter inputs)."""
    folder = Path(folder)
    entries, source = _entries(folder)
    path, entry = _choose(entries, target, folder)
    kind = entry["target"]
    if kind not in ENGINES:
        raise EdgekitError(f"{path}: edgekit.runtime cannot run {kind!r} artifacts", f"load one of {sorted(ENGINES)}")
    if kind != "coreml" and not _runnable(kind):
        raise EdgekitError(f"{path.name} needs {_MODULES[kind]}, which is not installed here",
                           f"pip install {_MODULES[kind].replace('_', '-')} (or edgekit[{kind}])")
    runtime = Runtime(ENGINES[kind](path, threads), entry, source, path, pad_values)
    if runtime.buckets and hasattr(runtime.engine, "per_bucket"):
        runtime.engine.per_bucket = True  # a few static shapes: each compiled for its own
    return runtime
