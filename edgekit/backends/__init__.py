"""One folder per target; each is imported only when its target is asked for.

A folder's ``__init__`` defines ``SPEC`` (a ``_spec.TargetSpec``: its name, files, extra,
conversion routes, quantization modes...), and nothing heavy. Its ``convert.py`` holds the
route functions (``fn(model, dest_dir, precision, ctx) -> (path, notes)``), ``runtime.py`` the
runner class (``signature``, ``run(feeds) -> list[np.ndarray]``) and ``quantize.py`` the
quantizer. The interfaces are Protocols in ``_spec.py``; docs/architecture.md has the steps to
add a target.
"""
