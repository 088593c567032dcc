"""The package itself: light imports, the CLI's help, data shipped with it."""

import json
import subprocess
import sys

from tests.conftest import run_cli

HEAVY = ["torch", "tensorflow", "openvino", "coremltools", "onnxruntime", "onnx", "transformers", "keras", "jax",
         "fastapi", "uvicorn", "ray", "prometheus_client"]


def _modules_after(code: str) -> set[str]:
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_import_edgekit_imports_no_backend():
    mods = _modules_after("import edgekit; edgekit.__all__; edgekit.EdgekitError")
    assert not [m for m in HEAVY if m in mods]


def test_serve_and_fallback_import_no_backend():
    mods = _modules_after("import edgekit; edgekit.serve.ServeConfig; edgekit.FallbackModel; edgekit.FallbackPolicy")
    assert not [m for m in HEAVY if m in mods]
    assert callable(__import__("edgekit").serve)


def test_runtime_imports_no_backend_until_load():
    """edgekit.runtime (the device-side helper) imports numpy only; a runtime comes with load()."""
    mods = _modules_after("import edgekit.runtime\nimport edgekit\nedgekit.runtime.pick_bucket; edgekit.runtime.load")
    assert "edgekit.runtime" in mods
    assert not [m for m in HEAVY if m in mods]
    assert not [m for m in mods if m.startswith("edgekit.") and m not in ("edgekit._errors", "edgekit._version",
                                                                          "edgekit.runtime")]


def test_cli_help_imports_no_backend():
    code = ("import sys\nsys.argv = ['edgekit', '--help']\nfrom edgekit.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "sys.argv = ['edgekit', 'convert', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "sys.argv = ['edgekit', 'serve', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n")
    mods = _modules_after(code)
    assert "typer" in mods  # the probe did run the CLI
    assert not [m for m in HEAVY if m in mods]


def test_cli_help_and_version():
    rc, out, _ = run_cli("--help")
    assert rc == 0 and "convert" in out
    rc, out, _ = run_cli("convert", "--help")
    assert rc == 0 and "--to" in out and "--inputs" in out
    rc, out, _ = run_cli("--version")
    assert rc == 0 and out.strip() == __import__("edgekit").__version__


def test_data_tables_are_readable():
    from edgekit._data import load_toml
    from edgekit._registry import TARGETS

    chains = load_toml("converters", "toolchains.toml")
    assert set(TARGETS) <= set(chains)
    failures = load_toml("converters", "known_failures.toml")["failure"]
    assert all({"target", "match", "cause", "fix"} <= set(f) for f in failures)
    import re

    for f in failures:
        re.compile(f["match"])


def test_readme_python_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"## Python API\n\n```python\n(.*?)```", readme, re.S).group(1)
    code = block.replace('out="build/tiny-cnn"', f'out=r"{tmp_path / "tiny-cnn"}"')
    exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "tiny-cnn" / "manifest.json").is_file()


def test_target_profiles_are_complete():
    from edgekit._data import data_dir, load_toml
    from edgekit._registry import TARGETS

    files = sorted(p.name for p in data_dir("targets").glob("*.toml"))
    assert len(files) >= 5
    for name in files:
        t = load_toml("targets", name)
        assert t["name"] == name.removesuffix(".toml")
        assert set(t["runtimes"]) <= set(TARGETS)
        assert t["budgets"]["memory_mb"] > 0 and t["budgets"]["latency_ms"] > 0
        assert t["reach"]["kind"] in ("local", "ssh", "adb", "macos")


def test_recipes_validate_and_every_field_is_documented():
    """Each shipped recipe loads; each recipe field appears in docs/recipes.md under its section."""
    import re
    from pathlib import Path

    from edgekit import _recipe as R

    root = Path(__file__).resolve().parents[1]
    recipes = sorted((root / "models").glob("*.toml"))
    assert len(recipes) >= 4
    for path in recipes:
        assert R.load_recipe(path).model.source
    doc = (root / "docs" / "recipes.md").read_text()
    sections = {"`[model]`": R.ModelSection, "`[convert]`": R.ConvertSection, "`[verify]`": R.VerifySection,
                "`[compress]`": R.CompressSection, "`[compress.train]`": R.TrainSection}
    for title, cls in sections.items():
        body = re.search(rf"#+ {re.escape(title)}\n(.*?)(?=\n#+ |\Z)", doc, re.S).group(1)
        documented = set(re.findall(r"^\| `(\w+)` \|", body, re.M))
        fields = set(cls.model_fields) - ({"train"} if cls is R.CompressSection else set())
        assert documented == fields, (title, fields ^ documented)
