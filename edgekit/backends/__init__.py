"""One subpackage per backend; each is imported only when its target is asked for.

A backend module has ``convert(model, dest, precision, ctx) -> Path`` (in
``convert.py``) and a runner class in ``runtime.py`` with ``signature`` and
``run(feeds) -> list[np.ndarray]``.
"""
