"""Each target's folder under ``edgekit/backends/`` holds everything about that target and nothing
another target reads: a target imports no other target's modules, and the shared helpers
(``edgekit/backends/_*.py``) import from no target. What two targets share lives in a shared
module (e.g. ``_onnx_static.py``: the ONNX graph at static sizes, used by TFLite, OpenVINO and
onnx2torch). Parsed with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
import re
from pathlib import Path

BACKENDS = Path(__file__).resolve().parents[1] / "edgekit" / "backends"
TARGETS = sorted(p.name for p in BACKENDS.iterdir() if (p / "__init__.py").is_file())

# deliberate routes from one target to another's artifact: (importing target, module, name) -> why
ALLOWED = {
    # TFLite's and OpenVINO's ONNX routes convert the fp32 ONNX the ONNX target exported (made
    # once per run and kept in ctx.onnx_path); ensure_onnx is that target's public hand-off
    ("tflite", "edgekit.backends.onnxruntime.convert", "ensure_onnx"): "converts the ONNX target's export",
    ("openvino", "edgekit.backends.onnxruntime.convert", "ensure_onnx"): "converts the ONNX target's export",
}
_MODULE_PATH = re.compile(r"edgekit\.backends\.\w+(\.\w+)*(:\w+)?")


def _package(path: Path) -> list[str]:
    """The dotted package ``path`` is in (``edgekit.backends.tflite`` for the folder's modules)."""
    return list(path.relative_to(BACKENDS.parent.parent).parts[:-1])


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """Every import in ``path``, nested ones too, made absolute: ``(module, name or None, line)``
    (``from X import a`` is ``(X, a)``); a string constant naming an ``edgekit.backends`` module
    (a lazy loader's ``module:function``) counts as an import of that module."""
    found: list[tuple[str, str | None, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = _package(path)
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_PATH.fullmatch(node.value):
            found.append((node.value.split(":")[0], None, node.lineno))
    return found


def _target_of(module: str, name: str | None) -> str | None:
    """The target folder an import reaches (``from edgekit.backends import tflite`` reaches tflite)."""
    parts = [*module.split("."), *([name] if name else [])]
    return parts[2] if parts[:2] == ["edgekit", "backends"] and len(parts) > 2 and parts[2] in TARGETS else None


def offenders() -> list[str]:
    bad = []
    for path in sorted(BACKENDS.rglob("*.py")):
        rel = path.relative_to(BACKENDS)
        own = rel.parts[0] if len(rel.parts) > 1 else None  # None: a shared module
        if own is None and (not path.name.startswith("_") or path.name == "__init__.py"):
            continue  # the package's __init__ lists no target (targets are found by listing folders)
        for module, name, line in imports(path):
            target = _target_of(module, name)
            if target is None or target == own or (own, module, name) in ALLOWED:
                continue
            what = f"{module}:{name}" if name else module
            bad.append(f"edgekit/backends/{rel.as_posix()}:{line} imports {what} "
                       f"({'shared module' if own is None else own} -> {target})")
    return bad


def test_no_backend_imports_another_backends_modules():
    bad = offenders()
    assert not bad, ("a target imports another target's module, or a shared module imports a target; move "
                     "what they share into a shared edgekit/backends/_*.py module:\n" + "\n".join(bad))


def test_the_checker_sees_what_it_should(tmp_path, monkeypatch):
    """Relative and absolute forms, nested imports and a loader string are all seen, from a target
    and from a shared module; a target's own modules, shared modules and an ALLOWED route are not."""
    root = tmp_path / "edgekit" / "backends"
    for target in ("alpha", "beta"):
        (root / target).mkdir(parents=True)
        (root / target / "__init__.py").write_text("")
    (root / "alpha" / "convert.py").write_text(
        "from .._common import x\nfrom . import _own\nfrom ._own import y\nfrom ..beta._prep import a\n"
        "def f():\n    import edgekit.backends.beta.convert\n    from edgekit.backends.beta import runtime\n"
        "    from .. import beta\n    from ..beta.convert import ensure\n    return 'edgekit.backends.beta.device:load'\n")
    (root / "_shared.py").write_text("from .beta import _prep\nfrom ._common import y\nfrom .alpha.convert import f\n")
    monkeypatch.setitem(globals(), "BACKENDS", root)
    monkeypatch.setitem(globals(), "TARGETS", ["alpha", "beta"])
    monkeypatch.setitem(globals(), "ALLOWED", {("alpha", "edgekit.backends.beta.convert", "ensure"): "a route"})
    got = sorted(line.split(" imports ")[1] for line in offenders())
    assert got == ["edgekit.backends.alpha.convert:f (shared module -> alpha)",
                   "edgekit.backends.beta._prep:a (alpha -> beta)",
                   "edgekit.backends.beta.convert (alpha -> beta)",
                   "edgekit.backends.beta.device (alpha -> beta)",
                   "edgekit.backends.beta:_prep (shared module -> beta)",
                   "edgekit.backends.beta:runtime (alpha -> beta)",
                   "edgekit.backends:beta (alpha -> beta)"], got
