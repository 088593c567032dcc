"""A target is one folder: its spec, routes, runner and quantizer, found by listing backends/."""

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgekit._registry import TARGETS, format_of_suffix
from edgekit.backends._spec import SOURCES, Route, Runner, TargetSpec

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "tensorflow", "openvino", "coremltools", "onnxruntime", "onnx", "transformers", "executorch"]


def test_every_folder_declares_a_complete_target():
    folders = {p.name for p in (ROOT / "edgekit" / "backends").iterdir()
               if p.is_dir() and not p.name.startswith("_") and (p / "__init__.py").exists()}
    assert {s.package for s in TARGETS.values()} == folders
    assert list(TARGETS)[0] == "onnx"  # ONNX converts first: the others reuse its export
    for name, spec in TARGETS.items():
        assert isinstance(spec, TargetSpec) and spec.name == name and spec.routes
        folder = ROOT / "edgekit" / "backends" / spec.package
        convert = (folder / "convert.py").read_text()
        for route in spec.routes:  # each route's function exists (checked in the source: no heavy import)
            assert route.source in SOURCES and f"def {route.fn}(" in convert, (name, route)
        assert f"class {spec.runner}" in (folder / "runtime.py").read_text(), name
        if any(why is None for why in spec.quantization.values()):
            assert "def quantize(" in (folder / "quantize.py").read_text(), name
        assert format_of_suffix()[spec.suffix] == name


def test_listing_targets_imports_no_framework():
    probe = ("from edgekit._registry import TARGETS, extras\nlist(TARGETS); extras()\n"
             "import json, sys\nprint(json.dumps(sorted(sys.modules)))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    mods = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert not [m for m in HEAVY if m in mods]


def test_runners_meet_the_protocol(tmp_path):
    from edgekit._registry import runner_for
    from tests.test_cpu import _matmul_model

    runner = runner_for(TARGETS["onnx"], _matmul_model(tmp_path / "m.onnx"))
    assert isinstance(runner, Runner)
    (out,) = runner.run({"x": np.ones((1, 64), np.float32)})
    assert out.shape == (1, 48)


def test_routes_are_walked_until_one_makes_the_artifact(tmp_path):
    """A failing first route is recorded in attempts[], and the next one makes the artifact."""
    from dataclasses import replace

    import edgekit
    from edgekit.backends._common import ConvertContext
    from edgekit.steps.export import convert_by_routes
    from tests.test_cpu import _matmul_model

    model = edgekit.load(str(_matmul_model(tmp_path / "m.onnx")))
    spec = replace(TARGETS["onnx"], routes=(Route("onnx-file", "a tool that breaks", "no_such_route"),
                                            *TARGETS["onnx"].routes))
    (tmp_path / "out").mkdir()
    path, notes, attempts = convert_by_routes(model, spec, tmp_path / "out", "fp32",
                                              ConvertContext(workdir=tmp_path))
    assert path.is_file() and [a["route"] for a in attempts] == ["onnx-file -> a tool that breaks",
                                                                  "onnx-file -> copy (external data too)"]
    assert attempts[0]["error"] and attempts[1]["error"] is None
    assert any("after 1 other(s)" in n for n in notes) and attempts[1]["kept"]
    only_bad = replace(spec, routes=spec.routes[:1])
    with pytest.raises(edgekit.EdgekitError):
        convert_by_routes(model, only_bad, tmp_path / "out", "fp32", ConvertContext(workdir=tmp_path))


def test_a_route_failing_parity_is_set_aside_for_the_next(tmp_path):
    """The first route's artifact fails the check: the second route's is kept, never the failing one;
    when every route fails, the first route's artifact is kept with its failed parity."""
    from dataclasses import replace

    import edgekit
    from edgekit.backends._common import ConvertContext
    from edgekit.steps.export import convert_by_routes
    from tests.test_cpu import _matmul_model

    model = edgekit.load(str(_matmul_model(tmp_path / "m.onnx")))
    copy = TARGETS["onnx"].routes[0]  # onnx-file -> copy
    spec = replace(TARGETS["onnx"], routes=(replace(copy, tool="first copy"), replace(copy, tool="second copy")))
    (tmp_path / "out").mkdir()
    seen = []

    def check(path):
        seen.append(path)
        if len(seen) > 1:
            return "pass"
        path.write_bytes(b"the failing route's artifact")
        return "fail"

    path, notes, attempts = convert_by_routes(model, spec, tmp_path / "out", "fp32",
                                              ConvertContext(workdir=tmp_path), check=check)
    assert [a["parity"] for a in attempts] == ["fail", "pass"] and attempts[1]["kept"]
    assert not attempts[0].get("kept") and any("parity fail" in n for n in notes)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [path.name]
    assert path.read_bytes() != b"the failing route's artifact"
    shutil.rmtree(tmp_path / "out")
    (tmp_path / "out").mkdir()
    path, notes, attempts = convert_by_routes(model, spec, tmp_path / "out", "fp32",
                                              ConvertContext(workdir=tmp_path / "w2"), check=lambda p: "fail")
    assert [a["parity"] for a in attempts] == ["fail", "fail"] and attempts[0]["kept"]
    assert path.is_file()


def test_manifest_records_the_attempts(tmp_path):
    import edgekit
    from tests.test_cpu import _matmul_model

    result = edgekit.convert(str(_matmul_model(tmp_path / "m.onnx")), targets=["onnx", "openvino"],
                             out=tmp_path / "o")
    for a in result.manifest["artifacts"]:
        (attempt,) = a["attempts"]
        assert attempt["error"] is None and attempt["parity"] == "pass" and attempt["seconds"] >= 0
    assert result.manifest["artifacts"][1]["attempts"][0]["route"] == "onnx -> openvino.convert_model"


def test_one_backend_missing_leaves_the_rest_working(tmp_path):
    """NNCF's install test: with OpenVINO unimportable, everything imports, ONNX converts, and
    asking for OpenVINO names the extra to install."""
    from tests.test_cpu import _matmul_model

    model = _matmul_model(tmp_path / "m.onnx")
    probe = f"""
import sys
sys.modules["openvino"] = None  # import openvino now raises ImportError
import edgekit, edgekit.cli, edgekit.bench, edgekit.serve, edgekit.steps.compress, edgekit.steps.export
for name in {sorted(TARGETS)!r}:
    spec = edgekit._registry.TARGETS[name]
    for part in ("convert", "runtime"):
        edgekit._registry.backend_module(spec, part)
r = edgekit.convert({str(model)!r}, targets=["onnx"], out={str(tmp_path / "ok")!r})
assert r.ok
try:
    edgekit.convert({str(model)!r}, targets=["openvino"], out={str(tmp_path / "no")!r})
except edgekit.BackendMissing as exc:
    print("MISSING", exc)
"""
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MISSING openvino is not installed" in proc.stdout and "edgekit[openvino]" in proc.stdout
    assert not (tmp_path / "no").exists()


def test_quantizers_live_in_their_target_folder():
    from edgekit.steps.quantize import backend

    for name, spec in TARGETS.items():
        if any(why is None for why in spec.quantization.values()):
            assert backend(name).__name__ == f"edgekit.backends.{spec.package}.quantize"
    assert importlib.util.find_spec("edgekit.steps.quantize.onnxruntime_backend") is None


# ---- allowed import directions between edgekit's parts (an import-linter contract, in a test) ----------
LAYERS = ["core", "backends", "present", "steps", "bench", "serve", "fallback", "api"]  # each may import below it


def _part(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "cli", "__main__", "zoo"):
        return "api"
    if parts[1] == "_registry":  # the targets' registry belongs with them
        return "backends"
    return parts[1] if parts[1] in LAYERS else "core"


def _imports(path: Path, module: str):
    import ast

    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):  # function-level imports count too
        if isinstance(node, ast.ImportFrom):
            base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
            names = [f"{target}.{a.name}" for a in node.names] if target == "edgekit" else [target]
            yield from (n for n in names if n.startswith("edgekit"))
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("edgekit"))


def test_imports_go_down_the_layers_only():
    bad = []
    for path in (ROOT / "edgekit").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        src = _part(module)
        for target in _imports(path, module):
            dst = _part(target)
            if dst != src and LAYERS.index(dst) > LAYERS.index(src):
                bad.append(f"{module} ({src}) imports {target} ({dst})")
    assert not bad, "\n".join(bad)
